"""MobileNetV2 (Sandler et al., CVPR 2018, arXiv:1801.04381, Table 2): inverted residuals with linear bottlenecks.

Exactly torchvision's ``mobilenet_v2``: ReLU6, BN eps 1e-5, expanded = round(in·t), head 1280 scaled only for
width > 1, dropout 0.2 — 3,504,872 params, 300,774,272 MACs at 224.
"""

from __future__ import annotations

from edgecnn.layers.activations import Act
from edgecnn.models._common import build_blocknet, imagenet_pre
from edgecnn.models.blocknet import HeadRule, MidRule, NetConfig
from edgecnn.models.zoo import ModelEntry, register_model

ARCH = (  # t (expansion), c (channels), n (repeats), s (stride) of Table 2
    ("ir_k3_e1_c16",),  # 112×112
    ("ir_r2_k3_s2_e6_c24",),  # 56×56
    ("ir_r3_k3_s2_e6_c32",),  # 28×28
    ("ir_r4_k3_s2_e6_c64",),  # 14×14
    ("ir_r3_k3_e6_c96",),  # 14×14
    ("ir_r3_k3_s2_e6_c160",),  # 7×7
    ("ir_k3_e6_c320",),  # 7×7
)

CONFIG = NetConfig(
    arch=ARCH, act=Act.RELU6, head_rule=HeadRule.SCALE_UP, head_chs=1280, mid_rule=MidRule.ROUND, dropout=0.2
)

register_model(
    ModelEntry(
        name="mobilenet_v2",
        family="mobilenet_v2",
        build=lambda o: build_blocknet(CONFIG, o),
        default_resolution=224,
        preprocessing=imagenet_pre(224),
        paper="arXiv:1801.04381",
    )
)
