"""Single-image super-resolution nets on the luminance (Y) channel, input in [0, 1], output ``scale``× larger.

* FSRCNN (Dong et al., ECCV 2016, arXiv:1608.00367, Fig. 3): 5×5 feature extraction (d=56) → 1×1 shrink (s=12)
  → m=4 3×3 mapping layers → 1×1 expand → a 9×9 **transposed convolution** with stride ``scale`` as the output
  layer (the "deconvolution" that makes the net work on the low-resolution image); PReLU after every conv.
* ESPCN (Shi et al., CVPR 2016, arXiv:1609.05158, §3.1): 5×5 (64) → 3×3 (32) → 3×3 (scale² channels), tanh, then
  **pixel shuffle** (``DepthToSpace``: the efficient sub-pixel convolution).

Both are registered at ×2, ×3 and ×4 (``fsrcnn_x3``, ``espcn_x2``, …). Paper anchors, Set5 ×3 PSNR(Y):
bicubic 30.39 dB, FSRCNN 33.06 dB, ESPCN 32.55 dB.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from edgecnn.errors import ConfigError
from edgecnn.models.zoo import ModelEntry, ModelOptions, register_model
from edgecnn.runtime.preprocess import Preprocessing

SCALES = (2, 3, 4)


def sr_pre(resolution: int) -> Preprocessing:
    """The low-resolution input: luminance scaled to [0, 1], no mean/std, no resize (any size is accepted)."""
    return Preprocessing(
        input_size=resolution, color="L", crop_mode="resize", resize_size=None, mean=(0.0,), std=(1.0,)
    )


def _check(scale: int, in_chans: int) -> None:
    if scale not in SCALES:
        raise ConfigError(f"super-resolution scale must be one of {SCALES}, got {scale}")
    if in_chans < 1:
        raise ConfigError(f"in_chans must be >= 1, got {in_chans}")


class FSRCNN(nn.Module):
    """``extract`` → ``shrink`` → ``mapping`` → ``expand`` → ``deconv`` (ConvTranspose2d 9×9, stride = scale)."""

    def __init__(self, scale: int, *, in_chans: int = 1, d: int = 56, s: int = 12, m: int = 4) -> None:
        super().__init__()
        _check(scale, in_chans)
        self.scale = scale

        def conv(i: int, o: int, k: int) -> nn.Sequential:
            return nn.Sequential(nn.Conv2d(i, o, k, padding=k // 2), nn.PReLU(o))

        self.extract = conv(in_chans, d, 5)
        self.shrink = conv(d, s, 1)
        self.mapping = nn.Sequential(*[conv(s, s, 3) for _ in range(m)])
        self.expand = conv(s, d, 1)
        # (H−1)·s − 2·4 + 9 + (s−1) = s·H: exactly scale× the input
        self.deconv = nn.ConvTranspose2d(d, in_chans, 9, stride=scale, padding=4, output_padding=scale - 1)
        self._init_weights()

    def _init_weights(self) -> None:
        """He init for the PReLU convs (the paper's), N(0, 0.001) for the deconvolution (paper §4.1)."""
        for mod in self.modules():
            if isinstance(mod, nn.Conv2d):
                nn.init.kaiming_normal_(mod.weight, a=0.25, nonlinearity="leaky_relu")
                nn.init.zeros_(mod.bias)
        nn.init.normal_(self.deconv.weight, 0.0, 0.001)
        nn.init.zeros_(self.deconv.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.deconv(self.expand(self.mapping(self.shrink(self.extract(x)))))


class ESPCN(nn.Module):
    """``body`` (5×5 64 → 3×3 32, tanh) → ``to_subpixels`` (3×3, C·scale²) → ``shuffle`` (PixelShuffle)."""

    def __init__(self, scale: int, *, in_chans: int = 1) -> None:
        super().__init__()
        _check(scale, in_chans)
        self.scale = scale
        self.body = nn.Sequential(
            nn.Conv2d(in_chans, 64, 5, padding=2), nn.Tanh(), nn.Conv2d(64, 32, 3, padding=1), nn.Tanh()
        )
        self.to_subpixels = nn.Conv2d(32, in_chans * scale**2, 3, padding=1)
        self.shuffle = nn.PixelShuffle(scale)
        for mod in self.modules():
            if isinstance(mod, nn.Conv2d):
                nn.init.kaiming_normal_(mod.weight, nonlinearity="tanh")
                nn.init.zeros_(mod.bias)
        nn.init.normal_(self.to_subpixels.weight, 0.0, math.sqrt(1.0 / (32 * 9)) * 0.1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.shuffle(self.to_subpixels(self.body(x)))


for _scale in SCALES:
    for _name, _cls, _paper in (("fsrcnn", FSRCNN, "arXiv:1608.00367"), ("espcn", ESPCN, "arXiv:1609.05158")):

        def _build(o: ModelOptions, c=_cls, s=_scale) -> nn.Module:
            return c(s, in_chans=o.in_chans)

        register_model(
            ModelEntry(
                name=f"{_name}_x{_scale}",
                family=_name,
                build=_build,
                default_resolution=64,
                preprocessing=sr_pre(64),
                paper=_paper,
                task="super_resolution",
                num_classes=0,
                in_chans=1,
            )
        )
