"""The runtime: verification before parsing, input checks, threads, images, and no torch on the device path."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

from edgecnn import runtime
from edgecnn.errors import BackendError, BundleIntegrityError, InputSpecError, ManifestError, MissingDependencyError
from tests.export_helpers import export_cached


@pytest.fixture(scope="module")
def onnx_bundle(tmp_path_factory) -> Path:
    return export_cached(tmp_path_factory.mktemp("rt"), "mobilenet_v3_small", "onnx")


@pytest.fixture
def copy(tmp_path, onnx_bundle):
    def make() -> Path:
        dst = tmp_path / "bundle"
        shutil.copytree(onnx_bundle, dst)
        return dst

    return make


def _edit_manifest(bundle: Path, fn) -> None:
    data = json.loads((bundle / "manifest.json").read_text())
    fn(data)
    (bundle / "manifest.json").write_text(json.dumps(data))


def test_missing_manifest_field(copy):
    b = copy()
    _edit_manifest(b, lambda d: d.pop("preprocessing"))
    with pytest.raises(ManifestError, match=r"missing field\(s\) \['preprocessing'\]"):
        runtime.load(b)


def test_extra_manifest_field(copy):
    b = copy()
    _edit_manifest(b, lambda d: d.update(surprise=1))
    with pytest.raises(ManifestError, match="unknown field"):
        runtime.load(b)


def test_unsupported_schema_version(copy):
    b = copy()
    _edit_manifest(b, lambda d: d.update(schema_version=99))
    with pytest.raises(ManifestError, match="schema_version 99"):
        runtime.load(b)


def test_manifest_not_json(copy):
    b = copy()
    (b / "manifest.json").write_text("{not json")
    with pytest.raises(ManifestError, match="not valid JSON"):
        runtime.load(b)


def test_missing_manifest_is_not_a_bundle(copy):
    b = copy()
    (b / "manifest.json").unlink()
    with pytest.raises(ManifestError, match="manifest.json is missing"):
        runtime.load(b)


def test_tampered_file_detected(copy):
    b = copy()
    data = bytearray((b / "model.onnx").read_bytes())
    data[len(data) // 2] ^= 0xFF
    (b / "model.onnx").write_bytes(bytes(data))
    with pytest.raises(BundleIntegrityError, match="sha256"):
        runtime.load(b)


def test_truncated_model_detected(copy):
    b = copy()
    data = (b / "model.onnx").read_bytes()
    (b / "model.onnx").write_bytes(data[: len(data) // 3])
    with pytest.raises(BundleIntegrityError, match="truncated"):
        runtime.load(b)


def test_lfs_pointer_detected(copy):
    b = copy()
    (b / "model.onnx").write_text("version https://git-lfs.github.com/spec/v1\noid sha256:abc\nsize 123\n")
    with pytest.raises(BundleIntegrityError, match="Git LFS pointer"):
        runtime.load(b)


@pytest.mark.parametrize("bad", ["../model.onnx", "/etc/passwd", "sub/../../x"])
def test_path_traversal_in_manifest(copy, bad):
    b = copy()

    def edit(d):
        d["files"][bad] = d["files"].pop("model.onnx")
        d["entry"] = bad

    _edit_manifest(b, edit)
    with pytest.raises(ManifestError, match="leaves the bundle"):
        runtime.load(b)


def test_symlink_leaving_bundle(copy, tmp_path):
    b = copy()
    outside = tmp_path / "outside.onnx"
    shutil.move(b / "model.onnx", outside)
    os.symlink(outside, b / "model.onnx")
    with pytest.raises(BundleIntegrityError, match="symbolic link"):
        runtime.load(b)


def test_wrong_input_dtype_rank_shape(onnx_bundle):
    sess = runtime.load(onnx_bundle)
    with pytest.raises(InputSpecError, match="must be float32, got float64"):
        sess.predict(np.zeros((1, 3, 32, 32)))
    with pytest.raises(InputSpecError, match="rank 4"):
        sess.predict(np.zeros((3, 32, 32), np.float32))
    with pytest.raises(InputSpecError, match="dim 2 is 64"):
        sess.predict(np.zeros((1, 3, 64, 32), np.float32))
    with pytest.raises(InputSpecError, match="dim 0 is 2"):
        sess.predict(np.zeros((2, 3, 32, 32), np.float32))
    with pytest.raises(InputSpecError, match="numpy array"):
        sess.predict([[1.0]])


def test_unknown_backend_and_device(onnx_bundle):
    with pytest.raises(BackendError, match="unknown backend"):
        runtime.load(onnx_bundle, backend="tflite")
    with pytest.raises(BackendError, match="device 'npu'"):
        runtime.load(onnx_bundle, device="npu")


def test_openvino_runs_onnx_bundle_too(onnx_bundle):
    """OpenVINO reads ONNX directly: the same bundle, a second backend, the same answers."""
    ort, ov = runtime.load(onnx_bundle), runtime.load(onnx_bundle, backend="openvino")
    x = np.random.default_rng(0).standard_normal((1, 3, 32, 32)).astype(np.float32)
    assert np.allclose(ort.predict(x), ov.predict(x), atol=1e-4 * np.abs(ort.predict(x)).max())


@pytest.mark.parametrize("target", ["onnx", "openvino"])
def test_predict_is_thread_safe(tmp_path, target):
    sess = runtime.load(export_cached(tmp_path, "mobilenet_v3_small", target))
    xs = [np.random.default_rng(i).standard_normal((1, 3, 32, 32)).astype(np.float32) for i in range(16)]
    expected = [sess.predict(x) for x in xs]
    got: dict[int, list[np.ndarray]] = {i: [] for i in range(16)}

    def work(i: int) -> None:
        for _ in range(5):
            got[i].append(sess.predict(xs[i]))

    threads = [threading.Thread(target=work, args=(i,)) for i in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for i in range(16):
        assert len(got[i]) == 5
        for out in got[i]:
            np.testing.assert_array_equal(out, expected[i])


def test_predict_image_uses_manifest_preprocessing(onnx_bundle):
    from PIL import Image

    sess = runtime.load(onnx_bundle)
    img = (np.random.default_rng(0).random((50, 70, 3)) * 255).astype(np.uint8)
    preds = sess.predict_image([img, Image.fromarray(img)], top_k=3)
    assert len(preds) == 2 and len(preds[0]) == 3
    assert [p.index for p in preds[0]] == [p.index for p in preds[1]]
    x = runtime.preprocess_image(img, sess.preprocessing)[None]
    assert preds[0][0].index == int(np.argmax(sess.predict(x)))
    with pytest.raises(InputSpecError):
        sess.predict_image(np.zeros((4, 4, 3), np.float32))


def test_tensorrt_bundle_without_tensorrt(tmp_path):
    b = export_cached(tmp_path, "mobilenet_v2", "tensorrt")
    with pytest.raises(MissingDependencyError, match="--backend onnxruntime"):
        runtime.load(b)
    assert runtime.load(b, backend="onnxruntime").selftest()["ok"]


def test_runtime_runs_with_torch_absent(onnx_bundle):
    """The device path imports no torch: block the import and run a bundle end to end."""
    code = (
        "import sys; sys.modules['torch'] = None\n"
        "import numpy as np\n"
        "from edgecnn import runtime\n"
        f"s = runtime.load({str(onnx_bundle)!r})\n"
        "r = s.selftest(); assert r['ok'], r\n"
        "img = (np.arange(40*40*3) % 255).astype(np.uint8).reshape(40, 40, 3)\n"
        "print(s.predict_image(img, top_k=1)[0][0].index, sys.modules.get('torch'))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().endswith("None")
