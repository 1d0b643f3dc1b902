"""Latency estimator: op extraction agrees with the static analysis, the roofline arithmetic, calibration fit and
the profile it writes. No timing assertions: speed claims live in benchmarks/bench_estimator.py."""

from __future__ import annotations

import json
import math
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from edgecnn.analysis import analyze_named
from edgecnn.bench.estimate import estimate_model, estimate_ops
from edgecnn.bench.fit_profile import MicroBench, build_graph, default_suite, fit_ops, measure_suite, write_profile
from edgecnn.bench.roofline import model_ops, op_time_s
from edgecnn.cli.main import cli
from edgecnn.errors import ConfigError
from edgecnn.models import create_model
from edgecnn.profiles import get_profile


def _ops(name: str, res: int = 224):
    with torch.device("meta"):
        model = create_model(name)
    return model_ops(model, res)


@pytest.mark.parametrize("name", ["mobilenet_v2", "mobilenet_v3_small", "efficientnet_lite0", "alexnet"])
def test_op_macs_match_static_analysis(name: str) -> None:
    ops = _ops(name)
    assert sum(op.macs for op in ops) == analyze_named(name, 224).macs


def test_op_kinds_of_mobilenet_v2() -> None:
    ops = _ops("mobilenet_v2")
    kinds = [op.kind for op in ops]
    assert kinds.count("depthwise") == 17  # one per inverted residual
    assert kinds.count("linear") == 1 and kinds.count("stem") == 1  # classifier; 3×3 conv on the RGB image
    assert "dense" not in kinds
    adds = [op for op in ops if op.type == "Add"]
    assert len(adds) == 10  # MobileNetV2's residual connections (Sandler et al. 2018, Table 2)
    assert all(op.fusable for op in ops if op.type == "ReLU6")


def test_padding_is_a_copy_and_stem_falls_back_to_dense() -> None:
    """TF-SAME padding (EfficientNet-Lite) folds into the conv where the runtime fuses, else costs memory traffic
    only (a copy); a profile without a ``stem`` efficiency uses
    its ``dense`` one, and a calibrated ``stem`` figure overrides it."""
    pads = [op for op in _ops("efficientnet_lite0") if op.type == "PadSame"]
    assert pads and all(op.work() == 0 and op.bytes("fp32") > 0 and op.fusable for op in pads)
    unfused = get_profile("x86-avx512-server")
    unfused = replace(unfused, estimator={**unfused.estimator, "fused_activations": False})
    est = estimate_model("efficientnet_lite0", unfused, precision="fp32")
    assert all(x.ms > 0 and x.bound == "memory" for x in est.layers if x.type == "PadSame")
    prof = get_profile("x86-avx512-server")
    assert "stem" not in prof.efficiency and prof.efficiency_for("fp32", "stem") == prof.efficiency["dense"]
    tuned = replace(prof, efficiency={**prof.efficiency, "stem": 0.01})
    slow_stem = estimate_model("mobilenet_v2", tuned, precision="fp32")
    base = estimate_model("mobilenet_v2", prof, precision="fp32")
    stem = [x for x in slow_stem.layers if x.kind == "stem"]
    assert len(stem) == 1 and slow_stem.total_ms > base.total_ms


def test_weights_come_from_dram_when_a_model_overflows_the_cache() -> None:
    """An LRU last-level cache keeps weights between inferences only if the whole per-inference traffic fits."""
    from edgecnn.bench.roofline import weights_resident

    prof = get_profile("x86-avx512-server")
    small, big = _ops("mobilenet_v3_small"), _ops("alexnet")
    assert weights_resident(small, "int8", prof.last_cache_bytes)
    assert not weights_resident(big, "fp32", prof.last_cache_bytes)
    fc = max((op for op in big if op.kind == "linear"), key=lambda o: o.weight_elems)
    kw = dict(peak_gops=1e6, efficiency=1.0, bandwidth_gbs=10.0, memory_efficiency=1.0, precision="fp32")
    kw |= dict(overhead_s=0.0, cache_bytes=1e12, cache_bandwidth_gbs=1000.0)
    hot, _ = op_time_s(fc, **kw)
    cold, bound = op_time_s(fc, **kw, weights_resident=False)
    assert bound == "memory" and cold > 50 * hot
    assert cold == pytest.approx(fc.weight_bytes("fp32") / 10e9 + (fc.bytes("fp32") - fc.weight_bytes("fp32")) / 1e12)


def test_estimate_is_sum_of_layers_plus_overhead() -> None:
    prof = get_profile("cortex-a76-rpi5")
    est = estimate_model("mobilenet_v2", prof, precision="fp32")
    layer_sum = sum(x.ms for x in est.layers)
    assert math.isclose(est.total_ms, layer_sum + prof.estimator["model_overhead_us"] / 1e3)
    assert est.low_ms < est.total_ms < est.high_ms
    assert math.isclose(sum(est.by_kind_ms.values()), layer_sum)
    assert all(x.ms == 0 for x in est.layers if x.bound == "fused")
    assert est.provenance["profile"] == "cortex-a76-rpi5" and est.provenance["sources"]
    # conv + linear weights (BN folds into them; biases are negligible) vs all 3,504,872 params
    assert est.weights_mib == pytest.approx(3_504_872 * 4 / 2**20, rel=0.02)


def test_int8_predicts_faster_than_fp32_and_checks_precision() -> None:
    prof = get_profile("x86-avx512-server")
    fp32 = estimate_model("efficientnet_b0", prof, precision="fp32").total_ms
    int8 = estimate_model("efficientnet_b0", prof, precision="int8").total_ms
    assert int8 < fp32
    with pytest.raises(ConfigError, match="does not run fp16"):
        estimate_model("efficientnet_b0", prof, precision="fp16")


def test_roofline_bounds() -> None:
    op = next(o for o in _ops("mobilenet_v2") if o.kind == "pointwise")
    kw = dict(efficiency=0.5, memory_efficiency=1.0, precision="fp32", overhead_s=0.0)
    t1, b1 = op_time_s(op, peak_gops=100.0, bandwidth_gbs=1e6, **kw)
    t2, _ = op_time_s(op, peak_gops=200.0, bandwidth_gbs=1e6, **kw)
    assert b1 == "compute" and t2 == pytest.approx(t1 / 2)
    t3, b3 = op_time_s(op, peak_gops=1e9, bandwidth_gbs=1.0, **kw)
    assert b3 == "memory" and t3 == pytest.approx(op.bytes("fp32") / 1e9)
    t4, _ = op_time_s(op, peak_gops=1e9, bandwidth_gbs=1.0, cache_bytes=1e12, cache_bandwidth_gbs=4.0, **kw)
    assert t4 == pytest.approx(t3 / 4)


def test_fit_recovers_known_efficiencies() -> None:
    """Synthetic points from a profile with known efficiencies → the fit finds them (within one grid step)."""
    prior = get_profile("x86-avx512-server")
    truth = replace(prior, efficiency={**prior.efficiency, "pointwise": 0.3, "depthwise": 0.05, "dense": 0.4})
    suite = default_suite()
    points = []
    for mb in suite:
        est = estimate_ops(
            [mb.op], replace(truth, estimator={**truth.estimator, "layer_overhead_us": 0.0}), precision="fp32"
        )
        points.append((mb.op, est.layers[0].ms / 1e3))
    result = fit_ops(points, 5e-6, peak_gops=prior.peak("fp32"), bandwidth_gbs=prior.bandwidth_gbs, prior=prior)
    for kind in ("pointwise", "dense"):
        assert result.efficiency[kind] == pytest.approx(truth.efficiency[kind], rel=0.15)
    assert result.median_abs_error < 0.15
    assert result.model_overhead_us == pytest.approx(5.0)


def test_single_op_graphs_run_and_calibrated_profile_roundtrips(tmp_path: Path) -> None:
    suite: list[MicroBench] = [
        mb for mb in default_suite() if mb.op.name in ("pw24_144@56", "dw3x3_192@28s1", "add24@56")
    ]
    assert all(build_graph(mb)[:2] for mb in suite)
    base, points = measure_suite(suite, threads=1, warmup=1, iters=2, min_time_s=0.0)
    assert base > 0 and len(points) == 3 and all(t > 0 for _, t in points)
    prior = get_profile("x86-avx512-server")
    result = fit_ops(points, base, peak_gops=prior.peak("fp32") / 2, bandwidth_gbs=prior.bandwidth_gbs, prior=prior)
    out = write_profile(
        tmp_path / "local.toml", prior, result, threads=1, peak_gops=192.0, cpu="test cpu", points=3, contended=True
    )
    prof = get_profile(str(out))
    assert prof.calibration["base"] == "x86-avx512-server" and prof.cores == 1
    assert prof.peak("fp32") == pytest.approx(prior.peak("fp32") / 2)
    est = estimate_model("mobilenet_v3_small", prof, resolution=96)
    assert est.provenance["calibration"]["points"] == 3
    assert est.error_band >= 0.2


def test_profile_predict_cli_json() -> None:
    res = CliRunner().invoke(
        cli, ["profile", "mobilenet_v3_small", "--profile", "nvidia-t4", "--precision", "fp16", "--json"]
    )
    assert res.exit_code == 0, res.output
    doc = json.loads(res.output)
    assert doc["profile"] == "nvidia-t4" and doc["precision"] == "fp16" and doc["layers"]
    assert doc["low_ms"] < doc["total_ms"] < doc["high_ms"]
    assert doc["provenance"]["sources"]["peak_gops"].startswith("NVIDIA T4")
    table = CliRunner().invoke(cli, ["profile", "mobilenet_v3_small", "--profile", "cortex-a53", "--top", "3"])
    assert table.exit_code == 0 and "predicted" in table.output and "uncalibrated" in table.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["profile", "mobilenet_v2", "--profile", "nvidia-t5"], "did you mean 'nvidia-t4'"),
        (["profile", "mobilenet_v2", "--profile", "nvidia-t4", "--precision", "fp8"], "unknown --precision 'fp8'"),
        (["profile", "mobilenet_v2", "--profile", "intel-npu", "--precision", "fp32"], "does not run fp32"),
        (["profile", "mobilenet_v9", "--profile", "nvidia-t4"], "unknown model"),
        (["profile", "mobilenet_v2", "--profile", "nvidia-t4", "-r", "4"], "4 is not in the range 8<=x"),
        (["profile", "fit", "--base", "nvidia-t4"], "must be a CPU profile"),
        (["profile", "fit", "--iters", "0"], "must be >= 1"),
    ],
)
def test_profile_cli_errors(args: list[str], message: str) -> None:
    res = CliRunner().invoke(cli, args)
    assert res.exit_code != 0
    assert message in res.output and "Traceback" not in res.output


@pytest.mark.parametrize("args", [["--help"], ["--iters", "0"], ["--base", "nvidia-t4"]])
def test_profile_calibrate_is_a_deprecated_alias_of_fit(args: list[str]) -> None:
    """The old name warns once on stderr, then behaves exactly as ``edgecnn profile fit`` (output, exit code)."""
    new = CliRunner().invoke(cli, ["profile", "fit", *args])
    old = CliRunner().invoke(cli, ["profile", "calibrate", *args])
    warning = "warning: `edgecnn profile calibrate` is deprecated; use `edgecnn profile fit`"
    assert old.exit_code == new.exit_code
    assert old.stderr.splitlines()[0] == warning and warning not in new.stderr
    assert old.stderr.splitlines()[1:] == new.stderr.splitlines()
    assert old.stdout.replace("profile calibrate", "profile fit") == new.stdout
    assert cli.commands["profile"].commands["calibrate"].hidden  # not listed beside `fit`


def test_int8_qdq_graphs_run_and_fit(tmp_path: Path) -> None:
    from edgecnn.bench.fit_int8 import fit_int8, int8_suite, measure_int8

    suite = [mb for mb in int8_suite() if mb.op.name in ("pw24_144@56", "fc1280_1000", "add24@56")]
    assert {mb.onnx_op for mb in int8_suite()} == {"Conv", "Gemm", "Add", "Mul", "GlobalAveragePool"}
    points = measure_int8(suite, 1e-6, threads=1, warmup=1, iters=2, min_time_s=0.0)
    prior = get_profile("x86-avx512-server")
    fp32 = fit_ops(points, 1e-6, peak_gops=192.0, bandwidth_gbs=prior.bandwidth_gbs, prior=prior)
    effs, err = fit_int8(points, fp32, peak_gops=768.0, bandwidth_gbs=prior.bandwidth_gbs, cache_bytes=3e7)
    assert set(effs) == {"pointwise", "linear", "elementwise"} and all(0 < v <= 1 for v in effs.values())
    assert err >= 0
    out = write_profile(
        tmp_path / "p.toml", prior, fp32, threads=1, peak_gops=192.0, cpu="c", points=3, contended=False, int8=effs
    )
    prof = get_profile(str(out))
    assert prof.efficiency_for("int8", "pointwise") == pytest.approx(effs["pointwise"], rel=1e-5)
    assert prof.efficiency_for("int8", "dense") == prof.efficiency["dense"]  # not measured → shared figure
    assert prof.efficiency_for("fp32", "pointwise") == prof.efficiency["pointwise"]


@pytest.mark.slow
def test_profile_fit_cli_end_to_end(tmp_path: Path) -> None:
    out = tmp_path / "local.toml"
    args = ["profile", "fit", "--threads", "1", "--iters", "2", "--models", "mobilenet_v3_small", "-r", "64"]
    res = CliRunner().invoke(cli, [*args, "--suite", "ops", "--out", str(out), "--json"])
    assert res.exit_code == 0, res.output
    doc = json.loads(res.output)
    assert doc["graph_factor"] > 0 and len(doc["points"]) == len(default_suite())
    prof = get_profile(str(out))
    assert prof.calibration["models"].startswith("mobilenet_v3_small") and prof.efficiency_int8
    res = CliRunner().invoke(cli, ["profile", "mobilenet_v2", "--profile", str(out)])
    assert res.exit_code == 0 and "calibrated" in res.output


def _synthetic_block_points(truth_eff: dict[str, float], precision: str = "fp32"):  # noqa: ANN202
    """Chains of the real block suite, timed by the estimator itself on a profile with known efficiencies."""
    import torch

    from edgecnn.bench.fit_blocks import block_suite
    from edgecnn.bench.roofline import model_ops

    prior = get_profile("x86-avx512-server")
    truth = replace(
        prior,
        efficiency={**prior.efficiency, **truth_eff},
        estimator={**prior.estimator, "layer_overhead_us": 2.0, "graph_factor": 1.0},
    )
    points = []
    for bb in block_suite():
        with torch.device("meta"):
            ops = model_ops(bb.build(), bb.res, in_chs=bb.in_chs)
        est = estimate_ops(
            ops, replace(truth, estimator={**truth.estimator, "model_overhead_us": 0.0}), precision=precision
        )
        points.append((bb.name, ops, est.total_ms / 1e3))
    return prior, truth, points


def test_block_fit_recovers_known_efficiencies() -> None:
    """Block chains timed by a known roofline → the coordinate-descent fit finds the efficiencies and overhead."""
    from edgecnn.bench.fit_blocks import fit_blocks

    truth_eff = {"pointwise": 0.3, "depthwise": 0.04, "dense": 0.2, "stem": 0.1}
    prior, truth, points = _synthetic_block_points(truth_eff)
    kw = dict(bandwidth_gbs=prior.bandwidth_gbs, cache_bytes=prior.last_cache_bytes)
    result = fit_blocks(points, 7e-6, precision="fp32", peak_gops=prior.peak("fp32"), **kw)
    assert result.median_abs_error < 0.05
    for kind in ("pointwise", "dense"):  # compute-bound kinds are identifiable; depthwise may sit on the memory roof
        assert result.efficiency[kind] == pytest.approx(truth_eff[kind], rel=0.15)
    assert result.model_overhead_us == pytest.approx(7.0)
    # int8 reuses the fp32 memory parameters (one [estimator] table per profile)
    r8 = fit_blocks(points, 7e-6, precision="fp32", peak_gops=prior.peak("fp32"), memory_from=result, **kw)
    assert (r8.memory_efficiency, r8.layer_overhead_us) == (result.memory_efficiency, result.layer_overhead_us)


def test_block_chains_export_quantize_time_and_write_profile(tmp_path: Path) -> None:
    """Two small block chains really exported, quantized (bundle QDQ settings) and timed in ORT; the fit writes a
    profile that loads and predicts."""
    from edgecnn.bench.fit_blocks import _head, _mbconv_stage, fit_blocks, measure_blocks

    suite = [_mbconv_stage("silu", 8, 16, 16, 2, 3, 2), _head(16, 32, None, 10, 4)]
    got = measure_blocks(suite, threads=1, warmup=1, iters=2, min_time_s=0.0, base_s=1e-6)
    assert set(got) == {"fp32", "int8"}
    for prec in ("fp32", "int8"):
        assert [name for name, _, _ in got[prec]] == [bb.name for bb in suite]
        assert all(t > 0 and ops for _, ops, t in got[prec])
    kinds = {op.kind for _, ops, _ in got["fp32"] for op in ops}
    assert {"pointwise", "depthwise", "elementwise", "pooling", "linear"} <= kinds
    prior = get_profile("x86-avx512-server")
    kw = dict(bandwidth_gbs=prior.bandwidth_gbs, cache_bytes=prior.last_cache_bytes)
    fp32 = fit_blocks(got["fp32"], 1e-6, precision="fp32", peak_gops=prior.peak("fp32") / 2, **kw)
    int8 = fit_blocks(got["int8"], 1e-6, precision="int8", peak_gops=prior.peak("int8") / 2, memory_from=fp32, **kw)
    out = write_profile(
        tmp_path / "blocks.toml",
        prior,
        fp32,
        threads=1,
        peak_gops=prior.peak("fp32") / 2,
        cpu="test cpu",
        points=2,
        contended=True,
        int8=int8.efficiency,
        method="block chains (test)",
    )
    prof = get_profile(str(out))
    assert prof.calibration["method"] == "block chains (test)" and prof.efficiency_int8
    assert estimate_model("mobilenet_v3_small", prof, precision="int8", resolution=64).total_ms > 0


def test_activation_add_and_gate_kinds_fall_back_to_elementwise() -> None:
    """SiLU, hard-swish, residual adds and SE multiplies carry kinds of their own (runtimes treat them differently);
    a profile without figures for them costs them as elementwise, exactly as before the split."""
    b0 = _ops("efficientnet_b0")
    assert {op.kind for op in b0 if op.type == "SiLU"} == {"swish"}
    assert {op.kind for op in b0 if op.type == "Mul"} == {"gate"} and sum(op.type == "Mul" for op in b0) == 16
    assert {op.kind for op in b0 if op.type == "Add"} == {"add"}
    v3 = _ops("mobilenet_v3_large")
    assert {op.kind for op in v3 if op.type == "Hardswish"} == {"hardswish"}
    prof = get_profile("x86-avx512-server")
    est = estimate_model("efficientnet_b0", prof, precision="fp32")
    as_elementwise = estimate_ops(
        [replace(op, kind="elementwise") if op.kind in ("swish", "hardswish", "add", "gate") else op for op in b0],
        prof,
        precision="fp32",
    )
    assert est.total_ms == pytest.approx(as_elementwise.total_ms)


def test_fused_kinds_cost_nothing_per_precision() -> None:
    prof = get_profile("x86-avx512-server")
    fused = replace(prof, estimator={**prof.estimator, "fused_kinds": ["add", "swish"], "fused_kinds_int8": []})
    fp32 = estimate_model("efficientnet_b0", fused, precision="fp32")
    assert all(x.ms == 0 and x.bound == "fused" for x in fp32.layers if x.kind in ("add", "swish"))
    assert all(x.ms > 0 for x in fp32.layers if x.kind == "gate" and x.type == "Mul")
    assert fp32.total_ms < estimate_model("efficientnet_b0", prof, precision="fp32").total_ms
    int8 = estimate_model("efficientnet_b0", fused, precision="int8")
    assert all(x.ms > 0 for x in int8.layers if x.kind in ("add", "swish"))  # fused_kinds_int8 = [] wins at int8
    assert fused.fused_kinds_for("fp16") == {"add", "swish"}


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ('fused_kinds = ["add", "relu"]', r"estimator\.fused_kinds lists \['relu'\]"),  # not an op kind
        ('float_ops_int8 = ["Hardsigmoid", "Conv"]', r"estimator\.float_ops_int8 lists \['Conv'\]"),  # not an op type
    ],
)
def test_estimator_list_schema_rejects_unknown_entry(tmp_path: Path, line: str, message: str) -> None:
    from importlib import resources

    src = resources.files("edgecnn.profiles").joinpath("x86-avx512-server.toml").read_text()
    bad = tmp_path / "bad.toml"
    bad.write_text(src.replace("[estimator]", f"[estimator]\n{line}"))
    with pytest.raises(ConfigError, match=message):
        get_profile(str(bad))


def test_block_fit_finds_fused_kinds_and_writes_them(tmp_path: Path) -> None:
    """Chains timed by a roofline on which residual adds are free (as ONNX Runtime's NCHWc conv absorbs them at
    fp32) → the fit reports ``add`` fused, the profile records it, and the estimate costs adds at zero. With fusion
    ruled out (``fusible=()``) the fit must cost them."""
    from edgecnn.bench.fit_blocks import fit_blocks

    prior = get_profile("x86-avx512-server")
    truth_eff = {"pointwise": 0.3, "depthwise": 0.04, "dense": 0.2, "stem": 0.1, "swish": 0.01, "gate": 0.02}
    truth = replace(
        prior,
        efficiency={**prior.efficiency, **truth_eff},
        estimator={**prior.estimator, "layer_overhead_us": 2.0, "model_overhead_us": 0.0, "fused_kinds": ["add"]},
    )
    from edgecnn.bench.fit_blocks import block_suite

    points = []
    for bb in block_suite():
        with torch.device("meta"):
            ops = model_ops(bb.build(), bb.res, in_chs=bb.in_chs)
        points.append((bb.name, ops, estimate_ops(ops, truth, precision="fp32").total_ms / 1e3))
    kw = dict(bandwidth_gbs=prior.bandwidth_gbs, cache_bytes=prior.last_cache_bytes)
    result = fit_blocks(points, 0.0, precision="fp32", peak_gops=prior.peak("fp32"), **kw)
    assert "add" in result.fused and "add" not in result.efficiency and result.median_abs_error < 0.05
    assert "swish" not in result.fused and 0.005 < result.efficiency["swish"] < 0.02  # may sit near its memory roof
    r8 = fit_blocks(points, 0.0, precision="fp32", peak_gops=prior.peak("fp32"), memory_from=result, fusible=(), **kw)
    assert r8.fused == () and "add" in r8.efficiency
    out = write_profile(
        tmp_path / "fused.toml",
        prior,
        result,
        threads=2,
        peak_gops=prior.peak("fp32"),
        cpu="test cpu",
        points=len(points),
        contended=False,
        int8=r8.efficiency,
        int8_fused=r8.fused,
    )
    prof = get_profile(str(out))
    assert prof.fused_kinds_for("fp32") == {"add"} and prof.fused_kinds_for("int8") == frozenset()
    adds = [x for x in estimate_model("mobilenet_v2", prof, precision="fp32").layers if x.kind == "add"]
    assert len(adds) == 10 and all(x.ms == 0 for x in adds)


def test_squeeze_excite_convs_on_a_1x1_map_are_matrix_vector_products() -> None:
    """SE's reduce/expand 1×1 convs act on a 1×1 map: GEMVs, costed as fully connected layers (weight-bound)."""
    v3 = _ops("mobilenet_v3_large")
    se = [op for op in v3 if ".se.conv" in op.name]
    assert len(se) == 16 and {op.kind for op in se} == {"linear"}
    assert {op.kind for op in v3 if op.name.endswith("conv_pw.conv")} == {"pointwise"}


def test_float_islands_at_int8_cost_their_traffic_and_kernels() -> None:
    """Ops the int8 runtime runs in float between Q/DQ (``estimator.float_ops_int8``) never fuse, move their
    dequantize / float / quantize bytes and pay a dispatch per kernel at the int8 overhead; other precisions and
    profiles without the key are unchanged."""
    from edgecnn.bench.roofline import as_island

    prof = get_profile("x86-avx512-server")
    islands = replace(
        prof,
        estimator={**prof.estimator, "float_ops_int8": ["Hardsigmoid", "Hardswish"], "layer_overhead_us_int8": 3.0},
    )
    base = estimate_model("mobilenet_v3_large", prof, precision="int8")
    got = estimate_model("mobilenet_v3_large", islands, precision="int8")
    gates = [x for x in got.layers if x.type == "Hardsigmoid"]
    assert len(gates) == 8 and all(x.ms > 3 * 3.0e-3 for x in gates)  # SE gates: unfused, 3 dispatches
    assert all(x.ms == 0 for x in base.layers if x.type == "Hardsigmoid")  # fused without the key
    hs = next(op for op in _ops("mobilenet_v3_large") if op.type == "Hardswish")
    island = as_island(hs, 4)
    assert island.bytes("int8") == 21 * hs.out_elems  # 1→4, 4+4, 4→1 bytes per element, then the int8 multiply
    assert island.work() == 4 * hs.out_elems and island.kernels == 4 and not island.fusable
    assert got.total_ms > base.total_ms
    assert estimate_model("mobilenet_v3_large", islands, precision="fp32").total_ms == pytest.approx(
        estimate_model("mobilenet_v3_large", prof, precision="fp32").total_ms
    )
    assert islands.layer_overhead_us_for("int8") == 3.0
    assert islands.layer_overhead_us_for("fp32") == float(prof.estimator["layer_overhead_us"])


def test_block_fit_recovers_int8_overhead_and_islands(tmp_path: Path) -> None:
    """Chains timed by a roofline with float islands and an int8 per-kernel overhead of its own → the int8 fit
    (memory from the fp32 fit, ``own_overhead``) recovers that overhead, and the profile it writes predicts alike."""
    from edgecnn.bench.fit_blocks import block_suite, fit_blocks

    prior = get_profile("x86-avx512-server")
    truth_eff = {"pointwise": 0.3, "depthwise": 0.04, "dense": 0.2, "stem": 0.1, "swish": 0.01, "gate": 0.02}
    est = {**prior.estimator, "layer_overhead_us": 1.0, "model_overhead_us": 0.0}
    est |= {"layer_overhead_us_int8": 4.0, "float_ops_int8": ["Hardsigmoid", "Hardswish"]}
    truth = replace(prior, efficiency={**prior.efficiency, **truth_eff}, estimator=est)
    points = {"fp32": [], "int8": []}
    for bb in block_suite():
        with torch.device("meta"):
            ops = model_ops(bb.build(), bb.res, in_chs=bb.in_chs)
        for prec in points:
            points[prec].append((bb.name, ops, estimate_ops(ops, truth, precision=prec).total_ms / 1e3))
    kw = dict(bandwidth_gbs=prior.bandwidth_gbs, cache_bytes=prior.last_cache_bytes)
    fp32 = fit_blocks(points["fp32"], 0.0, precision="fp32", peak_gops=prior.peak("fp32"), **kw)
    assert 0 < fp32.layer_overhead_us <= 2.0  # the fp32 chains barely tell 0.5 from 1 µs apart
    islands = {"Hardsigmoid": 3, "Hardswish": 4}
    r8 = fit_blocks(
        points["int8"],
        0.0,
        precision="int8",
        peak_gops=prior.peak("int8"),
        memory_from=fp32,
        fusible=(),
        float_ops=islands,
        own_overhead=True,
        **kw,
    )
    assert r8.layer_overhead_us == pytest.approx(4.0, abs=1.0) and r8.median_abs_error < 0.05
    out = write_profile(
        tmp_path / "islands.toml",
        prior,
        fp32,
        threads=2,
        peak_gops=prior.peak("fp32"),
        cpu="test cpu",
        points=len(points["fp32"]),
        contended=False,
        int8=r8.efficiency,
        int8_fused=r8.fused,
        int8_estimator={"float_ops_int8": sorted(islands), "layer_overhead_us_int8": r8.layer_overhead_us},
    )
    prof = get_profile(str(out))
    assert prof.float_ops_for("int8") == islands and prof.layer_overhead_us_for("int8") == r8.layer_overhead_us


def test_int8_chains_report_the_ops_onnx_runtime_runs_in_float() -> None:
    """A hard-swish + SE chain quantized like a bundle: ONNX Runtime runs its HardSigmoids in float between Q/DQ
    (no integer kernel); its SE pool (GlobalAveragePool) and a ReLU6 chain's ops all run in integers."""
    from edgecnn.bench.fit_blocks import _mbconv_stage, measure_blocks

    found: set[str] = set()
    suite = [_mbconv_stage("hswish", 8, 16, 16, 2, 3, 2)]
    measure_blocks(suite, threads=1, precisions=("int8",), warmup=1, iters=2, min_time_s=0.0, float_ops=found)
    assert found == {"Hardsigmoid", "Hardswish"}
    found.clear()
    suite = [_mbconv_stage("relu6", 8, 16, 16, 2, 3, 2)]
    measure_blocks(suite, threads=1, precisions=("int8",), warmup=1, iters=2, min_time_s=0.0, float_ops=found)
    assert found == set()


def test_fused_activation_costs_its_producer_an_epilogue_pass() -> None:
    """An activation that fuses into its conv stays listed as fused, and its elements are priced on the conv at
    ``estimator.fused_activation_ns`` (a conv + ReLU6 runs a pass over its output the bare conv does not)."""
    from edgecnn.bench.roofline import FUSABLE, fold_activations

    ops = _ops("mobilenet_v2")
    folded = fold_activations(ops)
    act_elems = sum(op.out_elems for op in ops if op.fusable and op.type in FUSABLE)
    assert act_elems > 0 and not any(op.fusable for op in folded)
    assert sum(op.act_elems for op in folded) == act_elems
    prof = get_profile("x86-avx512-server")
    base = estimate_ops(ops, prof, precision="fp32")
    priced = replace(prof, estimator={**prof.estimator, "fused_activation_ns": 0.2})
    est = estimate_ops(ops, priced, precision="fp32")
    assert all(x.bound == "fused" and x.ms == 0 for x in est.layers if x.type == "ReLU6")
    extra_ms = est.total_ms - base.total_ms
    assert 0 < extra_ms <= act_elems * 0.2e-6 * (1 + 1e-9)  # memory-bound convs may hide part of it
    assert priced.fused_activation_ns_for("int8") == 0.2 and prof.fused_activation_ns_for("fp32") == 0.0


def test_element_cost_adds_per_output_element_on_the_compute_roof() -> None:
    """``element_ns`` prices each output element of a kind on top of its compute roof; int8 reads its own table."""
    prof = get_profile("x86-avx512-server")
    op = max((op for op in _ops("mobilenet_v2") if op.kind == "pointwise"), key=lambda op: op.macs)
    slow = replace(prof, element_ns={"pointwise": 1.0}, element_ns_int8={"pointwise": 3.0})
    for precision, ns in (("fp32", 1.0), ("int8", 3.0)):
        a = estimate_ops([op], prof, precision=precision).layers[0]
        b = estimate_ops([op], slow, precision=precision).layers[0]
        assert a.bound == b.bound == "compute"
        assert b.ms - a.ms == pytest.approx(op.out_elems * ns * 1e-6)
    assert slow.element_ns_for("int8", "depthwise") == 0.0  # the int8 table wins; a kind it lacks pays nothing
