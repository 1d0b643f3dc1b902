"""Quantization-risk lint, error measures, the budget search, and the report (JSON + Markdown + PNG)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch import nn

import edgecnn
from edgecnn.quant.layer_error import LayerError, rank_sensitive
from edgecnn.quant.lint import lint_model
from edgecnn.quant.metrics import compare, cosine, sqnr_db, topk_accuracy
from edgecnn.quant.onnx_flow import budget_steps


def make_fragile(model: nn.Module, *, fraction: float = 0.1, factor: float = 300.0, seed: int = 0) -> int:
    """The weight-range pattern Nagel et al. 2019 (Fig. 2) show for MobileNetV2, built on purpose: ``fraction`` of
    the channels of each expand layer scaled down by ``factor`` through their BN, the depthwise kernels of those
    channels scaled up by as much — the float function is kept (up to ReLU6 clipping), the folded depthwise
    per-channel ranges end up ``factor``× apart. Returns how many expand → depthwise pairs were rescaled."""
    gen = torch.Generator().manual_seed(seed)
    mods = list(model.modules())
    pairs = 0
    for i, m in enumerate(mods):
        if not (isinstance(m, nn.Conv2d) and m.groups > 1 and m.groups == m.in_channels == m.out_channels):
            continue
        bn = next((b for b in reversed(mods[:i]) if isinstance(b, nn.BatchNorm2d)), None)
        if bn is None or bn.num_features != m.in_channels:
            continue
        pick = torch.rand(m.in_channels, generator=gen) < fraction
        s = torch.where(pick, torch.tensor(1.0 / factor), torch.tensor(1.0))
        with torch.no_grad():
            bn.weight.mul_(s)
            bn.bias.mul_(s)
            m.weight.div_(s.view(-1, 1, 1, 1))
        pairs += 1
    return pairs


def _codes(findings):
    return {f.code: f.severity for f in findings}


def test_lint_flags_each_known_risk_with_a_recommendation():
    b0 = edgecnn.create_model("efficientnet_b0", num_classes=10)
    found = lint_model(b0, calibration_samples=50)
    assert _codes(found) == {"sensitive-activation": "warning", "calibration-size": "warning"}
    assert all(f.recommendation for f in found)
    v3 = edgecnn.create_model("mobilenet_v3_small", num_classes=10)
    codes = _codes(lint_model(v3, opset=13, bias_correction=False))
    assert codes["hardswish-opset"] == "warning" and codes["bias-correction"] == "error"
    assert "hardswish-opset" not in _codes(lint_model(v3, opset=18))


def test_lint_depthwise_ranges_error_only_for_per_tensor_weights():
    torch.manual_seed(0)
    net = edgecnn.create_model("mobilenet_v2", num_classes=10).eval()
    assert "depthwise-range" not in _codes(lint_model(net))
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        before = net(x)
        assert make_fragile(net) == 17  # every inverted-residual depthwise conv
        after = net(x)
    assert torch.allclose(before, after, rtol=1e-3, atol=1e-6)  # the float function is kept
    assert _codes(lint_model(net, per_channel=True))["depthwise-range"] == "info"
    assert lint_model(net, per_channel=False)[0].code == "depthwise-range"
    assert lint_model(net, per_channel=False)[0].severity == "error"


def test_measures():
    rng = np.random.default_rng(0)
    ref = rng.standard_normal((64, 10)).astype(np.float32)
    assert sqnr_db(ref, ref) > 200 and cosine(ref, ref) == pytest.approx(1.0)
    assert sqnr_db(ref, ref + 0.1 * ref) == pytest.approx(20.0, abs=1e-6)
    labels = ref.argmax(-1)
    assert topk_accuracy(ref, labels, 1) == 1.0 and topk_accuracy(-ref, labels, 1) == 0.0
    c = compare(ref, -ref, labels)
    assert c["top1_agreement"] == 0.0 and c["top1_drop_points"] == 100.0 and c["fp32_top5"] == 1.0


def test_budget_search_order():
    assert budget_steps(0) == [] and budget_steps(1) == [1] and budget_steps(5) == [1, 2, 4, 5]
    assert budget_steps(8) == [1, 2, 4, 8]
    errs = [
        LayerError(node="relu_a", op_type="Relu", tensor="t1", sqnr_db=20, loss_db=9.0, owner="conv_a"),
        LayerError(node="conv_b", op_type="Conv", tensor="t2", sqnr_db=30, loss_db=2.0, owner="conv_b"),
        LayerError(node="conv_c", op_type="Conv", tensor="t3", sqnr_db=25, loss_db=5.0, owner="conv_c"),
    ]
    # a fused activation's loss is charged to its conv; unmeasured candidates go last
    assert rank_sensitive(errs, ["conv_b", "conv_x", "conv_c", "conv_a"]) == ["conv_a", "conv_c", "conv_b", "conv_x"]


def test_quantize_api_writes_bundle_and_report(tmp_path):
    from edgecnn.exporters.int8 import quantize
    from edgecnn.quant.samples import from_arrays
    from tests.export_helpers import _randomize_bn

    torch.manual_seed(0)
    net = edgecnn.create_model("mobilenet_v2", num_classes=10).eval()
    _randomize_bn(net)
    x = np.random.default_rng(0).standard_normal((24, 3, 32, 32)).astype(np.float32)
    ev = np.random.default_rng(1).standard_normal((16, 3, 32, 32)).astype(np.float32)
    with torch.no_grad():
        labels = net(torch.from_numpy(ev)).argmax(-1).numpy()
    res = quantize(
        net,
        target="onnx",
        calib_data=from_arrays(x),
        eval_data=from_arrays(ev, labels=labels),
        resolution=32,
        out=tmp_path / "b",
    )
    assert res.bundle == tmp_path / "b" and res.report_files["md"].parent == tmp_path / "b-report"
    rep = json.loads(res.report_files["json"].read_text())
    c = rep["fp32_vs_int8"]
    assert c["on"] == "evaluation" and c["fp32_top1"] == 1.0 and c["int8_top1"] >= 0.8 and c["samples"] == 16
    assert 1 <= len(rep["layer_errors_worst10"]) <= 10
    assert rep["size_bytes"]["fp32"] > 2.5 * rep["size_bytes"]["int8"]
    lat = rep["latency"]
    assert lat["fp32"]["iters"] == lat["int8"]["iters"] == 90 and lat["environment"]["cpu"]
    md = res.report_files["md"].read_text()
    assert "top-1 agreement" in md and "Worst layers" in md and "Kept in float" in md
    chk = rep["calibration_check"]  # issue 20: calibration-set diagnostics against the evaluation data
    assert chk["samples"] == 24 and chk["distinct_images"] == 24 and chk["coverage"]["evaluation_samples"] == 16
    assert 0 < chk["coverage"]["median_range_covered"] <= 1 and "276 more" in chk["recommendation"]
    assert "Calibration set: 24 samples, 24 distinct images." in md and "Recommendation: add 276" in md
    assert res.report_files["png"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_cpu_without_vnni_is_a_warning_only_when_judged() -> None:
    """An AVX2 x86 CPU without VNNI/AMX saturates ORT/OpenVINO int8 convolutions (Lite0: 8 dB vs 26 dB output
    SQNR on such a machine): quantizing there says so; lint without a machine says nothing about CPUs."""
    from edgecnn.runtime.env import int8_saturates

    net = edgecnn.create_model("mobilenet_v2", num_classes=10).eval()
    assert "cpu-int8-saturation" in _codes(lint_model(net, cpu_flags=["avx2", "fma"]))
    for flags in (["avx2", "avx512f", "avx512_vnni"], ["avx2", "avx_vnni"], ["avx2", "amx_int8"], ["asimd"], None):
        assert "cpu-int8-saturation" not in _codes(lint_model(net, cpu_flags=flags)), flags
    assert int8_saturates(["avx2"]) and not int8_saturates(["asimd"]) and not int8_saturates(["avx2", "avx_vnni"])


def test_quantize_report_gains_explanation_parity(tmp_path):
    """Issue 16: ``explain_data`` adds fp32-vs-INT8 RISE parity per image to the report (JSON, Markdown, a
    side-by-side PNG each); a bad image is refused before any quantization work."""
    from PIL import Image

    from edgecnn.errors import InputSpecError
    from edgecnn.exporters.int8 import quantize
    from edgecnn.quant.samples import from_arrays
    from edgecnn.runtime import load
    from tests.export_helpers import _randomize_bn

    torch.manual_seed(0)
    net = edgecnn.create_model("mobilenet_v2", num_classes=10, width_mult=0.35).eval()
    _randomize_bn(net)
    folder = tmp_path / "photos"
    folder.mkdir()
    for i in range(3):
        img = np.random.default_rng(i).integers(0, 255, (40, 36, 3), dtype=np.uint8)
        Image.fromarray(img).save(folder / f"p{i}.png")
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "x.jpg").write_bytes(b"not a picture")
    with pytest.raises(InputSpecError, match="--explain-data: image .* cannot be decoded"):
        quantize(net, target="onnx", calib_data=from_arrays(np.zeros((2, 3, 32, 32), np.float32)), explain_data=bad)
    x = np.random.default_rng(0).standard_normal((16, 3, 32, 32)).astype(np.float32)
    res = quantize(
        net,
        target="onnx",
        calib_data=from_arrays(x),
        resolution=32,
        out=tmp_path / "b",
        measure_latency=False,
        method="minmax",
        rounding="nearest",
        explain_data=folder,
        explain_masks=24,
        explain_images=2,
    )
    e = json.loads(res.report_files["json"].read_text())["explanation"]
    assert e["masks"] == 24 and [r["image"] for r in e["rows"]] == ["p0.png", "p1.png"]
    sess = load(res.bundle)
    xb = sess.preprocess([str(folder / "p0.png"), str(folder / "p1.png")])
    with torch.no_grad():
        f_top1 = net(torch.from_numpy(xb)).argmax(1).tolist()
    b_top1 = [int(np.asarray(sess.predict(xb[i : i + 1])).argmax()) for i in range(2)]
    assert [r["float_top1"] for r in e["rows"]] == f_top1 and [r["bundle_top1"] for r in e["rows"]] == b_top1
    assert e["top1_agreement"] == np.mean(np.array(f_top1) == np.array(b_top1))
    for r in e["rows"]:
        assert -1 <= r["spearman"] <= 1 and 0 <= r["top_iou"] <= 1 and r["looks_elsewhere"] == (r["top_iou"] < 0.3)
        assert (res.report_files["md"].parent / r["png"]).is_file()
    md = res.report_files["md"].read_text()
    assert "## Explanation parity (RISE, 24 seeded masks" in md and "| p1.png |" in md


def test_cli_quantize_passes_explain_data_and_refuses_it_without_a_report(tmp_path):
    from click.testing import CliRunner

    from edgecnn.cli.main import cli

    base = ["quantize", "mobilenet_v3_small", "-t", "onnx", "--calib-data", "embedded"]
    r = CliRunner().invoke(cli, [*base, "--lint-only", "--explain-data", str(tmp_path)])
    assert r.exit_code == 1 and "--explain-data adds a section to the report" in r.output
    r = CliRunner().invoke(cli, [*base, "--explain-data", str(tmp_path), "--out", str(tmp_path / "b")])
    assert r.exit_code == 1 and "--explain-data: no image files in" in r.output and not (tmp_path / "b").exists()
    assert len(r.output.strip().splitlines()) == 1
