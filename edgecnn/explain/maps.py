"""What every attribution method returns, and the small numpy helpers they share (torch-free: the bundle side)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from edgecnn.errors import ConfigError, InputSpecError


@dataclass(frozen=True, kw_only=True)
class Attribution:
    """Saliency maps for a batch: ``maps`` is (N, H, W) float32 in [0, 1] at the input resolution, one per image.

    ``classes`` are the explained class indices, ``scores`` the model's score for them on the unperturbed input
    (a logit for gradient methods, a probability for the perturbation methods), ``layer`` the module a CAM was
    taken at (None for methods on the input), ``extra`` method-specific diagnostics (e.g. IG's completeness gap).
    """

    maps: np.ndarray
    classes: tuple[int, ...]
    scores: tuple[float, ...]
    method: str
    layer: str | None = None
    extra: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.classes)


def normalize_maps(maps: np.ndarray) -> np.ndarray:
    """Scale each (H, W) map of an (N, H, W) stack to [0, 1]; a constant map becomes all zeros (it explains nothing)."""
    maps = np.asarray(maps, dtype=np.float64)
    lo = maps.min(axis=(1, 2), keepdims=True)
    span = maps.max(axis=(1, 2), keepdims=True) - lo
    out = np.where(span > 0, (maps - lo) / np.where(span > 0, span, 1.0), 0.0)
    return out.astype(np.float32)


def target_classes(target: int | Sequence[int] | None, predicted: np.ndarray, num_classes: int) -> np.ndarray:
    """The class to explain per image: ``None`` → the predicted top-1, an int → that class for all, a sequence → one
    per image. Out-of-range classes raise (a typo would otherwise explain nothing silently)."""
    n = len(predicted)
    if target is None:
        cls = np.asarray(predicted, dtype=np.int64)
    elif isinstance(target, (int, np.integer)):
        cls = np.full(n, int(target), dtype=np.int64)
    else:
        cls = np.asarray(list(target), dtype=np.int64)
        if cls.shape != (n,):
            raise ConfigError(f"{len(cls)} target classes given for {n} images", hint="pass one class or one per image")
    bad = cls[(cls < 0) | (cls >= num_classes)]
    if bad.size:
        raise ConfigError(
            f"target class {int(bad[0])} is outside the model's {num_classes} classes",
            hint=f"use 0..{num_classes - 1}",
        )
    return cls


def check_batch(x: np.ndarray) -> np.ndarray:
    """A preprocessed float32 NCHW batch, or a one-line error saying what is wrong with it."""
    if not isinstance(x, np.ndarray) or x.ndim != 4:
        shape = getattr(x, "shape", None)
        raise InputSpecError(f"expected a preprocessed NCHW batch, got {type(x).__name__} of shape {shape}")
    return np.ascontiguousarray(x, dtype=np.float32)


def resize_bilinear(maps: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Bilinear resize of an (N, h, w) stack to (N, H, W) with align_corners=False (as torch's interpolate)."""
    maps = np.asarray(maps, dtype=np.float32)
    return np.einsum(
        "yh,nhw,xw->nyx", _interp_matrix(maps.shape[1], size[0]), maps, _interp_matrix(maps.shape[2], size[1])
    )


def _interp_matrix(n_in: int, n_out: int) -> np.ndarray:
    """(n_out, n_in) linear-interpolation weights, half-pixel centres, edges clamped."""
    pos = np.clip((np.arange(n_out) + 0.5) * n_in / n_out - 0.5, 0, n_in - 1)
    lo = np.floor(pos).astype(int)
    hi = np.minimum(lo + 1, n_in - 1)
    frac = (pos - lo).astype(np.float32)
    m = np.zeros((n_out, n_in), dtype=np.float32)
    m[np.arange(n_out), lo] += 1 - frac
    m[np.arange(n_out), hi] += frac
    return m
