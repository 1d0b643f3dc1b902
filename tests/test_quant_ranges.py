"""MSE-optimal activation ranges (``--method mse``, the default): the search clips rare outliers and lowers the
quantization error it predicts and the one it gets; ONNX Runtime's QDQ model takes the ranges (still fused to
QLinearConv) and OpenVINO's NNCF gets its histogram estimator."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from edgecnn.quant.config import CalibMethod, QuantConfig
from edgecnn.quant.ranges import mse_range
from edgecnn.quant.samples import from_arrays


def _qdq_error(v: np.ndarray, lo: float, hi: float) -> float:
    """Mean squared error of uint8 asymmetric quantization of ``v`` on [lo, hi] (ONNX Runtime's arithmetic)."""
    s = (hi - lo) / 255
    z = np.round(-lo / s)
    return float(np.mean((s * (np.clip(np.round(v / s) + z, 0, 255) - z) - v) ** 2))


def test_mse_range_is_the_best_range_and_clips_heavy_tails():
    rng = np.random.default_rng(0)
    v = rng.standard_t(4, 100_000)  # heavy tails, like a projection conv's output: min/max is set by a few values
    lo0, hi0 = float(v.min()), float(v.max())
    hist, _ = np.histogram(v, 8192, (lo0, hi0))
    lo, hi = mse_range(hist, lo0, hi0)
    assert 0.5 * -lo0 < -lo < 0.9 * -lo0 and 0.5 * hi0 < hi < 0.9 * hi0
    ends = np.linspace(0.5, 1.0, 26)
    best = min(_qdq_error(v, a * lo0, b * hi0) for a in ends for b in ends)  # brute force on the real quantizer
    assert _qdq_error(v, lo, hi) < 1.02 * best and _qdq_error(v, lo, hi) < 0.9 * _qdq_error(v, lo0, hi0)
    slo, shi = mse_range(hist, lo0, hi0, symmetric=True)
    assert slo == -shi and shi < 0.9 * max(-lo0, hi0)
    # ReLU6 outputs that saturate often keep their whole range (clipping the 6s costs more than the steps save)
    r = np.clip(rng.standard_normal(100_000) * 4, 0, 6)
    hist, _ = np.histogram(r, 8192, (0.0, 6.0))
    assert mse_range(hist, 0.0, 6.0) == (0.0, pytest.approx(6.0, abs=1e-9))
    assert mse_range(np.zeros(16), 0.0, 0.0) == (0.0, 0.0)


def _heavy_tailed(tmp_path: Path) -> tuple[Path, np.ndarray]:
    """The tiny test model and calibration inputs with heavy tails (Student t, 3 degrees of freedom)."""
    from edgecnn.onnx_graph.torch_export import export_onnx
    from tests.test_quant_fallback import RES, Tiny, _model

    x = np.random.default_rng(0).standard_t(3, (32, 3, RES, RES)).astype(np.float32)
    return export_onnx(_model(Tiny), torch.from_numpy(x[:1]), tmp_path / "f.onnx", opset=18, dynamic_batch=None), x


def _activation_scales(path: Path) -> dict[str, float]:
    """Scale of every activation QuantizeLinear, by the tensor it quantizes."""
    import onnx
    from onnx import numpy_helper

    proto = onnx.load(str(path))
    inits = {t.name: numpy_helper.to_array(t) for t in proto.graph.initializer}
    return {
        n.input[0].removesuffix("_QuantizeLinear_Input"): float(inits[n.input[1]])
        for n in proto.graph.node
        if n.op_type == "QuantizeLinear" and n.input[0] not in inits
    }


@pytest.mark.parametrize("flavour", ["onnx", "tensorrt"])
def test_onnx_runtime_takes_the_mse_ranges_by_default(tmp_path, flavour):
    import onnx
    import onnxruntime as ort

    from edgecnn.quant.onnx_flow import quantize_onnx_file
    from edgecnn.quant.ort_ptq import ORT_CPU, TENSORRT
    from edgecnn.quant.ranges import activation_ranges

    fp32, x = _heavy_tailed(tmp_path)
    assert QuantConfig(calibration=from_arrays(x)).method is CalibMethod.MSE  # the default
    scales = {}
    for m in (CalibMethod.MINMAX, CalibMethod.MSE):
        out = tmp_path / f"{m}-{flavour}.onnx"
        scheme = {"onnx": ORT_CPU, "tensorrt": TENSORRT}[flavour]
        rec = quantize_onnx_file(fp32, out, QuantConfig(calibration=from_arrays(x), method=m), batch=1, scheme=scheme)
        assert rec["method"] == str(m)
        scales[m] = _activation_scales(out)
    assert scales[CalibMethod.MSE]["input"] < scales[CalibMethod.MINMAX]["input"], scales
    ranges = activation_ranges(fp32, x, batch=1, symmetric=flavour == "tensorrt")
    levels = 254 if flavour == "tensorrt" else 255  # ONNX Runtime's symmetric int8 is [-127, 127]
    for name, s in scales[CalibMethod.MSE].items():  # every activation scale is the MSE range's
        lo, hi = ranges[name]
        # (the flow measures them on the GPTQ-rounded model, this on the float one: equal up to the rounding)
        tol = 1e-5 if name == "input" else 0.03
        assert s == pytest.approx((max(hi, -lo) * 2 if flavour == "tensorrt" else hi - lo) / levels, rel=tol), name
    if flavour == "onnx":  # still ONNX Runtime's fast path: every quantized conv runs as QLinearConv
        so = ort.SessionOptions()
        so.optimized_model_filepath = str(tmp_path / "opt.onnx")
        ort.InferenceSession(str(tmp_path / "mse-onnx.onnx"), so, ["CPUExecutionProvider"])
        ops = [n.op_type for n in onnx.load(so.optimized_model_filepath).graph.node]
        assert ops.count("QLinearConv") == 3 and "Conv" not in ops, ops


def test_openvino_mse_is_nncfs_histogram_estimator(tmp_path):
    from edgecnn.quant.openvino_flow import quantize_openvino

    fp32, x = _heavy_tailed(tmp_path)
    width = {}
    for m in (CalibMethod.MINMAX, CalibMethod.MSE):
        model, rec = quantize_openvino(fp32, QuantConfig(calibration=from_arrays(x), method=m), batch=1)
        assert rec["method"] == str(m) and rec["activations"] == "int8 symmetric"
        assert ("HISTOGRAM" in rec["activation_ranges"]) == (m is CalibMethod.MSE)
        fq = next(
            op
            for op in model.get_ordered_ops()
            if op.get_type_name() == "FakeQuantize" and op.input_value(0).get_node().get_type_name() == "Parameter"
        )
        lo, hi = (fq.input_value(i).get_node().get_data() for i in (1, 2))
        width[m] = float(np.max(hi) - np.min(lo))
    # the preset's estimator averages each sample's min and max (narrow here); the histogram one weighs the clipping
    # error of the tails against the rounding error of the rest: within the global range, and not the preset's
    per_sample = np.abs(x).reshape(len(x), -1).max(axis=1)
    assert width[CalibMethod.MINMAX] == pytest.approx(2 * per_sample.mean(), rel=0.05), width
    assert 1.2 * width[CalibMethod.MINMAX] < width[CalibMethod.MSE] <= 2 * per_sample.max() * 1.01, width


def test_constant_activation_gets_its_min_max_range(tmp_path):
    """A tensor with one value everywhere (a saturated hard-sigmoid gate is all 1.0) has no finite-sized histogram
    bins; before the fix ``np.histogram`` raised and quantizing MobileNetV3-Small failed."""
    import onnx
    from onnx import TensorProto, helper

    from edgecnn.quant.ranges import activation_ranges

    zero = helper.make_tensor("zero", TensorProto.FLOAT, [], [1e-9])  # 1 + 1e-9·x: constant in float32
    one = helper.make_tensor("one", TensorProto.FLOAT, [], [1.0])
    graph = helper.make_graph(
        [helper.make_node("Mul", ["x", "zero"], ["z"]), helper.make_node("Add", ["z", "one"], ["gate"])],
        "const",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor_value_info("gate", TensorProto.FLOAT, [1, 4])],
        initializer=[zero, one],
    )
    path = tmp_path / "const.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)]), str(path))
    data = np.random.default_rng(0).standard_normal((4, 1, 4)).astype(np.float32).reshape(4, 4)
    ranges = activation_ranges(path, data, batch=1)
    assert ranges["gate"] == (0.0, 1.0)
    assert ranges["x"][0] < 0 < ranges["x"][1]
