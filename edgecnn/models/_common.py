"""Helpers shared by the family modules: turning ModelOptions into a NetConfig, standard preprocessing."""

from __future__ import annotations

import dataclasses

from torch import nn

from edgecnn.models.blocknet import BlockNet, FeatureNet, NetConfig
from edgecnn.models.zoo import ModelOptions
from edgecnn.runtime.preprocess import Preprocessing


def build_blocknet(cfg: NetConfig, opts: ModelOptions) -> nn.Module:
    """Apply the user's overrides to a variant's config and build it."""
    changes = {
        k: v
        for k, v in (
            ("width_mult", opts.width_mult),
            ("depth_mult", opts.depth_mult),
            ("dropout", opts.dropout),
            ("drop_path_rate", opts.drop_path_rate),
        )
        if v is not None
    }
    net = BlockNet(dataclasses.replace(cfg, **changes), num_classes=opts.num_classes, in_chans=opts.in_chans)
    return FeatureNet(net) if opts.features_only else net


def imagenet_pre(resolution: int, *, interpolation: str = "bilinear", crop_pct: float = 0.875) -> Preprocessing:
    """The torchvision/timm ImageNet evaluation recipe: resize shorter side to res/crop_pct, centre-crop res."""
    return Preprocessing(
        input_size=resolution, resize_size=int(round(resolution / crop_pct)), interpolation=interpolation
    )
