"""The two building blocks of the zoo, sharing timm's argument vocabulary
(``in_chs, out_chs, kernel_size, stride, dilation, act, se, drop_path_rate``).

* ``DepthwiseSeparable`` — MobileNetV1 (Howard et al., 2017): a depthwise k×k conv (one k×k×1 filter per channel)
  then a pointwise 1×1×C_in conv. Parameters k²·C_in + C_in·C_out instead of k²·C_in·C_out.
* ``InvertedResidual`` — MobileNetV2 (Sandler et al., CVPR 2018) / MBConv (EfficientNet, Tan & Le, ICML 2019):
  1×1 expansion → depthwise k×k (optionally dilated) → optional squeeze-excitation → linear 1×1 projection
  (no activation: the "linear bottleneck"), with a skip connection when stride is 1 and channels match, and
  stochastic depth on the residual branch.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from edgecnn.layers.activations import Act
from edgecnn.layers.conv_bn_act import ConvBNAct, NormSpec
from edgecnn.layers.drop import DropPath
from edgecnn.layers.squeeze_excite import SqueezeExcite


@dataclass(frozen=True, kw_only=True)
class SESpec:
    """Squeeze-excitation of one block: reduced channels, inner activation and gate."""

    rd_chs: int
    act: Act = Act.RELU
    gate: Act = Act.SIGMOID


class DepthwiseSeparable(nn.Module):
    """``conv_dw`` (k×k, groups=C_in) → ``conv_pw`` (1×1); both with BN + activation, as in MobileNetV1."""

    def __init__(
        self,
        in_chs: int,
        out_chs: int,
        kernel_size: int = 3,
        *,
        stride: int = 1,
        dilation: int = 1,
        act: Act = Act.RELU,
        norm: NormSpec = NormSpec(),
        padding: str = "symmetric",
    ) -> None:
        super().__init__()
        self.conv_dw = ConvBNAct(
            in_chs,
            in_chs,
            kernel_size,
            stride=stride,
            dilation=dilation,
            groups=in_chs,
            act=act,
            norm=norm,
            padding=padding,
        )
        self.conv_pw = ConvBNAct(in_chs, out_chs, 1, act=act, norm=norm)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv_pw(self.conv_dw(x))


class InvertedResidual(nn.Module):
    """``conv_pw`` (expansion, absent when mid == in) → ``conv_dw`` → ``se`` (optional) → ``conv_pwl`` (+ skip)."""

    def __init__(
        self,
        in_chs: int,
        out_chs: int,
        kernel_size: int = 3,
        *,
        mid_chs: int,
        stride: int = 1,
        dilation: int = 1,
        act: Act = Act.RELU6,
        se: SESpec | None = None,
        norm: NormSpec = NormSpec(),
        padding: str = "symmetric",
        drop_path_rate: float = 0.0,
        force_expand: bool = False,
    ) -> None:
        super().__init__()
        self.has_skip = stride == 1 and in_chs == out_chs
        if mid_chs != in_chs or force_expand:
            self.conv_pw = ConvBNAct(in_chs, mid_chs, 1, act=act, norm=norm)
        self.conv_dw = ConvBNAct(
            mid_chs,
            mid_chs,
            kernel_size,
            stride=stride,
            dilation=dilation,
            groups=mid_chs,
            act=act,
            norm=norm,
            padding=padding,
        )
        self.se = SqueezeExcite(mid_chs, se.rd_chs, act=se.act, gate=se.gate) if se else nn.Identity()
        self.conv_pwl = ConvBNAct(mid_chs, out_chs, 1, act=None, norm=norm)
        self.drop_path = DropPath(drop_path_rate) if self.has_skip and drop_path_rate > 0 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x
        if hasattr(self, "conv_pw"):
            x = self.conv_pw(x)
        x = self.conv_pwl(self.se(self.conv_dw(x)))
        if self.has_skip:
            x = self.drop_path(x) + shortcut
        return x


def conv_params(in_chs: int, out_chs: int, kernel_size: int, groups: int = 1, bias: bool = False) -> int:
    """Closed-form weight count of a conv: k²·(C_in/groups)·C_out (+ C_out bias)."""
    return kernel_size * kernel_size * (in_chs // groups) * out_chs + (out_chs if bias else 0)


def separable_savings(in_chs: int, out_chs: int, kernel_size: int) -> float:
    """Cost ratio of depthwise-separable vs full conv: 1/C_out + 1/k² (MobileNetV1, eq. 5)."""
    return 1.0 / out_chs + 1.0 / (kernel_size * kernel_size)
