"""Noisy Student self-training (Xie, Luong, Hovy & Le 2020, "Self-training with Noisy Student improves ImageNet
classification").

1. Train a teacher on the labelled images.
2. The teacher, *un-noised* (eval mode, no augmentation), labels the unlabelled images: soft (its probabilities)
   or hard (one-hot) pseudo-labels; images below a confidence threshold are dropped; classes are balanced by
   keeping each class's most confident images up to a per-class quota and duplicating scarce classes (§3.1).
3. Train a student of equal or larger capacity on labelled + pseudo-labelled images *with noise*: dropout,
   stochastic depth and strong data augmentation (the recipe's ``[augment]``).
4. The student becomes the teacher; repeat.

Each round reports the teacher's and the student's accuracy on the held-out test set.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgecnn.data.augment import AugmentConfig
from edgecnn.data.images import ArrayImages
from edgecnn.errors import ConfigError
from edgecnn.train.datasets import TrainData
from edgecnn.train.recipe import Recipe

logger = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True)
class NoisyStudentConfig:
    rounds: int = 1
    soft: bool = True  # soft pseudo-labels (probabilities) or hard (argmax one-hot)
    threshold: float = 0.3  # drop unlabelled images whose top probability is below this
    balance: bool = True  # per-class quota of the most confident images, duplicating scarce classes
    student_dropout: float = 0.3  # noise on the student (Xie et al.: dropout 0.5, stochastic depth 0.8 survival)
    student_drop_path: float = 0.2
    width_growth: float = 1.0  # multiply the width each round (>= 1: equal or larger student)
    student_epochs: int | None = None  # default: the recipe's epochs
    student_augment: AugmentConfig | None = None  # stronger input noise for students (default: the recipe's)

    def __post_init__(self) -> None:
        if self.rounds < 1 or not 0 <= self.threshold < 1 or self.width_growth < 1:
            raise ConfigError("noisy student: rounds >= 1, threshold in [0, 1) and width_growth >= 1 are required")


@dataclass(frozen=True, kw_only=True)
class RoundResult:
    round: int
    teacher_test_top1: float
    student_test_top1: float
    pseudo_labelled: int
    pseudo_label_accuracy: float | None  # against the true labels when the "unlabelled" set has them
    student_checkpoint: str


@dataclass(frozen=True, kw_only=True)
class NoisyStudentResult:
    teacher_test_top1: float
    rounds: list[RoundResult] = field(default_factory=list)


def pseudo_labels(probs: np.ndarray, *, soft: bool, threshold: float, balance: bool) -> tuple[np.ndarray, np.ndarray]:
    """Select and label unlabelled images from teacher probabilities (N×K).

    Returns (indices into the unlabelled set — repeated for duplicated images —, their N'×K targets).
    """
    if probs.ndim != 2 or not len(probs):
        return np.zeros(0, np.int64), np.zeros((0, probs.shape[-1] if probs.ndim == 2 else 0), np.float32)
    k = probs.shape[1]
    conf, pred = probs.max(1), probs.argmax(1)
    keep = np.flatnonzero(conf >= threshold)
    if balance and len(keep):
        quota = max(1, len(keep) // k)
        chosen = []
        for c in range(k):
            members = keep[pred[keep] == c]
            if not len(members):
                continue
            members = members[np.argsort(-conf[members], kind="stable")][:quota]
            reps = int(np.ceil(quota / len(members)))
            chosen.append(np.tile(members, reps)[:quota])  # duplicate scarce classes up to the quota
        keep = np.concatenate(chosen) if chosen else keep[:0]
    targets = probs[keep] if soft else np.eye(k, dtype=np.float32)[pred[keep]]
    return keep.astype(np.int64), targets.astype(np.float32)


def _concat(a: ArrayImages, b: ArrayImages, b_idx: np.ndarray) -> ArrayImages:
    return ArrayImages(
        images=np.concatenate([a.images, b.images[b_idx]]),
        labels=np.concatenate([a.labels, b.labels[b_idx]]),
        classes=a.classes,
    )


def noisy_student(
    recipe: Recipe,
    *,
    labelled: ArrayImages,
    unlabelled: ArrayImages,
    data: TrainData,
    out_dir: str | Path,
    cfg: NoisyStudentConfig = NoisyStudentConfig(),
    report: Callable[[str], None] | None = None,
) -> NoisyStudentResult:
    """Run teacher training plus ``cfg.rounds`` rounds of Noisy Student; ``data`` supplies val/test and the
    preprocessing. ``unlabelled.labels`` are never used for training (only to report pseudo-label accuracy)."""
    from edgecnn.train.trainer import fit, predict_proba

    report = report or logger.info
    out = Path(out_dir)
    base = dataclasses.replace(data, train=labelled, train_targets=None)
    report(f"teacher: {len(labelled)} labelled images")
    teacher_run = fit(recipe, out / "teacher", data=base, report=report)
    teacher_top1 = float(teacher_run.test_top1 or 0.0)
    teacher_ckpt = teacher_run.checkpoint
    width = recipe.model.width_mult or 1.0
    rounds: list[RoundResult] = []
    for r in range(1, cfg.rounds + 1):
        from edgecnn.models.resolve import resolve_model

        teacher, _ = resolve_model(str(teacher_ckpt))
        probs = predict_proba(teacher, unlabelled, data.preprocessing)
        idx, targets = pseudo_labels(probs, soft=cfg.soft, threshold=cfg.threshold, balance=cfg.balance)
        truth = unlabelled.labels[idx]
        pl_acc = float((targets.argmax(1) == truth).mean()) if len(idx) else None
        k = len(data.classes)
        train = _concat(labelled, unlabelled, idx)
        all_targets = np.concatenate([np.eye(k, dtype=np.float32)[labelled.labels], targets])
        width *= cfg.width_growth
        student_recipe = recipe.replace(
            model=dataclasses.replace(
                recipe.model,
                width_mult=width,
                dropout=cfg.student_dropout,
                drop_path_rate=cfg.student_drop_path,
            ),
            optim=dataclasses.replace(recipe.optim, epochs=cfg.student_epochs or recipe.optim.epochs),
            augment=cfg.student_augment or recipe.augment,
        )
        report(f"round {r}: student on {len(labelled)} labelled + {len(idx)} pseudo-labelled images")
        student_run = fit(
            student_recipe,
            out / f"student_{r}",
            data=dataclasses.replace(data, train=train, train_targets=all_targets),
            report=report,
        )
        student_top1 = float(student_run.test_top1 or 0.0)
        prev = teacher_top1 if r == 1 else rounds[-1].student_test_top1
        rounds.append(
            RoundResult(
                round=r,
                teacher_test_top1=prev,
                student_test_top1=student_top1,
                pseudo_labelled=len(idx),
                pseudo_label_accuracy=pl_acc,
                student_checkpoint=str(student_run.checkpoint),
            )
        )
        report(f"round {r}: teacher {100 * prev:.2f}%  →  student {100 * student_top1:.2f}% (test top-1)")
        teacher_ckpt = student_run.checkpoint
    return NoisyStudentResult(teacher_test_top1=teacher_top1, rounds=rounds)


def low_label_split(train: ArrayImages, fraction: float, *, seed: int = 0) -> tuple[ArrayImages, ArrayImages]:
    """Stratified cut of ``train`` into a labelled ``fraction`` and the unlabelled rest."""
    if not 0 < fraction < 1:
        raise ConfigError(f"labelled fraction must be in (0, 1), got {fraction}")
    rng = np.random.default_rng(seed)
    lab: list[Any] = []
    for c in range(len(train.classes)):
        members = np.flatnonzero(train.labels == c)
        rng.shuffle(members)
        lab.append(members[: max(1, round(fraction * len(members)))])
    lab_idx = np.sort(np.concatenate(lab))
    unl_idx = np.setdiff1d(np.arange(len(train)), lab_idx)
    return train.subset(lab_idx), train.subset(unl_idx)
