"""The TensorRT target: a TensorRT-ready ONNX checked here; engine building runs only where tensorrt imports."""

from __future__ import annotations

import importlib.util

import numpy as np
import onnx
import pytest

from edgecnn import runtime
from edgecnn.exporters.trt_ops import TRT_SUPPORTED_OPS
from edgecnn.onnx_graph.edit import op_types
from edgecnn.runtime.trt_engine import engine_key
from tests.export_helpers import export_cached, torch_reference

HAS_TRT = importlib.util.find_spec("tensorrt") is not None


@pytest.mark.parametrize("name", ["mobilenet_v2", "mobilenet_v3_large", "efficientnet_b0", "efficientnet_lite0"])
def test_tensorrt_ready_onnx(tmp_path, name):
    b = export_cached(tmp_path, name, "tensorrt", dynamic="1:4:8")
    path = b / "model.onnx"
    onnx.checker.check_model(onnx.load(str(path)), full_check=True)
    assert op_types(path) <= TRT_SUPPORTED_OPS, op_types(path) - TRT_SUPPORTED_OPS
    m = runtime.open_bundle(b).manifest
    settings = m.backend_options["tensorrt"]
    assert settings["profiles"]["input"] == [[1, 3, 32, 32], [4, 3, 32, 32], [8, 3, 32, 32]]
    assert settings["flags"] == [] and settings["workspace_mb"] == 1024
    sess = runtime.load(b, backend="onnxruntime")  # the numerics of the TensorRT-ready graph, here
    x = np.random.default_rng(1).standard_normal((8, 3, 32, 32)).astype(np.float32)
    ref = torch_reference(name, x)
    assert np.abs(sess.predict(x) - ref).max() <= 1e-4 * np.abs(ref).max()


def test_fp16_sets_builder_flag(tmp_path):
    b = export_cached(tmp_path, "mobilenet_v3_small", "tensorrt", "fp16")
    m = runtime.open_bundle(b).manifest
    assert m.backend_options["tensorrt"]["flags"] == ["FP16"] and m.precision == "fp16"


def test_engine_key_changes_with_gpu_and_version():
    s = {"workspace_mb": 1024, "flags": [], "profiles": {}}
    base = engine_key("ab" * 32, "10.8.0", "sm_87", s)
    assert base == engine_key("ab" * 32, "10.8.0", "sm_87", dict(s))
    assert base != engine_key("ab" * 32, "10.9.0", "sm_87", s)  # another TensorRT: rebuild
    assert base != engine_key("ab" * 32, "10.8.0", "sm_90", s)  # another GPU: rebuild
    assert base != engine_key("ab" * 32, "10.8.0", "sm_87", {**s, "flags": ["FP16"]})


@pytest.mark.tensorrt
@pytest.mark.skipif(not HAS_TRT, reason="tensorrt is not installed (never on the project's machines)")
def test_engine_builds_caches_and_matches(tmp_path, monkeypatch):
    monkeypatch.setenv("EDGECNN_ENGINE_CACHE", str(tmp_path / "cache"))
    b = export_cached(tmp_path, "mobilenet_v2", "tensorrt", dynamic="1:2:4")
    sess = runtime.load(b)  # builds or reuses the engine
    assert sess.backend_name == "tensorrt"
    assert sess.selftest()["ok"]
    x = np.random.default_rng(1).standard_normal((4, 3, 32, 32)).astype(np.float32)
    ref = torch_reference("mobilenet_v2", x)
    assert np.abs(sess.predict(x) - ref).max() <= 1e-3 * np.abs(ref).max()


@pytest.mark.tensorrt
@pytest.mark.skipif(not HAS_TRT, reason="tensorrt is not installed (never on the project's machines)")
def test_engine_io_names_checked_against_the_manifest(tmp_path, monkeypatch):
    """A manifest whose input name is not the engine's is refused at load, as for ONNX and OpenVINO bundles."""
    import json

    from edgecnn.errors import BundleIntegrityError

    monkeypatch.setenv("EDGECNN_ENGINE_CACHE", str(tmp_path / "cache"))
    b = export_cached(tmp_path, "mobilenet_v2", "tensorrt")
    m = json.loads((b / "manifest.json").read_text())
    m["inputs"][0]["name"] = "pixels"
    (b / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(BundleIntegrityError, match="not the manifest's"):
        runtime.load(b)
