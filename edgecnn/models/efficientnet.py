"""EfficientNet B0–B7 (Tan & Le, ICML 2019, arXiv:1905.11946) and EfficientNet-Lite0–4 (TF release, 2020).

One B0 table (Table 1) scaled by the compound-scaling coefficients (width, depth, resolution, dropout): channels
round with make_divisible(·, 8), repeats with ceil. B-variants follow torchvision exactly (SiLU, SE of ¼ the block
*input* channels, stochastic depth 0.2 linear over blocks; BN eps 1e-5 for B0–B4 and the TF-ported 1e-3/0.01 for
B5–B7). Lite variants follow the TF-Lite release: no SE, ReLU6, stem and head fixed, first/last stage repeats
unscaled, BN eps 1e-3, TF "SAME" padding (asymmetric on stride-2 convs) so TF-ported weights run exactly.
"""

from __future__ import annotations

import dataclasses

from edgecnn.layers.activations import Act
from edgecnn.layers.conv_bn_act import NormSpec
from edgecnn.models._common import build_blocknet, imagenet_pre
from edgecnn.models.blocknet import HeadRule, NetConfig
from edgecnn.models.zoo import ModelEntry, register_model
from edgecnn.runtime.preprocess import Preprocessing

B0 = (  # e = expansion, k = depthwise kernel, s = stride, c = channels, r = repeats (Table 1)
    ("ir_k3_e1_c16_se",),  # MBConv1 3×3, 112×112
    ("ir_r2_k3_s2_e6_c24_se",),  # MBConv6 3×3, 56×56
    ("ir_r2_k5_s2_e6_c40_se",),  # MBConv6 5×5, 28×28
    ("ir_r3_k3_s2_e6_c80_se",),  # MBConv6 3×3, 14×14
    ("ir_r3_k5_e6_c112_se",),  # MBConv6 5×5, 14×14
    ("ir_r4_k5_s2_e6_c192_se",),  # MBConv6 5×5, 7×7
    ("ir_k3_e6_c320_se",),  # MBConv6 3×3, 7×7
)
LITE = tuple(tuple(b.replace("_se", "") for b in stage) for stage in B0)

# name: (width, depth, resolution, dropout) — the compound-scaling table of the reference implementations
B_SCALING = {
    "efficientnet_b0": (1.0, 1.0, 224, 0.2),
    "efficientnet_b1": (1.0, 1.1, 240, 0.2),
    "efficientnet_b2": (1.1, 1.2, 260, 0.3),
    "efficientnet_b3": (1.2, 1.4, 300, 0.3),
    "efficientnet_b4": (1.4, 1.8, 380, 0.4),
    "efficientnet_b5": (1.6, 2.2, 456, 0.4),
    "efficientnet_b6": (1.8, 2.6, 528, 0.5),
    "efficientnet_b7": (2.0, 3.1, 600, 0.5),
}
LITE_SCALING = {
    "efficientnet_lite0": (1.0, 1.0, 224, 0.2),
    "efficientnet_lite1": (1.0, 1.1, 240, 0.2),
    "efficientnet_lite2": (1.1, 1.2, 260, 0.3),
    "efficientnet_lite3": (1.2, 1.4, 280, 0.3),
    "efficientnet_lite4": (1.4, 1.8, 300, 0.3),
}
TF_NORM = NormSpec(eps=1e-3, momentum=0.01)  # TF's batch_norm_epsilon 1e-3, decay 0.99
B_BASE = NetConfig(
    arch=B0, act=Act.SILU, head_rule=HeadRule.TIMES_LAST, head_chs=4, drop_path_rate=0.2, linear_init="uniform"
)
LITE_BASE = NetConfig(
    arch=LITE,
    act=Act.RELU6,
    norm=TF_NORM,
    fix_stem=True,
    head_rule=HeadRule.FIXED,
    head_chs=1280,
    fix_first_last_repeats=True,
    padding="same",
    drop_path_rate=0.2,
    linear_init="uniform",
)


def lite_preprocessing(resolution: int) -> Preprocessing:
    """TF-Lite EfficientNet evaluation: centre crop res/(res+32) of the shorter side, bicubic to res,
    (x − 127) / 128 on 0–255 pixels (the release's MEAN_RGB 127, STDDEV_RGB 128)."""
    return Preprocessing(
        input_size=resolution,
        crop_mode="crop_resize",
        resize_size=None,
        crop_fraction=resolution / (resolution + 32),
        interpolation="bicubic",
        mean=(127 / 255,) * 3,
        std=(128 / 255,) * 3,
    )


for _name, (_w, _d, _res, _drop) in B_SCALING.items():
    _norm = TF_NORM if _name in ("efficientnet_b5", "efficientnet_b6", "efficientnet_b7") else NormSpec()
    _cfg = dataclasses.replace(B_BASE, width_mult=_w, depth_mult=_d, dropout=_drop, norm=_norm)
    register_model(
        ModelEntry(
            name=_name,
            family="efficientnet",
            build=lambda o, c=_cfg: build_blocknet(c, o),
            default_resolution=_res,
            preprocessing=imagenet_pre(_res, interpolation="bicubic"),
            paper="arXiv:1905.11946",
        )
    )

for _name, (_w, _d, _res, _drop) in LITE_SCALING.items():
    _cfg = dataclasses.replace(LITE_BASE, width_mult=_w, depth_mult=_d, dropout=_drop)
    register_model(
        ModelEntry(
            name=_name,
            family="efficientnet_lite",
            build=lambda o, c=_cfg: build_blocknet(c, o),
            default_resolution=_res,
            preprocessing=lite_preprocessing(_res),
            paper="TF-Lite release 2020",
        )
    )
