"""Every zoo model exports to onnx and openvino and round-trips through edgecnn.runtime within tolerance."""

from __future__ import annotations

import numpy as np
import pytest

import edgecnn
from edgecnn import runtime
from tests.export_helpers import export_cached, small_res, torch_reference

MODELS = edgecnn.list_models("classification")  # dense models: tests/test_seg_export.py
# One model per family runs by default; the whole zoo runs with `-m slow` (see README, "Tests").
FP32_DEFAULT = {
    "mobilenet_v1",
    "mobilenet_v2",
    "mobilenet_v3_small",
    "mobilenet_v3_large",
    "efficientnet_b0",
    "efficientnet_lite0",
    "alexnet",
}
FP16_DEFAULT = {"mobilenet_v3_small", "efficientnet_lite0"}


def _assert_parity(bundle, name: str, res: int, precision: str, batch: int = 1) -> None:
    sess = runtime.load(bundle)
    report = sess.selftest()
    assert report["ok"], report
    x = np.random.default_rng(7).standard_normal((batch, 3, res, res)).astype(np.float32)
    out, ref = sess.predict(x), torch_reference(name, x)
    tol = {"fp32": 1e-4, "fp16": 2e-2, "bf16": 6e-2}[precision]
    assert np.abs(out - ref).max() <= tol * np.abs(ref).max()
    if precision == "fp32":
        assert (np.argsort(-out, 1)[:, :5] == np.argsort(-ref, 1)[:, :5]).all()


@pytest.mark.parametrize("target", ["onnx", "openvino"])
@pytest.mark.parametrize("name", [n if n in FP32_DEFAULT else pytest.param(n, marks=pytest.mark.slow) for n in MODELS])
def test_fp32_roundtrip_every_model(tmp_path_factory, name, target):
    bundle = export_cached(tmp_path_factory.mktemp("b"), name, target)
    _assert_parity(bundle, name, small_res(name), "fp32")


@pytest.mark.parametrize("target", ["onnx", "openvino"])
@pytest.mark.parametrize("name", [n if n in FP16_DEFAULT else pytest.param(n, marks=pytest.mark.slow) for n in MODELS])
def test_fp16_roundtrip(tmp_path_factory, name, target):
    bundle = export_cached(tmp_path_factory.mktemp("b"), name, target, "fp16")
    _assert_parity(bundle, name, small_res(name), "fp16")
    m = runtime.open_bundle(bundle).manifest
    assert m.precision == "fp16"
    if target == "openvino":
        assert m.backend_options["openvino_weight_compression"] == "fp16"


def test_openvino_bf16_records_hint(tmp_path):
    bundle = export_cached(tmp_path, "mobilenet_v3_small", "openvino", "bf16")
    assert runtime.open_bundle(bundle).manifest.backend_options["openvino_inference_precision"] == "bf16"
    _assert_parity(bundle, "mobilenet_v3_small", 32, "bf16")


@pytest.mark.parametrize("target", ["onnx", "openvino"])
@pytest.mark.parametrize("name", ["mobilenet_v2", "efficientnet_b0"])
def test_full_resolution_224(tmp_path, name, target):
    bundle = export_cached(tmp_path, name, target, res=224)
    _assert_parity(bundle, name, 224, "fp32")


@pytest.mark.parametrize("target", ["onnx", "openvino"])
def test_dynamic_batch_1_and_8(tmp_path, target):
    bundle = export_cached(tmp_path, "mobilenet_v3_small", target, dynamic="1:4:8")
    spec = runtime.open_bundle(bundle).manifest.inputs[0]
    assert spec.shape[0] == -1 and spec.dim_range(0) == (1, 8)
    for batch in (1, 8):
        _assert_parity(bundle, "mobilenet_v3_small", 32, "fp32", batch=batch)
    with pytest.raises(edgecnn.errors.InputSpecError, match="dim 0 is 9"):
        runtime.load(bundle).predict(np.zeros((9, 3, 32, 32), np.float32))


def test_onnx_metadata_and_openvino_rt_info(tmp_path):
    import onnx
    import openvino as ov

    b = export_cached(tmp_path, "mobilenet_v2", "onnx")
    props = {p.key: p.value for p in onnx.load(str(b / "model.onnx")).metadata_props}
    assert props["edgecnn.model"] == "mobilenet_v2" and props["edgecnn.precision"] == "fp32"
    assert "mean" in props["edgecnn.preprocessing"]
    b = export_cached(tmp_path, "mobilenet_v2", "openvino")
    model = ov.Core().read_model(str(b / "model.xml"))
    assert model.get_rt_info(["edgecnn", "model"]).astype(str) == "mobilenet_v2"


def test_manifest_records_everything(tmp_path):
    b = export_cached(tmp_path, "efficientnet_lite0", "onnx")
    m = runtime.open_bundle(b).manifest.data
    assert m["schema_version"] == 1 and m["target"] == "onnx" and m["precision"] == "fp32"
    assert m["model"]["name"] == "efficientnet_lite0" and m["model"]["source"] == {"kind": "random-init"}
    assert m["inputs"][0] == {"name": "input", "dtype": "float32", "shape": [1, 3, 32, 32], "layout": "NCHW"}
    assert m["outputs"][0]["shape"] == [1, 10]
    assert m["preprocessing"]["crop_mode"] == "crop_resize" and m["preprocessing"]["input_size"] == 32
    assert set(m["files"]) == {"model.onnx", "golden.npz"}
    assert all(len(f["sha256"]) == 64 and f["size"] > 0 for f in m["files"].values())
    assert {"edgecnn", "torch", "onnx", "onnxruntime"} <= set(m["producer"])
    assert m["parity"]["ok"] and m["golden"]["tolerance"] == {"max_rel_error": 1e-4, "top_k": 5}
