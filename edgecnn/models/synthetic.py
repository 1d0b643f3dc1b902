"""Random-init models that still exercise what real weights do: non-trivial BatchNorm statistics, so BN folding in
the exporters and quantizers is really exercised (used by tests, latency calibration and benchmarks)."""

from __future__ import annotations

import torch
from torch import nn


def randomize_batchnorm(model: nn.Module, *, seed: int = 3) -> nn.Module:
    """Seeded running mean/var and affine parameters for every BatchNorm2d of ``model`` (in place; returned)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.copy_(torch.randn(m.num_features, generator=gen) * 0.1)
                m.running_var.copy_(torch.rand(m.num_features, generator=gen) + 0.5)
                if m.affine:
                    m.weight.copy_(torch.rand(m.num_features, generator=gen) + 0.5)
                    m.bias.copy_(torch.randn(m.num_features, generator=gen) * 0.1)
    return model
