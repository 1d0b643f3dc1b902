"""Squeeze-and-Excitation (Hu et al., CVPR 2018): global-pool → 1×1 reduce → act → 1×1 expand → gate → scale.

MobileNetV3 uses ReLU + hard-sigmoid with reduced channels make_divisible(mid/4, 8); EfficientNet uses SiLU +
sigmoid with max(1, in/4) channels of the *block input* (torchvision / TF release).
"""

from __future__ import annotations

import torch
from torch import nn

from edgecnn.errors import ConfigError
from edgecnn.layers.activations import Act, make_act


class SqueezeExcite(nn.Module):
    def __init__(self, chs: int, rd_chs: int, *, act: Act | str = Act.RELU, gate: Act | str = Act.SIGMOID) -> None:
        super().__init__()
        if rd_chs < 1:
            raise ConfigError(f"SqueezeExcite: reduced channels must be >= 1, got {rd_chs}")
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.conv_reduce = nn.Conv2d(chs, rd_chs, 1, bias=True)
        self.act = make_act(act)
        self.conv_expand = nn.Conv2d(rd_chs, chs, 1, bias=True)
        self.gate = make_act(gate, inplace=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = self.gate(self.conv_expand(self.act(self.conv_reduce(self.pool(x)))))
        return x * s
