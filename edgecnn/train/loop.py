"""The optimizer-step loop every edgecnn training shares: the recipe trainer (plain, distillation, Noisy Student,
DDP) and QAT fine-tuning (:func:`edgecnn.quant.qat.finetune`).

Callers bring what differs — the batches (augmented, normalized and on the device, produced lazily so that their
random draws interleave with the steps as before), the objective, the optimizer, a step → learning-rate schedule,
and optional AMP, gradient clipping and a post-step hook (the EMA). The loop takes every step in one fixed order,
so a fix to how a step is taken reaches all of them: set the rate; forward and loss under autocast; zero the
gradients; backward (scaled for fp16); clip; step; hook; stop on a non-finite loss.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from edgecnn.errors import ConfigError
from edgecnn.train.optim import set_lr

# (student logits, inputs, targets or None) → scalar loss; the inputs let a teacher see the same batch
LossFn = Callable[[torch.Tensor, torch.Tensor, torch.Tensor | None], torch.Tensor]
Batch = tuple[torch.Tensor, torch.Tensor | None]


@dataclass(frozen=True, kw_only=True)
class EpochStats:
    """What one epoch of steps did: the summed loss, how many batches and samples, and the global step after it."""

    loss_sum: float
    batches: int
    samples: int
    step: int

    @property
    def mean_loss(self) -> float:
        return self.loss_sum / max(self.batches, 1)


def train_mode(module: nn.Module, *, freeze_bn: bool) -> None:
    """Training mode, with every BatchNorm kept in eval mode (frozen statistics) when ``freeze_bn``."""
    module.train()
    if freeze_bn:
        for m in module.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.eval()


@dataclass(frozen=True, kw_only=True)
class StepLoop:
    """How a step is taken; ``name`` and ``hint`` word the error when the loss stops being finite."""

    optimizer: torch.optim.Optimizer
    loss_fn: LossFn
    lr_at: Callable[[int], float]
    autocast: Callable[[], contextlib.AbstractContextManager[Any]] = contextlib.nullcontext
    scaler: torch.amp.GradScaler | None = None
    grad_clip: float = 0.0
    after_step: Callable[[], None] | None = None
    freeze_bn: bool = False
    name: str = "training"
    hint: str = "lower the learning rate"

    def step(self, module: nn.Module, x: torch.Tensor, y: torch.Tensor | None, *, step: int, epoch: int) -> float:
        """One optimizer step at global ``step`` on the batch ``(x, y)``; returns its loss."""
        set_lr(self.optimizer, self.lr_at(step))
        with self.autocast():
            loss = self.loss_fn(module(x), x, y)
        self.optimizer.zero_grad(set_to_none=True)
        if self.scaler is not None:
            self.scaler.scale(loss).backward()
            self.scaler.unscale_(self.optimizer)
        else:
            loss.backward()
        if self.grad_clip > 0:
            nn.utils.clip_grad_norm_(module.parameters(), self.grad_clip)
        if self.scaler is not None:
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            self.optimizer.step()
        if self.after_step is not None:
            self.after_step()
        value = loss.item()
        if not math.isfinite(value):
            raise ConfigError(f"{self.name} diverged at epoch {epoch + 1}, step {step} (loss {value})", hint=self.hint)
        return value

    def run_epoch(self, module: nn.Module, batches: Iterable[Batch], *, epoch: int, step: int) -> EpochStats:
        """Put ``module`` in training mode and take one step per batch, counting global steps from ``step``."""
        train_mode(module, freeze_bn=self.freeze_bn)
        loss_sum, n, samples = 0.0, 0, 0
        for x, y in batches:
            loss_sum += self.step(module, x, y, step=step + n, epoch=epoch)
            n += 1
            samples += len(x)
        return EpochStats(loss_sum=loss_sum, batches=n, samples=samples, step=step + n)
