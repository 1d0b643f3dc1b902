"""Composable, seeded batch augmentations on N×C×H×W pixel tensors in [0, 1] (before mean/std).

Each augmentation draws its per-sample parameters from an explicit ``torch.Generator`` and applies with its own
probability, so a recipe can say exactly what is safe for its data (no flips for digits) and a run is reproducible.
The geometric ones (random resized crop, rotation) are fused into one affine resampling per batch. Mixing
augmentations return soft targets:

* MixUp — Zhang et al. 2018, "mixup: Beyond Empirical Risk Minimization": convex mix of two images and labels.
* CutMix — Yun et al. 2019, "CutMix: Regularization Strategy to Train Strong Classifiers with Localizable
  Features": paste a box from another image; labels mix in proportion to the pasted area.
* CutOut — DeVries & Taylor 2017, "Improved Regularization of CNNs with Cutout": zero a random square patch.

Hand-written (about 200 lines) rather than kornia: these few vectorized ops are simpler to verify exactly, and the
toolchain keeps one dependency fewer. The functional forms are public so tests can check what each one does.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from edgecnn.errors import ConfigError


@dataclass(frozen=True, kw_only=True)
class AugmentConfig:
    """Which augmentations run and how strongly; every ``*_p`` is a per-sample (per-batch for mixing) probability."""

    hflip_p: float = 0.0
    vflip_p: float = 0.0
    crop_p: float = 0.0  # random resized crop (Szegedy et al. 2015 "Inception" crop)
    crop_scale: tuple[float, float] = (0.08, 1.0)  # area fraction
    crop_ratio: tuple[float, float] = (3 / 4, 4 / 3)  # aspect ratio
    rotate_p: float = 0.0
    rotate_degrees: float = 0.0  # uniform in [-deg, +deg]
    jitter_p: float = 0.0
    brightness: float = 0.0  # factors uniform in [1 - v, 1 + v]
    contrast: float = 0.0
    saturation: float = 0.0
    cutout_p: float = 0.0
    cutout_fraction: float = 0.5  # square side as a fraction of the shorter image side
    mixup_p: float = 0.0
    mixup_alpha: float = 0.2
    cutmix_p: float = 0.0
    cutmix_alpha: float = 1.0

    def __post_init__(self) -> None:
        for name in ("hflip_p", "vflip_p", "crop_p", "rotate_p", "jitter_p", "cutout_p", "mixup_p", "cutmix_p"):
            v = getattr(self, name)
            if not 0.0 <= v <= 1.0:
                raise ConfigError(f"augment.{name} must be a probability in [0, 1], got {v!r}")
        if self.mixup_p + self.cutmix_p > 1.0:
            raise ConfigError("augment.mixup_p + augment.cutmix_p must be <= 1 (one mix per batch)")
        lo, hi = self.crop_scale
        if not 0 < lo <= hi <= 1:
            raise ConfigError(f"augment.crop_scale must satisfy 0 < lo <= hi <= 1, got {self.crop_scale}")
        if not 0 < self.crop_ratio[0] <= self.crop_ratio[1]:
            raise ConfigError(f"augment.crop_ratio must satisfy 0 < lo <= hi, got {self.crop_ratio}")
        for name in ("brightness", "contrast", "saturation"):
            if not 0 <= getattr(self, name) < 1:
                raise ConfigError(f"augment.{name} must be in [0, 1), got {getattr(self, name)!r}")
        if not 0 < self.cutout_fraction <= 1:
            raise ConfigError(f"augment.cutout_fraction must be in (0, 1], got {self.cutout_fraction!r}")
        if self.mixup_alpha <= 0 or self.cutmix_alpha <= 0:
            raise ConfigError("augment.mixup_alpha and augment.cutmix_alpha must be > 0")

    @property
    def enabled(self) -> bool:
        return any(
            getattr(self, n) > 0
            for n in ("hflip_p", "vflip_p", "crop_p", "rotate_p", "jitter_p", "cutout_p", "mixup_p", "cutmix_p")
        )


def _coin(n: int, p: float, g: torch.Generator) -> torch.Tensor:
    return torch.rand(n, generator=g) < p


def _uniform(n: int, lo: float, hi: float, g: torch.Generator) -> torch.Tensor:
    return lo + (hi - lo) * torch.rand(n, generator=g)


def flip(x: torch.Tensor, mask: torch.Tensor, *, dim: int) -> torch.Tensor:
    """Mirror the samples selected by ``mask`` along ``dim`` (3 = horizontal, 2 = vertical); exact."""
    return torch.where(mask.view(-1, 1, 1, 1), x.flip(dim), x)


def crop_boxes(n: int, scale: tuple[float, float], ratio: tuple[float, float], g: torch.Generator) -> torch.Tensor:
    """Per-sample boxes (cx, cy, w, h) in fractions of the image, as the Inception random-resized crop draws them."""
    area = _uniform(n, *scale, g)
    log_r = _uniform(n, math.log(ratio[0]), math.log(ratio[1]), g)
    r = torch.exp(log_r)
    w = torch.sqrt(area * r).clamp(max=1.0)
    h = torch.sqrt(area / r).clamp(max=1.0)
    cx = w / 2 + (1 - w) * torch.rand(n, generator=g)
    cy = h / 2 + (1 - h) * torch.rand(n, generator=g)
    return torch.stack([cx, cy, w, h], 1)


def affine_resample(x: torch.Tensor, boxes: torch.Tensor, angles_deg: torch.Tensor, size: int) -> torch.Tensor:
    """Resample each image: crop ``boxes`` (cx, cy, w, h in fractions), rotate by ``angles_deg``, output size².

    One ``grid_sample`` (bilinear, zero padding) for the whole batch; box (0.5, 0.5, 1, 1) and angle 0 at the
    input size is the identity up to float rounding.
    """
    n = x.shape[0]
    a = torch.deg2rad(angles_deg.to(x.dtype))
    cos, sin = torch.cos(a), torch.sin(a)
    w, h = boxes[:, 2].to(x.dtype), boxes[:, 3].to(x.dtype)
    tx, ty = (boxes[:, 0].to(x.dtype) * 2 - 1), (boxes[:, 1].to(x.dtype) * 2 - 1)
    theta = torch.zeros(n, 2, 3, dtype=x.dtype)
    theta[:, 0, 0], theta[:, 0, 1], theta[:, 0, 2] = w * cos, -h * sin, tx
    theta[:, 1, 0], theta[:, 1, 1], theta[:, 1, 2] = w * sin, h * cos, ty
    grid = F.affine_grid(theta.to(x.device), [n, x.shape[1], size, size], align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def color_jitter(
    x: torch.Tensor, brightness: torch.Tensor, contrast: torch.Tensor, saturation: torch.Tensor
) -> torch.Tensor:
    """Per-sample brightness (scale), contrast (blend with the mean grey) and saturation (blend with the grey
    image) factors, as torchvision's ColorJitter defines them; results clipped to [0, 1]."""
    v = lambda t: t.to(x.dtype).view(-1, 1, 1, 1)  # noqa: E731
    x = (x * v(brightness)).clamp(0, 1)
    grey = _grey(x)
    x = ((x - grey.mean((2, 3), keepdim=True)) * v(contrast) + grey.mean((2, 3), keepdim=True)).clamp(0, 1)
    if x.shape[1] == 3:
        x = ((x - _grey(x)) * v(saturation) + _grey(x)).clamp(0, 1)
    return x


def _grey(x: torch.Tensor) -> torch.Tensor:
    if x.shape[1] != 3:
        return x
    w = torch.tensor([0.299, 0.587, 0.114], dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    return (x * w).sum(1, keepdim=True)


def box_pixels(cx: torch.Tensor, cy: torch.Tensor, side_h: int, side_w: int, h: int, w: int) -> torch.Tensor:
    """Integer (top, left, bottom, right) of boxes of side_h×side_w centred at fractional (cx, cy), clipped."""
    y0 = (cy * h).long() - side_h // 2
    x0 = (cx * w).long() - side_w // 2
    return torch.stack([y0.clamp(0, h), x0.clamp(0, w), (y0 + side_h).clamp(0, h), (x0 + side_w).clamp(0, w)], 1)


def box_mask(boxes: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """N×1×H×W boolean mask that is True inside each (top, left, bottom, right) box."""
    ys = torch.arange(h).view(1, h, 1)
    xs = torch.arange(w).view(1, 1, w)
    b = boxes.view(-1, 4, 1, 1)
    inside = (ys >= b[:, 0]) & (ys < b[:, 2]) & (xs >= b[:, 1]) & (xs < b[:, 3])
    return inside.unsqueeze(1)


def cutout(x: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
    """Zero exactly the pixels inside each sample's box (all channels); everything else is untouched."""
    return x.masked_fill(box_mask(boxes, x.shape[2], x.shape[3]).to(x.device), 0.0)


def mixup(x: torch.Tensor, y: torch.Tensor, lam: float, perm: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``lam·x + (1−lam)·x[perm]`` and the same mix of the soft targets."""
    return lam * x + (1 - lam) * x[perm], lam * y + (1 - lam) * y[perm]


def cutmix(
    x: torch.Tensor, y: torch.Tensor, box: tuple[int, int, int, int], perm: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, float]:
    """Paste ``box`` (top, left, bottom, right) from ``x[perm]``; targets mix by the pasted area ratio.

    Returns the images, targets and the kept fraction ``lam = 1 − box area / image area``.
    """
    t, l_, b, r = box
    h, w = x.shape[2], x.shape[3]
    out = x.clone()
    out[:, :, t:b, l_:r] = x[perm][:, :, t:b, l_:r]
    lam = 1.0 - (b - t) * (r - l_) / float(h * w)
    return out, lam * y + (1 - lam) * y[perm], lam


class BatchAugment:
    """Applies an :class:`AugmentConfig` to a batch of pixels (N×C×H×W in [0, 1]) and soft targets (N×K)."""

    def __init__(self, cfg: AugmentConfig, *, output_size: int | None = None) -> None:
        self.cfg, self.output_size = cfg, output_size

    def __call__(self, x: torch.Tensor, y: torch.Tensor, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        cfg, n = self.cfg, x.shape[0]
        size = self.output_size or x.shape[-1]
        if cfg.hflip_p:
            x = flip(x, _coin(n, cfg.hflip_p, g), dim=3)
        if cfg.vflip_p:
            x = flip(x, _coin(n, cfg.vflip_p, g), dim=2)
        if cfg.crop_p or cfg.rotate_p or size != x.shape[-1]:
            boxes = torch.tensor([[0.5, 0.5, 1.0, 1.0]]).repeat(n, 1)
            if cfg.crop_p:
                drawn = crop_boxes(n, cfg.crop_scale, cfg.crop_ratio, g)
                boxes = torch.where(_coin(n, cfg.crop_p, g).view(-1, 1), drawn, boxes)
            angles = torch.zeros(n)
            if cfg.rotate_p:
                drawn_a = _uniform(n, -cfg.rotate_degrees, cfg.rotate_degrees, g)
                angles = torch.where(_coin(n, cfg.rotate_p, g), drawn_a, angles)
            x = affine_resample(x, boxes, angles, size)
        if cfg.jitter_p:
            on = _coin(n, cfg.jitter_p, g)
            factors = [
                torch.where(on, _uniform(n, 1 - v, 1 + v, g), torch.ones(n))
                for v in (cfg.brightness, cfg.contrast, cfg.saturation)
            ]
            x = color_jitter(x, *factors)
        if cfg.cutout_p:
            h, w = x.shape[2], x.shape[3]
            side = max(1, round(cfg.cutout_fraction * min(h, w)))
            boxes_px = box_pixels(torch.rand(n, generator=g), torch.rand(n, generator=g), side, side, h, w)
            off = ~_coin(n, cfg.cutout_p, g)
            boxes_px[off] = 0  # empty box
            x = cutout(x, boxes_px)
        if cfg.mixup_p or cfg.cutmix_p:
            u = float(torch.rand(1, generator=g))
            perm = torch.randperm(n, generator=g)
            if u < cfg.mixup_p:
                lam = _beta(cfg.mixup_alpha, g)
                x, y = mixup(x, y, lam, perm)
            elif u < cfg.mixup_p + cfg.cutmix_p:
                lam = _beta(cfg.cutmix_alpha, g)
                h, w = x.shape[2], x.shape[3]
                cut = math.sqrt(1 - lam)
                bh, bw = round(h * cut), round(w * cut)
                cy, cx = torch.rand(2, generator=g)
                t, l_ = int(cy * h) - bh // 2, int(cx * w) - bw // 2
                box = (max(t, 0), max(l_, 0), min(t + bh, h), min(l_ + bw, w))
                x, y, _ = cutmix(x, y, box, perm)
        return x, y


def _beta(alpha: float, g: torch.Generator) -> float:
    """A Beta(alpha, alpha) draw seeded from ``g`` (torch's Beta sampler takes no generator)."""
    seed = int(torch.randint(0, 2**62, (1,), generator=g))
    return float(np.random.default_rng(seed).beta(alpha, alpha))
