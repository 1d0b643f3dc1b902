"""Evaluation through the shared torch-free transform: top-1/top-5/loss, and teacher probabilities.

Inputs are ``preprocess_image(image, pre)`` — the exact function the device runtime runs — so the accuracy a
checkpoint reports is the accuracy its deployed form sees.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader

from edgecnn.data.tensors import PreprocessedImages
from edgecnn.runtime.preprocess import Preprocessing


@torch.no_grad()
def evaluate(
    model: nn.Module,
    data: Any,
    pre: Preprocessing,
    *,
    batch_size: int = 256,
    device: torch.device | None = None,
    channels_last: bool = False,
) -> dict[str, float]:
    """Top-1, top-5 and mean loss of ``model`` on ``data`` through the shared evaluation transform."""
    device = device or next(model.parameters()).device
    was_training = model.training
    model.eval()
    loader = DataLoader(PreprocessedImages(data, pre), batch_size=batch_size, shuffle=False)
    n, loss, top1, top5 = 0, 0.0, 0, 0
    for x, y in loader:
        x, y = x.to(device), y.to(device)
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        logits = model(x).float()
        loss += F.cross_entropy(logits, y, reduction="sum").item()
        k = min(5, logits.shape[1])
        top = logits.topk(k, dim=1).indices
        top1 += (top[:, 0] == y).sum().item()
        top5 += (top == y[:, None]).any(1).sum().item()
        n += len(y)
    model.train(was_training)
    return {"loss": loss / max(n, 1), "top1": top1 / max(n, 1), "top5": top5 / max(n, 1), "n": n}


@torch.no_grad()
def predict_proba(model: nn.Module, data: Any, pre: Preprocessing, *, batch_size: int = 256) -> np.ndarray:
    """Softmax outputs (N×K) of ``model`` in eval mode — how a teacher labels unlabelled images."""
    device = next(model.parameters()).device
    model.eval()
    out = [
        torch.softmax(model(x.to(device)).float(), 1).cpu()
        for x, _ in DataLoader(PreprocessedImages(data, pre), batch_size=batch_size)
    ]
    return torch.cat(out).numpy() if out else np.zeros((0, 0), np.float32)
