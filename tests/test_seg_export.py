"""Dense bundles: segmentation and super-resolution models export to onnx / openvino at fp32 / fp16 / int8, carry
their task in the manifest, and the runtime turns their outputs into a mask or an image; `edgecnn run` writes PNGs."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

import edgecnn
from edgecnn import runtime
from edgecnn.cli.main import cli
from edgecnn.errors import InputSpecError, ManifestError
from edgecnn.exporters import ExportOptions, Precision, export_bundle
from edgecnn.models.synthetic import randomize_batchnorm
from edgecnn.quant.config import QuantConfig
from edgecnn.quant.samples import SampleSet
from edgecnn.runtime.dense import check_task, rgb_to_ycbcr, ycbcr_to_rgb

SEG, SR = "unet_mobilenet_v3_small", "espcn_x3"
RES = {SEG: 32, SR: 16}
_CACHE: dict[tuple, object] = {}


def _model(name: str):
    torch.manual_seed(0)
    m = edgecnn.create_model(name, num_classes=4, width_mult=0.5) if name == SEG else edgecnn.create_model(name)
    randomize_batchnorm(m)
    if name == SEG:
        m.classes = ("background", "a", "b", "c")
    return m.eval()


def _export(tmp_path_factory, name: str, target: str, precision: str):
    key = (name, target, precision)
    if key not in _CACHE:
        m, res = _model(name), RES[name]
        quant = None
        if precision == "int8":
            c = 3 if name == SEG else 1
            data = np.random.default_rng(0).random((8, c, res, res)).astype(np.float32)
            quant = QuantConfig(calibration=SampleSet(data=data, source="uniform noise"))
        out = tmp_path_factory.mktemp("dense") / f"{name}-{target}-{precision}"
        opts = ExportOptions(target=target, precision=Precision(precision), resolution=res, quant=quant)
        _CACHE[key] = (m, export_bundle(m, opts, out))
    return _CACHE[key]


@pytest.mark.parametrize(
    ("name", "target", "precision"),
    [  # one per task and precision family by default; the rest with `-m slow`
        (SEG, "onnx", "fp32"),
        (SR, "openvino", "fp32"),
        (SR, "onnx", "int8"),
        pytest.param(SEG, "openvino", "fp16", marks=pytest.mark.slow),
        pytest.param(SEG, "onnx", "int8", marks=pytest.mark.slow),
        pytest.param(SEG, "openvino", "int8", marks=pytest.mark.slow),
        pytest.param(SR, "onnx", "fp16", marks=pytest.mark.slow),
        pytest.param(SR, "openvino", "int8", marks=pytest.mark.slow),
    ],
)
def test_dense_export_parity_and_task(tmp_path_factory, name: str, target: str, precision: str) -> None:
    model, res = _export(tmp_path_factory, name, target, precision)
    sess = runtime.load(res.bundle)
    assert sess.selftest()["ok"]
    c, r = (3, RES[name]) if name == SEG else (1, RES[name])
    x = np.random.default_rng(5).standard_normal((1, c, r, r)).astype(np.float32)
    if name == SR:
        x = np.random.default_rng(5).random((1, c, r, r)).astype(np.float32)
    with torch.no_grad():
        ref = model(torch.from_numpy(x)).numpy()
    out = sess.predict(x)
    assert out.shape == ref.shape
    rel = np.abs(out - ref).max() / np.abs(ref).max()
    assert rel <= {"fp32": 1e-4, "fp16": 2e-2, "int8": 0.25}[precision]
    task = res.manifest["task"]
    if name == SEG:
        assert task["kind"] == "segmentation" and task["classes"] == ["background", "a", "b", "c"]
        assert len(task["palette"]) == 4 and task["output_stride"] == 1 and task["input_multiple"] == 32
        if precision != "int8":
            assert np.mean(out.argmax(1) == ref.argmax(1)) > 0.98
    else:
        assert task == {"kind": "super_resolution", "scale": 3, "color_space": "YCbCr-BT601", "channel": "Y"}
        assert out.shape[2:] == (3 * r, 3 * r)
    if precision == "int8":
        q = res.manifest["quantization"]
        assert q is not None and res.manifest["parity"]["fp32_cosine"] > 0.9


def test_runtime_segment_and_upscale(tmp_path_factory) -> None:
    _, seg = _export(tmp_path_factory, SEG, "onnx", "fp32")
    sess = runtime.load(seg.bundle)
    img = (np.random.default_rng(0).random((50, 70, 3)) * 255).astype(np.uint8)
    mask = sess.segment(img)
    assert mask.shape == (50, 70) and mask.dtype == np.uint8 and mask.max() < 4
    with pytest.raises(InputSpecError, match="not super_resolution"):
        sess.upscale(img)
    _, sr = _export(tmp_path_factory, SR, "openvino", "fp32")
    s2 = runtime.load(sr.bundle)
    up = s2.upscale(img)  # 50×70 is not a multiple of the 16-px bundle: tiles with reflected edges
    assert up.shape == (150, 210, 3) and up.dtype == np.uint8
    y = rgb_to_ycbcr(img)[..., 0]
    direct = s2.upscale_y(y)
    tile = s2.predict(np.ascontiguousarray(y[None, None, :16, :16]))[0, 0]
    assert np.allclose(direct[:48, :48], np.clip(tile, 0, 1), atol=1e-6)  # the first tile is the network's own output


def test_ycbcr_roundtrip() -> None:
    img = (np.random.default_rng(1).random((9, 11, 3)) * 255).astype(np.uint8)
    assert np.abs(ycbcr_to_rgb(rgb_to_ycbcr(img)).astype(int) - img).max() <= 1


def test_task_block_is_validated() -> None:
    with pytest.raises(ManifestError, match="kind"):
        check_task({"kind": "detection"})
    with pytest.raises(ManifestError, match="palette"):
        check_task({"kind": "segmentation", "classes": ["a", "b"], "palette": [[0, 0, 0]]})
    with pytest.raises(ManifestError, match="scale"):
        check_task({"kind": "super_resolution", "scale": 1, "color_space": "YCbCr-BT601", "channel": "Y"})
    with pytest.raises(ManifestError, match="unknown"):
        check_task({"kind": "super_resolution", "scale": 2, "color_space": "YCbCr-BT601", "channel": "Y", "x": 1})


def test_cli_run_writes_overlay_and_upscaled_png(tmp_path_factory, tmp_path) -> None:
    _, seg = _export(tmp_path_factory, SEG, "onnx", "fp32")
    _, sr = _export(tmp_path_factory, SR, "openvino", "fp32")
    src = tmp_path / "photo.png"
    Image.fromarray((np.random.default_rng(2).random((40, 48, 3)) * 255).astype(np.uint8)).save(src)
    runner = CliRunner()
    r = runner.invoke(cli, ["run", str(seg.bundle), str(src), "--out", str(tmp_path / "o"), "--json"])
    assert r.exit_code == 0, r.output
    row = json.loads(r.stdout)[0]
    over, mask = Image.open(row["overlay"]), Image.open(row["mask"])
    assert over.size == (48, 40) and over.mode == "RGB" and mask.mode == "L"
    assert abs(sum(row["class_fractions"].values()) - 1) < 1e-3
    r = runner.invoke(cli, ["run", str(sr.bundle), str(src), "--out", str(tmp_path / "o")])
    assert r.exit_code == 0, r.output
    assert Image.open(tmp_path / "o" / "photo.x3.png").size == (144, 120)
    r = runner.invoke(cli, ["run", str(sr.bundle), str(tmp_path / "missing.png")])
    assert r.exit_code != 0 and "does not exist" in r.output and "Traceback" not in r.output


@pytest.mark.slow
def test_tensorrt_ready_onnx_of_lraspp(tmp_path) -> None:
    """The TensorRT target writes a TensorRT-ready ONNX (engine built on the device): only parser-supported ops, and
    bilinear resizes with half_pixel coordinates (align_corners=False), which TensorRT implements like PyTorch — the
    mismatch of TensorRT #273 / onnx-tensorrt #457 comes from align_corners=True / asymmetric modes."""
    import onnx

    from edgecnn.exporters.trt_ops import TRT_SUPPORTED_OPS

    torch.manual_seed(0)
    m = edgecnn.create_model("lraspp_mobilenet_v3_large").eval()
    res = export_bundle(m, ExportOptions(target="tensorrt", resolution=64), tmp_path / "trt")
    assert res.manifest["parity"]["ok"] and res.manifest["task"]["kind"] == "segmentation"
    graph = onnx.load(str(res.bundle / res.manifest["entry"])).graph
    assert not {n.op_type for n in graph.node} - TRT_SUPPORTED_OPS
    resizes = [n for n in graph.node if n.op_type == "Resize"]
    assert len(resizes) == 2
    for n in resizes:
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in n.attribute}
        assert attrs["mode"] == b"linear" and attrs["coordinate_transformation_mode"] == b"half_pixel"


@pytest.mark.tensorrt
def test_tensorrt_engine_runs_dense_bundle(tmp_path) -> None:
    """On an NVIDIA device with TensorRT: the engine built from an SR bundle reproduces its golden vectors."""
    pytest.importorskip("tensorrt")
    m = _model(SR)
    res = export_bundle(m, ExportOptions(target="tensorrt", resolution=16), tmp_path / "trt")
    sess = runtime.load(res.bundle, backend="tensorrt")
    assert sess.selftest()["ok"]
    assert sess.upscale(np.zeros((20, 20, 3), np.uint8)).shape == (60, 60, 3)
