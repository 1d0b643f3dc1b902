"""Bundles as untrusted input (issue 15, items 2, 3, 5): every malformed manifest, tree or golden archive is refused
with a BundleError subtype before any SDK parses a byte, and a bundle cannot silence its own self-test."""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from edgecnn import limits, runtime
from edgecnn.errors import BackendError, BundleError, ConfigError, InputSpecError, ManifestError
from tests.export_helpers import export_cached


@pytest.fixture(scope="module")
def onnx_bundle(tmp_path_factory) -> Path:
    return export_cached(tmp_path_factory.mktemp("untrusted"), "mobilenet_v3_small", "onnx")


@pytest.fixture
def bundle(tmp_path, onnx_bundle) -> Path:
    dst = tmp_path / "bundle"
    shutil.copytree(onnx_bundle, dst)
    return dst


def edit(b: Path, fn: Callable[[dict], None]) -> None:
    data = json.loads((b / "manifest.json").read_text())
    fn(data)
    (b / "manifest.json").write_text(json.dumps(data))


def rehash(b: Path, name: str) -> None:
    """Record ``name``'s current size and sha256 (an attacker controls the manifest as well as the files)."""
    raw = (b / name).read_bytes()
    edit(b, lambda d: d["files"].__setitem__(name, {"size": len(raw), "sha256": hashlib.sha256(raw).hexdigest()}))


def _npz(**arrays) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


def _golden_with(b: Path, **replace) -> None:
    with np.load(b / "golden.npz") as z:
        arrays = {k: z[k] for k in z.files}
    arrays.update(replace)
    arrays = {k: v for k, v in arrays.items() if v is not None}
    (b / "golden.npz").write_bytes(_npz(**arrays))
    rehash(b, "golden.npz")


def _set(path: str, value) -> Callable[[dict], None]:
    def fn(d: dict) -> None:
        keys = path.split(".")
        node = d
        for k in keys[:-1]:
            node = node[int(k)] if isinstance(node, list) else node[k]
        if value is _DELETE:
            del node[keys[-1]]
        else:
            node[int(keys[-1]) if isinstance(node, list) else keys[-1]] = value

    return fn


_DELETE = object()


def _rename_file(old: str, new: str) -> Callable[[dict], None]:
    def fn(d: dict) -> None:
        d["files"][new] = d["files"].pop(old)
        if d["entry"] == old:
            d["entry"] = new

    return fn


MANIFEST_CASES = {
    "golden count 0": _set("golden.count", 0),
    "golden count -1": _set("golden.count", -1),
    "golden count bool": _set("golden.count", True),
    "tolerance 1e9": _set("golden.tolerance.max_rel_error", 1e9),
    "tolerance negative": _set("golden.tolerance.max_rel_error", -1.0),
    "tolerance without max_rel_error": _set("golden.tolerance.max_rel_error", _DELETE),
    "tolerance top_k five": _set("golden.tolerance.top_k", "five"),
    "tolerance top_k 0 for fp32": _set("golden.tolerance.top_k", 0),
    "tolerance unknown key": _set("golden.tolerance.anything", 1),
    "disabled optimizers 5": _set("backend_options.onnxruntime_disabled_optimizers", 5),
    "disabled optimizers of ints": _set("backend_options.onnxruntime_disabled_optimizers", [1, 2]),
    "openvino precision bogus": _set("backend_options.openvino_inference_precision", "f64"),
    "runtime backend unknown": _set("backend_options.runtime_backend", "bogus"),
    "target bogus, no backend": lambda d: (
        d.__setitem__("target", "bogus"),
        d["backend_options"].pop("runtime_backend"),
    ),
    "precision bogus": _set("precision", "int3"),
    "model {}": _set("model", {}),
    "model name int": _set("model.name", 5),
    "NUL in file name": _rename_file("model.onnx", "mo\x00del.onnx"),
    "5000-char file name": _rename_file("model.onnx", "m" * 5000 + ".onnx"),
    "non-normalized name": _rename_file("model.onnx", "./model.onnx"),
    "manifest lists itself": _rename_file("golden.npz", "manifest.json"),
    "sha256 not hex": lambda d: d["files"]["golden.npz"].__setitem__("sha256", "z" * 64),
    "resize_size 60000": _set("preprocessing.resize_size", 60000),
    "input_size 0": _set("preprocessing.input_size", 0),
    "mean as strings": _set("preprocessing.mean", ["a", "b", "c"]),
    "preprocessing list": _set("preprocessing", [1]),
    "shape huge": _set("inputs.0.shape", [1, 3, 1 << 19, 1 << 19]),
    "shape rank 0": _set("inputs.0.shape", []),
    "shape of bools": _set("inputs.0.shape", [True, 3, 32, 32]),
    "input name 5000 chars": _set("inputs.0.name", "x" * 5000),
    "duplicate input names": lambda d: d["inputs"].append(dict(d["inputs"][0])),
    "labels of ints": _set("labels", [1, 2]),
    "parity without backend": _set("parity", {"max_rel_error": 0.0}),
    "created huge": _set("created", "x" * 100_000),
    "producer value int": _set("producer.edgecnn", 5),
    "files not an object": _set("files", []),
    "size negative": lambda d: d["files"]["golden.npz"].__setitem__("size", -1),
}


@pytest.mark.parametrize("case", sorted(MANIFEST_CASES))
def test_malformed_manifest_refused(bundle, case):
    edit(bundle, MANIFEST_CASES[case])
    with pytest.raises(ManifestError):
        runtime.load(bundle)


RAW_MANIFESTS = {
    "100,000-deep JSON": "[" * 100_000 + "]" * 100_000,
    "33-deep JSON": "[" * 33 + "]" * 33,
    "NaN": '{"a": NaN}',
    "not UTF-8": b"\xff\xfe{}",
    "array": "[]",
}


@pytest.mark.parametrize("case", sorted(RAW_MANIFESTS))
def test_raw_manifest_refused(bundle, case):
    raw = RAW_MANIFESTS[case]
    (bundle / "manifest.json").write_bytes(raw if isinstance(raw, bytes) else raw.encode())
    with pytest.raises(ManifestError):
        runtime.load(bundle)


def test_duplicate_keys_refused(bundle):
    text = (bundle / "manifest.json").read_text()
    (bundle / "manifest.json").write_text(text.replace('"target":', '"target": "openvino", "target":', 1))
    with pytest.raises(ManifestError, match="appears twice"):
        runtime.load(bundle)


def test_oversized_manifest_refused(bundle):
    text = (bundle / "manifest.json").read_text()
    (bundle / "manifest.json").write_text(text + " " * limits.MAX_MANIFEST_BYTES)
    with pytest.raises(ManifestError, match="more than"):
        runtime.load(bundle)


def _symlink_loop(b: Path, tmp: Path) -> None:
    os.symlink("loop", b / "loop")


def _manifest_symlinked_outside(b: Path, tmp: Path) -> None:
    shutil.move(b / "manifest.json", tmp / "elsewhere.json")
    os.symlink(tmp / "elsewhere.json", b / "manifest.json")


def _hard_link_outside(b: Path, tmp: Path) -> None:
    os.link(b / "golden.npz", tmp / "outside.npz")


def _manifest_hard_linked(b: Path, tmp: Path) -> None:
    os.link(b / "manifest.json", tmp / "outside.json")


def _unlisted_file(b: Path, tmp: Path) -> None:
    (b / "notes.txt").write_text("x")


def _unlisted_external_data(b: Path, tmp: Path) -> None:
    (b / "model.onnx.data").write_bytes(b"\0" * 64)


def _unlisted_dir(b: Path, tmp: Path) -> None:
    (b / "sub").mkdir()


def _fifo(b: Path, tmp: Path) -> None:
    os.mkfifo(b / "pipe")


def _golden_object_array(b: Path, tmp: Path) -> None:
    buf = io.BytesIO()
    np.savez(buf, input_0=np.array([object()], dtype=object))
    (b / "golden.npz").write_bytes(buf.getvalue())
    rehash(b, "golden.npz")


def _golden_not_zip(b: Path, tmp: Path) -> None:
    (b / "golden.npz").write_bytes(b"not a zip at all")
    rehash(b, "golden.npz")


def _golden_missing_array(b: Path, tmp: Path) -> None:
    _golden_with(b, output_2=None)


def _golden_count_5(b: Path, tmp: Path) -> None:
    edit(b, _set("golden.count", 5))


def _golden_wrong_shape(b: Path, tmp: Path) -> None:
    _golden_with(b, input_0=np.zeros((1, 3, 8, 8), np.float32))


def _golden_strings(b: Path, tmp: Path) -> None:
    _golden_with(b, output_0=np.array(["a"]))


def _golden_nan(b: Path, tmp: Path) -> None:
    with np.load(b / "golden.npz") as z:
        out = z["output_0"].copy()
    out[0, 0] = np.nan
    _golden_with(b, output_0=out)


def _renamed_input(b: Path, tmp: Path) -> None:
    edit(b, _set("inputs.0.name", "pixels"))


TREE_CASES = {
    f.__name__[1:]: f
    for f in (
        _symlink_loop,
        _manifest_symlinked_outside,
        _hard_link_outside,
        _manifest_hard_linked,
        _unlisted_file,
        _unlisted_external_data,
        _unlisted_dir,
        _fifo,
        _golden_object_array,
        _golden_not_zip,
        _golden_missing_array,
        _golden_count_5,
        _golden_wrong_shape,
        _golden_strings,
        _golden_nan,
        _renamed_input,
    )
}


@pytest.mark.parametrize("case", sorted(TREE_CASES))
def test_malformed_tree_refused(bundle, tmp_path, case):
    TREE_CASES[case](bundle, tmp_path)
    with pytest.raises(BundleError):
        runtime.load(bundle)


@pytest.mark.parametrize("cmd", ["selftest", "inspect", "run"])
def test_cli_reports_bad_bundle_in_one_line(bundle, tmp_path, cmd):
    from edgecnn.cli.main import cli

    edit(bundle, _set("model", {}))
    args = [cmd, str(bundle)] + ([str(tmp_path / "x.png")] if cmd == "run" else [])
    res = CliRunner().invoke(cli, args)
    assert res.exit_code == 1, res.output
    assert res.output.startswith("error: manifest model") and res.output.count("\n") == 1


def test_target_is_free_text_when_its_backend_exists(bundle):
    """A new export target needs no runtime edit: any target name loads when its recorded backend exists."""
    edit(bundle, _set("target", "my-new-target"))
    assert runtime.load(bundle).selftest()["ok"]


def test_runtime_limits(onnx_bundle):
    with pytest.raises(ConfigError, match="threads"):
        runtime.load(onnx_bundle, threads=-3)
    sess = runtime.load(onnx_bundle)
    img = np.zeros((40, 40, 3), np.uint8)
    with pytest.raises(InputSpecError, match="no images"):
        sess.predict_image([])
    with pytest.raises(ConfigError, match="top_k"):
        sess.predict_image(img, top_k=-1)
    with pytest.raises(InputSpecError, match="empty"):
        sess.predict_image(np.zeros((0, 5, 3), np.uint8))
    assert len(sess.predict_image(img, top_k=3)[0]) == 3


def test_decompression_bomb_refused_before_decoding(onnx_bundle, tmp_path):
    from PIL import Image

    path = tmp_path / "big.png"
    Image.new("L", (9500, 9500)).save(path)  # 90 Mpx: above MAX_IMAGE_PIXELS and Pillow's warning threshold
    sess = runtime.load(onnx_bundle)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # Pillow's raw DecompressionBombWarning must not reach the user
        with pytest.raises(InputSpecError, match="more than"):
            sess.predict_image(path)


def test_openvino_compile_error_keeps_its_reason(tmp_path):
    """OpenVINO's first line only says where the error was raised; the reason (here: an unknown op) must survive."""
    from tests.bundle_fuzz import rehash_all

    b = tmp_path / "ov"
    shutil.copytree(export_cached(tmp_path / "cache", "mobilenet_v3_small", "openvino"), b)
    xml = (b / "model.xml").read_text()
    (b / "model.xml").write_text(xml.replace('type="Convolution"', 'type="Convolutionz"', 1))
    rehash_all(b)
    with pytest.raises(BackendError, match="Convolutionz") as e:
        runtime.load(b)
    assert "\n" not in str(e.value)


@pytest.mark.parametrize(
    "fn",
    [_set("inputs.0.layout", "NCHV"), _set("inputs.0.layout", "NHWC "), _set("backend_options.op<nvino", "f32")],
    ids=["layout typo", "layout padded", "unknown backend option"],
)
def test_flipped_byte_in_layout_or_backend_option_key_refused(bundle, fn):
    """Found by the byte-flip sweep (benchmarks/reliability.py): a flipped layout letter or backend_options key was
    accepted (the key then silently ignored)."""
    edit(bundle, fn)
    with pytest.raises(ManifestError):
        runtime.load(bundle)


@pytest.mark.parametrize(
    "fn",
    [_set("model", {"name": "x"}), _set("preprocessing", {})],
    ids=["model without source", "default preprocessing"],
)
def test_inspect_shows_any_valid_manifest(bundle, fn):
    """`inspect` reads only what the schema guarantees (a KeyError on optional fields before)."""
    from edgecnn.cli.main import cli

    edit(bundle, fn)
    res = CliRunner().invoke(cli, ["inspect", str(bundle)])
    assert res.exit_code == 0, res.output
