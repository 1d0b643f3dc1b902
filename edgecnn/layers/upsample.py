"""Learned upsampling by transposed convolution ("deconvolution"; Long et al., FCN, CVPR 2015), for decoders.

Output size = (in − 1)·stride − 2·padding + dilation·(k − 1) + output_padding + 1; with k=2s, padding=s/2 it
is exactly in·s. A BN + activation follows, and an optional 3×3 conv smooths checkerboard artefacts.
"""

from __future__ import annotations

import torch
from torch import nn

from edgecnn.errors import ConfigError
from edgecnn.layers.activations import Act, make_act
from edgecnn.layers.conv_bn_act import ConvBNAct, NormSpec


def transposed_out_size(
    input_size: int, kernel_size: int, stride: int = 1, padding: int = 0, output_padding: int = 0, dilation: int = 1
) -> int:
    """Output size of ``nn.ConvTranspose2d`` (the inverse map of ``conv_out_size``)."""
    return (input_size - 1) * stride - 2 * padding + dilation * (kernel_size - 1) + output_padding + 1


class TransposedConvUp(nn.Module):
    """``up`` (ConvTranspose2d, ×scale) → ``bn`` → ``act`` [→ ``refine`` 3×3 ConvBNAct]."""

    def __init__(
        self,
        in_chs: int,
        out_chs: int,
        *,
        scale: int = 2,
        act: Act = Act.RELU,
        norm: NormSpec = NormSpec(),
        refine: bool = False,
    ) -> None:
        super().__init__()
        if scale < 2 or scale % 2:
            raise ConfigError(f"TransposedConvUp: scale must be an even integer >= 2, got {scale}")
        self.up = nn.ConvTranspose2d(
            in_chs, out_chs, kernel_size=2 * scale, stride=scale, padding=scale // 2, bias=False
        )
        self.bn = nn.BatchNorm2d(out_chs, eps=norm.eps, momentum=norm.momentum)
        self.act = make_act(act)
        self.refine = ConvBNAct(out_chs, out_chs, 3, act=act, norm=norm) if refine else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.refine(self.act(self.bn(self.up(x))))


class Resize(nn.Module):
    """Resize ``x`` to the spatial size of ``ref`` (bilinear, ``align_corners=False``: ONNX ``Resize`` with
    ``half_pixel`` coordinates, which ONNX Runtime, OpenVINO and TensorRT all implement alike — the setting that
    avoids the align-corners mismatches of TensorRT #273 / onnx-tensorrt #457). A module, not a bare
    ``F.interpolate``, so static analysis lists it and counts its interpolation taps."""

    def __init__(self, mode: str = "bilinear") -> None:
        super().__init__()
        if mode not in ("bilinear", "nearest"):
            raise ConfigError(f"Resize: mode must be 'bilinear' or 'nearest', got {mode!r}")
        self.mode = mode

    def forward(self, x: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
        size = ref.shape[-2:]
        if self.mode == "nearest":
            return torch.nn.functional.interpolate(x, size=size, mode="nearest")
        return torch.nn.functional.interpolate(x, size=size, mode="bilinear", align_corners=False)

    def taps(self) -> int:
        """Multiply-accumulates per output element: 4 for bilinear (2×2 neighbours), 0 for nearest (a copy)."""
        return 4 if self.mode == "bilinear" else 0
