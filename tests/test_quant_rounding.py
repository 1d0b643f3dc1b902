"""Error-compensated (GPTQ) weight rounding: it lowers a layer's output error on its calibration inputs, keeps every
row's scale, and both backends store exactly the integers it chose (its contract with ORT and NNCF)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from edgecnn.quant.rounding import QMAX, _gptq, compensated_rounding, write_rounded


def _nearest(w: np.ndarray) -> np.ndarray:
    s = np.abs(w).max(axis=-1, keepdims=True) / QMAX
    return np.clip(np.round(w / s), -QMAX, QMAX) * s


def test_gptq_lowers_output_error_and_keeps_each_row_scale():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((4096, 27)) @ rng.standard_normal((27, 27))  # correlated inputs, like image patches
    w = rng.standard_normal((1, 16, 27))
    h = torch.from_numpy(x.T @ x)[None]
    q = _gptq(w, h, per_channel=True)
    err = np.linalg.norm(x @ (w[0] - q[0]).T)
    assert err < 0.8 * np.linalg.norm(x @ (w[0] - _nearest(w[0])).T)
    s = np.abs(w[0]).max(axis=1, keepdims=True) / QMAX
    ints = q[0] / s
    assert np.allclose(ints, np.round(ints), atol=1e-6) and np.all(np.abs(ints).max(axis=1).round() == QMAX)
    # per tensor: one scale for the whole weight, still pinned at its largest magnitude
    qt = _gptq(w, h, per_channel=False)
    st = np.abs(w).max() / QMAX
    assert np.allclose(qt / st, np.round(qt / st), atol=1e-6) and round(float(np.abs(qt).max() / st)) == QMAX


def _gptq_column_by_column(w: np.ndarray, h: torch.Tensor, per_channel: bool) -> np.ndarray:
    """GPTQ as the paper's first form states it: every column's error moves onto all later columns at once (slow;
    the reference for the lazy batch updates of ``_gptq``)."""
    from edgecnn.quant.rounding import DAMP

    W = torch.from_numpy(w).double().clone()  # noqa: N806
    g, r, d = W.shape
    amax = W.abs().amax(dim=2, keepdim=True) if per_channel else W.abs().max().expand(g, r, 1)
    s = (amax / QMAX)[..., 0]
    flat = W.abs().reshape(g * r, d).argmax(dim=1).reshape(g, r) if per_channel else None
    H = h.clone()  # noqa: N806
    damp = DAMP * torch.diagonal(H, dim1=1, dim2=2).mean(dim=1)
    L = torch.linalg.cholesky(H + damp[:, None, None] * torch.eye(d, dtype=H.dtype))  # noqa: N806
    U = torch.linalg.cholesky(torch.cholesky_inverse(L), upper=True)  # noqa: N806
    Q = torch.empty_like(W)  # noqa: N806
    for i in range(d):
        q = torch.clamp(torch.round(W[:, :, i] / s), -QMAX, QMAX)
        if per_channel:
            q = torch.where(flat == i, torch.sign(W[:, :, i]) * QMAX, q)
        Q[:, :, i] = q
        err = (W[:, :, i] - q * s) / U[:, i, i][:, None]
        W[:, :, i + 1 :] -= err[..., None] * U[:, i, i + 1 :][:, None, :]
    return (Q * s[..., None]).numpy()


def test_gptq_lazy_batch_updates_choose_the_same_integers_as_column_by_column():
    """``_gptq`` moves errors a block of columns at a time (GPTQ's lazy batch updates, 9× faster on a 4608-wide
    layer); it must round every weight to the same integer as the one-column-at-a-time form, across block edges
    (width not a multiple of the block), for grouped weights."""
    from edgecnn.quant.rounding import GPTQ_BLOCK

    rng = np.random.default_rng(1)
    d = 2 * GPTQ_BLOCK + 37
    x = rng.standard_normal((3 * d, d)) @ rng.standard_normal((d, d)) / np.sqrt(d)
    w = rng.standard_normal((2, 24, d))
    h = torch.from_numpy(np.stack([x.T @ x, (x[::-1] ** 2).T @ x]) + 0.0)
    h = h @ h.transpose(1, 2) / d  # positive definite per group
    s = np.abs(w).max(axis=-1, keepdims=True) / QMAX
    got, ref = _gptq(w, h, per_channel=True), _gptq_column_by_column(w, h, per_channel=True)
    assert np.array_equal(np.round(got / s), np.round(ref / s))
    assert not np.array_equal(np.round(got / s), np.round(_nearest(w) / s))  # compensation did move weights


def _tiny_onnx(tmp_path: Path) -> tuple[Path, np.ndarray]:
    from edgecnn.onnx_graph.torch_export import export_onnx
    from tests.test_quant_fallback import RES, Tiny, _model

    x = np.random.default_rng(0).standard_normal((16, 3, RES, RES)).astype(np.float32)
    path = export_onnx(_model(Tiny), torch.from_numpy(x[:1]), tmp_path / "f.onnx", opset=18, dynamic_batch=None)
    return path, x


def _weights_by_node(onnx_path: Path) -> dict[str, str]:
    import onnx

    return {n.name: n.input[1] for n in onnx.load(str(onnx_path)).graph.node if n.op_type in ("Conv", "Gemm")}


def test_onnx_runtime_stores_the_rounded_integers(tmp_path):
    import onnx
    from onnx import numpy_helper

    from edgecnn.quant.config import QuantConfig
    from edgecnn.quant.ort_ptq import ORT_CPU, preprocess_for_quant, quantize_qdq
    from edgecnn.quant.samples import from_arrays

    fp32, x = _tiny_onnx(tmp_path)
    pre = preprocess_for_quant(fp32, tmp_path / "pre.onnx")
    rounded = compensated_rounding(pre, x, batch=1)
    weights = set(_weights_by_node(pre).values())
    assert weights < set(rounded)  # and the corrected biases
    src = write_rounded(pre, tmp_path / "r.onnx", rounded)
    quantize_qdq(src, tmp_path / "q.onnx", QuantConfig(calibration=from_arrays(x)), batch=1, scheme=ORT_CPU)
    inits = {t.name: numpy_helper.to_array(t) for t in onnx.load(str(tmp_path / "q.onnx")).graph.initializer}
    for name, value in rounded.items():
        if name not in weights:
            continue
        q, s = inits[name + "_quantized"], inits[name + "_scale"]
        assert q.dtype == np.int8
        s = s.reshape(-1, *([1] * (q.ndim - 1)))
        assert np.array_equal(q, np.round(value / s).astype(np.int8)), name  # ORT re-rounded nothing
        assert np.allclose(q * s, value, rtol=1e-6, atol=0)


def test_nncf_stores_the_rounded_integers(tmp_path):
    import nncf
    import openvino as ov
    from nncf.quantization.advanced_parameters import AdvancedQuantizationParameters, OverflowFix

    fp32, x = _tiny_onnx(tmp_path)
    rounded = compensated_rounding(fp32, x, batch=1)
    node_weight = _weights_by_node(fp32)
    src = ov.convert_model(str(write_rounded(fp32, tmp_path / "r.onnx", rounded)))
    q = nncf.quantize(
        src,
        nncf.Dataset([x[i : i + 1] for i in range(len(x))]),
        subset_size=len(x),
        advanced_parameters=AdvancedQuantizationParameters(overflow_fix=OverflowFix.DISABLE),  # edgecnn's default
    )
    checked = 0
    for op in q.get_ordered_ops():
        if op.get_type_name() not in ("Convolution", "GroupConvolution", "MatMul"):
            continue
        mul = op.input_value(1).get_node()
        while mul.get_type_name() != "Multiply":
            mul = mul.input_value(0).get_node()
        ints = mul.input_value(0).get_node().input_value(0).get_node().get_data()  # Constant(int8) → Convert
        scale = mul.input_value(1).get_node().get_data()
        assert ints.dtype == np.int8
        value = rounded[node_weight[op.get_friendly_name().split("/")[0]]]
        assert np.allclose(ints * scale, value.reshape(ints.shape), rtol=1e-6, atol=0), op.get_friendly_name()
        checked += 1
    assert checked == len(node_weight) == 4


def _conv_outputs(path: Path, x: np.ndarray) -> dict[str, np.ndarray]:
    """Every Conv / Gemm node's output on ``x``, by node name."""
    import onnx
    import onnxruntime as ort

    proto = onnx.load(str(path))
    nodes = [n for n in proto.graph.node if n.op_type in ("Conv", "Gemm")]
    known = {o.name for o in proto.graph.output}
    for n in nodes:
        if n.output[0] not in known:
            proto.graph.output.append(onnx.helper.make_tensor_value_info(n.output[0], onnx.TensorProto.FLOAT, None))
    sess = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    runs = [sess.run([n.output[0] for n in nodes], {sess.get_inputs()[0].name: x[i : i + 1]}) for i in range(len(x))]
    return {n.name: np.concatenate([r[k] for r in runs]) for k, n in enumerate(nodes)}


def test_bias_correction_removes_the_mean_shift_of_the_rounding(tmp_path):
    """GPTQ leaves each output channel shifted by (W − Q)·E[x]; the corrected bias takes it out (on the
    calibration data: exactly for the first layer, whose inputs are the same in both models), and a layer kept in
    float gets its original bias back with its original weights."""
    import onnx
    from onnx import numpy_helper

    fp32, x = _tiny_onnx(tmp_path)
    ref = _conv_outputs(fp32, x)
    shift = {}
    for bc in (False, True):
        rounded = compensated_rounding(fp32, x, batch=1, bias_correction=bc)
        got = _conv_outputs(write_rounded(fp32, tmp_path / f"{bc}.onnx", rounded), x)
        axes = {k: (0, 2, 3) if v.ndim == 4 else 0 for k, v in ref.items()}
        shift[bc] = {k: np.abs((ref[k] - got[k]).mean(axis=axes[k])).mean() for k in ref}
    first = next(iter(ref))
    assert shift[True][first] < 1e-4 * max(shift[False][first], 1e-30) + 1e-7, shift
    convs = [k for k in ref if "Conv" in k]  # (the head's 1024 inputs on 16 samples: its mean is mostly noise)
    assert sum(shift[True][k] for k in convs) < 0.5 * sum(shift[False][k] for k in convs), shift
    biases = {n.name: n.input[2] for n in onnx.load(str(fp32)).graph.node if n.op_type in ("Conv", "Gemm")}
    assert set(biases.values()) <= set(rounded)  # every bias was corrected ...
    kept = write_rounded(fp32, tmp_path / "kept.onnx", rounded, keep=[first])
    inits = {t.name: numpy_helper.to_array(t) for t in onnx.load(str(kept)).graph.initializer}
    orig = {t.name: numpy_helper.to_array(t) for t in onnx.load(str(fp32)).graph.initializer}
    assert np.array_equal(inits[biases[first]], orig[biases[first]])  # ... but the float layer's is its own
    assert not np.array_equal(inits[biases[first]], rounded[biases[first]])


@pytest.mark.parametrize("name", ["mobilenet_v2", "mobilenet_v3_small"])
def test_gptq_default_beats_round_to_nearest_end_to_end(tmp_path, name):
    """The same INT8 ONNX flow with each rounding: the default's output is closer to fp32 on held-out inputs. Run
    exactly (Q/DQ unfused): on an x86 CPU without VNNI the fused int8 kernels' saturation swamps the rounding."""
    import edgecnn
    from edgecnn.onnx_graph.torch_export import export_onnx
    from edgecnn.quant.config import QuantConfig, Rounding
    from edgecnn.quant.metrics import sqnr_db
    from edgecnn.quant.onnx_flow import quantize_onnx_file
    from edgecnn.quant.ort_ptq import ORT_CPU, ort_logits
    from edgecnn.quant.samples import from_arrays
    from tests.export_helpers import _randomize_bn

    torch.manual_seed(0)
    net = edgecnn.create_model(name, num_classes=10).eval()
    _randomize_bn(net)
    x = np.random.default_rng(0).standard_normal((32, 3, 32, 32)).astype(np.float32)
    ev = np.random.default_rng(1).standard_normal((32, 3, 32, 32)).astype(np.float32)
    with torch.no_grad():
        ref = net(torch.from_numpy(ev)).numpy()
    fp32 = export_onnx(net, torch.from_numpy(x[:1]), tmp_path / "f.onnx", opset=18, dynamic_batch=None)
    got = {}
    for r in Rounding:
        cfg = QuantConfig(calibration=from_arrays(x), rounding=r)
        quantize_onnx_file(fp32, tmp_path / f"{r}.onnx", cfg, batch=1, scheme=ORT_CPU)
        got[r] = sqnr_db(ref, ort_logits(tmp_path / f"{r}.onnx", ev, 1, exact=True))
    assert got[Rounding.GPTQ] > got[Rounding.NEAREST] + 2.0, got
