"""Optimizers with decoupled parameter groups, and the cosine learning-rate schedule with linear warm-up.

* Weight decay is not applied to BatchNorm parameters and biases (1-D tensors): decaying them only fights the
  normalization (Goyal et al. 2017, "Accurate, Large Minibatch SGD"; timm's ``param_groups_weight_decay``).
* The schedule is a pure function of the global step — SGDR's cosine without restarts (Loshchilov & Hutter 2017)
  after a linear warm-up (Goyal et al. 2017) — so resuming at any step reproduces it exactly, with no scheduler
  state to save.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable

import torch
from torch import nn

from edgecnn.train.recipe import OptimConfig


def param_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """Two groups: weights that decay, and BN parameters / biases that do not."""
    decay, no_decay = [], []
    for p in model.parameters():
        if p.requires_grad:
            (no_decay if p.ndim <= 1 else decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def build_optimizer(model: nn.Module, cfg: OptimConfig) -> torch.optim.Optimizer:
    """SGD with Nesterov momentum, AdamW (Loshchilov & Hutter 2019) or RMSprop (the MobileNet/EfficientNet choice)."""
    groups = param_groups(model, cfg.weight_decay)
    if cfg.name == "sgd":
        return torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.nesterov and cfg.momentum > 0)
    if cfg.name == "adamw":
        return torch.optim.AdamW(groups, lr=cfg.lr, eps=cfg.eps)
    return torch.optim.RMSprop(groups, lr=cfg.lr, momentum=cfg.momentum, eps=cfg.eps, alpha=0.9)


def lr_at(step: int, *, total_steps: int, warmup_steps: int, base_lr: float, cfg: OptimConfig) -> float:
    """Learning rate for ``step`` (0-based): linear warm-up from ``warmup_start·lr``, then cosine to ``min_lr``."""
    if warmup_steps > 0 and step < warmup_steps:
        start = cfg.warmup_start * base_lr
        return start + (base_lr - start) * step / warmup_steps
    span = max(1, total_steps - warmup_steps)
    t = min(1.0, (step - warmup_steps) / span)
    floor = cfg.min_lr_ratio * base_lr
    return floor + (base_lr - floor) * 0.5 * (1.0 + math.cos(math.pi * t))


def schedule(cfg: OptimConfig, *, total_steps: int, warmup_steps: int) -> Callable[[int], float]:
    """:func:`lr_at` for ``cfg`` (peak ``cfg.lr``) as a function of the step alone, the form the step loop takes."""
    return functools.partial(lr_at, total_steps=total_steps, warmup_steps=warmup_steps, base_lr=cfg.lr, cfg=cfg)


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    """Every parameter group's rate (the schedule is applied per step, not through a torch scheduler)."""
    for group in optimizer.param_groups:
        group["lr"] = lr
