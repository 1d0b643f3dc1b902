"""One network class for every MobileNet/EfficientNet: stem → stages of blocks → head conv → pool → classifier.

The families differ only in data (:class:`NetConfig`): their arch strings, activation, BN settings, how SE and
expanded channels are sized, and how width/depth multipliers apply to stem, head and repeats. The per-family rules
reproduce torchvision's and the TF releases' exactly (the goldens in tests/test_models.py).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum

import torch
from torch import nn

from edgecnn.errors import ConfigError
from edgecnn.layers.activations import Act, make_act
from edgecnn.layers.blocks import DepthwiseSeparable, InvertedResidual, SESpec
from edgecnn.layers.conv_bn_act import ConvBNAct, NormSpec
from edgecnn.layers.geometry import make_divisible
from edgecnn.models.spec import BlockArgs, BlockType, parse_arch


class HeadRule(StrEnum):
    """How the 1×1 head conv's width follows the width multiplier."""

    NONE = "none"  # no head conv (MobileNetV1)
    FIXED = "fixed"  # EfficientNet-Lite: 1280 whatever the width
    SCALE_UP = "scale_up"  # MobileNetV2: scaled only when width > 1
    TIMES_LAST = "times_last"  # EfficientNet (×4) and MobileNetV3 (×6) of the last stage's channels


class SERule(StrEnum):
    """How squeeze-excitation is sized and gated."""

    EFFICIENTNET = "efficientnet"  # rd = max(1, block_in/4); SiLU; sigmoid
    MOBILENETV3 = "mobilenetv3"  # rd = make_divisible(mid/4, 8); ReLU; hard-sigmoid


class MidRule(StrEnum):
    """How an expansion ratio becomes expanded channels."""

    ROUND = "round"  # MobileNetV2: round(in · e)
    DIVISIBLE = "divisible"  # EfficientNet: make_divisible(in · e, 8)


@dataclass(frozen=True, kw_only=True)
class NetConfig:
    """Everything that defines one family member (before num_classes / in_chans)."""

    arch: tuple[tuple[str, ...], ...]
    act: Act
    norm: NormSpec = NormSpec()
    stem_chs: int = 32
    fix_stem: bool = False
    head_rule: HeadRule = HeadRule.TIMES_LAST
    head_chs: int = 4  # absolute channels (FIXED/SCALE_UP) or multiplier (TIMES_LAST)
    pre_logits_chs: int | None = None  # MobileNetV3's Linear+hardswish before the classifier
    se_rule: SERule = SERule.EFFICIENTNET
    mid_rule: MidRule = MidRule.DIVISIBLE
    fix_first_last_repeats: bool = False  # EfficientNet-Lite
    padding: str = "symmetric"  # "same" for TF-ported weights
    width_mult: float = 1.0
    depth_mult: float = 1.0
    dropout: float = 0.2
    drop_path_rate: float = 0.0
    divisor: int = 8
    linear_init: str = "normal"  # torchvision: N(0, 0.01) for MobileNets, "uniform" ±1/√out for EfficientNet


@dataclass(frozen=True)
class FeatureInfo:
    """One multi-scale feature map: its channels, its stride w.r.t. the input, and the module producing it."""

    chs: int
    reduction: int
    module: str


def _act(args: BlockArgs, cfg: NetConfig) -> Act:
    return args.act or cfg.act


class BlockNet(nn.Module):
    """``stem`` → ``blocks`` (stages) → ``head`` → pool → [``pre_logits``] → ``dropout`` → ``classifier``."""

    def __init__(self, cfg: NetConfig, *, num_classes: int = 1000, in_chans: int = 3) -> None:
        super().__init__()
        if num_classes < 0 or in_chans < 1:
            raise ConfigError(f"num_classes must be >= 0 and in_chans >= 1, got {num_classes}, {in_chans}")
        if cfg.width_mult <= 0 or cfg.depth_mult <= 0:
            raise ConfigError(f"width/depth multipliers must be > 0, got {cfg.width_mult}, {cfg.depth_mult}")
        if not 0 <= cfg.dropout < 1 or not 0 <= cfg.drop_path_rate < 1:
            raise ConfigError(f"dropout and drop_path_rate must be in [0, 1), got {cfg.dropout}, {cfg.drop_path_rate}")
        self.cfg = cfg
        self.num_classes = num_classes
        ch = self._chs
        stages = parse_arch(cfg.arch)

        stem_chs = cfg.stem_chs if cfg.fix_stem else ch(cfg.stem_chs)
        self.stem = ConvBNAct(in_chans, stem_chs, 3, stride=2, act=cfg.act, norm=cfg.norm, padding=cfg.padding)
        trace = [FeatureInfo(stem_chs, 2, "stem")]  # every module's output, for the multi-scale feature points

        repeats = [[self._repeats(b, si, len(stages)) for b in stage] for si, stage in enumerate(stages)]
        total = sum(map(sum, repeats))
        in_chs, idx, reduction = stem_chs, 0, 2
        stage_modules = []
        for si, stage in enumerate(stages):
            blocks: list[nn.Module] = []
            for b, n in zip(stage, repeats[si], strict=True):
                for r in range(n):
                    stride = b.stride if r == 0 else 1
                    dpr = cfg.drop_path_rate * idx / total  # linear stochastic-depth schedule (EfficientNet §5.1)
                    blocks.append(self._block(b, in_chs, stride, dpr))
                    in_chs, idx = ch(b.out_chs), idx + 1
                    reduction *= stride if b.dilation == 1 else 1
                    trace.append(FeatureInfo(in_chs, reduction, f"blocks.{si}.{len(blocks) - 1}"))
            stage_modules.append(nn.Sequential(*blocks))
        self.blocks = nn.Sequential(*stage_modules)

        if cfg.head_rule is HeadRule.NONE:
            self.head: nn.Module = nn.Identity()
            self.num_features = in_chs
        else:
            head_chs = {
                HeadRule.FIXED: cfg.head_chs,
                HeadRule.SCALE_UP: make_divisible(cfg.head_chs * max(1.0, cfg.width_mult), cfg.divisor),
                HeadRule.TIMES_LAST: cfg.head_chs * in_chs,
            }[cfg.head_rule]
            self.head = ConvBNAct(in_chs, head_chs, 1, act=cfg.act, norm=cfg.norm)
            self.num_features = head_chs
            trace.append(FeatureInfo(head_chs, reduction, "head"))
        last_per_reduction = {f.reduction: f for f in trace}  # the deepest map at each stride
        self.feature_info = list(last_per_reduction.values())

        self.global_pool = nn.AdaptiveAvgPool2d(1)
        feat = self.num_features
        if cfg.pre_logits_chs:
            pre = ch(cfg.pre_logits_chs)
            self.pre_logits = nn.Sequential()
            self.pre_logits.add_module("fc", nn.Linear(feat, pre))
            self.pre_logits.add_module("act", make_act(cfg.act))
            feat = pre
        else:
            self.pre_logits = nn.Identity()
        self.head_features = feat
        self.dropout = nn.Dropout(cfg.dropout)
        self.classifier = nn.Linear(feat, num_classes) if num_classes else nn.Identity()
        self._init_weights()

    # -- construction rules ------------------------------------------------------------------------------------
    def _chs(self, c: int) -> int:
        return make_divisible(c * self.cfg.width_mult, self.cfg.divisor)

    def _repeats(self, b: BlockArgs, stage: int, n_stages: int) -> int:
        if self.cfg.fix_first_last_repeats and stage in (0, n_stages - 1):
            return b.repeats
        return int(math.ceil(b.repeats * self.cfg.depth_mult))

    def _block(self, b: BlockArgs, in_chs: int, stride: int, dpr: float) -> nn.Module:
        cfg, act = self.cfg, _act(b, self.cfg)
        out_chs = self._chs(b.out_chs)
        if b.type is BlockType.DS:
            return DepthwiseSeparable(
                in_chs,
                out_chs,
                b.kernel_size,
                stride=stride,
                dilation=b.dilation,
                act=act,
                norm=cfg.norm,
                padding=cfg.padding,
            )
        if b.mid_chs is not None:
            mid = self._chs(b.mid_chs)
        elif cfg.mid_rule is MidRule.ROUND:
            mid = int(round(in_chs * b.exp_ratio))
        else:
            mid = make_divisible(in_chs * b.exp_ratio, cfg.divisor)
        se = None
        if b.se:
            if cfg.se_rule is SERule.EFFICIENTNET:
                se = SESpec(rd_chs=max(1, in_chs // 4), act=act, gate=Act.SIGMOID)
            else:
                se = SESpec(rd_chs=make_divisible(mid // 4, cfg.divisor), act=Act.RELU, gate=Act.HARDSIGMOID)
        # A dilated depthwise conv replaces the stride (torchvision MobileNetV3 "dilated" variant).
        stride = 1 if b.dilation > 1 else stride
        return InvertedResidual(
            in_chs,
            out_chs,
            b.kernel_size,
            mid_chs=mid,
            stride=stride,
            dilation=b.dilation,
            act=act,
            se=se,
            norm=cfg.norm,
            padding=cfg.padding,
            drop_path_rate=dpr,
        )

    def _init_weights(self) -> None:
        """He-normal convs, unit BN; linears N(0, 0.01) (torchvision MobileNetV2/V3) or U(±1/√out) (EfficientNet)."""
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear) and self.cfg.linear_init == "normal":
                nn.init.normal_(m.weight, 0.0, 0.01)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                bound = 1.0 / math.sqrt(m.out_features)
                nn.init.uniform_(m.weight, -bound, bound)
                nn.init.zeros_(m.bias)

    # -- forward -----------------------------------------------------------------------------------------------
    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.blocks(self.stem(x)))

    def forward_head(self, x: torch.Tensor, *, pre_logits: bool = False) -> torch.Tensor:
        x = self.pre_logits(self.global_pool(x).flatten(1))
        x = self.dropout(x)
        return x if pre_logits else self.classifier(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))

    def forward_intermediates(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Feature maps at every reduction (2, 4, 8, 16, 32), as listed in ``feature_info`` — for decoders."""
        wanted = {f.module for f in self.feature_info}
        x = self.stem(x)
        out = [x] if "stem" in wanted else []
        for si, stage in enumerate(self.blocks):
            for bi, block in enumerate(stage):
                x = block(x)
                if f"blocks.{si}.{bi}" in wanted:
                    out.append(x)
        if "head" in wanted:
            out.append(self.head(x))
        return out


class FeatureNet(nn.Module):
    """Wraps a BlockNet so ``forward`` returns its multi-scale feature maps (``features_only=True``)."""

    def __init__(self, net: BlockNet) -> None:
        super().__init__()
        self.net = net
        self.feature_info = net.feature_info
        # Classifier parts are unused here; drop them so parameter counts are honest.
        net.pre_logits, net.dropout, net.classifier = nn.Identity(), nn.Identity(), nn.Identity()

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        return self.net.forward_intermediates(x)
