"""Shared helpers for the export/runtime tests: export once per (model, target, precision, shape) per worker."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

import edgecnn
from edgecnn.exporters import DynamicBatch, ExportOptions, Precision, export_bundle
from edgecnn.models.synthetic import randomize_batchnorm

# Smallest resolution each model accepts comfortably (AlexNet's 11×11/4 stem and pools need ≥ 63).
SMALL_RES = {"alexnet": 64}
_CACHE: dict[tuple, Path] = {}


def small_res(name: str) -> int:
    return SMALL_RES.get(name, 32)


def export_cached(
    root: Path,
    name: str,
    target: str,
    precision: str = "fp32",
    *,
    res: int | None = None,
    dynamic: str | None = None,
    num_classes: int = 10,
) -> Path:
    key = (name, target, precision, res, dynamic, num_classes)
    if key not in _CACHE:
        torch.manual_seed(0)
        model = edgecnn.create_model(name, num_classes=num_classes)
        model.eval()
        _randomize_bn(model)
        out = root / "-".join(str(k) for k in key)
        opts = ExportOptions(
            target=target,
            precision=Precision(precision),
            resolution=res or small_res(name),
            dynamic_batch=DynamicBatch.parse(dynamic) if dynamic else None,
        )
        _CACHE[key] = export_bundle(model, opts, out).bundle
    return _CACHE[key]


def _randomize_bn(model: torch.nn.Module) -> None:
    """Non-trivial BN statistics, so BN folding in the exporters is really exercised."""
    randomize_batchnorm(model)


def torch_reference(name: str, x: np.ndarray, num_classes: int = 10) -> np.ndarray:
    torch.manual_seed(0)
    model = edgecnn.create_model(name, num_classes=num_classes).eval()
    _randomize_bn(model)
    with torch.no_grad():
        return model(torch.from_numpy(x)).numpy()
