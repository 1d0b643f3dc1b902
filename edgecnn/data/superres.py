"""Super-resolution data, the FSRCNN / ESPCN protocol: high-resolution photos → luminance (Y of BT.601 YCbCr,
as MATLAB's ``rgb2ycbcr``) → crop to a multiple of the scale → bicubic downscaling (antialiased, as MATLAB's
``imresize``) for the low-resolution input; random patches for training, whole photos for evaluation.

The embedded default uses the real photos that ship in scikit-image and scikit-learn (no download): a fixed set
for training and three held-out photos (``chelsea``, ``coffee`` and scikit-learn's ``flower``) for evaluation.
"""

from __future__ import annotations

import numpy as np

from edgecnn.errors import ConfigError, MissingDependencyError

TRAIN_PHOTOS = ("astronaut", "camera", "rocket", "coins", "moon", "clock", "brick", "grass", "gravel", "china")
EVAL_PHOTOS = ("chelsea", "coffee", "flower")


def photo(name: str) -> np.ndarray:
    """An embedded photo as H×W×3 uint8 (grey photos replicated)."""
    if name in ("china", "flower"):
        try:
            from sklearn.datasets import load_sample_image
        except ImportError as e:
            raise MissingDependencyError(
                "the embedded photos need scikit-learn", hint='pip install "edgecnn[demo]"'
            ) from e
        arr = load_sample_image(f"{name}.jpg")
    else:
        try:
            import skimage.data
        except ImportError as e:
            raise MissingDependencyError(
                "the embedded photos need scikit-image", hint='pip install "edgecnn[demo]"'
            ) from e
        if not hasattr(skimage.data, name):
            raise ConfigError(f"scikit-image has no photo {name!r}")
        arr = getattr(skimage.data, name)()
    arr = np.asarray(arr, np.uint8)
    return np.repeat(arr[..., None], 3, -1) if arr.ndim == 2 else arr[..., :3]


def rgb_to_y(rgb: np.ndarray) -> np.ndarray:
    """BT.601 luminance in [16/255, 235/255] of an H×W×3 uint8 image, float32 (the SR papers' Y channel)."""
    x = rgb.astype(np.float64) / 255.0
    return ((16 + 65.481 * x[..., 0] + 128.553 * x[..., 1] + 24.966 * x[..., 2]) / 255.0).astype(np.float32)


def bicubic(y: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Bicubic resize of a float32 H×W plane to ``size`` = (H', W') (PIL: antialiased when shrinking)."""
    from PIL import Image

    return np.asarray(Image.fromarray(y.astype(np.float32), mode="F").resize(size[::-1], Image.BICUBIC), np.float32)


def modcrop(y: np.ndarray, scale: int) -> np.ndarray:
    h, w = y.shape[:2]
    return y[: h - h % scale, : w - w % scale]


def lr_hr_pair(y: np.ndarray, scale: int) -> tuple[np.ndarray, np.ndarray]:
    """(low-resolution, high-resolution) Y planes: the HR cropped to a multiple of ``scale``, the LR its bicubic
    ``1/scale`` downscale."""
    hr = modcrop(y, scale)
    return bicubic(hr, (hr.shape[0] // scale, hr.shape[1] // scale)), hr


def sr_patches(
    names: tuple[str, ...], scale: int, *, n: int, lr_patch: int = 17, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """``n`` random aligned patch pairs: LR n×1×p×p and HR n×1×sp×sp (float32 Y in [0, 1]) from photos ``names``
    at the original and 0.7× sizes (the FSRCNN paper's data augmentation by downscaling), with flips and 90°
    rotations."""
    rng = np.random.default_rng(seed)
    pairs = []
    for name in names:
        y = rgb_to_y(photo(name))
        for f in (1.0, 0.7):
            ys = y if f == 1.0 else bicubic(y, (int(y.shape[0] * f), int(y.shape[1] * f)))
            lr, hr = lr_hr_pair(ys, scale)
            if min(lr.shape) >= lr_patch:
                pairs.append((lr, hr))
    if not pairs:
        raise ConfigError(f"no photo is large enough for {lr_patch}-px low-resolution patches at x{scale}")
    lrs = np.empty((n, 1, lr_patch, lr_patch), np.float32)
    hrs = np.empty((n, 1, lr_patch * scale, lr_patch * scale), np.float32)
    for i in range(n):
        lr, hr = pairs[rng.integers(len(pairs))]
        r, c = rng.integers(0, lr.shape[0] - lr_patch + 1), rng.integers(0, lr.shape[1] - lr_patch + 1)
        a = lr[r : r + lr_patch, c : c + lr_patch]
        b = hr[r * scale : (r + lr_patch) * scale, c * scale : (c + lr_patch) * scale]
        k = rng.integers(4)
        a, b = np.rot90(a, k), np.rot90(b, k)
        if rng.random() < 0.5:
            a, b = a[:, ::-1], b[:, ::-1]
        lrs[i, 0], hrs[i, 0] = a, b
    return lrs, hrs


def eval_pairs(scale: int, names: tuple[str, ...] = EVAL_PHOTOS) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """(name, LR Y, HR Y) of the held-out photos."""
    return [(n, *lr_hr_pair(rgb_to_y(photo(n)), scale)) for n in names]
