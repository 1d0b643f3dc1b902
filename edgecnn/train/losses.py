"""Dense losses: pixel-wise cross-entropy and soft Dice (Milletari et al., V-Net, 2016) for segmentation, and
L1 / L2 for super-resolution. All take (output, target) and return a scalar; ``ignore_index`` pixels do not count.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from edgecnn.errors import ConfigError


def soft_dice_loss(
    logits: torch.Tensor, target: torch.Tensor, *, ignore_index: int = 255, eps: float = 1.0
) -> torch.Tensor:
    """1 − mean over classes present in the batch of 2|P∩T| / (|P| + |T|), on softmax probabilities."""
    k = logits.shape[1]
    valid = (target != ignore_index).unsqueeze(1).float()
    probs = logits.softmax(1) * valid
    onehot = F.one_hot(target.clamp(max=k - 1) * (target != ignore_index), k).permute(0, 3, 1, 2).float() * valid
    inter = (probs * onehot).sum((0, 2, 3))
    denom = probs.sum((0, 2, 3)) + onehot.sum((0, 2, 3))
    present = onehot.sum((0, 2, 3)) > 0
    dice = (2 * inter + eps) / (denom + eps)
    return 1 - dice[present].mean() if present.any() else logits.sum() * 0


def dense_loss(name: str, *, ignore_index: int = 255, dice_weight: float = 0.5) -> Callable[..., torch.Tensor]:
    """The recipe's ``dense.loss`` as a (output, target) → loss function."""
    if name == "cross_entropy":
        return lambda out, y: F.cross_entropy(out, y, ignore_index=ignore_index)
    if name == "dice":
        return lambda out, y: soft_dice_loss(out, y, ignore_index=ignore_index)
    if name == "ce_dice":
        return lambda out, y: (
            F.cross_entropy(out, y, ignore_index=ignore_index)
            + dice_weight * soft_dice_loss(out, y, ignore_index=ignore_index)
        )
    if name == "l1":
        return F.l1_loss
    if name == "l2":
        return F.mse_loss
    raise ConfigError(f"unknown dense loss {name!r}")
