"""Per-kind kernel times: ONNX Runtime's kernels classified into the estimator's op kinds, and the calibration fit
that pins each kind to its own measured share. No timing assertions (speed claims live in benchmarks/)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper

from edgecnn.bench.estimate import estimate_ops
from edgecnn.bench.kernel_kinds import OTHER, classify, kind_times
from edgecnn.bench.roofline import model_ops
from edgecnn.profiles import get_profile


def _w(name: str, *shape: int):  # noqa: ANN202
    return numpy_helper.from_array(np.random.default_rng(0).standard_normal(shape).astype(np.float32), name)


def _graph():  # noqa: ANN202
    """image → stem conv → SiLU (x·σ(x)) → depthwise → SE (pool, 1×1 convs, σ gate, broadcast multiply) →
    pointwise → residual add with a second pointwise; node names are the kinds they must come out as."""
    n = helper.make_node
    nodes = [
        n("Conv", ["x", "w_stem"], ["s"], name="stem", kernel_shape=[3, 3], pads=[1, 1, 1, 1], strides=[2, 2]),
        n("Sigmoid", ["s"], ["s_sig"], name="swish_sigmoid"),
        n("Mul", ["s", "s_sig"], ["a"], name="swish_mul"),
        n("Conv", ["a", "w_dw"], ["d"], name="depthwise", kernel_shape=[3, 3], pads=[1, 1, 1, 1], group=8),
        n("GlobalAveragePool", ["d"], ["p"], name="pooling"),
        n("Conv", ["p", "w_r"], ["r"], name="linear_reduce", kernel_shape=[1, 1]),
        n("Conv", ["r", "w_e"], ["e"], name="linear_expand", kernel_shape=[1, 1]),
        n("Sigmoid", ["e"], ["g"], name="gate_sigmoid"),
        n("Mul", ["d", "g"], ["gd"], name="gate_mul"),
        n("Conv", ["gd", "w_pw"], ["o1"], name="pointwise", kernel_shape=[1, 1]),
        n("Conv", ["gd", "w_pw2"], ["o2"], name="pointwise2", kernel_shape=[1, 1]),
        n("Add", ["o1", "o2"], ["y0"], name="add"),
        n("Conv", ["y0", "w_dense"], ["y1"], name="dense", kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
        n("Flatten", ["y1"], ["y"], name="flatten"),
    ]
    inits = [
        _w("w_stem", 8, 3, 3, 3),
        _w("w_dw", 8, 1, 3, 3),
        _w("w_r", 2, 8, 1, 1),
        _w("w_e", 8, 2, 1, 1),
        _w("w_pw", 8, 8, 1, 1),
        _w("w_pw2", 8, 8, 1, 1),
        _w("w_dense", 8, 8, 3, 3),
    ]
    graph = helper.make_graph(
        nodes,
        "kinds",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 16, 16])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        inits,
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])


def test_classify_names_every_kind_by_op_attributes_and_neighbours() -> None:
    model = _graph()
    full, pooled = [1, 8, 8, 8], [1, 8, 1, 1]
    out = {
        n.name: (pooled if n.name in ("pooling", "linear_reduce", "linear_expand", "gate_sigmoid") else full)
        for n in model.graph.node
    }
    ins = {"swish_mul": [full, full], "gate_mul": [full, pooled]}
    kinds = classify(model.graph, out, ins)
    expect = {n.name: n.name.split("_")[0].rstrip("2") for n in model.graph.node}
    expect["flatten"] = OTHER
    assert kinds == expect


def test_classify_hard_swish_islands_and_their_qdq_passes() -> None:
    """x·HardSigmoid(x) as ONNX Runtime's QDQ path runs it (HardSigmoid in float between DequantizeLinear and
    QuantizeLinear, then an integer multiply): all four kernels are hard-swish; the model's input quantize is not."""
    n = helper.make_node
    nodes = [
        n("QuantizeLinear", ["x", "s", "z"], ["xq"], name="input_q"),
        n("DequantizeLinear", ["xq", "s", "z"], ["xf"], name="dq"),
        n("HardSigmoid", ["xf"], ["h"], name="hsig"),
        n("QuantizeLinear", ["h", "s", "z"], ["hq"], name="q"),
        n("QLinearMul", ["xq", "s", "z", "hq", "s", "z", "s", "z"], ["y"], name="mul", domain="com.microsoft"),
    ]
    graph = helper.make_graph(
        nodes,
        "hswish",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 8, 4, 4])],
        [helper.make_tensor_value_info("y", TensorProto.UINT8, None)],
        [numpy_helper.from_array(np.float32(0.1), "s"), numpy_helper.from_array(np.uint8(128), "z")],
    )
    shape = [1, 8, 4, 4]
    kinds = classify(graph, dict.fromkeys(("input_q", "dq", "hsig", "q", "mul"), shape), {"mul": [shape] * 8})
    assert kinds == {"input_q": OTHER, "dq": "hardswish", "hsig": "hardswish", "q": "hardswish", "mul": "hardswish"}


@pytest.mark.parametrize("precision", ["fp32", "int8"])
def test_real_se_chain_kernels_land_on_the_estimators_kinds(precision: str) -> None:
    """A SiLU + SE inverted-residual chain exported (and quantized) like a bundle and profiled in ONNX Runtime:
    its kernels land on the kinds the estimator's op walk gives the same chain, almost nothing is left unclassified,
    and the kinds' kernel counts are those of the chain (one depthwise per block)."""
    from edgecnn.bench.fit_blocks import _mbconv_stage, measure_blocks

    bb = _mbconv_stage("silu", 8, 16, 16, 2, 3, 2)
    per_kind: dict = {}
    got = measure_blocks([bb], threads=1, precisions=(precision,), warmup=1, iters=2, min_time_s=0.0, kinds=per_kind)
    secs, counts = per_kind[precision][0]
    _, ops, _ = got[precision][0]
    assert {"depthwise", "pointwise", "swish", "pooling", "linear", "gate"} <= set(secs)
    assert set(secs) - {OTHER} <= {op.kind for op in ops}
    assert counts["depthwise"] == sum(op.kind == "depthwise" for op in ops) == 2
    assert secs.get(OTHER, 0.0) < 0.2 * sum(secs.values())


def test_kind_times_of_an_onnx_file(tmp_path) -> None:  # noqa: ANN001
    path = tmp_path / "m.onnx"
    path.write_bytes(_graph().SerializeToString())
    secs, counts = kind_times(path, (1, 3, 16, 16), threads=1, warmup=1, runs=2)
    assert all(v > 0 for v in secs.values()) and {"stem", "depthwise", "pooling", "dense"} <= set(secs)
    assert set(counts) == set(secs)


def _by_kind(est) -> tuple[dict[str, float], dict[str, int]]:  # noqa: ANN001
    secs: dict[str, float] = {}
    counts: dict[str, int] = {}
    for x in est.layers:
        if x.bound != "fused":
            secs[x.kind] = secs.get(x.kind, 0.0) + x.ms / 1e3
            counts[x.kind] = counts.get(x.kind, 0) + 1
    return secs, counts


def test_per_kind_fit_pins_kinds_that_always_occur_together(tmp_path) -> None:  # noqa: ANN001
    """Chains timed by a known roofline (with per-output-element costs) where SE's pool, gate and SiLU always come
    together: fitted to each kind's own measured share, the profile it writes predicts every kind of two zoo
    models — mixes no chain has — as the truth does, and a fusible kind that runs no kernel comes out fused."""
    from edgecnn.bench.fit_blocks import block_suite, fit_blocks
    from edgecnn.bench.fit_profile import write_profile
    from edgecnn.models import create_model

    prior = get_profile("x86-avx512-server")
    truth_eff = {"pointwise": 0.3, "depthwise": 0.04, "dense": 0.2, "stem": 0.1, "swish": 0.002, "gate": 0.003}
    truth_eff |= {"pooling": 0.004, "linear": 0.05, "hardswish": 0.02}
    est = {**prior.estimator, "layer_overhead_us": 1.0, "model_overhead_us": 0.0, "fused_kinds": ["add"]}
    truth = replace(
        prior,
        efficiency={**prior.efficiency, **truth_eff},
        element_ns={"pointwise": 0.2, "depthwise": 0.3},
        estimator=est,
    )
    points, kinds = [], []
    for bb in block_suite():
        with torch.device("meta"):
            ops = model_ops(bb.build(), bb.res, in_chs=bb.in_chs)
        e = estimate_ops(ops, truth, precision="fp32")
        points.append((bb.name, ops, e.total_ms / 1e3))
        kinds.append(_by_kind(e))
    kw = dict(bandwidth_gbs=prior.bandwidth_gbs, cache_bytes=prior.last_cache_bytes, peak_gops=prior.peak("fp32"))
    got = fit_blocks(points, 0.0, precision="fp32", kinds=kinds, **kw)
    assert got.median_abs_error < 0.03 and got.fused == ("add",)
    assert got.efficiency["pointwise"] == pytest.approx(0.3, rel=0.15)
    assert got.element_ns["pointwise"] == pytest.approx(0.2) and got.element_ns["depthwise"] == pytest.approx(0.3)
    fitted = get_profile(
        str(
            write_profile(
                tmp_path / "p.toml",
                prior,
                got,
                threads=2,
                peak_gops=prior.peak("fp32"),
                cpu="t",
                points=1,
                contended=False,
            )
        )
    )
    assert fitted.element_ns_for("fp32", "depthwise") == pytest.approx(0.3)
    for name in ("efficientnet_b0", "mobilenet_v3_small"):
        with torch.device("meta"):
            ops = model_ops(create_model(name), 224)
        want = _by_kind(estimate_ops(ops, truth, precision="fp32"))[0]
        have = _by_kind(
            estimate_ops(
                ops, replace(fitted, estimator={**fitted.estimator, "model_overhead_us": 0.0}), precision="fp32"
            )
        )[0]
        assert set(have) == set(want)
        for k, t in want.items():
            assert have[k] == pytest.approx(t, rel=0.05), (name, k)


def test_totals_only_fit_leaves_element_costs_unfitted() -> None:
    """The same chains without per-kind times: the per-element cost stays unfitted (0) — it is only identifiable
    from each kind's own share."""
    from edgecnn.bench.fit_blocks import block_suite, fit_blocks

    prior = get_profile("x86-avx512-server")
    points = []
    for bb in block_suite()[:6]:
        with torch.device("meta"):
            ops = model_ops(bb.build(), bb.res, in_chs=bb.in_chs)
        points.append((bb.name, ops, estimate_ops(ops, prior, precision="fp32").total_ms / 1e3))
    kw = dict(bandwidth_gbs=prior.bandwidth_gbs, cache_bytes=prior.last_cache_bytes, peak_gops=prior.peak("fp32"))
    assert fit_blocks(points, 0.0, precision="fp32", **kw).element_ns == {}


def test_profiler_inflation_is_measured_and_removed_from_kernel_times(tmp_path) -> None:  # noqa: ANN001
    """ORT's profiler records every kernel event µs longer than the kernel runs; the measured inflation is
    positive, a few µs (not a model's worth), and kind_times takes it off each event (never below a tenth)."""
    from edgecnn.bench import kernel_kinds

    inflation = kernel_kinds.profiler_inflation_s(1)
    assert 0 < inflation < 50e-6
    path = tmp_path / "m.onnx"
    path.write_bytes(_graph().SerializeToString())
    kernel_kinds._INFLATION[1] = 0.0  # as if the profiler cost nothing: the raw recorded times
    try:
        raw, counts = kind_times(path, (1, 3, 16, 16), threads=1, warmup=1, runs=5)
        kernel_kinds._INFLATION[1] = 1.0  # more than any kernel here takes: each keeps a tenth of its time
        floor, _ = kind_times(path, (1, 3, 16, 16), threads=1, warmup=1, runs=5)
    finally:
        kernel_kinds._INFLATION.pop(1, None)
    assert sum(floor.values()) < 0.5 * sum(raw.values())  # a tenth of a second run that may be slower
    assert set(counts) == set(raw)
