"""Knowledge distillation losses (Hinton, Vinyals & Dean 2015, "Distilling the Knowledge in a Neural Network").

The student matches the teacher's temperature-softened class distribution (KL divergence, scaled by T² so its
gradients keep their size as T changes) while still fitting the labels. With soft or mixed targets (MixUp,
CutMix, pseudo-labels) the hard-label term is the cross-entropy against those targets.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import nn

if TYPE_CHECKING:
    from edgecnn.train.loop import LossFn


def soft_cross_entropy(logits: torch.Tensor, targets: torch.Tensor, *, label_smoothing: float = 0.0) -> torch.Tensor:
    """Mean cross-entropy against per-sample target distributions (N×K), with optional label smoothing
    (Szegedy et al. 2016): targets become ``(1−ε)·t + ε/K``."""
    if label_smoothing:
        targets = targets * (1 - label_smoothing) + label_smoothing / targets.shape[1]
    return torch.sum(-targets * F.log_softmax(logits.float(), dim=1), dim=1).mean()


def kd_kl(student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """``T² · KL(softmax(teacher/T) ‖ softmax(student/T))``, averaged over the batch."""
    t = float(temperature)
    log_p_s = F.log_softmax(student_logits.float() / t, dim=1)
    log_p_t = F.log_softmax(teacher_logits.float() / t, dim=1)
    return F.kl_div(log_p_s, log_p_t, reduction="batchmean", log_target=True) * (t * t)


def distillation_loss(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    targets: torch.Tensor,
    *,
    temperature: float,
    alpha: float,
    label_smoothing: float = 0.0,
) -> torch.Tensor:
    """``alpha · T²·KL + (1 − alpha) · CE(targets)`` — Hinton et al.'s weighted sum of soft and hard objectives."""
    hard = soft_cross_entropy(student_logits, targets, label_smoothing=label_smoothing)
    if alpha == 0:
        return hard
    return alpha * kd_kl(student_logits, teacher_logits, temperature) + (1 - alpha) * hard


def objective(teacher: nn.Module | None, *, alpha: float, temperature: float, label_smoothing: float = 0.0) -> LossFn:
    """The step loss of :class:`edgecnn.train.loop.StepLoop`, the same for the trainer and QAT: cross-entropy
    against the targets without a teacher; with one, :func:`distillation_loss` (pure :func:`kd_kl` when a batch has
    no targets). The teacher sees the student's inputs, without gradients."""

    def loss(logits: torch.Tensor, x: torch.Tensor, targets: torch.Tensor | None) -> torch.Tensor:
        if teacher is None:
            if targets is None:
                raise ValueError("a batch without targets needs a teacher to distil from")
            return soft_cross_entropy(logits, targets, label_smoothing=label_smoothing)
        with torch.no_grad():
            t_logits = teacher(x)
        if targets is None:
            return kd_kl(logits, t_logits, temperature)
        return distillation_loss(
            logits, t_logits, targets, temperature=temperature, alpha=alpha, label_smoothing=label_smoothing
        )

    return loss
