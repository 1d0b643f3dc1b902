"""MobileNetV3 (Howard et al., ICCV 2019, arXiv:1905.02244, Tables 1–2): NAS-found inverted residuals with
hard-swish, SE (hard-sigmoid gate, make_divisible(mid/4, 8) channels) and exact per-block expanded channels.

Exactly torchvision's: BN eps 1e-3 / momentum 0.01, head conv 6× last stage, Linear(→1280/1024)+hardswish before
the classifier — Large 5,483,032 params / 216,589,760 MACs; Small 2,542,856 / 56,510,400.
"""

from __future__ import annotations

from edgecnn.layers.activations import Act
from edgecnn.layers.conv_bn_act import NormSpec
from edgecnn.models._common import build_blocknet, imagenet_pre
from edgecnn.models.blocknet import HeadRule, NetConfig, SERule
from edgecnn.models.zoo import ModelEntry, register_model

LARGE = (  # m = expanded channels, are = ReLU (default hard-swish)
    ("ir_k3_m16_c16_are",),  # 112×112
    ("ir_k3_s2_m64_c24_are", "ir_k3_m72_c24_are"),  # 56×56
    ("ir_k5_s2_m72_c40_se_are", "ir_r2_k5_m120_c40_se_are"),  # 28×28
    ("ir_k3_s2_m240_c80", "ir_k3_m200_c80", "ir_r2_k3_m184_c80"),  # 14×14
    ("ir_k3_m480_c112_se", "ir_k3_m672_c112_se"),  # 14×14
    ("ir_k5_s2_m672_c160_se", "ir_r2_k5_m960_c160_se"),  # 7×7
)

SMALL = (
    ("ir_k3_s2_m16_c16_se_are",),  # 56×56
    ("ir_k3_s2_m72_c24_are", "ir_k3_m88_c24_are"),  # 28×28
    ("ir_k5_s2_m96_c40_se", "ir_r2_k5_m240_c40_se"),  # 14×14
    ("ir_k5_m120_c48_se", "ir_k5_m144_c48_se"),  # 14×14
    ("ir_k5_s2_m288_c96_se", "ir_r2_k5_m576_c96_se"),  # 7×7
)

_BASE = dict(
    act=Act.HARDSWISH,
    norm=NormSpec(eps=1e-3, momentum=0.01),
    stem_chs=16,
    head_rule=HeadRule.TIMES_LAST,
    head_chs=6,
    se_rule=SERule.MOBILENETV3,
    dropout=0.2,
)
CONFIGS = {
    "mobilenet_v3_large": NetConfig(arch=LARGE, pre_logits_chs=1280, **_BASE),
    "mobilenet_v3_small": NetConfig(arch=SMALL, pre_logits_chs=1024, **_BASE),
}

for _name, _cfg in CONFIGS.items():
    register_model(
        ModelEntry(
            name=_name,
            family="mobilenet_v3",
            build=lambda o, c=_cfg: build_blocknet(c, o),
            default_resolution=224,
            preprocessing=imagenet_pre(224),
            paper="arXiv:1905.02244",
        )
    )
