"""MobileNetV1 (Howard et al., 2017, arXiv:1704.04861, Table 1): a 3×3 stem then 13 depthwise-separable blocks.

1.0-224: 4.2 M params, 569 M MACs, 70.6 % top-1 (paper). ``width_mult`` is the paper's α.
"""

from __future__ import annotations

from edgecnn.layers.activations import Act
from edgecnn.models._common import build_blocknet, imagenet_pre
from edgecnn.models.blocknet import HeadRule, NetConfig
from edgecnn.models.zoo import ModelEntry, register_model

ARCH = (
    ("ds_c64",),  # 112×112
    ("ds_s2_c128", "ds_c128"),  # 56×56
    ("ds_s2_c256", "ds_c256"),  # 28×28
    ("ds_s2_c512", "ds_r5_c512"),  # 14×14
    ("ds_s2_c1024", "ds_c1024"),  # 7×7
)

CONFIG = NetConfig(arch=ARCH, act=Act.RELU, head_rule=HeadRule.NONE, dropout=0.2)

register_model(
    ModelEntry(
        name="mobilenet_v1",
        family="mobilenet_v1",
        build=lambda o: build_blocknet(CONFIG, o),
        default_resolution=224,
        preprocessing=imagenet_pre(224),
        paper="arXiv:1704.04861",
    )
)
