"""Pictures of saliency maps: the map as a colour overlay on the image the model saw (after its own resize and
crop), side-by-side panels for fp32 vs bundle, written as PNGs with Pillow (colours from matplotlib when present)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from edgecnn.runtime.preprocess import Preprocessing


def to_display(x: np.ndarray, pre: Preprocessing | None) -> np.ndarray:
    """One preprocessed (C, H, W) input back to an (H, W, 3) uint8 picture (undo mean/std, channel order, layout)."""
    img = np.asarray(x, dtype=np.float64)
    if pre is not None:
        c = img.shape[0]
        img = img * np.asarray(pre.std[:c])[:, None, None] + np.asarray(pre.mean[:c])[:, None, None]
        if pre.color == "BGR":
            img = img[::-1]
    else:  # unknown normalization: stretch to the visible range
        img = (img - img.min()) / max(float(img.max() - img.min()), 1e-12)
    img = np.clip(img, 0, 1)
    if img.shape[0] == 1:
        img = np.repeat(img, 3, axis=0)
    return (img.transpose(1, 2, 0) * 255).round().astype(np.uint8)


def colorize(m: np.ndarray) -> np.ndarray:
    """A [0, 1] map → (H, W, 3) uint8 with the 'jet' colormap (a blue-to-red ramp if matplotlib is missing)."""
    m = np.clip(np.asarray(m, dtype=np.float64), 0, 1)
    try:
        from matplotlib import colormaps

        rgb = colormaps["jet"](m)[..., :3]
    except ImportError:
        rgb = np.stack([m, 1 - np.abs(2 * m - 1), 1 - m], axis=-1)
    return (rgb * 255).round().astype(np.uint8)


def overlay(x: np.ndarray, m: np.ndarray, pre: Preprocessing | None, alpha: float = 0.45) -> np.ndarray:
    """The map blended over the picture the model saw."""
    base = to_display(x, pre).astype(np.float64)
    return ((1 - alpha) * base + alpha * colorize(m)).round().astype(np.uint8)


def save_png(img: np.ndarray, path: str | os.PathLike) -> Path:
    from PIL import Image

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(img).save(path)
    return path


def side_by_side(panels: Sequence[np.ndarray], gap: int = 4) -> np.ndarray:
    """Panels of one height, left to right, separated by white gaps."""
    h = panels[0].shape[0]
    sep = np.full((h, gap, 3), 255, dtype=np.uint8)
    out: list[np.ndarray] = []
    for p in panels:
        out += [p, sep]
    return np.concatenate(out[:-1], axis=1)
