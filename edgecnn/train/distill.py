"""Knowledge distillation losses (Hinton, Vinyals & Dean 2015, "Distilling the Knowledge in a Neural Network").

The student matches the teacher's temperature-softened class distribution (KL divergence, scaled by T² so its
gradients keep their size as T changes) while still fitting the labels. With soft or mixed targets (MixUp,
CutMix, pseudo-labels) the hard-label term is the cross-entropy against those targets.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


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
