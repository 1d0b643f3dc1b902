"""``edgecnn profile fit``: micro-benchmark each op kind here, fit the roofline efficiencies, write a profile.

Each micro-benchmark is a one-op ONNX graph (built with ``onnx.helper``, no torch) at shapes typical of the zoo's
stages (112² … 7²), timed in ONNX Runtime (ORT_ENABLE_ALL, the bench's thread count) — so the fitted profile
predicts what ``edgecnn bench`` measures for ONNX bundles. The empty-graph call (an Identity) is the per-inference
overhead; each op's time above it is fitted by the roofline of :mod:`edgecnn.bench.roofline`:

    t(op) = max(work / (peak × eff[kind]), bytes / (bandwidth × mem_eff)) + layer_overhead

by a grid search in log space (per kind for ``eff``; shared ``mem_eff``, cache bandwidth and ``layer_overhead``),
minimising the squared log error — relative errors weigh small and large ops alike. Two corrections follow:
int8 efficiencies from QDQ graphs (:mod:`edgecnn.bench.fit_int8`), and a ``graph_factor`` — measured /
predicted over a few whole zoo models at another resolution than the one you validate at — for what single ops do
not see (activations evicted between layers, layout reorders between NCHWc and plain kernels).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from edgecnn.bench.roofline import Op
from edgecnn.profiles import OP_KINDS, OPTIONAL_KINDS, Profile

log = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True)
class MicroBench:
    """One single-op graph: ``op`` (the estimator's view of it) and what :func:`build_graph` needs to write it."""

    op: Op
    onnx_op: str
    in_shape: tuple[int, ...]
    attrs: dict[str, Any]
    weight_shape: tuple[int, ...] | None = None
    second_shape: tuple[int, ...] | None = None  # Add/Mul operand


def _conv(name: str, c_in: int, c_out: int, hw: int, k: int, stride: int, groups: int) -> MicroBench:
    ho = (hw + 2 * (k // 2) - k) // stride + 1
    kind = "depthwise" if groups == c_in and groups > 1 else ("pointwise" if k == 1 else "dense")
    macs = ho * ho * c_out * (c_in // groups) * k * k
    op = Op(
        name=name,
        kind=kind,
        type="Conv2d",
        macs=macs,
        elements=c_out * ho * ho,
        in_elems=c_in * hw * hw,
        out_elems=c_out * ho * ho,
        weight_elems=c_out * (c_in // groups) * k * k,
    )
    attrs = {"kernel_shape": [k, k], "strides": [stride, stride], "pads": [k // 2] * 4, "group": groups}
    return MicroBench(
        op=op, onnx_op="Conv", in_shape=(1, c_in, hw, hw), attrs=attrs, weight_shape=(c_out, c_in // groups, k, k)
    )


def _eltwise(name: str, onnx_op: str, c: int, hw: int, *, broadcast: bool = False) -> MicroBench:
    n = c * hw * hw
    second = (1, c, 1, 1) if broadcast else (1, c, hw, hw)
    ins = n + (c if broadcast else n) if onnx_op in ("Add", "Mul") else n
    op = Op(name=name, kind="elementwise", type=onnx_op, macs=0, elements=n, in_elems=ins, out_elems=n, weight_elems=0)
    return MicroBench(
        op=op,
        onnx_op=onnx_op,
        in_shape=(1, c, hw, hw),
        attrs={},
        second_shape=second if onnx_op in ("Add", "Mul") else None,
    )


def default_suite() -> list[MicroBench]:
    """Shapes of the zoo's stages: MobileNet/EfficientNet stems, expansions, depthwise stages, heads; AlexNet's
    large kernels and fully connected layers."""
    s: list[MicroBench] = [
        _conv("stem3x3s2", 3, 32, 224, 3, 2, 1),
        _conv("dense3x3_64_192", 64, 192, 27, 3, 1, 1),
        _conv("dense3x3_384_256", 384, 256, 13, 3, 1, 1),
        _conv("dense5x5_64_192", 64, 192, 27, 5, 1, 1),
        _conv("dense11x11s4", 3, 64, 224, 11, 4, 1),
    ]
    for c_in, c_out, hw in ((16, 96, 112), (24, 144, 56), (144, 24, 56), (32, 192, 28), (64, 384, 14), (384, 96, 14)):
        s.append(_conv(f"pw{c_in}_{c_out}@{hw}", c_in, c_out, hw, 1, 1, 1))
    s += [_conv("pw160_960@7", 160, 960, 7, 1, 1, 1), _conv("pw320_1280@7", 320, 1280, 7, 1, 1, 1)]
    for c, hw, k, st in (
        (96, 112, 3, 2),
        (144, 56, 3, 1),
        (192, 28, 3, 1),
        (384, 14, 3, 1),
        (960, 7, 3, 1),
        (240, 28, 5, 1),
        (672, 14, 5, 2),
    ):
        s.append(_conv(f"dw{k}x{k}_{c}@{hw}s{st}", c, c, hw, k, st, c))
    for c, hw in ((1280, 7), (144, 56), (672, 14)):
        n = c * hw * hw
        op = Op(
            name=f"gap{c}@{hw}",
            kind="pooling",
            type="GlobalAveragePool",
            macs=0,
            elements=n,
            in_elems=n,
            out_elems=c,
            weight_elems=0,
        )
        s.append(MicroBench(op=op, onnx_op="GlobalAveragePool", in_shape=(1, c, hw, hw), attrs={}))
    mp_out = 27 * 27 * 64
    s.append(
        MicroBench(
            op=Op(
                name="maxpool3x3s2",
                kind="pooling",
                type="MaxPool",
                macs=0,
                elements=55 * 55 * 64,
                in_elems=55 * 55 * 64,
                out_elems=mp_out,
                weight_elems=0,
            ),
            onnx_op="MaxPool",
            in_shape=(1, 64, 55, 55),
            attrs={"kernel_shape": [3, 3], "strides": [2, 2]},
        )
    )
    s += [
        _eltwise("add24@56", "Add", 24, 56),
        _eltwise("add96@14", "Add", 96, 14),
        _eltwise("se_mul144@56", "Mul", 144, 56, broadcast=True),
        _eltwise("se_mul672@14", "Mul", 672, 14, broadcast=True),
        _eltwise("hswish16@112", "HardSwish", 16, 112),
        _eltwise("sigmoid96@112", "Sigmoid", 96, 112),
    ]
    for k_in, k_out in ((1280, 1000), (1024, 1000), (9216, 4096)):
        op = Op(
            name=f"fc{k_in}_{k_out}",
            kind="linear",
            type="Linear",
            macs=k_in * k_out,
            elements=k_out,
            in_elems=k_in,
            out_elems=k_out,
            weight_elems=k_in * k_out,
        )
        s.append(MicroBench(op=op, onnx_op="Gemm", in_shape=(1, k_in), attrs={"transB": 1}, weight_shape=(k_out, k_in)))
    return s


def build_graph(mb: MicroBench) -> bytes:
    """The single-op ONNX model, serialized (opset 18; seeded random weights)."""
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    inits, inputs = [], ["x"]
    if mb.weight_shape is not None:
        w = (rng.standard_normal(mb.weight_shape) * 0.05).astype(np.float32)
        inits.append(numpy_helper.from_array(w, "w"))
        inputs.append("w")
    if mb.second_shape is not None:
        inits.append(numpy_helper.from_array(rng.standard_normal(mb.second_shape).astype(np.float32), "b"))
        inputs.append("b")
    node = helper.make_node(mb.onnx_op, inputs, ["y"], **mb.attrs)
    graph = helper.make_graph(
        [node],
        mb.op.name,
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(mb.in_shape))],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    return model.SerializeToString()


def _identity() -> bytes:
    from onnx import TensorProto, helper

    node = helper.make_node("Identity", ["x"], ["y"])
    graph = helper.make_graph(
        [node],
        "empty",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)]).SerializeToString()


def time_graph(
    blob: bytes,
    shape: tuple[int, ...],
    *,
    threads: int,
    warmup: int,
    iters: int,
    min_time_s: float,
    dtype: str = "float32",
) -> float:
    """p50 seconds of one ORT ``run`` of the serialized graph on a seeded input."""
    from edgecnn.runtime.ort_session import ort_session
    from edgecnn.runtime.timing import time_call

    sess = ort_session(blob, threads=threads)
    rng = np.random.default_rng(1)
    arr = rng.integers(0, 256, size=shape).astype(dtype) if dtype == "uint8" else rng.standard_normal(shape)
    x = {sess.get_inputs()[0].name: arr.astype(dtype)}
    stats = time_call(lambda: sess.run(None, x), warmup=warmup, iters=iters, min_time_s=min_time_s)
    return stats["p50_ms"] / 1e3


def empty_call_s(*, threads: int, warmup: int = 5, iters: int = 30, min_time_s: float = 0.05) -> float:
    """p50 seconds of ORT running an empty graph (an Identity): the per-inference overhead every model pays."""
    return time_graph(_identity(), (1, 8), threads=threads, warmup=warmup, iters=iters * 3, min_time_s=min_time_s)


def measure_suite(
    suite: list[MicroBench],
    *,
    threads: int,
    warmup: int = 5,
    iters: int = 30,
    min_time_s: float = 0.05,
    progress: Callable[[str], None] | None = None,
) -> tuple[float, list[tuple[Op, float]]]:
    """(empty-call seconds, [(op, seconds above the empty call)]) measured here."""
    base = empty_call_s(threads=threads, warmup=warmup, iters=iters, min_time_s=min_time_s)
    points = []
    for i, mb in enumerate(suite):
        if progress:
            progress(f"[{i + 1}/{len(suite)}] {mb.op.name}")
        t = time_graph(build_graph(mb), mb.in_shape, threads=threads, warmup=warmup, iters=iters, min_time_s=min_time_s)
        points.append((mb.op, max(t - base, 1e-7)))
    return base, points


@dataclass(frozen=True, kw_only=True)
class Fit:
    efficiency: dict[str, float]
    memory_efficiency: float
    cache_bandwidth_gbs: float
    layer_overhead_us: float
    model_overhead_us: float
    median_abs_error: float
    residuals: dict[str, float]
    l2_bandwidth_gbs: float | None = None
    fused: tuple[str, ...] = ()  # fusible kinds the fit found free (folded into their producer by the runtime)
    element_ns: dict[str, float] = field(default_factory=dict)  # per kind: ns per output element (0: not fitted)
    fused_activation_ns: float = 0.0  # per element of an activation fused into its conv


def _memory_s(
    ops: list[Op], bandwidth_gbs: float, cache_bw_gbs: float, cache_bytes: float, mem_eff: float
) -> np.ndarray:
    nbytes = np.array([op.bytes("fp32") for op in ops])
    bw = np.where(nbytes <= cache_bytes, cache_bw_gbs, bandwidth_gbs)
    return nbytes / (bw * 1e9 * mem_eff)


def fit_ops(
    points: list[tuple[Op, float]], base_s: float, *, peak_gops: float, bandwidth_gbs: float, prior: Profile
) -> Fit:
    """Grid search: for each (mem_eff, cache bandwidth, overhead), the best eff per kind; keep the combination with
    the least squared log error over all points."""
    effs = np.exp(np.linspace(math.log(0.002), math.log(1.0), 80))
    cache_bytes = prior.last_cache_bytes
    best: tuple[float, float, float, float, dict[str, float]] | None = None
    by_kind: dict[str, list[tuple[Op, float]]] = {k: [] for k in OP_KINDS}
    points = [(replace(op, kind=OPTIONAL_KINDS.get(op.kind, op.kind)), t) for op, t in points]
    for op, t in points:
        by_kind[op.kind].append((op, t))
    for mem_eff in np.linspace(0.1, 1.0, 10):
        for cache_mult in (1.0, 2.0, 4.0, 8.0, 16.0):
            for ovh_us in (0.0, 1.0, 2.0, 4.0, 8.0):
                total, chosen = 0.0, {}
                for kind, pts in by_kind.items():
                    if not pts:
                        chosen[kind] = prior.efficiency[kind]
                        continue
                    ops = [op for op, _ in pts]
                    work = np.array([op.work() for op in ops])
                    mem = _memory_s(ops, bandwidth_gbs, bandwidth_gbs * cache_mult, cache_bytes, float(mem_eff))
                    meas = np.log(np.array([t for _, t in pts]))
                    pred = np.maximum(work[None, :] / (peak_gops * 1e9 * effs[:, None]), mem[None, :]) + ovh_us * 1e-6
                    err = ((np.log(pred) - meas[None, :]) ** 2).sum(axis=1)
                    j = int(err.argmin())
                    total += float(err[j])
                    chosen[kind] = float(effs[j])
                if best is None or total < best[0]:
                    best = (total, float(mem_eff), bandwidth_gbs * cache_mult, ovh_us, chosen)
    assert best is not None
    _, mem_eff, cache_bw, ovh_us, chosen = best
    ops = [op for op, _ in points]
    mem = _memory_s(ops, bandwidth_gbs, cache_bw, cache_bytes, mem_eff)
    residuals = {}
    for (op, t), m in zip(points, mem, strict=True):
        pred = max(op.work() / (peak_gops * 1e9 * chosen[op.kind]), float(m)) + ovh_us * 1e-6
        residuals[op.name] = pred / t - 1
    return Fit(
        efficiency=chosen,
        memory_efficiency=mem_eff,
        cache_bandwidth_gbs=cache_bw,
        layer_overhead_us=ovh_us,
        model_overhead_us=base_s * 1e6,
        median_abs_error=float(np.median(np.abs(list(residuals.values())))),
        residuals=residuals,
    )


def graph_factor(
    models: list[str],
    resolution: int,
    profile: Profile,
    *,
    threads: int,
    iters: int,
    progress: Callable[[str], None] | None = None,
) -> tuple[float, dict[str, float]]:
    """Whole-model correction: geometric mean of measured / predicted ORT latency over ``models`` (random init,
    exported with the bundle exporter's ONNX path). Use a resolution other than the one you validate at."""
    import tempfile

    import torch

    from edgecnn.bench.estimate import estimate_model
    from edgecnn.models import create_model
    from edgecnn.onnx_graph.torch_export import export_onnx

    ratios: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="edgecnn-fit-") as tmp:
        for name in models:
            if progress:
                progress(f"whole model {name} @ {resolution}")
            torch.manual_seed(0)
            net = create_model(name).eval()
            path = export_onnx(
                net, torch.zeros(1, 3, resolution, resolution), Path(tmp) / f"{name}.onnx", opset=18, dynamic_batch=None
            )
            measured = time_graph(
                path.read_bytes(),
                (1, 3, resolution, resolution),
                threads=threads,
                warmup=5,
                iters=iters,
                min_time_s=0.5,
            )
            predicted = estimate_model(name, profile, precision="fp32", resolution=resolution).total_ms / 1e3
            ratios[name] = measured / predicted
    return float(np.exp(np.mean(np.log(list(ratios.values()))))), ratios


def write_profile(
    path: Path,
    prior: Profile,
    result: Fit,
    *,
    threads: int,
    peak_gops: float,
    cpu: str,
    points: int,
    contended: bool,
    factor: float = 1.0,
    factor_models: str = "",
    int8: dict[str, float] | None = None,
    int8_fused: tuple[str, ...] | None = None,
    int8_estimator: dict[str, Any] | None = None,
    method: str | None = None,
    int8_element_ns: dict[str, float] | None = None,
) -> Path:
    """A complete profile TOML (strict schema) whose efficiencies and overheads are the fitted ones;
    ``int8_estimator``: the int8 fit's own ``[estimator]`` keys (``float_ops_int8``, ``layer_overhead_us_int8``)."""
    from edgecnn.profiles.loader import now_iso

    def fmt(v: Any) -> str:
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, (int, float)):
            return repr(round(float(v), 6)) if isinstance(v, float) else str(v)
        if isinstance(v, list):
            return "[" + ", ".join(fmt(x) for x in v) + "]"
        return '"' + str(v).replace("\\", "\\\\").replace('"', '\\"') + '"'

    name = f"local-{prior.name}-t{threads}"
    scale = threads / (prior.cores or threads)
    lines = [
        f"# Fitted by `edgecnn profile fit` on {cpu} ({threads} threads), {now_iso()}.",
        "schema_version = 1",
        f"name = {fmt(name)}",
        f"description = {fmt(f'{cpu}, {threads} threads, efficiencies fitted to ONNX Runtime micro-benchmarks')}",
        f"kind = {fmt(prior.kind)}",
        'default_target = "onnx"',
        'default_device = "cpu"',
        f"precisions = [{', '.join(fmt(p) for p in prior.precisions)}]",
        f"cores = {threads}",
    ]
    if prior.clock_ghz:
        lines.append(f"clock_ghz = {fmt(float(prior.clock_ghz))}")
    lines += ["", "[peak_gops]", *[f"{k} = {fmt(v * scale)}" for k, v in prior.peak_gops.items()]]
    lines += ["", "[memory]", *[f"{k} = {fmt(v)}" for k, v in prior.memory.items()]]
    lines += ["", "[caches]", *[f"{k} = {fmt(v)}" for k, v in prior.caches.items()]]
    lines += ["", "[efficiency]", *[f"{k} = {fmt(v)}" for k, v in result.efficiency.items()]]
    if int8:
        lines += ["", "[efficiency_int8]", *[f"{k} = {fmt(v)}" for k, v in int8.items()]]
    if result.element_ns:
        lines += ["", "[element_ns]", *[f"{k} = {fmt(v)}" for k, v in result.element_ns.items()]]
    if int8_element_ns:
        lines += ["", "[element_ns_int8]", *[f"{k} = {fmt(v)}" for k, v in int8_element_ns.items()]]
    est = {
        "memory_efficiency": result.memory_efficiency,
        "cache_bandwidth_gbs": result.cache_bandwidth_gbs,
        **({"l2_bandwidth_gbs": result.l2_bandwidth_gbs} if result.l2_bandwidth_gbs else {}),
        "layer_overhead_us": float(result.layer_overhead_us),
        "model_overhead_us": result.model_overhead_us,
        "error_band": max(0.2, 2 * result.median_abs_error),
        "fused_activations": prior.estimator["fused_activations"],
        "graph_factor": factor,
        **({"fused_activation_ns": result.fused_activation_ns} if result.fused_activation_ns else {}),
        **({"fused_kinds": list(result.fused)} if result.fused or int8_fused is not None else {}),
        **({"fused_kinds_int8": list(int8_fused)} if int8_fused is not None else {}),
        **(int8_estimator or {}),
    }
    lines += ["", "[estimator]", *[f"{k} = {fmt(v)}" for k, v in est.items()]]
    cal = {
        "base": prior.name,
        "created": now_iso(),
        "method": method or f"onnxruntime fp32 single-op micro-benchmarks ({points} graphs), log-space grid fit",
        "threads": threads,
        "points": points,
        "median_abs_error": result.median_abs_error,
        "cpu": cpu,
        "backend": "onnxruntime",
        "contended": contended,
        "models": factor_models,
    }
    lines += ["", "[calibration]", *[f"{k} = {fmt(v)}" for k, v in cal.items()]]
    src = {
        "peak_gops": f"from profile {prior.name} scaled to {threads} of its {prior.cores} cores: "
        + prior.sources.get("peak_gops", "see the base profile"),
        "memory": f"from profile {prior.name}: {prior.sources.get('memory', 'see base profile')}",
        "caches": f"from profile {prior.name}: {prior.sources.get('caches', 'see base profile')}",
        "efficiency": f"fitted here: {method or f'{points} ONNX Runtime single-op micro-benchmarks'} "
        "(edgecnn.bench.fit_profile)",
        **(
            {
                "efficiency_int8": "fitted here: ONNX Runtime QDQ (u8 activations, s8 per-channel weights) "
                "micro-benchmarks of the same suite (edgecnn.bench.fit_blocks / fit_int8)"
            }
            if int8
            else {}
        ),
        **(
            {"element_ns": "fitted here, with the efficiencies: each kind's cost per output element"}
            if result.element_ns
            else {}
        ),
        **({"element_ns_int8": "fitted here, with the int8 efficiencies"} if int8_element_ns else {}),
        "estimator": "fitted here: memory efficiency and per-kernel overhead from the same fit (int8: its own "
        "per-kernel overhead); model overhead = measured empty-graph call; graph_factor = measured/predicted geometric "
        "mean over calibration.models; float_ops_int8 = ops the int8 chains ran in float between Q/DQ in ONNX "
        "Runtime's optimized graphs; fused_activation_ns = per element of an activation fused into its conv, fitted "
        "with the rest; fused_kinds = kinds whose chains ran no kernel of their own (profiled)",
    }
    lines += ["", "[sources]", *[f"{k} = {fmt(v)}" for k, v in src.items()]]
    text = "\n".join(lines) + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    from edgecnn.profiles import load_profile_file

    load_profile_file(tmp)  # the file we write must pass our own schema before it replaces anything
    tmp.replace(path)
    return path
