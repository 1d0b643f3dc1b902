"""``edgecnn bench``: real runtimes on a tiny bundle, every field present, per-layer mapping, plots, bad input.
No timing assertions (docs/architecture.md, principle 9): speed claims live in benchmarks/."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from edgecnn.bench.measure import environment_warnings, usable_cores
from edgecnn.cli.main import cli
from edgecnn.runtime.timing import summarize
from tests.export_helpers import export_cached

pytestmark = pytest.mark.xdist_group("bench")
ITERS = ["--iters", "3", "--warmup", "1", "--threads", "1"]


@pytest.fixture(scope="module")
def onnx_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return export_cached(tmp_path_factory.mktemp("bench"), "mobilenet_v3_small", "onnx", dynamic="1:1:4")


@pytest.fixture(scope="module")
def ov_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return export_cached(tmp_path_factory.mktemp("bench-ov"), "mobilenet_v3_small", "openvino")


def _run(args: list[str]) -> tuple[int, str]:
    res = CliRunner().invoke(cli, args)
    return res.exit_code, res.output


def _per_layer_view(bundle: Path, net: Any) -> tuple[dict[str, Any], set[str]]:
    """``edgecnn bench BUNDLE --per-layer --json``'s view of the bundle, and the module names of the model it holds."""
    code, out = _run(["bench", str(bundle), "--per-layer", "--json", *ITERS])
    assert code == 0, out
    return json.loads(out)["per_layer"][bundle.name], {name for name, _ in net.named_modules()}


def test_bench_bundle_json_has_every_field(onnx_bundle: Path) -> None:
    code, out = _run(["bench", str(onnx_bundle), "--batch", "1,2", "--json", *ITERS])
    assert code == 0, out
    doc = json.loads(out)
    assert doc["schema"] == "edgecnn.bench/1"
    rows = doc["results"]
    assert [r["batch"] for r in rows] == [1, 2]
    for r in rows:
        for key in ("p50_ms", "p90_ms", "p99_ms", "mean_ms", "std_ms", "cov", "throughput", "first_inference_ms"):
            assert r[key] >= 0
        assert r["p50_ms"] <= r["p90_ms"] <= r["p99_ms"]
        assert r["iters"] >= 3 and r["warmup"] == 1 and r["threads"] == 1
        assert r["load_s"] > 0 and r["peak_rss_mb"] > 0 and r["file_bytes"] > 0
        assert r["backend"] == "onnxruntime" and r["precision"] == "fp32"
        env = r["environment"]
        assert env["cpu"] and env["cores"] and "onnxruntime" in env["versions"] and env["threads"] == 1


def test_bench_static_batch_is_skipped_with_reason(ov_bundle: Path) -> None:
    code, out = _run(["bench", str(ov_bundle), "--batch", "1,2", *ITERS])
    assert code == 0, out
    assert "skipped:" in out and "accepts batch 1..1" in out


def test_bench_csv_and_baseline_ratio(onnx_bundle: Path, ov_bundle: Path) -> None:
    code, out = _run(["bench", str(onnx_bundle), str(ov_bundle), "--csv", "--baseline", onnx_bundle.name, *ITERS])
    assert code == 0, out
    rows = list(csv.DictReader(io.StringIO(out)))
    assert len(rows) == 2 and {r["backend"] for r in rows} == {"onnxruntime", "openvino"}
    assert float(rows[0]["ratio"]) == pytest.approx(1.0)
    assert rows[0]["cpu"]


def test_bench_pytorch_baseline_table() -> None:
    code, out = _run(["bench", "mobilenet_v3_small:eager,channels_last", "-r", "32", *ITERS])
    assert code == 0, out
    assert "mobilenet_v3_small:eager" in out and "pt-channels_last" in out


def test_per_layer_maps_back_to_model_layers(onnx_bundle: Path, ov_bundle: Path) -> None:
    import edgecnn

    code, out = _run(["bench", str(onnx_bundle), str(ov_bundle), "--per-layer", "--json", *ITERS])
    assert code == 0, out
    views = json.loads(out)["per_layer"]
    modules = {name for name, _ in edgecnn.create_model("mobilenet_v3_small").named_modules()}
    ort_view = views[onnx_bundle.name]
    assert ort_view["backend"] == "onnxruntime" and ort_view["end_to_end_ms"] > 0
    named = [x for x in ort_view["layers"] if not x["layer"].startswith("(")]
    assert named and all(x["layer"] in modules for x in named)  # module paths, not ONNX node names
    assert sum(x["share"] for x in ort_view["layers"]) == pytest.approx(1.0)
    ov_view = views[ov_bundle.name]
    assert ov_view["backend"] == "openvino" and ov_view["layers"] and ov_view["sum_ms"] > 0
    ov_named = [x["layer"] for x in ov_view["layers"] if x["layer"] in modules]
    assert len(ov_named) >= 0.8 * len(ov_view["layers"])  # IR names mapped back through the re-exported ONNX


@pytest.mark.parametrize("model", ["mobilenet_v2", "mobilenet_v3_small"])
def test_per_layer_maps_fused_int8_kernels_back_to_layers(tmp_path: Path, model: str) -> None:
    """ORT fuses DQ→Conv→Q into QLinearConv named ``<conv>_token_N``; those must map to the conv's layer, not to
    the runtime bucket (before the fix ~75 % of an int8 MobileNetV2's time landed there). MobileNetV3: ORT's
    quantization pre-processing rewrites its graph and dropped every node's name scopes (all time unmapped)."""
    import numpy as np
    import torch

    import edgecnn
    from edgecnn.exporters import ExportOptions, Precision, export_bundle
    from edgecnn.quant.config import QuantConfig
    from edgecnn.quant.samples import from_arrays

    torch.manual_seed(0)
    net = edgecnn.create_model(model, num_classes=10).eval()
    calib = np.random.default_rng(0).standard_normal((16, 3, 32, 32)).astype(np.float32)
    cfg = QuantConfig(calibration=from_arrays(calib, source="test-arrays"))
    opts = ExportOptions(target="onnx", precision=Precision.INT8, resolution=32, quant=cfg)
    bundle = export_bundle(net, opts, tmp_path / "v2-int8").bundle
    view, modules = _per_layer_view(bundle, net)
    fused = [x for x in view["layers"] if "QLinearConv" in x["ops"]]
    assert len(fused) >= 30 and all(x["layer"] in modules for x in fused)
    # every kernel lands on a module or a named bucket — never on a Q/DQ node's own name ("relu_3_DequantizeLinear")
    # nor, for the HardSwish bodies ORT's pre-processing inlines unnamed, all under one empty name in the runtime bucket
    assert all(x["layer"] in modules or x["layer"].startswith("(") for x in view["layers"]), view["layers"]
    runtime = sum(x["share"] for x in view["layers"] if x["layer"].startswith("(runtime"))
    assert runtime < 0.1


def test_per_layer_maps_fused_silu_back_to_layers(tmp_path: Path) -> None:
    """ORT fuses x*sigmoid(x) into QuickGelu named ``<node>/QuickGeluFusion/``; those kernels must map to the SiLU's
    layer (before the fix an fp32 EfficientNet-B0 put 12 % of its time, all its SiLUs, in the runtime bucket)."""
    import torch

    import edgecnn
    from edgecnn.exporters import ExportOptions, Precision, export_bundle

    torch.manual_seed(0)
    net = edgecnn.create_model("efficientnet_b0", num_classes=10).eval()
    opts = ExportOptions(target="onnx", precision=Precision.FP32, resolution=64)
    bundle = export_bundle(net, opts, tmp_path / "b0").bundle
    view, modules = _per_layer_view(bundle, net)
    silu = [x for x in view["layers"] if "QuickGelu" in x["ops"]]
    assert len(silu) >= 40 and all(x["layer"] in modules for x in silu)
    assert all("QuickGelu" not in x["ops"] for x in view["layers"] if x["layer"].startswith("("))


def test_plot_writes_png(onnx_bundle: Path, tmp_path: Path) -> None:
    code, out = _run(["bench", str(onnx_bundle), "--json", *ITERS])
    results = tmp_path / "r.json"
    results.write_text(out)
    png = tmp_path / "plot.png"
    code, out = _run(["bench", "plot", str(results), "-o", str(png), "-a", "mobilenet_v3_small=67.4"])
    assert code == 0, out
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["bench", "mobilenet_v9"], "did you mean"),
        (["bench", "mobilenet_v2:jit"], "unknown PyTorch mode 'jit'"),
        (["bench", "mobilenet_v2", "--batch", "1,x"], "--batch '1,x'"),
        (["bench", "mobilenet_v2", "--json", "--csv"], "exclusive"),
        (["bench", "mobilenet_v2", "--iters", "0"], "--iters >= 1"),
        (["bench", "mobilenet_v3_small:eager", "-r", "32", "--baseline", "resnet", *ITERS], "matches no subject"),
    ],
)
def test_bench_errors(args: list[str], message: str) -> None:
    code, out = _run(args)
    assert code != 0
    assert message in out and "Traceback" not in out


def test_plot_errors(tmp_path: Path) -> None:
    bad = tmp_path / "x.json"
    bad.write_text("{}")
    code, out = _run(["bench", "plot", str(bad)])
    assert code != 0 and "is not `edgecnn bench --json` output" in out
    code, out = _run(["bench", "plot", str(bad), "-a", "mobilenet"])
    assert code != 0 and "NAME=TOP1" in out


def test_all_batches_skipped_is_an_error(ov_bundle: Path) -> None:
    code, out = _run(["bench", str(ov_bundle), "--batch", "4", *ITERS])
    assert code != 0 and "nothing could be measured" in out


def test_help_shows_the_default_command_options() -> None:
    code, out = _run(["bench", "--help"])
    assert code == 0 and "--per-layer" in out and "edgecnn bench plot" in out
    code, out = _run(["profile", "--help"])
    assert code == 0 and "--profile" in out and "edgecnn profile fit" in out


def test_summary_statistics_and_warnings() -> None:
    s = summarize([0.001] * 9 + [0.002])
    assert s["p50_ms"] == pytest.approx(1.0) and s["iters"] == 10 and s["cov"] > 0
    assert any("oversubscribed" in w for w in environment_warnings(usable_cores() + 1))
