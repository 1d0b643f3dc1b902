"""Conv → BatchNorm → activation, the unit every block here is built from.

Follows torchvision's ``Conv2dNormActivation`` rule: no conv bias when a norm follows. ``padding="same"``
reproduces TensorFlow's asymmetric SAME padding for TF-ported weights (EfficientNet-Lite).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from edgecnn.errors import ConfigError
from edgecnn.layers.activations import Act, make_act
from edgecnn.layers.geometry import same_padding, symmetric_padding


@dataclass(frozen=True, kw_only=True)
class NormSpec:
    """BatchNorm settings; eps/momentum differ per family (torchvision MobileNetV3 and TF: eps 1e-3, momentum 0.01)."""

    eps: float = 1e-5
    momentum: float = 0.1


class PadSame(nn.Module):
    """TF "SAME" padding computed from the input size (asymmetric: the extra pixel goes bottom/right)."""

    def __init__(self, kernel_size: int, stride: int, dilation: int = 1) -> None:
        super().__init__()
        self.kernel_size, self.stride, self.dilation = kernel_size, stride, dilation

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        top, bottom = same_padding(int(x.shape[-2]), self.kernel_size, self.stride, self.dilation)
        left, right = same_padding(int(x.shape[-1]), self.kernel_size, self.stride, self.dilation)
        if top == bottom == left == right == 0:
            return x
        return F.pad(x, (left, right, top, bottom))


def make_conv(
    in_chs: int,
    out_chs: int,
    kernel_size: int,
    *,
    stride: int = 1,
    dilation: int = 1,
    groups: int = 1,
    bias: bool = False,
    padding: str = "symmetric",
) -> tuple[nn.Module | None, nn.Conv2d]:
    """A Conv2d plus, for ``padding="same"`` at stride > 1, the PadSame module that must run before it.

    At stride 1 with an odd kernel TF SAME equals symmetric padding, so no extra module is created.
    """
    if padding not in ("symmetric", "same"):
        raise ConfigError(f"padding must be 'symmetric' or 'same', got {padding!r}")
    pad = symmetric_padding(kernel_size, dilation)
    pre = None
    if padding == "same" and (stride > 1 or kernel_size % 2 == 0):
        pre, pad = PadSame(kernel_size, stride, dilation), 0
    conv = nn.Conv2d(in_chs, out_chs, kernel_size, stride, pad, dilation=dilation, groups=groups, bias=bias)
    return pre, conv


class ConvBNAct(nn.Module):
    """``conv`` → ``bn`` → ``act`` (``pad`` first when TF SAME padding needs it)."""

    def __init__(
        self,
        in_chs: int,
        out_chs: int,
        kernel_size: int = 3,
        *,
        stride: int = 1,
        dilation: int = 1,
        groups: int = 1,
        act: Act | str | None = Act.RELU,
        norm: NormSpec | None = NormSpec(),
        padding: str = "symmetric",
    ) -> None:
        super().__init__()
        pre, self.conv = make_conv(
            in_chs,
            out_chs,
            kernel_size,
            stride=stride,
            dilation=dilation,
            groups=groups,
            bias=norm is None,
            padding=padding,
        )
        if pre is not None:
            self.pad = pre
        self.bn = nn.BatchNorm2d(out_chs, eps=norm.eps, momentum=norm.momentum) if norm else nn.Identity()
        self.act = make_act(act)

    @property
    def out_chs(self) -> int:
        return self.conv.out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if hasattr(self, "pad"):
            x = self.pad(x)
        return self.act(self.bn(self.conv(x)))
