"""Static analysis (edgecnn.analysis): per-layer rows, totals, memory, meta vs real, and bad inputs."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from edgecnn.analysis import ModelStats, analyze, analyze_named
from edgecnn.errors import InputSpecError
from edgecnn.layers import TransposedConvUp
from edgecnn.models import create_model


def _check_totals(stats: ModelStats) -> None:
    rows = stats.layers
    assert sum(r.params for r in rows) == stats.params
    assert sum(r.macs for r in rows) == stats.macs
    assert sum(r.activation_bytes for r in rows) == stats.activation_bytes
    assert max(r.activation_bytes for r in rows) == stats.peak_activation_bytes
    assert sum(r.weight_bytes_int8 for r in rows) == stats.weight_bytes_int8
    assert stats.weight_bytes_fp32 == 4 * stats.params
    assert stats.weight_bytes_fp16 == 2 * stats.params
    for r in rows:
        assert r.weight_bytes_fp32 == 4 * r.params and r.weight_bytes_fp16 == 2 * r.params
        assert r.activation_bytes == 4 * torch.Size(r.output_shape).numel()
        assert r.macs >= 0 and r.params >= 0


@pytest.mark.parametrize(
    "name", ["mobilenet_v1", "mobilenet_v2", "mobilenet_v3_small", "efficientnet_b0", "efficientnet_lite0", "alexnet"]
)
def test_rows_sum_to_totals(name: str) -> None:
    stats = analyze_named(name)
    _check_totals(stats)
    assert len({r.name for r in stats.layers}) == len(stats.layers)  # each module once
    assert stats.layers[-1].output_shape == (1, 1000)
    assert stats.model == name


def test_mobilenet_v2_layer_shapes() -> None:
    stats = analyze_named("mobilenet_v2")
    rows = {r.name: r for r in stats.layers}
    assert stats.input_shape == (1, 3, 224, 224)
    stem = rows["stem.conv"]
    assert (stem.type, stem.output_shape, stem.params) == ("Conv2d", (1, 32, 112, 112), 3 * 32 * 9)
    assert stem.macs == 32 * 112 * 112 * 3 * 9
    assert rows["stem.bn"].params == 64 and rows["stem.bn"].macs == 0
    assert rows["stem.act"].type == "ReLU6" and rows["stem.act"].params == 0
    dw = rows["blocks.1.0.conv_dw.conv"]  # depthwise 3×3, stride 2, on 96 channels
    assert dw.output_shape == (1, 96, 56, 56) and dw.macs == 96 * 56 * 56 * 9 and dw.params == 96 * 9
    assert rows["head.conv"].output_shape == (1, 1280, 7, 7)
    assert rows["global_pool"].output_shape == (1, 1280, 1, 1)
    fc = rows["classifier"]
    assert (fc.output_shape, fc.params, fc.macs) == ((1, 1000), 1280 * 1000 + 1000, 1280 * 1000)
    # the largest map: the 6× expansion of 16 channels at 112×112
    assert stats.peak_activation_bytes == 4 * 96 * 112 * 112
    # int8 storage: int8 weights plus fp32 scale + int32 bias per output channel
    assert fc.weight_bytes_int8 == 1280 * 1000 + 8 * 1000
    assert stem.weight_bytes_int8 == 3 * 32 * 9 + 8 * 32


def test_hand_computed_small_model() -> None:
    model = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1),  # 8·16·16 outputs × 3·9
        nn.ReLU(),
        nn.Conv2d(8, 8, 3, stride=2, padding=1, groups=8, bias=False),  # depthwise: 8·8·8 × 9
        TransposedConvUp(8, 4, scale=2),  # every one of 8·8·8 inputs scatters 4·4·4
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(4, 10),
    )
    stats = analyze(model, 16)
    assert stats.input_shape == (1, 3, 16, 16)
    assert stats.macs == 8 * 16 * 16 * 27 + 8 * 8 * 8 * 9 + 8 * 8 * 8 * 4 * 16 + 4 * 10
    assert stats.params == (3 * 8 * 9 + 8) + 8 * 9 + (8 * 4 * 16 + 8) + (4 * 10 + 10)
    rows = {r.name: r for r in stats.layers}
    assert rows["3.up"].output_shape == (1, 4, 16, 16)
    assert rows["6"].output_shape == (1, 10)
    _check_totals(stats)


@pytest.mark.parametrize("batch", [2, 5])
def test_batch_scales_macs_and_activations(batch: int) -> None:
    one = analyze_named("mobilenet_v3_small", 96)
    many = analyze_named("mobilenet_v3_small", 96, batch=batch)
    assert many.input_shape == (batch, 3, 96, 96)
    assert many.params == one.params
    assert many.macs == batch * one.macs
    assert many.activation_bytes == batch * one.activation_bytes
    assert many.weight_bytes_int8 == one.weight_bytes_int8


def test_non_square_input() -> None:
    stats = analyze(create_model("mobilenet_v3_small", num_classes=5), (96, 160))
    assert stats.input_shape == (1, 3, 96, 160)
    assert {r.name: r for r in stats.layers}["stem.conv"].output_shape == (1, 16, 48, 80)
    assert stats.layers[-1].output_shape == (1, 5)


@pytest.mark.parametrize("name", ["mobilenet_v3_small", "efficientnet_lite0", "alexnet"])
def test_real_model_equals_meta(name: str) -> None:
    real = create_model(name).train()
    stats = analyze(real, 128)
    assert real.training  # the caller's mode is restored
    with torch.device("meta"):
        meta_model = create_model(name)
    assert stats == analyze(meta_model, 128)
    assert stats == analyze_named(name, 128)


def test_resolution_changes_macs_not_params() -> None:
    small = analyze_named("efficientnet_b0", 112)
    big = analyze_named("efficientnet_b0", 224)
    assert small.params == big.params
    assert small.macs < big.macs < 4.1 * small.macs


def test_in_chans_and_options() -> None:
    stats = analyze(create_model("mobilenet_v2", in_chans=1, num_classes=10), 64)
    assert stats.input_shape == (1, 1, 64, 64)
    assert stats.layers[-1].output_shape == (1, 10)
    assert analyze_named("mobilenet_v2", num_classes=10).params == 3_504_872 - 1281 * 990
    assert analyze_named("mobilenet_v2", width_mult=0.5).params < 3_504_872


def test_features_only_model() -> None:
    stats = analyze(create_model("mobilenet_v2", features_only=True), 64)
    _check_totals(stats)
    assert "classifier" not in {r.name.rpartition(".")[2] for r in stats.layers}
    assert stats.params == 3_504_872 - 1281 * 1000


@pytest.mark.parametrize("device", ["meta", "cpu"])
def test_input_too_small_for_alexnet(device: str) -> None:
    with torch.device(device):
        model = create_model("alexnet")
    with pytest.raises(InputSpecError, match=r"1×3×8×8") as info:
        analyze(model, 8)
    assert "resolution" in str(info.value)
    with pytest.raises(InputSpecError):
        analyze_named("alexnet", 8)
    assert analyze_named("alexnet", 63).params == 61_100_840  # the smallest size AlexNet's pools accept


@pytest.mark.parametrize(("size", "batch"), [(0, 1), (-3, 1), ((224, 0), 1), (224, 0)])
def test_non_positive_sizes(size, batch: int) -> None:
    with torch.device("meta"):
        model = create_model("mobilenet_v2")
    with pytest.raises(InputSpecError, match="positive"):
        analyze(model, size, batch=batch)
    if size != 0:
        with pytest.raises(InputSpecError, match="positive"):
            analyze_named("mobilenet_v2", size, batch=batch)


def test_analyze_named_zero_resolution() -> None:
    with pytest.raises(InputSpecError):
        analyze_named("mobilenet_v2", 0)


def test_to_dict() -> None:
    stats = analyze_named("mobilenet_v3_small", 64)
    full = stats.to_dict()
    assert full["input_shape"] == [1, 3, 64, 64]
    assert len(full["layers"]) == len(stats.layers)
    assert full["layers"][0]["output_shape"] == list(stats.layers[0].output_shape)
    short = stats.to_dict(per_layer=False)
    assert "layers" not in short and short["params"] == stats.params and short["macs"] == stats.macs
