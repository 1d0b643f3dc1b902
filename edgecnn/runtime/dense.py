"""What a dense bundle's output means, and turning it into a mask or an image — numpy (and PIL for resizing) only.

The manifest's optional ``task`` block says it:

* ``{"kind": "segmentation", "classes": [...], "palette": [[r, g, b], ...], "output_stride": 8,
  "ignore_index": 255}`` — the output is N×classes×H×W logits at the input size; a mask is their argmax per pixel,
  resized (nearest) back to the photo; an overlay blends the palette colour of each pixel's class over it.
* ``{"kind": "super_resolution", "scale": 3, "color_space": "YCbCr-BT601", "channel": "Y"}`` — the network
  upscales the luminance in [0, 1]; the colour planes are upscaled bicubically (the FSRCNN / ESPCN protocol) and
  the three are converted back to RGB.

A bundle without the block is a classifier (``classification``).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from edgecnn.errors import InputSpecError, ManifestError

KINDS = ("classification", "segmentation", "super_resolution")
COLOR_SPACES = ("YCbCr-BT601",)


def check_task(task: Any, outputs_shape: list[int] | None = None) -> dict[str, Any]:
    """Validate an untrusted ``task`` block; returns it."""
    if not isinstance(task, dict) or task.get("kind") not in KINDS:
        raise ManifestError(f"manifest task: needs a 'kind' in {KINDS}")
    kind = task["kind"]
    allowed = {
        "classification": {"kind"},
        "segmentation": {"kind", "classes", "palette", "output_stride", "ignore_index", "input_multiple"},
        "super_resolution": {"kind", "scale", "color_space", "channel"},
    }[kind]
    extra = sorted(set(task) - allowed)
    if extra:
        raise ManifestError(f"manifest task: unknown field(s) {extra} for {kind}")
    if kind == "segmentation":
        classes, palette = task.get("classes"), task.get("palette")
        if (
            not isinstance(classes, list)
            or not 1 < len(classes) <= 1024
            or not all(isinstance(c, str) for c in classes)
        ):
            raise ManifestError("manifest task.classes: a list of 2..1024 class names")
        if (
            not isinstance(palette, list)
            or len(palette) != len(classes)
            or not all(
                isinstance(p, list) and len(p) == 3 and all(isinstance(v, int) and 0 <= v <= 255 for v in p)
                for p in palette
            )
        ):
            raise ManifestError("manifest task.palette: one [r, g, b] (0..255) per class")
        for key in ("output_stride", "input_multiple"):
            v = task.get(key, 1)
            if isinstance(v, bool) or not isinstance(v, int) or not 1 <= v <= 64:
                raise ManifestError(f"manifest task.{key}: an integer in 1..64")
        ii = task.get("ignore_index", 255)
        if isinstance(ii, bool) or not isinstance(ii, int) or not 0 <= ii <= 255:
            raise ManifestError("manifest task.ignore_index: an integer in 0..255")
    if kind == "super_resolution":
        s = task.get("scale")
        if isinstance(s, bool) or not isinstance(s, int) or not 2 <= s <= 8:
            raise ManifestError("manifest task.scale: an integer in 2..8")
        if task.get("color_space") not in COLOR_SPACES or task.get("channel") != "Y":
            raise ManifestError(f"manifest task: color_space must be one of {COLOR_SPACES} with channel 'Y'")
    return task


def masks_from_logits(logits: np.ndarray) -> np.ndarray:
    """N×C×H×W class scores → N×H×W uint8 (or uint16) class indices."""
    if logits.ndim != 4:
        raise InputSpecError(f"segmentation output must be N×C×H×W, got shape {logits.shape}")
    idx = logits.argmax(1)
    return idx.astype(np.uint8 if logits.shape[1] <= 256 else np.uint16)


def overlay(image: np.ndarray, mask: np.ndarray, palette: np.ndarray, alpha: float = 0.5) -> np.ndarray:
    """Blend each pixel's class colour over ``image`` (H×W×3 uint8); class 0 (background) stays unblended."""
    colours = np.asarray(palette, np.float32)[mask]
    fg = (mask > 0)[..., None]
    out = np.where(fg, (1 - alpha) * image.astype(np.float32) + alpha * colours, image.astype(np.float32))
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def resize_mask(mask: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Nearest-neighbour resize of an H×W index mask to (width, height) — indices are never blended."""
    from PIL import Image

    return np.asarray(Image.fromarray(mask).resize(size, Image.NEAREST))


def rgb_to_ycbcr(rgb: np.ndarray) -> np.ndarray:
    """H×W×3 uint8 → H×W×3 float32 BT.601 YCbCr in [0, 1] (MATLAB ``rgb2ycbcr`` / 255)."""
    x = rgb.astype(np.float64) / 255.0
    y = 16 + 65.481 * x[..., 0] + 128.553 * x[..., 1] + 24.966 * x[..., 2]
    cb = 128 - 37.797 * x[..., 0] - 74.203 * x[..., 1] + 112.0 * x[..., 2]
    cr = 128 + 112.0 * x[..., 0] - 93.786 * x[..., 1] - 18.214 * x[..., 2]
    return (np.stack([y, cb, cr], -1) / 255.0).astype(np.float32)


def ycbcr_to_rgb(ycc: np.ndarray) -> np.ndarray:
    """The inverse of :func:`rgb_to_ycbcr`, clipped to uint8."""
    y, cb, cr = (ycc[..., i].astype(np.float64) * 255.0 for i in range(3))
    r = 1.164383 * (y - 16) + 1.596027 * (cr - 128)
    g = 1.164383 * (y - 16) - 0.391762 * (cb - 128) - 0.812968 * (cr - 128)
    b = 1.164383 * (y - 16) + 2.017232 * (cb - 128)
    return np.clip(np.rint(np.stack([r, g, b], -1)), 0, 255).astype(np.uint8)


def bicubic_plane(plane: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Bicubic resize of a float32 H×W plane to (width, height)."""
    from PIL import Image

    return np.asarray(Image.fromarray(plane.astype(np.float32), mode="F").resize(size, Image.BICUBIC), np.float32)
