"""Knowledge distillation (Hinton et al. 2015): the loss, and a teacher checkpoint driving a student run."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from edgecnn.train.distill import distillation_loss, kd_kl, soft_cross_entropy


def test_soft_cross_entropy_equals_hard_ce_for_one_hot():
    logits = torch.randn(5, 4, generator=torch.Generator().manual_seed(0))
    y = torch.tensor([0, 3, 1, 1, 2])
    torch.testing.assert_close(soft_cross_entropy(logits, F.one_hot(y, 4).float()), F.cross_entropy(logits, y))
    torch.testing.assert_close(
        soft_cross_entropy(logits, F.one_hot(y, 4).float(), label_smoothing=0.1),
        F.cross_entropy(logits, y, label_smoothing=0.1),
    )


def test_kd_kl_is_temperature_scaled_kl():
    s = torch.randn(3, 5, generator=torch.Generator().manual_seed(1))
    t = torch.randn(3, 5, generator=torch.Generator().manual_seed(2))
    T = 3.0
    p_t, log_p_s = F.softmax(t / T, 1), F.log_softmax(s / T, 1)
    ref = (p_t * (p_t.log() - log_p_s)).sum(1).mean() * T * T
    torch.testing.assert_close(kd_kl(s, t, T), ref)
    assert kd_kl(t, t, T).item() == pytest.approx(0.0, abs=1e-6)


def test_distillation_loss_mixes_soft_and_hard_terms():
    s = torch.randn(4, 3, requires_grad=True)
    t = torch.randn(4, 3)
    y = F.one_hot(torch.tensor([0, 1, 2, 0]), 3).float()
    loss = distillation_loss(s, t, y, temperature=2.0, alpha=0.25)
    ref = 0.25 * kd_kl(s, t, 2.0) + 0.75 * soft_cross_entropy(s, y)
    torch.testing.assert_close(loss, ref)
    torch.testing.assert_close(distillation_loss(s, t, y, temperature=2.0, alpha=0.0), soft_cross_entropy(s, y))
    # alpha = 1: only the teacher matters; its gradient vanishes when the student equals the teacher
    same = t.clone().requires_grad_(True)
    distillation_loss(same, t, y, temperature=4.0, alpha=1.0).backward()
    assert same.grad.abs().max().item() < 1e-6


def test_student_trains_from_teacher_checkpoint(tmp_path):
    from edgecnn.train.trainer import fit
    from tests.test_train import tiny

    teacher = fit(tiny(model={"name": "mobilenet_v3_small", "width_mult": 0.5}, optim={"epochs": 1}), tmp_path / "t")
    student = fit(
        tiny(
            model={"name": "mobilenet_v3_small", "width_mult": 0.25},
            optim={"epochs": 1},
            distill={"teacher": str(teacher.checkpoint), "temperature": 4.0, "alpha": 0.5},
        ),
        tmp_path / "s",
    )
    assert math.isfinite(student.history[0]["train_loss"]) and student.checkpoint.is_file()


def test_objective_is_ce_without_teacher_and_distillation_with_one():
    from edgecnn.train.distill import objective

    g = torch.Generator().manual_seed(0)
    x, s = torch.randn(6, 5, generator=g), torch.randn(6, 3, generator=g)
    y = F.one_hot(torch.tensor([0, 1, 2, 0, 1, 2]), 3).float()
    teacher = torch.nn.Linear(5, 3)
    torch.testing.assert_close(objective(None, alpha=0.5, temperature=2.0)(s, x, y), soft_cross_entropy(s, y))
    with torch.no_grad():
        t = teacher(x)
    kd = objective(teacher, alpha=0.5, temperature=2.0, label_smoothing=0.1)
    torch.testing.assert_close(kd(s, x, y), distillation_loss(s, t, y, temperature=2.0, alpha=0.5, label_smoothing=0.1))
    torch.testing.assert_close(kd(s, x, None), kd_kl(s, t, 2.0))  # no targets: the teacher alone
    s.requires_grad_(True)
    kd(s, x, y).backward()
    assert teacher.weight.grad is None  # the teacher runs without gradients
    with pytest.raises(ValueError, match="needs a teacher"):
        objective(None, alpha=0.0, temperature=1.0)(s, x, None)
