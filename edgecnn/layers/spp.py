"""Spatial pyramid pooling (He et al., "Spatial Pyramid Pooling in Deep Convolutional Networks", ECCV 2014).

Pools the last feature map into 1×1, 2×2, 4×4, … bins (powers of two) and concatenates them, giving a vector of
fixed length C·Σ n² whatever the input size, so a CNN with an FC head accepts several input resolutions.
"""

from __future__ import annotations

import torch
from torch import nn

from edgecnn.errors import ConfigError


class SpatialPyramidPooling(nn.Module):
    def __init__(self, levels: int = 3, *, mode: str = "max") -> None:
        super().__init__()
        if levels < 1:
            raise ConfigError(f"SpatialPyramidPooling: levels must be >= 1, got {levels}")
        if mode not in ("max", "avg"):
            raise ConfigError(f"SpatialPyramidPooling: mode must be 'max' or 'avg', got {mode!r}")
        self.bins = tuple(2**i for i in range(levels))
        pool = nn.AdaptiveMaxPool2d if mode == "max" else nn.AdaptiveAvgPool2d
        self.pools = nn.ModuleList(pool(n) for n in self.bins)
        self.mode = mode

    def output_length(self, channels: int) -> int:
        """Length of the pooled vector for ``channels`` input maps: C·Σ n²."""
        return channels * sum(n * n for n in self.bins)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([p(x).flatten(1) for p in self.pools], dim=1)
