"""Regularizers that drop whole structures rather than single activations.

* ``DropPath`` — stochastic depth (Huang et al., ECCV 2016): zero a residual branch per sample; torchvision's
  ``StochasticDepth(mode="row")``.
* ``SpatialDropout`` — drop whole feature maps (Tompson et al., CVPR 2015), since neighbouring activations in a
  conv map are correlated and per-element dropout barely regularizes them.
"""

from __future__ import annotations

import torch
from torch import nn

from edgecnn.errors import ConfigError


def drop_path(x: torch.Tensor, p: float, training: bool) -> torch.Tensor:
    """Per-sample branch drop with survivor rescaling by 1/(1−p); identity at eval or p=0."""
    if not training or p == 0.0:
        return x
    keep = 1.0 - p
    mask = x.new_empty((x.shape[0],) + (1,) * (x.ndim - 1)).bernoulli_(keep)
    return x * mask / keep


class DropPath(nn.Module):
    def __init__(self, p: float = 0.0) -> None:
        super().__init__()
        if not 0.0 <= p < 1.0:
            raise ConfigError(f"DropPath: p must be in [0, 1), got {p}")
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return drop_path(x, self.p, self.training)

    def extra_repr(self) -> str:
        return f"p={self.p}"


class SpatialDropout(nn.Dropout2d):
    """Channel-wise (spatial) dropout for N×C×H×W maps: each channel of each sample is kept or zeroed whole."""

    def __init__(self, p: float = 0.1) -> None:
        if not 0.0 <= p < 1.0:
            raise ConfigError(f"SpatialDropout: p must be in [0, 1), got {p}")
        super().__init__(p=p)
