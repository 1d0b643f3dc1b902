"""AlexNet (Krizhevsky et al., NeurIPS 2012), torchvision's single-GPU variant — the baseline the efficient
families are measured against: 5 convs with max-pools, ReLU, adaptive 6×6 pool, 2 dropout-regularized dense
layers and the classifier. 61,100,840 params, 714,188,480 MACs at 224. Module names match torchvision's.
"""

from __future__ import annotations

import torch
from torch import nn

from edgecnn.errors import ConfigError
from edgecnn.models._common import imagenet_pre
from edgecnn.models.zoo import ModelEntry, ModelOptions, register_model

# (out_channels, kernel, stride, padding, max-pool after)
CONVS = ((64, 11, 4, 2, True), (192, 5, 1, 2, True), (384, 3, 1, 1, False), (256, 3, 1, 1, False), (256, 3, 1, 1, True))


class AlexNet(nn.Module):
    def __init__(
        self, *, num_classes: int = 1000, in_chans: int = 3, width_mult: float = 1.0, dropout: float = 0.5
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        c_in = in_chans
        for c, k, s, p, pool in CONVS:
            c = max(1, int(round(c * width_mult)))
            layers += [nn.Conv2d(c_in, c, k, s, p), nn.ReLU(inplace=True)]
            if pool:
                layers.append(nn.MaxPool2d(3, 2))
            c_in = c
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d((6, 6))
        hidden = max(1, int(round(4096 * width_mult)))
        self.num_features = c_in * 36
        self.classifier = nn.Sequential(
            nn.Dropout(dropout),
            nn.Linear(c_in * 36, hidden),
            nn.ReLU(inplace=True),
            nn.Dropout(dropout),
            nn.Linear(hidden, hidden),
            nn.ReLU(inplace=True),
            nn.Linear(hidden, num_classes) if num_classes else nn.Identity(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.avgpool(self.features(x)), 1))


def _build(o: ModelOptions) -> nn.Module:
    if o.depth_mult not in (None, 1.0):
        raise ConfigError("alexnet has a fixed depth", hint="leave depth_mult unset")
    if o.drop_path_rate:
        raise ConfigError("alexnet has no residual branches for drop_path_rate", hint="use dropout instead")
    if o.features_only:
        raise ConfigError("alexnet does not provide multi-scale features", hint="use a MobileNet/EfficientNet")
    return AlexNet(
        num_classes=o.num_classes,
        in_chans=o.in_chans,
        width_mult=o.width_mult or 1.0,
        dropout=0.5 if o.dropout is None else o.dropout,
    )


register_model(
    ModelEntry(
        name="alexnet",
        family="alexnet",
        build=_build,
        default_resolution=224,
        preprocessing=imagenet_pre(224),
        paper="NeurIPS 2012",
    )
)
