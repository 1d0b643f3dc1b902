"""INT8 bundles per target through the real quantizers and runtimes: they pass selftest, record their
calibration, stay close to fp32, and follow each target's format rules (QDQ u8/s8, symmetric Q/DQ, NNCF IR)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

import edgecnn
from edgecnn import runtime
from edgecnn.cli.main import cli
from edgecnn.errors import ConfigError, InputSpecError
from edgecnn.exporters import ExportOptions, Precision, export_bundle
from edgecnn.quant.config import QuantConfig
from edgecnn.quant.samples import from_arrays
from tests.export_helpers import _randomize_bn

RES = 32


def _model(name: str = "mobilenet_v3_small") -> torch.nn.Module:
    torch.manual_seed(0)
    m = edgecnn.create_model(name, num_classes=10).eval()
    _randomize_bn(m)
    return m


def _calib(n: int = 48, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, 3, RES, RES)).astype(np.float32)


_BUNDLES: dict[str, Path] = {}


def _int8(tmp_path_factory: pytest.TempPathFactory, target: str) -> Path:
    if target not in _BUNDLES:
        cfg = QuantConfig(calibration=from_arrays(_calib(), source="test-arrays"))
        out = tmp_path_factory.mktemp("q") / target
        opts = ExportOptions(target=target, precision=Precision.INT8, resolution=RES, quant=cfg)
        _BUNDLES[target] = export_bundle(_model(), opts, out).bundle
    return _BUNDLES[target]


@pytest.mark.parametrize("target", ["onnx", "tensorrt", "openvino"])
def test_int8_bundle_verifies_and_records_its_calibration(tmp_path_factory, target):
    bundle = _int8(tmp_path_factory, target)
    m = json.loads((bundle / "manifest.json").read_text())
    assert m["precision"] == "int8" and m["golden"]["tolerance"] == {"max_rel_error": 5e-2, "top_k": 1}
    q = m["quantization"]
    cal = q["calibration"]
    assert cal["samples"] == 48 and cal["sha256"] == from_arrays(_calib()).sha256 and cal["source"] == "test-arrays"
    assert cal["warnings"] and "300" in cal["warnings"][0]  # small set: warned and recorded
    assert q["fp32_vs_int8"]["cosine"] > 0.95 and q["fp32_vs_int8"]["sqnr_db"] > 12
    assert m["parity"]["ok"] and m["parity"]["fp32_cosine"] > 0.95
    # the device re-check: golden inputs are real calibration samples, outputs the int8 model's own
    report = runtime.load(bundle, backend="onnxruntime" if target != "openvino" else None).selftest()
    assert report["ok"] and report["max_rel_error"] < 1e-3


def _initializers(path: Path) -> dict[str, np.ndarray]:
    import onnx
    from onnx import numpy_helper

    return {t.name: numpy_helper.to_array(t) for t in onnx.load(str(path)).graph.initializer}


def test_onnx_int8_is_qdq_u8_activations_s8_per_channel_weights(tmp_path_factory):
    import onnx

    bundle = _int8(tmp_path_factory, "onnx")
    proto = onnx.load(str(bundle / "model.onnx"))
    ops = [n.op_type for n in proto.graph.node]
    assert ops.count("QuantizeLinear") > 10 and ops.count("DequantizeLinear") > 10
    inits = _initializers(bundle / "model.onnx")
    zps = [inits[n.input[2]] for n in proto.graph.node if n.op_type == "QuantizeLinear" and len(n.input) > 2]
    assert zps and all(z.dtype == np.uint8 for z in zps)  # activations u8
    weights = [v for k, v in inits.items() if v.dtype == np.int8 and v.ndim == 4]
    assert weights  # conv weights stored as int8
    scales = [inits[n.input[1]] for n in proto.graph.node if n.op_type == "DequantizeLinear" and n.input[0] in inits]
    assert any(s.ndim == 1 and s.size > 1 for s in scales)  # per-channel weight scales


def test_onnx_int8_pools_run_as_integer_kernels(tmp_path_factory, tmp_path):
    """The exporter writes AdaptiveAvgPool2d(1) as GlobalAveragePool, not the dynamo exporter's ReduceMean, which
    ONNX Runtime's int8 path runs in float between a DequantizeLinear and a QuantizeLinear (before the fix: 10 float
    ReduceMeans in this MobileNetV3-Small, each three kernels, the head's behind an NHWC→NCHW transpose)."""
    import onnx
    import onnxruntime as ort

    from edgecnn.runtime.ort_session import QDQ_DISABLED_OPTIMIZERS

    bundle = _int8(tmp_path_factory, "onnx")
    assert "ReduceMean" not in {n.op_type for n in onnx.load(str(bundle / "model.onnx")).graph.node}
    so = ort.SessionOptions()
    so.optimized_model_filepath = str(tmp_path / "optimized.onnx")
    ort.InferenceSession(
        str(bundle / "model.onnx"), so, providers=["CPUExecutionProvider"], disabled_optimizers=QDQ_DISABLED_OPTIMIZERS
    )
    ops = [n.op_type for n in onnx.load(so.optimized_model_filepath).graph.node]
    assert ops.count("QLinearGlobalAveragePool") == 10 and "ReduceMean" not in ops


def test_tensorrt_int8_is_symmetric_qdq_with_parser_ops(tmp_path_factory):
    import onnx

    from edgecnn.exporters.trt_ops import TRT_SUPPORTED_OPS

    bundle = _int8(tmp_path_factory, "tensorrt")
    proto = onnx.load(str(bundle / "model.onnx"))
    assert {n.op_type for n in proto.graph.node} <= TRT_SUPPORTED_OPS
    inits = _initializers(bundle / "model.onnx")
    zps = [inits[n.input[2]] for n in proto.graph.node if n.op_type in ("QuantizeLinear", "DequantizeLinear")]
    assert zps and all(z.dtype == np.int8 and not z.any() for z in zps)  # signed, zero-point 0 everywhere
    m = json.loads((bundle / "manifest.json").read_text())
    assert m["backend_options"]["tensorrt"]["flags"] == ["INT8", "FP16"]


def test_openvino_int8_has_fake_quantize_and_is_smaller(tmp_path_factory, tmp_path):
    bundle = _int8(tmp_path_factory, "openvino")
    assert "FakeQuantize" in (bundle / "model.xml").read_text()
    fp32 = export_bundle(_model(), ExportOptions(target="openvino", resolution=RES), tmp_path / "f").bundle
    assert (bundle / "model.bin").stat().st_size < 0.5 * (fp32 / "model.bin").stat().st_size


def _activation_range_sizes(bundle: Path) -> list[int]:
    """How many ranges each activation FakeQuantize (one fed by a computed tensor, not a constant) carries."""
    import openvino as ov

    model = ov.Core().read_model(str(bundle / "model.xml"))
    return [
        int(np.prod(op.input_value(2).get_node().get_output_shape(0)))
        for op in model.get_ordered_ops()
        if op.get_type_name() == "FakeQuantize" and op.input_value(0).get_node().get_type_name() != "Constant"
    ]


def test_openvino_int8_activation_ranges_are_per_tensor_unless_asked(tmp_path_factory, tmp_path):
    """Issue 20: NNCF's per-channel ranges on depthwise inputs are each one channel's extreme over the calibration
    images; a dozen images underestimate them, so the default is one range per tensor."""
    sizes = _activation_range_sizes(_int8(tmp_path_factory, "openvino"))
    assert sizes and set(sizes) == {1}
    cfg = QuantConfig(calibration=from_arrays(_calib(12), source="test-arrays"), per_channel_activations=True)
    opts = ExportOptions(target="openvino", precision=Precision.INT8, resolution=RES, quant=cfg)
    res = export_bundle(_model(), opts, tmp_path / "pc")
    assert max(_activation_range_sizes(res.bundle)) > 1
    assert res.manifest["quantization"]["activation_granularity"].startswith("NNCF's choice")


def test_int8_needs_calibration_and_matching_shapes(tmp_path):
    with pytest.raises(ConfigError, match="needs calibration data"):
        export_bundle(_model(), ExportOptions(target="onnx", precision=Precision.INT8, resolution=RES))
    cfg = QuantConfig(calibration=from_arrays(_calib()[:, :, :16, :16]))
    with pytest.raises(InputSpecError, match=r"calibration samples are \[3, 16, 16\]"):
        export_bundle(_model(), ExportOptions(target="onnx", precision=Precision.INT8, resolution=RES, quant=cfg))
    assert list(tmp_path.iterdir()) == []


def test_cli_export_int8_from_npz(tmp_path):
    np.savez(tmp_path / "cal.npz", x=_calib(24))
    out = tmp_path / "b"
    cal = str(tmp_path / "cal.npz")
    args = [
        "export",
        "mobilenet_v2",
        "-t",
        "onnx",
        "-p",
        "int8",
        "-r",
        str(RES),
        "--calib-data",
        cal,
        "--out",
        str(out),
    ]
    res = CliRunner().invoke(cli, args)
    assert res.exit_code == 0, res.output
    assert "int8" in res.output and runtime.load(out).selftest()["ok"]
    bad = CliRunner().invoke(cli, ["export", "mobilenet_v2", "-t", "onnx", "--calib-data", "embedded"])
    assert bad.exit_code != 0 and "error: --calib-data is for --precision int8" in bad.output


def test_cli_lint_only_names_risks_and_writes_nothing(tmp_path):
    np.savez(tmp_path / "cal.npz", x=_calib(8))
    cal = str(tmp_path / "cal.npz")
    args = ["quantize", "efficientnet_b0", "-t", "onnx", "-r", str(RES), "--calib-data", cal, "--lint-only"]
    res = CliRunner().invoke(cli, args)
    assert res.exit_code == 0, res.output
    assert "[sensitive-activation]" in res.output and "--max-drop" in res.output
    assert "[calibration-size]" in res.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cal.npz"]


def test_cli_quantize_errors_are_one_line(tmp_path):
    res = CliRunner().invoke(cli, ["quantize", "mobilenet_v2", "-t", "onnx", "--calib-data", str(tmp_path / "none")])
    assert res.exit_code == 1 and res.output.startswith("error: calibration data") and "Traceback" not in res.output
    res = CliRunner().invoke(cli, ["quantize", "mobilenet_v2", "-t", "onnxx", "--calib-data", "embedded"])
    assert res.exit_code == 1 and "did you mean 'onnx'" in res.output
    np.savez(tmp_path / "c.npz", x=_calib(4))
    res = CliRunner().invoke(
        cli, ["quantize", "mobilenet_v2", "-t", "onnx", "--calib-data", str(tmp_path / "c.npz"), "--method", "kl"]
    )
    assert res.exit_code == 1 and "unknown --method 'kl'" in res.output


def test_openvino_refuses_an_onnx_runtime_calibration_method(tmp_path):
    np.savez(tmp_path / "c.npz", x=_calib(4))
    args = ["quantize", "mobilenet_v2", "-t", "openvino", "--calib-data", str(tmp_path / "c.npz")]
    res = CliRunner().invoke(cli, [*args, "-r", str(RES), "--method", "entropy"])
    assert res.exit_code == 1 and "error: --method entropy applies to the onnx and tensorrt targets" in res.output


def test_onnx_int8_carries_no_dead_weight(tmp_path_factory, tmp_path):
    """Symmetric conv weights and int32 biases carry no (all-zero) zero points and the exporter's debugging metadata
    is gone — while ONNX Runtime still fuses every quantized conv into QLinearConv (the bytes cost no speed)."""
    import onnx
    import onnxruntime as ort

    bundle = _int8(tmp_path_factory, "onnx")
    proto = onnx.load(str(bundle / "model.onnx"))
    producer = {o: n for n in proto.graph.node for o in n.output}
    convs = [n for n in proto.graph.node if n.op_type == "Conv"]
    assert convs
    for conv in convs:
        for arg in conv.input[1:]:
            dq = producer[arg]
            assert dq.op_type == "DequantizeLinear" and len(dq.input) == 2, (conv.name, arg)
    from edgecnn.onnx_graph.torch_export import export_onnx

    fp32 = export_onnx(_model(), torch.randn(1, 3, RES, RES), tmp_path / "f.onnx", opset=18, dynamic_batch=None)
    meta = {m.key for n in onnx.load(str(fp32)).graph.node for m in n.metadata_props}
    assert meta == {"pkg.torch.onnx.name_scopes", "pkg.torch.onnx.class_hierarchy"}  # no stack traces, no FX text
    so = ort.SessionOptions()
    so.optimized_model_filepath = str(tmp_path / "optimized.onnx")
    ort.InferenceSession(str(bundle / "model.onnx"), so, ["CPUExecutionProvider"], disabled_optimizers=[])
    fused = [n.op_type for n in onnx.load(so.optimized_model_filepath).graph.node]
    assert fused.count("QLinearConv") == len(convs) and "Conv" not in fused
