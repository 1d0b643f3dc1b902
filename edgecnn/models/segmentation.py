"""Encoder-decoder segmentation nets: per-pixel class logits at the input size.

* ``lraspp_mobilenet_v3_large`` — Lite R-ASPP (Howard et al., MobileNetV3, arXiv:1905.02244 §6.3), exactly
  torchvision's ``lraspp_mobilenet_v3_large``: a *dilated* MobileNetV3-Large (the last stage's depthwise convs
  dilate by 2 instead of striding: output stride 16), a 1×1 conv + BN + ReLU on the 960-channel head gated by a
  global-pool → 1×1 conv → sigmoid branch, bilinearly upsampled to the stride-8 features (the first block of the
  40-channel stage, torchvision's ``features[4]``), two 1×1 classifiers summed, and a bilinear resize to the
  input. 3,221,538 params for 21 classes (torchvision's figure).
* ``unet_<backbone>`` — a U-Net-style decoder (Ronneberger et al., MICCAI 2015) on any zoo backbone's
  multi-scale features (strides 2…32): at each step a 2× transposed convolution (FCN's learned upsampling),
  concatenation with the encoder's skip at that stride, and a 3×3 conv; a last transposed conv returns to
  stride 1. Input sides must be multiples of 32 (the deepest stride).
"""

from __future__ import annotations

import dataclasses

import torch
from torch import nn

from edgecnn.layers.activations import Act
from edgecnn.layers.conv_bn_act import ConvBNAct
from edgecnn.layers.geometry import make_divisible
from edgecnn.layers.upsample import Resize, TransposedConvUp
from edgecnn.models.blocknet import BlockNet, FeatureNet
from edgecnn.models.mobilenet_v3 import CONFIGS as MBV3_CONFIGS
from edgecnn.models.zoo import MODELS, ModelEntry, ModelOptions, create_model, register_model
from edgecnn.runtime.preprocess import IMAGENET_MEAN, IMAGENET_STD, Preprocessing

# torchvision's dilated MobileNetV3-Large (``mobilenet_v3_large(dilated=True)``): the 160-channel stage keeps
# stride 16 with dilation 2 in all three of its depthwise convs.
LARGE_DILATED = (
    *MBV3_CONFIGS["mobilenet_v3_large"].arch[:-1],
    ("ir_k5_s2_d2_m672_c160_se", "ir_r2_k5_d2_m960_c160_se"),  # 16×: dilated instead of strided
)
UNET_DECODER = (96, 64, 48, 32)  # decoder widths at strides 16, 8, 4, 2 (scaled by width_mult)
LOW_MODULE = "blocks.2.0"  # torchvision's features[4]: the first block at stride 8 (40 channels)

# VOC's 21 classes, as torchvision's segmentation weights name them.
VOC_CLASSES = (
    "__background__",
    "aeroplane",
    "bicycle",
    "bird",
    "boat",
    "bottle",
    "bus",
    "car",
    "cat",
    "chair",
    "cow",
    "diningtable",
    "dog",
    "horse",
    "motorbike",
    "person",
    "pottedplant",
    "sheep",
    "sofa",
    "train",
    "tvmonitor",
)


def seg_pre(resolution: int) -> Preprocessing:
    """Segmentation evaluation input: the whole image resized (no crop: every pixel gets a label), ImageNet stats."""
    return Preprocessing(
        input_size=resolution, crop_mode="resize", resize_size=None, mean=IMAGENET_MEAN, std=IMAGENET_STD
    )


class LRASPPHead(nn.Module):
    """``cbr`` (1×1 conv-BN-ReLU) × ``scale`` gate (pool → 1×1 conv → sigmoid), resized to the low features;
    ``low_classifier(low) + high_classifier(high)`` — torchvision's ``LRASPPHead``."""

    def __init__(self, low_chs: int, high_chs: int, num_classes: int, inter_chs: int = 128) -> None:
        super().__init__()
        self.cbr = ConvBNAct(high_chs, inter_chs, 1, act=Act.RELU)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.scale = nn.Conv2d(high_chs, inter_chs, 1, bias=False)
        self.gate = nn.Sigmoid()
        self.resize = Resize()
        self.low_classifier = nn.Conv2d(low_chs, num_classes, 1)
        self.high_classifier = nn.Conv2d(inter_chs, num_classes, 1)

    def forward(self, low: torch.Tensor, high: torch.Tensor) -> torch.Tensor:
        x = self.cbr(high) * self.gate(self.scale(self.pool(high)))
        x = self.resize(x, low)
        return self.low_classifier(low) + self.high_classifier(x)


class LRASPP(nn.Module):
    """``backbone`` (a dilated MobileNetV3 BlockNet without classifier) → ``head`` → ``resize`` to the input."""

    output_stride = 8  # the logits' stride before the final resize

    def __init__(self, backbone: BlockNet, num_classes: int, inter_chs: int = 128) -> None:
        super().__init__()
        backbone.pre_logits, backbone.dropout, backbone.classifier = nn.Identity(), nn.Identity(), nn.Identity()
        self.backbone = backbone
        si, bi = (int(i) for i in LOW_MODULE.split(".")[1:])
        self._low = (si, bi)
        low_chs = backbone.blocks[si][bi].conv_pwl.conv.out_channels
        self.head = LRASPPHead(low_chs, backbone.num_features, num_classes, inter_chs)
        self.resize = Resize()
        self.num_classes = num_classes

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b = self.backbone
        y, low = b.stem(x), None
        for si, stage in enumerate(b.blocks):
            for bi, block in enumerate(stage):
                y = block(y)
                if (si, bi) == self._low:
                    low = y
        out = self.head(low, b.head(y))
        return self.resize(out, x)


class UNet(nn.Module):
    """``encoder`` (a FeatureNet: maps at strides 2, 4, 8, 16, 32) → ``ups[i]`` (2× transposed conv) ⊕ skip →
    ``fuses[i]`` (3×3 ConvBNAct) … → ``final_up`` (2× transposed conv) → ``classifier`` (1×1 conv)."""

    output_stride = 1
    input_multiple = 32  # every skip must meet its upsampled map exactly

    def __init__(self, encoder: FeatureNet, num_classes: int, decoder_chs: tuple[int, ...] = (96, 64, 48, 32)) -> None:
        super().__init__()
        info = encoder.feature_info
        if [f.reduction for f in info] != [2, 4, 8, 16, 32] or len(decoder_chs) != len(info) - 1:
            raise ValueError(f"UNet needs features at strides 2..32 and {len(info) - 1} decoder widths")
        self.encoder = encoder
        self.ups, self.fuses = nn.ModuleList(), nn.ModuleList()
        in_chs = info[-1].chs
        for skip, out_chs in zip(reversed(info[:-1]), decoder_chs, strict=True):
            self.ups.append(TransposedConvUp(in_chs, out_chs, scale=2))
            self.fuses.append(ConvBNAct(out_chs + skip.chs, out_chs, 3, act=Act.RELU))
            in_chs = out_chs
        self.final_up = TransposedConvUp(in_chs, in_chs, scale=2)
        self.classifier = nn.Conv2d(in_chs, num_classes, 1)
        self.num_classes = num_classes

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feats = self.encoder(x)
        y = feats[-1]
        for up, fuse, skip in zip(self.ups, self.fuses, reversed(feats[:-1]), strict=True):
            y = fuse(torch.cat([up(y), skip], dim=1))
        return self.classifier(self.final_up(y))


def build_lraspp(opts: ModelOptions) -> nn.Module:
    cfg = dataclasses.replace(MBV3_CONFIGS["mobilenet_v3_large"], arch=LARGE_DILATED)
    if opts.width_mult is not None:
        cfg = dataclasses.replace(cfg, width_mult=opts.width_mult)
    backbone = BlockNet(cfg, num_classes=0, in_chans=opts.in_chans)
    return LRASPP(backbone, opts.num_classes)


def build_unet(backbone: str, opts: ModelOptions) -> nn.Module:
    """A U-Net decoder on zoo model ``backbone``'s features (any BlockNet family)."""
    encoder = create_model(
        backbone,
        in_chans=opts.in_chans,
        width_mult=opts.width_mult,
        depth_mult=opts.depth_mult,
        drop_path_rate=opts.drop_path_rate,
        features_only=True,
    )
    wm = opts.width_mult or 1.0  # the decoder follows the encoder's width
    return UNet(encoder, opts.num_classes, tuple(make_divisible(c * wm, 8) for c in UNET_DECODER))


register_model(
    ModelEntry(
        name="lraspp_mobilenet_v3_large",
        family="lraspp",
        build=build_lraspp,
        default_resolution=520,
        preprocessing=seg_pre(520),
        paper="arXiv:1905.02244",
        task="segmentation",
        num_classes=21,
    )
)

UNET_BACKBONES = ("efficientnet_lite0", "mobilenet_v2", "mobilenet_v3_large", "mobilenet_v3_small")
for _bb in UNET_BACKBONES:
    register_model(
        ModelEntry(
            name=f"unet_{_bb}",
            family="unet",
            build=lambda o, b=_bb: build_unet(b, o),
            default_resolution=256,
            preprocessing=seg_pre(256),
            paper="arXiv:1505.04597",
            task="segmentation",
            num_classes=21,
        )
    )
assert all(MODELS.get(b).task == "classification" for b in UNET_BACKBONES)
