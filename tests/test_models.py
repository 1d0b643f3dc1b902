"""The model zoo: every registered model builds and runs; architectures equal torchvision's / the papers' exactly."""

from __future__ import annotations

import dataclasses
from functools import cache

import pytest
import torch
from torch import nn

import edgecnn
from edgecnn.analysis import analyze_named
from edgecnn.errors import ArchSpecError, ConfigError, DuplicateNameError, UnknownNameError
from edgecnn.layers import DropPath, InvertedResidual
from edgecnn.models import BlockNet, FeatureNet, NetConfig, create_model, get_model_entry, list_models
from edgecnn.models.convert import torchvision_map
from edgecnn.models.spec import BlockType, parse_arch, parse_block
from edgecnn.registry import Registry
from edgecnn.runtime import Preprocessing
from tests.tv_reference import TV_MODELS, tv_fixture

ALL_MODELS = list_models("classification")  # dense models: tests/test_seg_models.py
BLOCKNET_MODELS = [n for n in ALL_MODELS if n != "alexnet"]
EFFICIENTNET_B = [n for n in TV_MODELS if n.startswith("efficientnet_b")]
# One or two members of each family, including variants whose own multipliers are not 1 (b3, lite4).
SCALING_MODELS = [
    "alexnet",
    "efficientnet_b0",
    "efficientnet_b3",
    "efficientnet_lite0",
    "efficientnet_lite4",
    "mobilenet_v1",
    "mobilenet_v2",
    "mobilenet_v3_small",
]

EXPECTED_ZOO = {
    "alexnet",
    *(f"efficientnet_b{i}" for i in range(8)),
    *(f"efficientnet_lite{i}" for i in range(5)),
    "mobilenet_v1",
    "mobilenet_v2",
    "mobilenet_v3_large",
    "mobilenet_v3_small",
}


def _meta_model(name: str, **kwargs) -> nn.Module:
    """A shapes-only model (no memory, no compute), cached: tests only read it."""
    return _cached_meta_model(name, tuple(sorted(kwargs.items())))


@cache
def _cached_meta_model(name: str, kwargs: tuple) -> nn.Module:
    with torch.device("meta"):
        return create_model(name, **dict(kwargs))


def _params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def test_zoo_contents() -> None:
    assert set(ALL_MODELS) == EXPECTED_ZOO
    assert sorted(ALL_MODELS) == ALL_MODELS
    assert edgecnn.list_models("classification") == ALL_MODELS  # the lazy top-level export


# -- every model builds and runs --------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ALL_MODELS)
def test_forward_eval_and_train(name: str) -> None:
    model = create_model(name, num_classes=10)
    x = torch.randn(2, 3, 64, 64)
    model.eval()
    with torch.no_grad():
        y_eval = model(x)
        assert torch.equal(model(x), y_eval)  # eval is deterministic (dropout / drop-path off)
    assert y_eval.shape == (2, 10)
    assert torch.isfinite(y_eval).all()
    model.train()
    y_train = model(x)
    assert y_train.shape == (2, 10)
    y_train.square().mean().backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None]
    assert not missing, f"parameters outside the graph: {missing[:5]}"


@pytest.mark.parametrize("name", ALL_MODELS)
def test_model_metadata(name: str) -> None:
    model = _meta_model(name)
    entry = get_model_entry(name)
    assert model.edgecnn_name == name
    assert model.default_resolution == entry.default_resolution
    assert isinstance(model.preprocessing, Preprocessing)
    assert model.preprocessing == entry.preprocessing
    assert model.preprocessing.input_size == entry.default_resolution
    assert model.edgecnn_options.num_classes == 1000
    assert entry.paper


@pytest.mark.parametrize("name", ["mobilenet_v2", "efficientnet_lite0", "alexnet", "mobilenet_v3_small"])
def test_single_channel_input(name: str) -> None:
    model = create_model(name, num_classes=4, in_chans=1).eval()
    assert model.preprocessing is None  # an RGB recipe does not apply to grey input
    with torch.no_grad():
        assert model(torch.randn(1, 1, 64, 64)).shape == (1, 4)


@pytest.mark.parametrize("name", ["mobilenet_v1", "mobilenet_v2", "mobilenet_v3_large", "efficientnet_b0"])
def test_num_classes_zero_gives_features(name: str) -> None:
    model = create_model(name, num_classes=0).eval()
    assert isinstance(model.classifier, nn.Identity)
    with torch.no_grad():
        assert model(torch.randn(2, 3, 64, 64)).shape == (2, model.head_features)


def test_pre_logits_and_heads() -> None:
    large = create_model("mobilenet_v3_large", num_classes=10).eval()
    assert large.num_features == 960 and large.head_features == 1280
    with torch.no_grad():
        feats = large.forward_head(large.forward_features(torch.randn(1, 3, 64, 64)), pre_logits=True)
    assert feats.shape == (1, 1280)
    assert create_model("mobilenet_v3_small").head_features == 1024
    assert create_model("mobilenet_v1").num_features == 1024  # no head conv


# -- multi-scale features ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", BLOCKNET_MODELS)
def test_features_only(name: str) -> None:
    model = create_model(name, features_only=True).eval()
    assert isinstance(model, FeatureNet)
    info = model.feature_info
    reductions = [f.reduction for f in info]
    assert reductions == [2, 4, 8, 16, 32]  # one map per stride, strictly increasing
    size = 64
    with torch.no_grad():
        maps = model(torch.randn(2, 3, size, size))
    assert len(maps) == len(info)
    for fmap, f in zip(maps, info, strict=True):
        assert fmap.shape == (2, f.chs, size // f.reduction, size // f.reduction), f
    modules = dict(model.net.named_modules())
    assert all(f.module in modules for f in info)


@pytest.mark.parametrize("name", ["mobilenet_v3_large", "efficientnet_b0", "mobilenet_v1"])
def test_features_only_drops_classifier_params(name: str) -> None:
    full = _meta_model(name)
    feats = _meta_model(name, features_only=True)
    head = sum(_params(m) for m in (full.pre_logits, full.classifier))
    assert _params(feats) == _params(full) - head > 0


def test_features_only_matches_full_model_intermediates() -> None:
    full = create_model("mobilenet_v2").eval()
    feats = create_model("mobilenet_v2", features_only=True).eval()
    feats.net.load_state_dict({k: v for k, v in full.state_dict().items() if not k.startswith("classifier")})
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        maps = feats(x)
        torch.testing.assert_close(maps[-1], full.forward_features(x))


def test_dilated_blocks_do_not_reduce() -> None:
    cfg = NetConfig(arch=(("ir_k3_e1_c16",), ("ir_k3_s2_e6_c24",), ("ir_r2_k3_s2_d2_e6_c32",)), act="relu6")
    net = BlockNet(cfg, num_classes=5).eval()
    dilated = net.blocks[2][0]
    assert dilated.conv_dw.conv.stride == (1, 1) and dilated.conv_dw.conv.dilation == (2, 2)
    assert [f.reduction for f in net.feature_info] == [2, 4]
    with torch.no_grad():
        maps = FeatureNet(net)(torch.randn(1, 3, 32, 32))
    assert [m.shape[-1] for m in maps] == [16, 8]


def test_alexnet_has_no_features_only() -> None:
    with pytest.raises(ConfigError, match="multi-scale"):
        create_model("alexnet", features_only=True)


# -- width / depth multipliers ----------------------------------------------------------------------------------------


def _default_mults(name: str) -> tuple[float, float]:
    model = _meta_model(name)
    cfg = getattr(model, "cfg", None)
    return (cfg.width_mult, cfg.depth_mult) if cfg is not None else (1.0, 1.0)


@pytest.mark.parametrize("name", SCALING_MODELS)
def test_width_mult_changes_params(name: str) -> None:
    width, _ = _default_mults(name)
    base = _params(_meta_model(name))
    assert _params(_meta_model(name, width_mult=width)) == base  # an override replaces the variant's own value
    assert (
        _params(_meta_model(name, width_mult=width * 0.5)) < base < _params(_meta_model(name, width_mult=width * 1.5))
    )


@pytest.mark.parametrize("name", [n for n in SCALING_MODELS if n != "alexnet"])
def test_depth_mult_changes_params(name: str) -> None:
    _, depth = _default_mults(name)
    base, deep = _meta_model(name), _meta_model(name, depth_mult=depth * 2)
    assert sum(len(s) for s in deep.blocks) > sum(len(s) for s in base.blocks)
    assert _params(deep) > _params(base)


def test_width_rules_of_stem_and_head() -> None:
    # MobileNetV2: the 1280 head is only scaled for width > 1 (torchvision's last_channel rule)
    assert _meta_model("mobilenet_v2", width_mult=0.5).head.conv.out_channels == 1280
    assert _meta_model("mobilenet_v2", width_mult=1.4).head.conv.out_channels == 1792
    assert _meta_model("mobilenet_v2", width_mult=0.5).stem.conv.out_channels == 16
    # EfficientNet-Lite: stem 32 and head 1280 whatever the width; B-variants scale both
    lite = _meta_model("efficientnet_lite4")
    assert (lite.stem.conv.out_channels, lite.head.conv.out_channels) == (32, 1280)
    b4 = _meta_model("efficientnet_b4")
    assert (b4.stem.conv.out_channels, b4.head.conv.out_channels) == (48, 1792)


def test_lite_first_and_last_stage_repeats_are_fixed() -> None:
    lite4 = _meta_model("efficientnet_lite4")  # depth 1.8
    b0_table = [1, 2, 2, 3, 3, 4, 1]
    assert [len(s) for s in lite4.blocks] == [1, 4, 4, 6, 6, 8, 1]
    b4 = _meta_model("efficientnet_b4")
    assert [len(s) for s in b4.blocks] == [-(-int(r * 18) // 10) for r in b0_table]  # ceil(r · 1.8)


# -- bad options ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(num_classes=-1),
        dict(num_classes=2.5),
        dict(in_chans=0),
        dict(width_mult=0),
        dict(width_mult=-1.0),
        dict(width_mult=float("nan")),
        dict(depth_mult=0),
        dict(dropout=1.0),
        dict(dropout=-0.1),
        dict(drop_path_rate=1.0),
    ],
)
@pytest.mark.parametrize("name", ["mobilenet_v2", "alexnet"])
def test_bad_options(name: str, kwargs: dict) -> None:
    with pytest.raises(ConfigError):
        create_model(name, **kwargs)


@pytest.mark.parametrize("kwargs", [dict(depth_mult=2.0), dict(drop_path_rate=0.1)])
def test_alexnet_rejects_blocknet_options(kwargs: dict) -> None:
    with pytest.raises(ConfigError) as info:
        create_model("alexnet", **kwargs)
    assert info.value.hint


def test_option_overrides() -> None:
    m = _meta_model("mobilenet_v2", dropout=0.0, drop_path_rate=0.1)
    assert m.dropout.p == 0.0
    assert any(isinstance(x, DropPath) for x in m.modules())  # mobilenet_v2 has none by default
    assert not any(isinstance(x, DropPath) for x in _meta_model("mobilenet_v2").modules())
    assert not any(isinstance(x, DropPath) for x in _meta_model("efficientnet_b0", drop_path_rate=0.0).modules())
    assert [x.p for x in _meta_model("alexnet", dropout=0.1).modules() if isinstance(x, nn.Dropout)] == [0.1, 0.1]


def test_unknown_name_suggests() -> None:
    with pytest.raises(UnknownNameError) as info:
        create_model("mobilenet_v4")
    msg = str(info.value)
    assert "unknown model 'mobilenet_v4'" in msg and "did you mean" in msg and "mobilenet_v" in msg
    assert not msg.startswith(("'", '"'))  # not KeyError's quoted repr
    assert isinstance(info.value, KeyError)  # still catchable as a lookup failure
    with pytest.raises(UnknownNameError, match="did you mean 'efficientnet_b0'"):
        create_model("efficientnet-b0")
    with pytest.raises(UnknownNameError, match="known: alexnet"):
        create_model("zzzzzzzzzzzz")


def test_registry_rules() -> None:
    reg: Registry[int] = Registry("widget")
    reg.register("a", 1)
    reg.decorator("b")(2)
    assert reg.get("a") == 1 and "b" in reg and len(reg) == 2 and list(reg) == ["a", "b"]
    with pytest.raises(DuplicateNameError, match="widget 'a'"):
        reg.register("a", 3)
    assert reg.get("a") == 1  # the first registration survives
    with pytest.raises(UnknownNameError, match="unknown widget"):
        reg.get("c")
    entry = get_model_entry("mobilenet_v2")
    with pytest.raises(DuplicateNameError):
        edgecnn.models.MODELS.register("mobilenet_v2", entry)


# -- architecture strings ---------------------------------------------------------------------------------------------


def test_parse_block() -> None:
    b = parse_block("ir_r2_k5_s2_e6_c40_se")
    assert (b.type, b.repeats, b.kernel_size, b.stride, b.exp_ratio, b.out_chs, b.se) == (
        BlockType.IR,
        2,
        5,
        2,
        6.0,
        40,
        True,
    )
    b = parse_block("ir_k3_m184_c80_ahs")
    assert b.mid_chs == 184 and b.act == "hardswish" and b.exp_ratio == 1.0
    assert parse_block("ds_s2_d2_c128").dilation == 2
    assert parse_block("ir_c8_e4.6").exp_ratio == 4.6


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("xx_c16", "unknown block type"),
        ("ir_k3", "missing output channels"),
        ("ir_c16_q3", "unknown token 'q3'"),
        ("ir_c16_c24", "repeats"),
        ("ir_e6_m32_c16", "either"),
        ("ds_e6_c16", "no expansion"),
        ("ds_se_c16", "no expansion"),
        ("ir_k0_c16", "kernel_size must be >= 1"),
        ("ir_r0_c16", "repeats must be >= 1"),
        ("ir_kx_c16", "bad value"),
        ("ir_c16_azz", "bad value"),
        ("ir__c16", "unknown token"),
    ],
)
def test_parse_block_errors(text: str, match: str) -> None:
    with pytest.raises(ArchSpecError, match=match) as info:
        parse_block(text)
    assert repr(text) in str(info.value)  # the message names the block string
    assert isinstance(info.value, ConfigError)


@pytest.mark.parametrize("text", ["ir_e0_c16", "ir_e-1_c16", "ir_enan_c16"])
def test_parse_block_rejects_bad_expansion(text: str) -> None:
    with pytest.raises(ArchSpecError):
        parse_block(text)


@pytest.mark.parametrize("arch", [(), ((),), (("ir_c8",), ())])
def test_parse_arch_needs_stages(arch: tuple) -> None:
    with pytest.raises(ArchSpecError):
        parse_arch(arch)


def test_blocknet_rejects_bad_config() -> None:
    cfg = NetConfig(arch=(("ir_c8",),), act="relu")
    with pytest.raises(ConfigError):
        BlockNet(dataclasses.replace(cfg, width_mult=0.0))
    with pytest.raises(ConfigError):
        BlockNet(dataclasses.replace(cfg, dropout=1.0))
    with pytest.raises(ConfigError):
        BlockNet(cfg, num_classes=-2)


# -- goldens: parameter and MAC counts --------------------------------------------------------------------------------


@pytest.mark.parametrize("name", TV_MODELS)
def test_torchvision_params_and_macs_exact(name: str) -> None:
    ref = tv_fixture(name)
    stats = analyze_named(name)
    assert stats.input_shape == (1, 3, ref["default_resolution"], ref["default_resolution"])
    assert stats.params == ref["params"]
    assert stats.macs == ref["macs"]


def test_efficientnet_lite0_golden() -> None:
    stats = analyze_named("efficientnet_lite0")
    assert stats.params == 4_652_008
    assert abs(stats.macs - 385.2e6) <= 0.1e6


def test_mobilenet_v1_golden() -> None:
    stats = analyze_named("mobilenet_v1")
    assert (stats.params, stats.macs) == (4_231_976, 568_740_352)


@pytest.mark.parametrize(
    ("width", "res", "params_m", "macs_m"),
    [  # MobileNetV1 paper, Tables 6 and 7 (figures rounded there)
        (1.0, 224, 4.2, 569),
        (0.75, 224, 2.6, 325),
        (0.5, 224, 1.3, 149),
        (0.25, 224, 0.5, 41),
        (1.0, 192, 4.2, 418),
        (1.0, 160, 4.2, 290),
        (1.0, 128, 4.2, 186),
    ],
)
def test_mobilenet_v1_paper_table(width: float, res: int, params_m: float, macs_m: int) -> None:
    stats = analyze_named("mobilenet_v1", res, width_mult=width)
    assert abs(stats.params / 1e6 - params_m) < 0.05
    assert abs(stats.macs / 1e6 - macs_m) < 1


@pytest.mark.parametrize(
    ("name", "params_m"),
    [  # TF EfficientNet-Lite release README (params rounded to 0.1 M)
        ("efficientnet_lite0", 4.7),
        ("efficientnet_lite1", 5.4),
        ("efficientnet_lite2", 6.1),
        ("efficientnet_lite3", 8.2),
        ("efficientnet_lite4", 13.0),
    ],
)
def test_efficientnet_lite_params(name: str, params_m: float) -> None:
    assert abs(_params(_meta_model(name)) / 1e6 - params_m) <= 0.05


# -- goldens: layer settings equal torchvision's ----------------------------------------------------------------------


@pytest.mark.parametrize("name", TV_MODELS)
def test_batchnorm_settings_match_torchvision(name: str) -> None:
    ref = tv_fixture(name)
    model = _meta_model(name)
    names = torchvision_map(model, get_model_entry(name).family)  # our module → torchvision's module
    ours = {names[n]: (m.eps, m.momentum) for n, m in model.named_modules() if isinstance(m, nn.BatchNorm2d)}
    theirs = {bn["name"]: (bn["eps"], bn["momentum"]) for bn in ref["norm_layers"]}
    assert ours == theirs


@pytest.mark.parametrize("name", TV_MODELS)
def test_activations_match_torchvision(name: str) -> None:
    model = _meta_model(name)
    acts = sorted({type(m).__name__ for m in model.modules() if type(m).__module__ == "torch.nn.modules.activation"})
    assert acts == tv_fixture(name)["activations"]


@pytest.mark.parametrize("name", TV_MODELS)
def test_dropout_matches_torchvision(name: str) -> None:
    model = _meta_model(name)
    assert [m.p for m in model.modules() if isinstance(m, nn.Dropout)] == tv_fixture(name)["dropout"]


@pytest.mark.parametrize("name", EFFICIENTNET_B)
def test_stochastic_depth_matches_torchvision(name: str) -> None:
    ref = tv_fixture(name)["stochastic_depth"]  # one rate per block, linear in the block index
    model = _meta_model(name)
    blocks = [b for stage in model.blocks for b in stage]
    assert len(blocks) == len(ref)
    assert all(isinstance(b, InvertedResidual) for b in blocks)
    for i, (block, p) in enumerate(zip(blocks, ref, strict=True)):
        if block.has_skip and p > 0:
            assert isinstance(block.drop_path, DropPath), i
            assert block.drop_path.p == p, i
        else:  # torchvision's StochasticDepth is a no-op on blocks without a residual
            assert isinstance(block.drop_path, nn.Identity), i
    assert any(isinstance(b.drop_path, DropPath) for b in blocks)
