"""A new export target and a new quantizer backend, registered from this test module alone — no edgecnn file
edited — export, verify and run a bundle: the registries and the target descriptor are the only extension points."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from edgecnn import runtime
from edgecnn.exporters import BuildContext, Built, ExportOptions, Precision, Target, export_bundle, register_target
from edgecnn.exporters.target import TARGETS
from edgecnn.models.zoo import create_model
from edgecnn.onnx_graph.torch_export import export_onnx
from edgecnn.quant.backend import QUANTIZERS, Quantized, QuantJob, register_quantizer
from edgecnn.quant.config import QuantConfig
from edgecnn.quant.samples import from_arrays

RES = 32


class MinMaxPerTensorQuantizer:
    """A deliberately different INT8 path: ONNX Runtime's ``quantize_static`` with MinMax ranges, signed int8
    activations and one weight scale per tensor (the constraint of some NPUs), no rounding search."""

    name = "test-minmax-per-tensor"
    produces = "onnx"
    signed_activations = True

    def check(self, cfg: QuantConfig) -> None:
        pass

    def corrects_bias(self, cfg: QuantConfig) -> bool:
        return False

    def quantize(self, job: QuantJob, out: Path) -> Quantized:
        from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

        fp32 = job.export_fp32()
        data = job.cfg.calibration.data

        class Reader(CalibrationDataReader):
            def __init__(self) -> None:
                self.items = iter([{"input": data[i : i + 1]} for i in range(len(data))])

            def get_next(self) -> dict[str, np.ndarray] | None:
                return next(self.items, None)

        quantize_static(
            str(fp32),
            str(out),
            Reader(),
            quant_format=QuantFormat.QDQ,
            per_channel=False,
            activation_type=QuantType.QInt8,
            weight_type=QuantType.QInt8,
        )
        return Quantized(model=out, record={"backend": self.name, "weights": "int8 per-tensor"}, scratch=(fp32,))

    def logits(self, model: Any, data: np.ndarray, batch: int) -> np.ndarray:
        from edgecnn.quant.ort_ptq import ort_logits

        return ort_logits(model, data, batch)


def _build(ctx: BuildContext) -> Built:
    path = ctx.workdir / "net.onnx"
    record = None
    if ctx.opts.precision is Precision.INT8:
        q = ctx.quantize(path)
        for f in q.scratch:
            f.unlink()
        record = q.record
    else:
        export_onnx(ctx.model, ctx.example, path, opset=ctx.opts.opset, dynamic_batch=None)
    return Built(entry="net.onnx", files=["net.onnx"], producer={"test": "1"}, quantization=record)


@pytest.fixture
def plugin_target():
    quantizer = register_quantizer(MinMaxPerTensorQuantizer())
    target = register_target(
        Target(
            name="test-npu",
            description="an NPU that reads static-shape ONNX with per-tensor int8 weights",
            precisions=(Precision.FP32, Precision.INT8),
            opsets=(17, 18),
            dynamic_batch=False,
            bundle_files=("net.onnx",),
            runtime_backend="onnxruntime",
            parity_backend="onnxruntime",
            quantizer=quantizer.name,
            build=_build,
        )
    )
    yield target
    TARGETS.unregister(target.name)
    QUANTIZERS.unregister(quantizer.name)


@pytest.mark.parametrize("precision", [Precision.FP32, Precision.INT8])
def test_a_registered_target_and_quantizer_export_verify_and_run(tmp_path, plugin_target, precision):
    torch.manual_seed(0)
    net = create_model("mobilenet_v3_small", num_classes=10).eval()
    quant = None
    if precision is Precision.INT8:
        x = np.random.default_rng(0).standard_normal((16, 3, RES, RES)).astype(np.float32)
        quant = QuantConfig(calibration=from_arrays(x))
    opts = ExportOptions(target="test-npu", precision=precision, resolution=RES, quant=quant)
    result = export_bundle(net, opts, tmp_path / "b")
    m = result.manifest
    assert m["target"] == "test-npu" and m["entry"] == "net.onnx" and set(m["files"]) == {"net.onnx", "golden.npz"}
    assert m["backend_options"]["runtime_backend"] == "onnxruntime" and m["parity"]["ok"]
    if precision is Precision.INT8:
        assert m["quantization"] == {"backend": "test-minmax-per-tensor", "weights": "int8 per-tensor"}
    sess = runtime.load(tmp_path / "b")  # the manifest names its runtime backend: no table knows "test-npu"
    assert sess.backend_name == "onnxruntime" and sess.selftest()["ok"]
    x = np.random.default_rng(1).standard_normal((1, 3, RES, RES)).astype(np.float32)
    with torch.no_grad():
        ref = net(torch.from_numpy(x)).numpy()
    got = sess.predict(x)
    assert got.shape == (1, 10)
    if precision is Precision.FP32:
        np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-4)


def test_a_target_whose_files_break_its_promise_is_refused(tmp_path, plugin_target):
    from edgecnn.errors import ExportError

    liar = TARGETS.unregister("test-npu")
    register_target(Target(**{**liar.__dict__, "bundle_files": ("model.onnx",)}))
    with pytest.raises(ExportError, match="descriptor promises"):
        export_bundle(
            create_model("mobilenet_v3_small", num_classes=10),
            ExportOptions(target="test-npu", resolution=RES),
            tmp_path / "b",
        )
    assert not (tmp_path / "b").exists()
