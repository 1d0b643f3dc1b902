"""Quantization-aware training (NNCF, torch): QAT bundles verify on every target, carry the scales QAT learned
(nothing recalibrated), fine-tuning does what it is asked, and the CLI refuses bad requests in one line.

Tiny models and inputs (MobileNetV3-small at 32 px, 64 samples). The first QAT run on a machine compiles NNCF's CPU
fake-quantize kernels (about a minute; cached under ~/.cache/torch_extensions), every later one takes seconds."""

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
from edgecnn.errors import ConfigError
from edgecnn.exporters import ExportOptions, Precision, export_bundle
from edgecnn.quant.config import QuantConfig
from edgecnn.quant.samples import SampleSet, from_arrays
from tests.export_helpers import _randomize_bn

pytest.importorskip("nncf")
pytest.importorskip("openvino")

RES = 32
QAT = {"epochs": 1, "batch_size": 16, "distill_alpha": 1.0}  # pure distillation keeps a random net's function


def _model() -> torch.nn.Module:
    torch.manual_seed(0)
    m = edgecnn.create_model("mobilenet_v3_small", num_classes=10).eval()
    _randomize_bn(m)
    return m


def _data(n: int = 64, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, 3, RES, RES)).astype(np.float32)


def _sets(net: torch.nn.Module) -> tuple[SampleSet, SampleSet]:
    x = _data()
    with torch.no_grad():
        y = net(torch.from_numpy(x)).argmax(1).numpy()  # the float model's own labels
    return from_arrays(x[:32], source="test-calib"), from_arrays(x, labels=y, source="test-train")


@pytest.fixture(scope="module")
def trained() -> dict:
    """One per-tensor QAT model (the per-tensor-accelerator scheme) and its onnx + openvino bundles."""
    from edgecnn.quant.qat import QatConfig, train_qat

    net = _model()
    cal, train = _sets(net)
    qat = train_qat(net, cal, train, QatConfig(**QAT), per_channel=False, evaluation=train)
    out = Path(__import__("tempfile").mkdtemp(prefix="qat-test-"))
    bundles = {}
    for target in ("onnx", "openvino"):
        cfg = QuantConfig(calibration=cal, evaluation=train, per_channel=False, qat=qat)
        opts = ExportOptions(target=target, precision=Precision.INT8, resolution=RES, quant=cfg)
        bundles[target] = export_bundle(net, opts, out / target).bundle
    return {"net": net, "cal": cal, "train": train, "qat": qat, "bundles": bundles}


@pytest.mark.parametrize("target", ["onnx", "openvino"])
def test_qat_bundle_passes_selftest_and_records_qat(trained, target):
    bundle = trained["bundles"][target]
    m = json.loads((bundle / "manifest.json").read_text())
    assert m["precision"] == "int8" and m["parity"]["ok"] and m["parity"]["fp32_cosine"] > 0.9
    q = m["quantization"]
    assert q["method"] == "qat" and q["kept_float"] == [] and q["weights"] == "int8 symmetric per-tensor"
    rec = q["qat"]
    assert rec["epochs"] == 1 and rec["lr"] == 1e-4 and rec["train_data"]["source"] == "test-train"
    assert rec["train_data"]["samples"] == 64 and rec["bn_folded"] > 20 and rec["history"][0]["steps"] == 4
    assert rec["scheme"]["per_channel"] is False and "no calibration after fine-tuning" in rec["scales"]
    assert q["fp32_vs_int8"]["top1_agreement"] > 0.9
    report = runtime.load(bundle).selftest()  # the device re-check, through the runtime a device uses
    assert report["ok"] and report["max_rel_error"] < 1e-3


def _onnx_scales(path: Path) -> tuple[list[float], list[float]]:
    """(activation scales, weight scales) of a QDQ model: Q nodes quantize activations; DQ nodes whose input is an
    int8 initializer dequantize weights."""
    import onnx
    from onnx import numpy_helper

    g = onnx.load(str(path)).graph
    consts = {t.name: numpy_helper.to_array(t) for t in g.initializer}
    consts |= {n.output[0]: numpy_helper.to_array(n.attribute[0].t) for n in g.node if n.op_type == "Constant"}
    act = [float(consts[n.input[1]]) for n in g.node if n.op_type == "QuantizeLinear"]
    w = [float(consts[n.input[1]]) for n in g.node if n.op_type == "DequantizeLinear" and n.input[0] in consts]
    return act, w


def test_the_bundles_carry_the_scales_qat_learned(trained):
    from edgecnn.quant.qat import ptq_start, quantizer_ranges

    ranges = quantizer_ranges(trained["qat"].module)
    learned_a = sorted(float(r["scale"][0]) for r in ranges if not r["weights"])
    learned_w = sorted(float(r["scale"][0]) for r in ranges if r["weights"])
    act, w = _onnx_scales(trained["bundles"]["onnx"] / "model.onnx")
    np.testing.assert_allclose(sorted(act), learned_a, rtol=1e-6)
    np.testing.assert_allclose(sorted(w), learned_w, rtol=1e-6)
    # QAT moved them: a fresh calibration (PTQ) of the same model gives other scales, and the bundle has QAT's
    init = quantizer_ranges(ptq_start(trained["net"], trained["cal"], per_channel=False).module)
    init_a = sorted(float(r["scale"][0]) for r in init if not r["weights"])
    assert not np.allclose(init_a, learned_a, rtol=1e-6, atol=0)
    # OpenVINO: the activation FakeQuantize ranges are the learned ones too
    import openvino as ov

    model = ov.Core().read_model(str(trained["bundles"]["openvino"] / "model.xml"))
    highs = sorted(
        float(op.input_value(2).get_node().get_data().ravel()[0])
        for op in model.get_ordered_ops()
        if op.get_type_name() == "FakeQuantize"
    )
    np.testing.assert_allclose(highs, sorted(float(r["input_high"][0]) for r in ranges if not r["weights"]), rtol=1e-5)


def test_qat_onnx_stores_int8_weights(trained):
    import onnx

    from edgecnn.quant.qat import describe_scheme

    proto = onnx.load(str(trained["bundles"]["onnx"] / "model.onnx"))
    int8 = [t for t in proto.graph.initializer if t.data_type == onnx.TensorProto.INT8 and len(t.dims) in (2, 4)]
    assert len(int8) == describe_scheme(trained["qat"].module)["weight_quantizers"]
    assert not [n for n in proto.graph.node if n.op_type == "QuantizeLinear" and n.input[0] in {t.name for t in int8}]


def test_tensorrt_qat_is_signed_symmetric_qdq(trained, tmp_path):
    import onnx
    from onnx import numpy_helper

    from edgecnn.exporters.trt_ops import TRT_SUPPORTED_OPS
    from edgecnn.quant.qat import QatConfig, train_qat

    net, cal, train = trained["net"], trained["cal"], trained["train"]
    unsigned = QuantConfig(calibration=cal, per_channel=False, qat=trained["qat"])
    with pytest.raises(ConfigError, match="TensorRT takes only signed"):
        export_bundle(net, ExportOptions(target="tensorrt", precision=Precision.INT8, resolution=RES, quant=unsigned))
    qat = train_qat(net, cal, train, QatConfig(**QAT), per_channel=True, signed_activations=True)
    cfg = QuantConfig(calibration=cal, qat=qat)
    opts = ExportOptions(target="tensorrt", precision=Precision.INT8, resolution=RES, quant=cfg)
    bundle = export_bundle(net, opts, tmp_path / "trt").bundle
    g = onnx.load(str(bundle / "model.onnx")).graph
    assert {n.op_type for n in g.node} <= TRT_SUPPORTED_OPS
    consts = {t.name: numpy_helper.to_array(t) for t in g.initializer}
    consts |= {n.output[0]: numpy_helper.to_array(n.attribute[0].t) for n in g.node if n.op_type == "Constant"}
    zps = [consts[n.input[2]] for n in g.node if n.op_type in ("QuantizeLinear", "DequantizeLinear")]
    assert zps and all(z.dtype == np.int8 and not z.any() for z in zps)  # signed, zero-point 0 everywhere
    assert any(consts[n.input[1]].size > 1 for n in g.node if n.op_type == "DequantizeLinear")  # per-channel weights
    assert runtime.load(bundle, backend="onnxruntime").selftest()["ok"]


def test_fold_batchnorm_keeps_the_function():
    from edgecnn.quant.qat import fold_batchnorm

    net = _model()
    folded, n = fold_batchnorm(net)
    x = torch.from_numpy(_data(4))
    with torch.no_grad():
        np.testing.assert_allclose(folded(x).numpy(), net(x).numpy(), atol=1e-5)
    assert n > 20 and not any(isinstance(m, torch.nn.BatchNorm2d) for m in folded.modules())
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in net.modules())  # the original is untouched


def test_fold_weight_quantizers_follows_onnx_quantizelinear():
    """Folding Q(weight) into int8 initializers computes what ONNX Runtime's QuantizeLinear computes (per axis)."""
    import onnx
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    from edgecnn.quant.qat_export import fold_weight_quantizers

    rng = np.random.default_rng(0)
    w = (rng.standard_normal((4, 3, 3, 3)) * [[[[0.1]]], [[[1.0]]], [[[3.0]]], [[[0.5]]]]).astype(np.float32)
    w.flat[0] = 0.5 * 0.1 / 127 * 3  # a tie: ONNX rounds half to even
    scale = (np.abs(w).reshape(4, -1).max(1) / 127).astype(np.float32)
    inits = [
        numpy_helper.from_array(w, "w"),
        numpy_helper.from_array(scale, "s"),
        numpy_helper.from_array(np.zeros(4, np.int8), "zp"),
    ]
    nodes = [
        helper.make_node("QuantizeLinear", ["w", "s", "zp"], ["wq"], axis=0),
        helper.make_node("DequantizeLinear", ["wq", "s", "zp"], ["wd"], axis=0),
        helper.make_node("Conv", ["x", "wd"], ["y"]),
    ]
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 5, 5])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        inits,
    )
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    x = rng.standard_normal((1, 3, 5, 5)).astype(np.float32)

    def run(p: onnx.ModelProto) -> np.ndarray:
        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
        return ort.InferenceSession(p.SerializeToString(), opts, providers=["CPUExecutionProvider"]).run(
            None, {"x": x}
        )[0]

    before = run(proto)
    assert fold_weight_quantizers(proto) == 1
    assert [n.op_type for n in proto.graph.node] == ["DequantizeLinear", "Conv"]
    assert {t.name for t in proto.graph.initializer} == {"wq", "s", "zp"}  # the float weights are gone
    np.testing.assert_array_equal(run(proto), before)


def test_finetuning_trains_weights_and_scales_and_is_seeded():
    """Mechanics (a random net gives no robust accuracy signal; benchmarks/quant_qat.py measures recovery on
    held-out data): weights and quantizer scales both train, the history is recorded, the same seed repeats."""
    from edgecnn.quant.qat import QatConfig, finetune, fold_batchnorm, insert_quantizers, quantizer_ranges

    net = _model()
    cal, train = _sets(net)
    folded, _ = fold_batchnorm(net)
    cfg = QatConfig(epochs=2, batch_size=16, distill_alpha=0.5)

    def run() -> tuple[torch.nn.Module, list[dict], list[dict]]:
        student = insert_quantizers(folded, cal, per_channel=False)
        start = quantizer_ranges(student)
        return student, start, finetune(student, folded, train, cfg)

    student, start, history = run()
    assert [h["epoch"] for h in history] == [1, 2] and history[-1]["steps"] == 8
    assert all(np.isfinite(h["train_loss"]) for h in history) and not student.training
    end = quantizer_ranges(student)
    assert any(not np.array_equal(a["scale"], b["scale"]) for a, b in zip(start, end, strict=True))
    w0 = dict(folded.named_parameters())["stem.conv.weight"]
    w1 = next(p for n, p in student.named_parameters() if n.endswith("stem.conv.weight"))
    assert not torch.equal(w0, w1)  # the weights trained (the teacher, the folded float model, did not)
    again, _, _ = run()
    assert all(np.array_equal(a["scale"], b["scale"]) for a, b in zip(end, quantizer_ranges(again), strict=True))


def test_finetune_steps_through_the_trainers_loop(monkeypatch):
    """QAT fine-tuning takes its steps with the trainer's StepLoop (see test_train.py's twin): one run_epoch per
    epoch, global steps carried across epochs, frozen BN, and its own wording when the loss stops being finite."""
    from edgecnn.quant.qat import QatConfig, finetune
    from edgecnn.train.loop import StepLoop

    calls = []
    original = StepLoop.run_epoch

    def spy(self, module, batches, *, epoch, step):
        stats = original(self, module, batches, epoch=epoch, step=step)
        calls.append((module, epoch, step, stats.step, self.freeze_bn, self.name))
        return stats

    monkeypatch.setattr(StepLoop, "run_epoch", spy)
    torch.manual_seed(0)
    teacher = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 4 * 4, 5))
    student = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 4 * 4, 5))
    x = np.random.default_rng(0).standard_normal((20, 3, 4, 4)).astype(np.float32)
    train = from_arrays(x, labels=np.arange(20) % 5)
    history = finetune(student, teacher, train, QatConfig(epochs=2, batch_size=8, distill_alpha=0.5))
    assert calls == [(student, 0, 0, 2, True, "QAT"), (student, 1, 2, 4, True, "QAT")]  # 20 // 8 = 2 steps an epoch
    assert [h["steps"] for h in history] == [2, 4]


def test_qat_config_is_validated():
    from edgecnn.quant.qat import QatConfig

    for bad, match in (
        ({"epochs": 0}, "--qat-epochs"),
        ({"lr": 0.0}, "--qat-lr"),
        ({"distill_alpha": 1.5}, "--distill"),
    ):
        with pytest.raises(ConfigError, match=match):
            QatConfig(**bad)
    with pytest.raises(ConfigError, match="--max-drop is post-training"):
        QuantConfig(
            calibration=from_arrays(_data(4)),
            evaluation=from_arrays(_data(4), labels=np.zeros(4)),
            max_drop=1.0,
            qat=object(),  # type: ignore[arg-type]
        )


@pytest.fixture(scope="module")
def npz(tmp_path_factory) -> dict[str, str]:
    d = tmp_path_factory.mktemp("qat-cli")
    net = _model()
    x = _data()
    with torch.no_grad():
        y = net(torch.from_numpy(x)).argmax(1).numpy()
    np.savez(d / "cal.npz", x=x[:32])
    np.savez(d / "train.npz", x=x, y=y)
    np.savez(d / "unlabelled.npz", x=x)
    return {"cal": str(d / "cal.npz"), "train": str(d / "train.npz"), "unlabelled": str(d / "unlabelled.npz")}


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--train-data", "TRAIN"], "error: --train-data is for quantization-aware training"),
        (["--qat-lr", "1e-3"], "error: --qat-lr is a QAT option (add --qat-epochs N)"),
        (["--distill", "1"], "error: --distill is a QAT option"),
        (["--qat-epochs", "1"], "error: QAT needs training data"),
        (["--qat-epochs", "0", "--train-data", "TRAIN"], "error: --qat-epochs must be an integer >= 1"),
        (["--qat-epochs", "1", "--train-data", "TRAIN", "--distill", "2"], "error: --distill must be in [0, 1]"),
        (["--qat-epochs", "1", "--train-data", "TRAIN", "--method", "entropy"], "error: --method entropy picks"),
        (["--qat-epochs", "1", "--train-data", "TRAIN", "--keep-float", "x"], "error: --keep-float is not supported"),
        (
            ["--qat-epochs", "1", "--train-data", "TRAIN", "--max-drop", "1", "--eval-data", "TRAIN"],
            "error: --max-drop is post-training quantization's float fallback",
        ),
        (["--qat-epochs", "1", "--train-data", "nowhere.npz"], "error: --train-data: calibration file 'nowhere.npz'"),
        (["--qat-epochs", "1", "--train-data", "UNLABELLED"], "has no labels"),
    ],
)
def test_cli_qat_bad_input_is_one_line(npz, tmp_path, extra, message):
    extra = [{"TRAIN": npz["train"], "UNLABELLED": npz["unlabelled"]}.get(a, a) for a in extra]
    args = ["quantize", "mobilenet_v3_small", "-t", "onnx", "-r", str(RES), "--calib-data", npz["cal"]]
    res = CliRunner().invoke(cli, [*args, "--out", str(tmp_path / "b"), *extra])
    assert res.exit_code != 0, res.output
    assert message in res.output and "Traceback" not in res.output
    assert not (tmp_path / "b").exists()


def test_cli_quantize_with_qat(npz, tmp_path):
    out = tmp_path / "b"
    args = ["quantize", "mobilenet_v3_small", "-t", "openvino", "-r", str(RES), "--calib-data", npz["cal"]]
    qat = ["--per-tensor", "--qat-epochs", "1", "--train-data", npz["train"], "--distill", "1", "--qat-lr", "5e-5"]
    res = CliRunner().invoke(cli, [*args, *qat, "--no-latency", "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert "QAT 1 epoch(s)" in res.output
    m = json.loads((out / "manifest.json").read_text())
    assert m["quantization"]["qat"]["lr"] == 5e-5 and m["quantization"]["weights"] == "int8 symmetric per-tensor"
    assert runtime.load(out).selftest()["ok"]
    assert "QAT: 1 epoch(s)" in (tmp_path / "b-report" / "report.md").read_text()
