"""The accuracy budget, float fallback, ``--keep-float`` and per-layer error on both PTQ targets, with tiny models
(8×8 inputs, real quantizers and runtimes, seconds each): an unreachable budget is an error that shows the best
result found; a reachable one returns the layers that need it to float and says which and why in the manifest and
the report; a layer kept in float really runs in float; unknown ``--keep-float`` names fail before any work."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from torch import nn

from edgecnn import runtime
from edgecnn.cli.main import cli
from edgecnn.errors import AccuracyBudgetError, ConfigError
from edgecnn.exporters import ExportOptions, Precision, export_bundle
from edgecnn.quant.config import QuantConfig, Rounding
from edgecnn.quant.metrics import sqnr_db
from edgecnn.quant.samples import from_arrays

RES = 8


class Tiny(nn.Module):
    """stem → depthwise/pointwise residual block → linear head (flattened, so the labels vary across inputs)."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU6())
        self.block = nn.Sequential(
            nn.Conv2d(16, 16, 3, padding=1, groups=16),
            nn.BatchNorm2d(16),
            nn.ReLU6(),
            nn.Conv2d(16, 16, 1),
            nn.BatchNorm2d(16),
        )
        self.head = nn.Linear(16 * RES * RES, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        return self.head((x + self.block(x)).flatten(1))


class TinyRes(nn.Module):
    """A residual add straight on the input: an Add is never returned to float, so a wrecked input range stays."""

    def __init__(self) -> None:
        super().__init__()
        self.mix = nn.Conv2d(3, 3, 1)
        self.stem = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU6())
        self.head = nn.Linear(16 * RES * RES, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.stem(x + self.mix(x)).flatten(1))


def _model(cls: type[nn.Module] = Tiny) -> nn.Module:
    torch.manual_seed(0)
    m = cls().eval()
    gen = torch.Generator().manual_seed(3)
    for b in m.modules():
        if isinstance(b, nn.BatchNorm2d):
            b.running_mean.copy_(torch.randn(b.num_features, generator=gen) * 0.1)
            b.running_var.copy_(torch.rand(b.num_features, generator=gen) + 0.5)
    return m


def _data(net: nn.Module, *, outlier: bool, varied: bool = True) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Calibration and labelled evaluation inputs; labels are the fp32 predictions (drop = 100 − agreement).
    ``outlier``: one calibration sample ×1000 — the input's int8 range then swallows every ordinary input."""
    x = np.random.default_rng(0).standard_normal((32, 3, RES, RES)).astype(np.float32)
    ev = np.random.default_rng(1).standard_normal((32, 3, RES, RES)).astype(np.float32)
    if outlier:
        x[0] *= 1000
    with torch.no_grad():
        labels = net(torch.from_numpy(ev)).argmax(-1).numpy()
    assert not varied or len(set(labels.tolist())) >= 4  # the labels vary: agreement measures something
    return x, ev, labels


def _cfg(x: np.ndarray, ev: np.ndarray, labels: np.ndarray, **kw) -> QuantConfig:
    return QuantConfig(calibration=from_arrays(x), evaluation=from_arrays(ev, labels=labels), **kw)


def _export(net: nn.Module, target: str, cfg: QuantConfig, out) -> dict:
    opts = ExportOptions(target=target, precision=Precision.INT8, resolution=RES, quant=cfg)
    return export_bundle(net, opts, out).manifest


def test_unreachable_budget_onnx_is_an_error_with_the_best_result(tmp_path):
    net = _model(TinyRes)
    cfg = _cfg(*_data(net, outlier=True), max_drop=0.0)
    with pytest.raises(AccuracyBudgetError) as err:
        _export(net, "onnx", cfg, tmp_path / "b")
    # the search went up to every layer the budget may return to float; the best drop found is in the message
    msg = str(err.value)
    assert "not reachable: best top-1 drop" in msg and "trials up to all 3 in float" in msg
    best = float(msg.split("best top-1 drop ")[1].split(" ")[0])
    assert best > 10.0  # really missed: the quantized input add wrecks the predictions
    assert "(top-1 100.00 → " in msg
    assert not (tmp_path / "b").exists()


def test_unreachable_budget_openvino_is_an_error_with_the_best_result(tmp_path, monkeypatch):
    """NNCF's accuracy control returns its last model when it cannot meet the drop (it only logs that): edgecnn
    must turn that into an error. One revert step is not enough for this model (it needs two)."""
    import nncf
    from nncf.quantization.advanced_parameters import AdvancedAccuracyRestorerParameters

    real = nncf.quantize_with_accuracy_control

    def one_step(*args, **kwargs):
        kwargs["advanced_accuracy_restorer_parameters"] = AdvancedAccuracyRestorerParameters(max_num_iterations=1)
        return real(*args, **kwargs)

    monkeypatch.setattr(nncf, "quantize_with_accuracy_control", one_step)
    net = _model(TinyRes)
    cfg = _cfg(*_data(net, outlier=True), max_drop=0.0)
    with pytest.raises(AccuracyBudgetError, match=r"not reachable: NNCF's accuracy control got a top-1 drop of [1-9]"):
        _export(net, "openvino", cfg, tmp_path / "b")
    assert not (tmp_path / "b").exists()


@pytest.mark.parametrize("target", ["onnx", "openvino"])
def test_budget_returns_the_sensitive_layer_to_float_and_says_why(tmp_path, target):
    from edgecnn.exporters.int8 import quantize

    net = _model(Tiny)
    x, ev, labels = _data(net, outlier=True)  # int8 input range wrecked: the stem conv must read the float input
    res = quantize(
        net,
        target=target,
        method="minmax",  # the range the outlier wrecks (MSE ranges weigh it against the rest: not always)
        calib_data=from_arrays(x),
        eval_data=from_arrays(ev, labels=labels),
        max_drop=0.0,
        resolution=RES,
        out=tmp_path / "b",
        measure_latency=False,
    )
    q = res.manifest["quantization"]
    assert q["fp32_vs_int8"]["top1_drop_points"] == 0.0 and q["max_drop"] == 0.0
    kept = q["kept_float"]
    assert kept and {k["layer"] for k in kept} <= {"stem", "block", "head"} and "stem" in {k["layer"] for k in kept}
    assert all("accuracy budget" in k["why"] for k in kept)
    if target == "onnx":  # the search's trials are recorded; the kept set is the first that met the budget
        assert q["fallback_trials"][-1] == {"float_layers": len(kept), "top1_drop_points": 0.0}
    md = res.report_files["md"].read_text()
    assert "(layer `stem`): accuracy budget" in md
    assert runtime.load(res.bundle).selftest()["ok"]
    # a layer returned to float has its original weights, not the int8-grid values GPTQ rounding chose for it
    w = _float_weight(res.bundle, target, next(k["node"] for k in kept if k["layer"] == "stem"))
    steps = w.reshape(len(w), -1) / (np.abs(w).reshape(len(w), -1).max(1, keepdims=True) / 127)
    assert w.dtype == np.float32 and not np.allclose(steps, np.round(steps), atol=1e-3)
    # ... and its original bias, not the one corrected for that rounding's mean shift
    conv, bn = net.stem[0], net.stem[1]
    with torch.no_grad():
        folded = (conv.bias - bn.running_mean) * bn.weight / torch.sqrt(bn.running_var + bn.eps) + bn.bias
    b = _float_bias(res.bundle, target, next(k["node"] for k in kept if k["layer"] == "stem"))
    assert np.allclose(b.reshape(-1), folded.numpy(), rtol=1e-5, atol=1e-6)


def _float_bias(bundle, target: str, node: str) -> np.ndarray:
    if target == "onnx":
        import onnx
        from onnx import numpy_helper

        proto = onnx.load(str(bundle / "model.onnx"))
        name = next(n.input[2] for n in proto.graph.node if n.name == node)
        return next(numpy_helper.to_array(t) for t in proto.graph.initializer if t.name == name)
    import openvino as ov

    model = ov.Core().read_model(str(bundle / "model.xml"))  # held: the graph lives as long as the model
    op = next(o for o in model.get_ordered_ops() if o.get_friendly_name() == node)
    add = next(t.get_node() for t in op.output(0).get_target_inputs() if t.get_node().get_type_name() == "Add")
    return add.input_value(1).get_node().get_data()


def _float_weight(bundle, target: str, node: str) -> np.ndarray:
    if target == "onnx":
        import onnx
        from onnx import numpy_helper

        proto = onnx.load(str(bundle / "model.onnx"))
        name = next(n.input[1] for n in proto.graph.node if n.name == node)
        return next(numpy_helper.to_array(t) for t in proto.graph.initializer if t.name == name)
    import openvino as ov

    op = next(
        o for o in ov.Core().read_model(str(bundle / "model.xml")).get_ordered_ops() if o.get_friendly_name() == node
    )
    return op.input_value(1).get_node().get_data()


def _wide_depthwise(net: Tiny) -> Tiny:
    """Depthwise channels 10⁴ apart in weight scale — every other channel ×10⁴ (they saturate their ReLU6 and the
    pointwise conv ignores them), the others carry the signal —: a per-tensor int8 weight scale zeroes those."""
    with torch.no_grad():
        net.block[0].weight[::2] *= 1e4
        net.block[3].weight[:, ::2] = 0.0
    return net


def test_a_layer_kept_in_float_runs_in_float(tmp_path):
    """ONNX Runtime's WeightBiasQuantization optimizer re-quantizes (per tensor) a float conv that reads a
    DequantizeLinear — what every kept-float layer looks like. The bundle must tell the runtime to skip it."""
    import onnxruntime as ort

    from edgecnn.quant.ort_ptq import ort_logits
    from edgecnn.runtime.env import int8_saturates

    net = _wide_depthwise(_model(Tiny))
    x, ev, labels = _data(net, outlier=False, varied=False)  # measured by output SQNR, not labels
    cfg = _cfg(x, ev, labels, keep_float=("block.0",), rounding=Rounding.NEAREST)
    m = _export(net, "onnx", cfg, tmp_path / "b")
    assert [k["layer"] for k in m["quantization"]["kept_float"]] == ["block"]  # the depthwise conv alone
    assert m["backend_options"]["onnxruntime_disabled_optimizers"] == ["WeightBiasQuantization"]
    with torch.no_grad():
        ref = net(torch.from_numpy(ev)).numpy()
    got = np.concatenate([runtime.load(tmp_path / "b").predict(ev[i : i + 1]) for i in range(len(ev))])
    exact = ort_logits(tmp_path / "b" / "model.onnx", ev, 1, exact=True)  # Q/DQ unfused: the graph's own numbers
    assert sqnr_db(ref, exact) > 30.0  # the wide depthwise conv really is float in the graph
    if not int8_saturates():  # on x86 without VNNI the other layers' fused int8 kernels saturate (runtime.env)
        assert sqnr_db(ref, got) > 30.0  # ... and really ran in float
    # what a plain ONNX Runtime session makes of the same file (why the manifest carries the setting)
    plain = ort.InferenceSession(str(tmp_path / "b" / "model.onnx"), providers=["CPUExecutionProvider"])
    naive = np.concatenate([plain.run(None, {"input": ev[i : i + 1]})[0] for i in range(len(ev))])
    # per-tensor int8: the signal channels zeroed (on a CPU whose int8 kernels saturate, both runs share that loss)
    assert sqnr_db(ref, naive) < sqnr_db(ref, got) - (2.0 if int8_saturates() else 10.0)


@pytest.mark.parametrize("target", ["onnx", "openvino"])
def test_keep_float_by_layer_name_and_unknown_names(tmp_path, target):
    net = _model(Tiny)
    x, ev, labels = _data(net, outlier=False)
    m = _export(net, target, _cfg(x, ev, labels, keep_float=("stem",), rounding=Rounding.NEAREST), tmp_path / "b")
    kept = m["quantization"]["kept_float"]
    assert [k["layer"] for k in kept] == ["stem"] and "requested (keep_float 'stem')" in kept[0]["why"]
    # the graph's own node name (OpenVINO: the ONNX node the op was converted from) keeps the same layer
    node = kept[0]["node"].split("/")[0]
    m2 = _export(net, target, _cfg(x, ev, labels, keep_float=(node,), rounding=Rounding.NEAREST), tmp_path / "n")
    assert [(k["node"], k["layer"]) for k in m2["quantization"]["kept_float"]] == [(kept[0]["node"], "stem")]
    # a misspelt layer is an error naming the closest layers, raised before calibration, with nothing written
    with pytest.raises(ConfigError, match=r"--keep-float 'blok.0' is neither a layer.*did you mean 'block'"):
        _export(net, target, _cfg(x, ev, labels, keep_float=("blok.0",)), tmp_path / "c")
    assert not (tmp_path / "c").exists()


def test_cli_keep_float_unknown_name_is_one_line(tmp_path):
    np.savez(tmp_path / "c.npz", x=np.random.default_rng(0).standard_normal((8, 3, 32, 32)).astype(np.float32))
    args = ["quantize", "mobilenet_v2", "-t", "onnx", "-r", "32", "--calib-data", str(tmp_path / "c.npz")]
    res = CliRunner().invoke(cli, [*args, "--keep-float", "blocks.1.0.conv_dww", "--out", str(tmp_path / "b")])
    assert res.exit_code == 1 and "Traceback" not in res.output
    errors = [line for line in res.output.splitlines() if line.startswith("error:")]  # (and the small-set warning)
    assert len(errors) == 1 and errors[0].startswith("error: --keep-float 'blocks.1.0.conv_dww' is neither a layer")
    assert "did you mean 'blocks.1.0.conv_dw'" in errors[0]
    assert not (tmp_path / "b").exists()


@pytest.mark.parametrize("target", ["onnx", "openvino"])
def test_report_has_per_layer_error_with_module_paths(tmp_path, target):
    from edgecnn.exporters.int8 import quantize

    net = _model(Tiny)
    x, ev, labels = _data(net, outlier=False)
    res = quantize(
        net,
        target=target,
        calib_data=from_arrays(x),
        resolution=RES,
        out=tmp_path / "b",
        measure_latency=False,
    )
    rep = json.loads(res.report_files["json"].read_text())
    errs = rep["layer_errors_worst10"]
    assert 3 <= len(errs) <= 10
    assert [e["sqnr_db"] for e in errs] == sorted(e["sqnr_db"] for e in errs)  # worst first
    assert all(np.isfinite(e["sqnr_db"]) and e["loss_db"] >= 0 for e in errs)
    layers = {e["layer"] for e in errs}
    assert layers & {"stem", "block", "head"} and layers <= {"stem", "block", "head", "(model)"}
    md = res.report_files["md"].read_text()
    assert "| layer | node | op | SQNR dB | dB added here |" in md and "| stem |" in md
