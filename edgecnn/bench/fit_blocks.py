"""Block-level profile fit for ``edgecnn profile fit`` (the default suite).

Single-op graphs mis-time what a runtime does inside a model: ONNX Runtime keeps conv chains in its blocked NCHWc
layout and fuses activations, so a lone Conv pays layout reorders a model never pays (and a lone QDQ op has no
neighbours to fuse with). Kernel-level latency predictors therefore calibrate on the fused units a runtime actually
runs (Zhang et al., "nn-Meter", MobiSys 2021, §4). edgecnn does the same with its own building blocks:

* each point is a short chain of edgecnn layers — inverted residuals of every family (ReLU6; SiLU + SE;
  hard-swish + SE), depthwise-separable pairs, stems, heads, dense-conv and fully connected stacks — at stage
  shapes typical of mobile CNNs, **synthetic** (no zoo model is among them, so validating on the zoo is honest);
* it is exported with the bundle exporter's own ONNX path (and, for int8, quantized with the bundle quantizer's
  own ONNX Runtime QDQ settings), so the graph patterns are those of real bundles;
* its op list comes from the estimator's own walk (:func:`edgecnn.bench.roofline.model_ops`), so any systematic
  bias in how ops are counted is absorbed by the fit rather than left in the prediction;
* the fit is the estimator's roofline summed over the chain — one efficiency per op kind, a shared memory
  efficiency, cache bandwidth and per-op overhead — minimising squared log error (coordinate descent on log grids).
"""

from __future__ import annotations

import itertools
import math
import shutil
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgecnn.bench.fit_profile import Fit, time_graph
from edgecnn.bench.kernel_kinds import KindTimes, kind_times
from edgecnn.bench.roofline import Op, fold_activations, int8_view, memory_time_s, model_ops, weights_resident
from edgecnn.profiles import FUSIBLE_KINDS, OP_KINDS, OPTIONAL_KINDS

CHAIN_EXTRA = 1  # stride-1 repeats after a stage's first block: stage-like chains, as in the zoo
OVERHEAD_GRID_US = (0.0, 0.5, 1.0, 2.0, 3.0, 4.0, 6.0, 8.0, 12.0, 16.0)  # per-kernel dispatch cost searched
ACTIVATION_NS_GRID = (0.0, 0.05, 0.1, 0.15, 0.2, 0.3, 0.45)  # per element of a fused activation, searched
ELEMENT_NS_GRID = (0.0, 0.02, 0.05, 0.1, 0.15, 0.2, 0.3, 0.45, 0.7, 1.0, 1.5, 2.5)  # per-output-element cost searched


@dataclass(frozen=True, kw_only=True)
class BlockBench:
    """One point of the fit: ``build()`` gives the torch module, run on 1×``in_chs``×``res``×``res``."""

    name: str
    build: Callable[[], object]
    in_chs: int
    res: int


def _mbconv_stage(family: str, c_in: int, c_out: int, res: int, stride: int, k: int, expand: int) -> BlockBench:
    def build():  # noqa: ANN202
        from torch import nn

        from edgecnn.layers.activations import Act
        from edgecnn.layers.blocks import InvertedResidual, SESpec

        act = {"relu6": Act.RELU6, "silu": Act.SILU, "hswish": Act.HARDSWISH}[family]

        def block(ci: int, s: int) -> nn.Module:
            mid = ci * expand
            se = None
            if family == "silu":
                se = SESpec(rd_chs=max(1, ci // 4), act=Act.SILU, gate=Act.SIGMOID)
            elif family == "hswish":
                se = SESpec(rd_chs=max(8, mid // 4), act=Act.RELU, gate=Act.HARDSIGMOID)
            return InvertedResidual(ci, c_out, k, mid_chs=mid, stride=s, act=act, se=se)

        return nn.Sequential(block(c_in, stride), *[block(c_out, 1) for _ in range(CHAIN_EXTRA)])

    return BlockBench(
        name=f"mb-{family}-k{k}e{expand}-{c_in}x{c_out}@{res}s{stride}", build=build, in_chs=c_in, res=res
    )


def _separable_stage(c_in: int, c_out: int, res: int, stride: int) -> BlockBench:
    def build():  # noqa: ANN202
        from torch import nn

        from edgecnn.layers.activations import Act
        from edgecnn.layers.blocks import DepthwiseSeparable

        return nn.Sequential(
            DepthwiseSeparable(c_in, c_out, 3, stride=stride, act=Act.RELU),
            *[DepthwiseSeparable(c_out, c_out, 3, act=Act.RELU) for _ in range(CHAIN_EXTRA)],
        )

    return BlockBench(name=f"sep-{c_in}x{c_out}@{res}s{stride}", build=build, in_chs=c_in, res=res)


def _stem(act_name: str, c_out: int, res: int) -> BlockBench:
    def build():  # noqa: ANN202
        from torch import nn

        from edgecnn.layers.activations import Act
        from edgecnn.layers.conv_bn_act import ConvBNAct

        act = {"relu6": Act.RELU6, "silu": Act.SILU, "hswish": Act.HARDSWISH}[act_name]
        return nn.Sequential(ConvBNAct(3, c_out, 3, stride=2, act=act))

    return BlockBench(name=f"stem-{act_name}-{c_out}@{res}", build=build, in_chs=3, res=res)


def _head(c_in: int, c_mid: int, hidden: int | None, classes: int, res: int) -> BlockBench:
    def build():  # noqa: ANN202
        from torch import nn

        from edgecnn.layers.activations import Act
        from edgecnn.layers.conv_bn_act import ConvBNAct

        layers: list[nn.Module] = [ConvBNAct(c_in, c_mid, 1, act=Act.RELU6), nn.AdaptiveAvgPool2d(1), nn.Flatten()]
        if hidden:
            layers += [nn.Linear(c_mid, hidden), nn.Hardswish()]
        layers.append(nn.Linear(hidden or c_mid, classes))
        return nn.Sequential(*layers)

    return BlockBench(name=f"head-{c_in}x{c_mid}x{hidden or 0}x{classes}@{res}", build=build, in_chs=c_in, res=res)


def _dense_stack(res: int) -> BlockBench:
    """Large-kernel dense convs with max pooling (classic CNN trunk), shapes unlike any zoo model's."""

    def build():  # noqa: ANN202
        from torch import nn

        return nn.Sequential(
            nn.Conv2d(3, 48, 7, stride=2, padding=3),
            nn.ReLU(),
            nn.MaxPool2d(3, 2),
            nn.Conv2d(48, 128, 5, padding=2),
            nn.ReLU(),
            nn.MaxPool2d(3, 2),
            nn.Conv2d(128, 256, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(256, 192, 3, padding=1),
            nn.ReLU(),
        )

    return BlockBench(name=f"dense-stack@{res}", build=build, in_chs=3, res=res)


def _fc_stack(c: int, res: int, hidden: int) -> BlockBench:
    def build():  # noqa: ANN202
        from torch import nn

        return nn.Sequential(
            nn.MaxPool2d(3, 2),
            nn.Flatten(),
            nn.Linear(c * ((res - 3) // 2 + 1) ** 2, hidden),
            nn.ReLU(),
            nn.Linear(hidden, hidden),
            nn.ReLU(),
            nn.Linear(hidden, 1000),
        )

    return BlockBench(name=f"fc-stack-{c}@{res}x{hidden}", build=build, in_chs=c, res=res)


def block_suite() -> list[BlockBench]:
    """Stage shapes typical of mobile CNNs (channels, resolution, stride, kernel, expansion) for each block family."""
    stages = [  # c_in, c_out, res_in, stride, kernel, expansion
        (32, 16, 112, 1, 3, 1),
        (16, 24, 112, 2, 3, 6),
        (24, 24, 56, 1, 3, 6),
        (24, 40, 56, 2, 5, 6),
        (40, 80, 28, 2, 3, 6),
        (80, 112, 14, 1, 5, 6),
        (112, 160, 14, 2, 5, 6),
        (160, 320, 7, 1, 3, 6),
        (32, 32, 56, 1, 3, 4),
        (64, 64, 28, 1, 5, 3),
    ]
    suite = [_mbconv_stage(f, *s) for f in ("relu6", "silu", "hswish") for s in stages]
    suite += [_separable_stage(*s) for s in ((32, 64, 112, 1), (96, 192, 56, 2), (256, 256, 28, 1), (384, 768, 14, 2))]
    suite += [_stem(a, c, r) for a, c, r in (("relu6", 32, 192), ("silu", 40, 256), ("hswish", 16, 224))]
    suite += [_head(320, 1280, None, 1000, 7), _head(96, 576, 1024, 1000, 7), _head(192, 1536, None, 1000, 8)]
    suite += [_dense_stack(192), _fc_stack(192, 11, 3072)]
    return suite


def _export(bb: BlockBench, path: Path) -> list[Op]:
    """Export the block (seeded weights, BN statistics randomised so nothing folds to a trivial graph) → its ops."""
    import torch

    from edgecnn.models.synthetic import randomize_batchnorm
    from edgecnn.onnx_graph.torch_export import export_onnx

    torch.manual_seed(0)
    net = randomize_batchnorm(bb.build().eval())
    export_onnx(net, torch.zeros(1, bb.in_chs, bb.res, bb.res), path, opset=18, dynamic_batch=None)
    return model_ops(net, bb.res, in_chs=bb.in_chs)


def _quantize(fp32: Path, out: Path, bb: BlockBench) -> None:
    """The bundle quantizer's default ONNX settings (QDQ, u8 activations, s8 per-channel weights), after the same
    graph rewrites (a stem chain gets the space-to-depth stem an int8 bundle has)."""
    from edgecnn.quant.config import QuantConfig
    from edgecnn.quant.ort_ptq import ORT_CPU, preprocess_for_quant, quantize_qdq
    from edgecnn.quant.samples import SampleSet

    rng = np.random.default_rng(0)
    data = rng.standard_normal((8, bb.in_chs, bb.res, bb.res)).astype(np.float32)
    cfg = QuantConfig(calibration=SampleSet(data=data, source="calibrate: random blocks input"))
    rewritten = out.with_name(out.stem + "-fp32.onnx")
    shutil.copyfile(fp32, rewritten)
    ORT_CPU.prepare(rewritten)
    pre = preprocess_for_quant(rewritten, out.with_name(out.stem + "-pre.onnx"))
    quantize_qdq(pre, out, cfg, batch=1, scheme=ORT_CPU)


# ONNX op found in float between Q/DQ in an int8 graph → the PyTorch op types it stands for (ONNX Runtime's
# pre-processing inlines HardSwish as x·HardSigmoid(x), SiLU is exported as x·Sigmoid(x))
_FLOAT_ONNX_OPS = {
    "HardSigmoid": ("Hardsigmoid", "Hardswish"),
    "HardSwish": ("Hardswish",),
    "Sigmoid": ("Sigmoid", "SiLU"),
    "ReduceMean": ("AdaptiveAvgPool2d",),
    "GlobalAveragePool": ("AdaptiveAvgPool2d",),
}


def float_islands(optimized: object) -> set[str]:
    """PyTorch op types that an int8 graph, as ONNX Runtime optimized it, runs in float: a node reading a
    DequantizeLinear's output whose result feeds a QuantizeLinear (ONNX Runtime has no integer kernel for it)."""
    nodes = list(optimized.graph.node)  # type: ignore[attr-defined]
    made_by = {o: n.op_type for n in nodes for o in n.output}
    read_by: dict[str, set[str]] = {}
    for n in nodes:
        for i in n.input:
            read_by.setdefault(i, set()).add(n.op_type)
    out: set[str] = set()
    for n in nodes:
        if n.domain not in ("", "ai.onnx") or n.op_type not in _FLOAT_ONNX_OPS:
            continue
        if any(made_by.get(i) == "DequantizeLinear" for i in n.input) and "QuantizeLinear" in read_by.get(
            n.output[0], set()
        ):
            out.update(_FLOAT_ONNX_OPS[n.op_type])
    return out


def _optimized(path: Path, threads: int) -> object:
    """The graph ONNX Runtime runs for the model at ``path`` (its optimizer's output, as ``time_graph`` runs it)."""
    import onnx

    from edgecnn.runtime.ort_session import ort_session

    optimized = path.with_name(path.stem + "-optimized.onnx")
    ort_session(path, threads=threads, optimized_model=optimized)
    return onnx.load(str(optimized))


def measure_blocks(
    suite: list[BlockBench],
    *,
    threads: int,
    precisions: tuple[str, ...] = ("fp32", "int8"),
    warmup: int = 5,
    iters: int = 30,
    min_time_s: float = 0.1,
    base_s: float = 0.0,
    progress: Callable[[str], None] | None = None,
    float_ops: set[str] | None = None,
    kinds: dict[str, list[KindTimes]] | None = None,
    rounds: int = 1,
) -> dict[str, list[tuple[str, list[Op], float]]]:
    """{precision: [(block name, its ops, seconds above the empty call)]} measured here in ONNX Runtime.
    ``float_ops`` (if given) collects the op types the int8 chains ran in float (:func:`float_islands`);
    ``kinds`` (if given) gets, per precision and chain, its profiled kernel seconds and counts per op kind
    (:func:`edgecnn.bench.kernel_kinds.kind_times`) — what :func:`fit_blocks` fits each kind to. ``rounds``: every
    chain is timed once per round (the p50 of its calls), the rounds interleaved over the whole suite, and the
    fastest round kept: a shared host that slows down for minutes at a time (another tenant on the core) then
    leaves no chain timed only in its slow spell — the fit describes the machine unloaded, as `timeit` reasons."""
    out: dict[str, list[tuple[str, list[Op], float]]] = {p: [] for p in precisions}
    with tempfile.TemporaryDirectory(prefix="edgecnn-fit-blocks-") as tmp:
        graphs: list[tuple[str, str, list[Op], bytes, tuple[int, ...]]] = []
        for i, bb in enumerate(suite):
            if progress:
                progress(f"[block {i + 1}/{len(suite)}] {bb.name}")
            fp32 = Path(tmp) / f"b{i}.onnx"
            ops = _export(bb, fp32)
            shape = (1, bb.in_chs, bb.res, bb.res)
            for prec in precisions:
                path = fp32
                if prec == "int8":
                    path = Path(tmp) / f"b{i}-int8.onnx"
                    _quantize(fp32, path, bb)
                    if float_ops is not None:
                        float_ops |= float_islands(_optimized(path, threads))
                graphs.append((prec, bb.name, ops, path.read_bytes(), shape))
                if kinds is not None:
                    kinds.setdefault(prec, []).append(kind_times(path, shape, threads=threads))
        times: list[list[float]] = [[] for _ in graphs]
        for r in range(max(1, rounds)):
            if progress and rounds > 1:
                progress(f"[timing round {r + 1}/{rounds}]")
            for j, (_, _, _, blob, shape) in enumerate(graphs):
                times[j].append(
                    time_graph(blob, shape, threads=threads, warmup=warmup, iters=iters, min_time_s=min_time_s)
                )
        for (prec, name, ops, _, _), ts in zip(graphs, times, strict=True):
            out[prec].append((name, ops, max(min(ts) - base_s, 1e-7)))
    return out


def fit_blocks(
    points: list[tuple[str, list[Op], float]],
    base_s: float,
    *,
    precision: str,
    peak_gops: float,
    bandwidth_gbs: float,
    cache_bytes: float,
    l2_bytes: float = 0.0,
    fused_activations: bool = True,
    memory_from: Fit | None = None,
    fusible: tuple[str, ...] = FUSIBLE_KINDS,
    float_ops: Mapping[str, int] | None = None,
    own_overhead: bool = False,
    kinds: list[KindTimes] | None = None,
    sweeps: int = 4,
) -> Fit:
    """Fit the roofline summed over each chain to its measured time (squared log error). For each (memory
    efficiency, cache bandwidth, per-op overhead) on a grid, per-kind efficiencies by coordinate descent on a log
    grid; the best combination wins. A kind no point exercises keeps efficiency 1 (reported, never used). A fusible
    kind (``FUSIBLE_KINDS``) may also come out fused: costing nothing, as when the runtime folds it into its producer.
    ``memory_from``: reuse that fit's memory efficiency, cache bandwidth and overhead (a profile holds one set; the
    int8 efficiencies are fitted with the fp32 ones) — but with ``own_overhead`` fit the per-kernel overhead anew
    (int8 kernels have their own fixed cost). ``float_ops``: op types the runtime ran in float between Q/DQ → kernels
    per op; they are costed as :func:`edgecnn.bench.estimate.estimate_ops` costs them (their kind's efficiency on
    their passes, their traffic, a dispatch per kernel: :func:`edgecnn.bench.roofline.as_island`).

    ``kinds`` (per point, its profiled kernel seconds and counts per op kind, :func:`measure_blocks`): each kind is
    fitted to its own measured share of every chain (the chain's time split in proportion to the kinds' profiled
    kernel time, :func:`_kind_shares`), with a cost per output element beside its efficiency, and a fusible kind
    that runs no kernel of its own in most chains that hold it is fused. Without ``kinds`` only the chain totals
    constrain the kinds (kinds that always occur together, such as an SE block's pool, gate and activation, can then
    trade cost)."""
    # rows of a kind's table: (efficiency, ns per output element) pairs, efficiency-major; the per-element cost is
    # only identifiable from per-kind times, so without ``kinds`` it stays 0
    elem_grid = ELEMENT_NS_GRID if kinds is not None else (0.0,)
    effs = np.repeat(np.exp(np.linspace(math.log(0.001), math.log(1.0), 120)), len(elem_grid))
    elems = np.tile(np.array(elem_grid), len(effs) // len(elem_grid))
    meas = np.log(np.array([t for _, _, t in points]))
    chains = _Chains.build(
        points,
        precision=precision,
        cache_bytes=cache_bytes,
        fused_activations=fused_activations,
        float_ops=float_ops,
        compute_rows=(peak_gops, effs, elems),
    )
    act_grid = ACTIVATION_NS_GRID if kinds is not None and fused_activations and chains.acts.any() else (0.0,)
    shares = _kind_shares(kinds, np.exp(meas), chains.present) if kinds is not None else None
    if shares is not None:  # the chains' totals without their boundary kernels (see _kind_shares)
        inner = sum(shares.values(), np.zeros(len(points)))
        meas = np.where(inner > 0, np.log(np.maximum(inner, 1e-9)), meas)
    mem_grid, cache_grid, l2_grid, ovh_grid = _search_grids(bandwidth_gbs, l2_bytes, memory_from, own_overhead)
    n_eff = len(effs)  # row n_eff of a fusible kind's table: fused into the op before it (no time, no overhead)
    start = (n_eff // 2) - (n_eff // 2) % len(elem_grid)  # mid-grid efficiency, no per-element cost
    best: tuple[float, dict[str, int], np.ndarray, dict[str, float]] | None = None
    for mem_eff, cache_mult, l2_mult, act_ns in itertools.product(mem_grid, cache_grid, l2_grid, act_grid):
        cache_gbs = bandwidth_gbs * cache_mult
        memory = dict(
            bandwidth_gbs=bandwidth_gbs,
            memory_efficiency=mem_eff,
            cache_bytes=cache_bytes,
            cache_bandwidth_gbs=cache_gbs,
            l2_bytes=l2_bytes,
            l2_bandwidth_gbs=None if l2_mult is None else cache_gbs * l2_mult,
        )
        table = chains.kind_tables(memory, act_ns, n_eff, fusible)
        for ovh_us in ovh_grid:
            tab = chains.with_overhead(table, ovh_us, n_eff)
            g, free, kind_err = dict.fromkeys(chains.present, start), list(chains.present), 0.0
            if shares is not None:
                g, free, kind_err = _fit_kinds(tab, shares, chains.present, n_eff, fusible, start)
            _descend(g, free, tab, chains.present, meas, sweeps)
            pred = sum((tab[k][g[k]] for k in chains.present), np.zeros(len(points)))
            total = float(((np.log(pred) - meas) ** 2).sum()) + kind_err
            if best is None or total < best[0]:
                best = (total, g, pred, {**memory, "layer_overhead_us": ovh_us, "fused_activation_ns": act_ns})
    assert best is not None
    _, g, pred, params = best
    resid = {name: float(p / math.exp(m) - 1) for (name, _, _), p, m in zip(points, pred, meas, strict=True)}
    return _fit_result(g, (effs, elems if kinds is not None else None), params, resid, base_s)


def _fit_result(
    g: dict[str, int],
    rows: tuple[np.ndarray, np.ndarray | None],
    params: dict[str, Any],
    resid: dict[str, float],
    base_s: float,
) -> Fit:
    """The winning grid point as a :class:`Fit`: ``g`` the row per kind (row len(effs): fused), ``rows`` the
    efficiency and ns-per-element of each row (None: per-element cost not fitted), ``params`` the memory
    parameters, overhead and activation cost it was found at."""
    effs, elems = rows
    n_eff = len(effs)
    return Fit(
        efficiency={
            **{k: float(effs[g[k]]) if k in g else 1.0 for k in OP_KINDS},
            **{k: float(effs[g[k]]) for k in OPTIONAL_KINDS if k in g and g[k] < n_eff},
        },
        fused=tuple(k for k in g if g[k] == n_eff),
        element_ns={k: float(elems[r]) for k, r in g.items() if r < n_eff} if elems is not None else {},
        memory_efficiency=float(params["memory_efficiency"]),
        cache_bandwidth_gbs=float(params["cache_bandwidth_gbs"]),
        l2_bandwidth_gbs=None if params["l2_bandwidth_gbs"] is None else float(params["l2_bandwidth_gbs"]),
        layer_overhead_us=float(params["layer_overhead_us"]),
        fused_activation_ns=float(params["fused_activation_ns"]),
        model_overhead_us=base_s * 1e6,
        median_abs_error=float(np.median(np.abs(list(resid.values())))),
        residuals=resid,
    )


@dataclass(frozen=True, kw_only=True)
class _Chains:
    """The chains' costed ops flattened for the grid search: per op its chain, traffic and DRAM weight bytes, and per
    kind what no grid parameter but the activation cost changes — compute time on every (efficiency, per-element
    cost) row, kernel dispatches per chain, and which chain each op belongs to."""

    n_points: int
    present: list[str]  # op kinds some chain holds
    acts: np.ndarray  # per op: elements of the activations fused into it
    nbytes: np.ndarray  # per op: bytes moved
    dram_w: np.ndarray  # per op: weight bytes read from DRAM (chains whose traffic overflows the last cache)
    sels: dict[str, np.ndarray]  # kind → mask over the ops
    compute: dict[str, np.ndarray]  # kind → [row, op] compute seconds
    onehot: dict[str, np.ndarray]  # kind → [op, chain] membership
    count: dict[str, np.ndarray]  # kind → kernels per chain

    @classmethod
    def build(
        cls,
        points: list[tuple[str, list[Op], float]],
        *,
        precision: str,
        cache_bytes: float,
        fused_activations: bool,
        float_ops: Mapping[str, int] | None,
        compute_rows: tuple[float, np.ndarray, np.ndarray],
    ) -> _Chains:
        """``compute_rows``: (peak GOPS, efficiency per row, ns per output element per row)."""
        peak_gops, effs, elems = compute_rows
        # per point: ops that cost time (fused activations cost nothing, as in estimate_ops; float islands never fuse)
        islands = dict(float_ops or {})
        views = [int8_view(ops, islands) for _, ops, _ in points]  # an island is never fusable (as_island)
        costed = [fold_activations(ops) if fused_activations else ops for ops in views]
        flat = [(p, op) for p, c in enumerate(costed) for op in c]
        idx = np.array([p for p, _ in flat])
        op_kinds = np.array([op.kind for _, op in flat])
        work = np.array([op.work() for _, op in flat])
        outs = np.array([float(op.out_elems) for _, op in flat])
        # weights from DRAM where the chain's per-inference traffic overflows the last cache (as estimate_ops does)
        resident = [weights_resident(ops, precision, cache_bytes) for ops in views]
        present = [k for k in (*OP_KINDS, *OPTIONAL_KINDS) if (op_kinds == k).any()]
        nkern = np.array([float(op.kernels) for _, op in flat])  # dispatches per op (a float island pays several)
        sels = {k: op_kinds == k for k in present}
        return cls(
            n_points=len(points),
            present=present,
            acts=np.array([float(op.act_elems) for _, op in flat]),
            nbytes=np.array([op.bytes(precision) for _, op in flat]),
            dram_w=np.array([0.0 if resident[p] else op.weight_bytes(precision) for p, op in flat]),
            sels=sels,
            compute={
                k: work[s][None, :] / (peak_gops * 1e9 * effs[:, None]) + outs[s][None, :] * elems[:, None] * 1e-9
                for k, s in sels.items()
            },
            onehot={k: np.eye(len(points))[idx[s]] for k, s in sels.items()},
            count={k: np.bincount(idx[s], weights=nkern[s], minlength=len(points)) for k, s in sels.items()},
        )

    def kind_tables(
        self, memory: dict[str, Any], act_ns: float, n_eff: int, fusible: tuple[str, ...]
    ) -> dict[str, np.ndarray]:
        """{kind: [row, chain] seconds of the chain's ops of that kind} at these memory parameters; a fusible kind
        gets one more row, n_eff, all zeros: fused."""
        mem = np.array([memory_time_s(b, w, **memory) for b, w in zip(self.nbytes, self.dram_w, strict=True)])
        table = {}
        for k, sel in self.sels.items():
            t_ops = np.maximum(self.compute[k] + self.acts[sel][None, :] * act_ns * 1e-9, mem[sel][None, :])
            m = np.zeros((n_eff + (k in fusible), self.n_points))
            m[:n_eff] = t_ops @ self.onehot[k]
            table[k] = m
        return table

    def with_overhead(self, table: dict[str, np.ndarray], ovh_us: float, n_eff: int) -> dict[str, np.ndarray]:
        """The tables plus each kernel's dispatch cost (the fused row pays none)."""
        return {
            k: table[k] + np.where(np.arange(len(table[k])) < n_eff, ovh_us * 1e-6, 0.0)[:, None] * self.count[k]
            for k in self.present
        }


def _search_grids(
    bandwidth_gbs: float, l2_bytes: float, memory_from: Fit | None, own_overhead: bool
) -> tuple[Any, Any, tuple[float | None, ...], Any]:
    """(memory efficiency, cache / DRAM bandwidth, L2 / cache bandwidth, per-kernel overhead µs) values searched;
    with ``memory_from`` its memory parameters are held (and its overhead too, unless ``own_overhead``)."""
    mem_grid: Any = np.exp(np.linspace(math.log(0.05), 0.0, 14))
    cache_grid: Any = (1.0, 2.0, 4.0, 8.0, 16.0)
    ovh_grid: Any = OVERHEAD_GRID_US
    l2_grid: tuple[float | None, ...] = (None, 1.5, 2.0, 3.0, 4.0) if l2_bytes > 0 else (None,)
    if memory_from is not None:
        mem_grid = [memory_from.memory_efficiency]
        ovh_grid = OVERHEAD_GRID_US if own_overhead else (memory_from.layer_overhead_us,)
        cache_grid = [memory_from.cache_bandwidth_gbs / bandwidth_gbs]
        l2 = memory_from.l2_bandwidth_gbs
        l2_grid = (None if l2 is None else l2 / memory_from.cache_bandwidth_gbs,)
    return mem_grid, cache_grid, l2_grid, ovh_grid


def _descend(
    g: dict[str, int], free: list[str], tab: dict[str, np.ndarray], present: list[str], meas: np.ndarray, sweeps: int
) -> None:
    """Coordinate descent on the chain totals: each ``free`` kind in turn takes the row that, with the others held,
    minimises the squared log error; ``sweeps`` passes, ``g`` updated in place."""
    n_points = len(meas)
    for _ in range(sweeps if free else 0):
        for k in free:
            rest = sum((tab[j][g[j]] for j in present if j != k), np.zeros(n_points))
            err = ((np.log(rest[None, :] + tab[k]) - meas[None, :]) ** 2).sum(axis=1)
            g[k] = int(err.argmin())


def _kind_shares(measured: list[KindTimes], totals: np.ndarray, present: list[str]) -> dict[str, np.ndarray]:
    """{kind: its seconds in each chain}: the chain's (unprofiled) time above the empty call, split in proportion to
    the kinds' profiled kernel time. Only the proportions are taken from the profile: a profiled run and a timed
    run minutes apart on a shared host differ by ±20 % or more in total, and the profiler adds its own cost per
    kernel, so the profile's absolute sums (or the gap between them and the timed run) would be noise. The
    ``other`` kernels' share is dropped: in a chain they are its boundaries (quantizing / re-laying-out a whole
    feature map at the input, the same at the output), which a model pays once, on the image and the logits."""
    out = {k: np.zeros(len(totals)) for k in present}
    for p, ((secs, _), total) in enumerate(zip(measured, totals, strict=True)):
        ksum = sum(secs.values())
        for k, v in secs.items():
            if k in out and ksum > 0:
                out[k][p] = v * total / ksum
    return out


def _fit_kinds(
    tab: dict[str, np.ndarray],
    shares: dict[str, np.ndarray],
    present: list[str],
    n_eff: int,
    fusible: tuple[str, ...],
    start: int,
) -> tuple[dict[str, int], list[str], float]:
    """Per kind, the efficiency row whose per-chain times best match the kind's measured shares (squared log
    error); a fusible kind whose chains mostly run no kernel of it → the fused row. → (rows, kinds no chain
    measured — left to the totals' fit, summed error)."""
    g: dict[str, int] = {}
    free: list[str] = []
    err_sum = 0.0
    for k in present:
        t = tab[k][:n_eff]
        held = t[0] > 0  # chains that hold ops of this kind (every row costs them something)
        m = shares[k]
        if k in fusible and held.any() and (m[held] <= 0).mean() > 0.5:
            g[k] = n_eff
            continue
        sel = held & (m > 0)
        if not sel.any():
            g[k] = start
            free.append(k)
            continue
        err = ((np.log(t[:, sel]) - np.log(m[sel])[None, :]) ** 2).sum(axis=1)
        g[k] = int(err.argmin())
        err_sum += float(err[g[k]])
    return g, free, err_sum
