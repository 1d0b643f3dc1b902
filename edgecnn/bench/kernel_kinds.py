"""Measured time per estimator op kind: ONNX Runtime's kernels, profiled and classified into the kinds of
:mod:`edgecnn.bench.roofline`.

Fitting a roofline to whole-chain times alone leaves kinds that always occur together (an SE block's pooling,
gate and activation) free to trade cost between them: the sums fit, the parts do not, and a model with another mix
of them is mispredicted. Per-kernel times pin every kind on its own (nn-Meter, Zhang et al. MobiSys 2021, predicts
per kernel for the same reason). ORT's profiler (``SessionOptions.enable_profiling``) gives one ``Node`` event per
kernel, named after the node of the *optimized* graph (``optimized_model_filepath``); each node is classified by
its op type, attributes and neighbours there:

* convolutions — ``Conv`` (NCHWc too), ``FusedConv``, ``QLinearConv``: depthwise (group > 1), pointwise (1×1) or
  linear (a 1×1 conv on a 1×1 map: squeeze-excite's GEMVs), stem (a k×k conv reading the image, after a
  space-to-depth if any), else dense; ``SpaceToDepth`` belongs to the stem;
* ``Gemm`` / ``QGemm`` / ``MatMul`` → linear; pools and spatial means → pooling; ``Add`` / ``QLinearAdd`` → add;
* the SE gate (a ``Sigmoid`` / ``HardSigmoid`` on a 1×1 map, the broadcast ``Mul`` that applies it) → gate;
* SiLU (``QuickGelu``, or a ``Sigmoid`` and the ``Mul`` by it) → swish; hard-swish (``HardSwish``, or a
  ``HardSigmoid`` and the ``Mul`` by it) → hardswish;
* a ``DequantizeLinear`` / ``QuantizeLinear`` takes the kind of the float op it feeds / reads (a float island's
  passes), an NCHWc ``Reorder*`` that of the op it serves;
* the rest (the model's input quantize, transposes and reorders at its boundaries, reshapes) → ``other``.
"""

from __future__ import annotations

import json
import math
import tempfile
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

OTHER = "other"
KindTimes = tuple[dict[str, float], dict[str, int]]  # ({kind: seconds per inference}, {kind: kernels per inference})
_CONV = {"Conv", "FusedConv", "QLinearConv", "ConvInteger"}
_GEMM = {"Gemm", "FusedGemm", "QGemm", "MatMul", "FusedMatMul", "MatMulInteger", "QLinearMatMul"}
_POOL = {
    "MaxPool",
    "AveragePool",
    "GlobalAveragePool",
    "GlobalMaxPool",
    "QLinearGlobalAveragePool",
    "QLinearAveragePool",
    "ReduceMean",
    "ReduceMax",
}
_ADD = {"Add", "QLinearAdd", "Sum"}
_MUL = {"Mul", "QLinearMul"}
_SIGMOID = {"Sigmoid", "QLinearSigmoid"}
_SWISH = {"QuickGelu", "Gelu", "FastGelu", "BiasGelu"}
_QDQ = {"QuantizeLinear", "DequantizeLinear"}
_REORDER = {"ReorderInput", "ReorderOutput"}
_CONV_KINDS = ("depthwise", "pointwise", "linear", "stem", "dense")  # what classify makes of a convolution
_PASS = _QDQ | _REORDER | {"Transpose", "SpaceToDepth", "Reshape", "Flatten", "Identity"}  # walked through


def _attrs(node: Any) -> dict[str, Any]:
    import onnx

    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


def _numel(shape: list[int] | None) -> int:
    return math.prod(shape) if shape else 0


def _one_by_one(shape: list[int] | None) -> bool:
    """A [1, C, 1, 1]-like tensor (a pooled map, either layout) or a [1, C] vector."""
    return bool(shape) and len(shape) >= 2 and _numel(shape) == max(shape)


def classify(
    graph: Any, out_shapes: dict[str, list[int]], in_shapes: dict[str, list[list[int]]] | None = None
) -> dict[str, str]:
    """Node name → op kind (or ``other``) for every node of ORT's optimized ``graph``; ``out_shapes`` / ``in_shapes``:
    node name → its first output's shape / its inputs' shapes, as the profiler recorded them (they tell a 1×1 map
    from a full one, a broadcast multiply from an element-wise one)."""
    in_shapes = in_shapes or {}
    nodes = list(graph.node)
    producer = {o: n for n in nodes for o in n.output}
    consumers: dict[str, list[Any]] = defaultdict(list)
    for n in nodes:
        for i in n.input:
            consumers[i].append(n)
    graph_inputs = {i.name for i in graph.input}

    def reads_image(n: Any) -> bool:
        x = n.input[0] if n.input else ""
        for _ in range(8):
            if x in graph_inputs:
                return True
            p = producer.get(x)
            if p is None or p.op_type not in _PASS:
                return False
            x = p.input[0]
        return False

    def source(tensor: str) -> Any:
        """The compute node behind ``tensor``, through Q/DQ pairs."""
        p = producer.get(tensor)
        while p is not None and p.op_type in _QDQ:
            p = producer.get(p.input[0])
        return p

    kinds: dict[str, str] = {}
    for n in nodes:
        t, shape = n.op_type, out_shapes.get(n.name)
        if t in _CONV:
            a = _attrs(n)
            k = list(a.get("kernel_shape") or [])
            if int(a.get("group", 1)) > 1:
                kinds[n.name] = "depthwise"
            elif k and all(v == 1 for v in k):
                kinds[n.name] = "linear" if _one_by_one(shape) else "pointwise"
            else:
                kinds[n.name] = "stem" if reads_image(n) else "dense"
        elif t == "SpaceToDepth":
            kinds[n.name] = "stem"
        elif t in _GEMM:
            kinds[n.name] = "linear"
        elif t in _POOL:
            kinds[n.name] = "pooling"
        elif t in _ADD:
            kinds[n.name] = "add"
        elif t in _SWISH:
            kinds[n.name] = "swish"
        elif t == "HardSwish":
            kinds[n.name] = "hardswish"
        elif t in _SIGMOID or t == "HardSigmoid":
            if _one_by_one(shape):
                kinds[n.name] = "gate"
            else:
                kinds[n.name] = "swish" if t in _SIGMOID else "hardswish"
        elif t in _MUL:
            pick = (0, 3) if t == "QLinearMul" else (0, 1)
            operands = [n.input[i] for i in pick if i < len(n.input)]
            ins = in_shapes.get(n.name) or []
            sizes = {_numel(ins[i]) for i in pick if i < len(ins)}
            srcs = [source(x) for x in operands]
            if len(sizes) > 1 or any(s is not None and kinds.get(s.name) == "gate" for s in srcs):
                kinds[n.name] = "gate"
            elif any(s is not None and s.op_type in _SIGMOID for s in srcs):
                kinds[n.name] = "swish"
            elif any(s is not None and s.op_type == "HardSigmoid" for s in srcs):
                kinds[n.name] = "hardswish"
            else:
                kinds[n.name] = "elementwise"
    # float-island passes and layout reorders: the kind of the compute node they serve
    for n in nodes:
        if n.op_type == "DequantizeLinear":
            near = [c for c in consumers.get(n.output[0], []) if c.name in kinds and c.op_type not in _CONV]
            kinds[n.name] = kinds[near[0].name] if near else OTHER
        elif n.op_type == "QuantizeLinear":
            p = producer.get(n.input[0])
            kinds[n.name] = kinds.get(p.name, OTHER) if p is not None and p.op_type not in _PASS else OTHER
    graph_outputs = {o.name for o in graph.output}
    for n in nodes:
        if n.op_type not in _REORDER:
            continue
        if n.input[0] in graph_inputs or n.output[0] in graph_outputs:
            kinds[n.name] = OTHER  # the model's boundary: re-laying-out its input / output
            continue
        near = [c for c in consumers.get(n.output[0], []) if c.op_type not in _REORDER]
        p = producer.get(n.input[0])
        if n.op_type == "ReorderInput" and p is not None and kinds.get(p.name) not in (None, *_CONV_KINDS):
            kinds[n.name] = kinds[p.name]
            continue
        cands = [kinds.get(c.name) for c in near if kinds.get(c.name)]
        kinds[n.name] = "gate" if "gate" in cands else (cands[0] if cands else OTHER)
    for n in nodes:
        kinds.setdefault(n.name, OTHER)
    return kinds


_INFLATION: dict[int, float] = {}


def profiler_inflation_s(threads: int, *, nodes: int = 60) -> float:
    """Seconds ORT's profiler adds to every kernel event it records: a chain of ``nodes`` Adds on an 8-element
    tensor, its median recorded kernel time minus its unprofiled time per node (here ~4 µs recorded for a kernel
    that takes ~0.7 µs with its dispatch). Without this correction a model's small kernels (squeeze-excite GEMVs,
    gates, pools on 1×1 maps) look several times slower than they run. Measured once per process."""
    if threads in _INFLATION:
        return _INFLATION[threads]
    from onnx import TensorProto, helper

    from edgecnn.runtime.ort_session import ort_session
    from edgecnn.runtime.timing import time_call

    chain = [helper.make_node("Add", [f"t{i}", "c"], [f"t{i + 1}"]) for i in range(nodes)]
    graph = helper.make_graph(
        chain,
        "inflation",
        [helper.make_tensor_value_info("t0", TensorProto.FLOAT, [1, 8])],
        [helper.make_tensor_value_info(f"t{nodes}", TensorProto.FLOAT, [1, 8])],
        [helper.make_tensor("c", TensorProto.FLOAT, [1, 8], [1.0] * 8)],
    )
    blob = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)]).SerializeToString()
    feeds = {"t0": np.zeros((1, 8), np.float32)}
    with tempfile.TemporaryDirectory(prefix="edgecnn-inflation-") as tmp:
        out = []
        for profiled in (False, True):
            # optimize=False keeps the 60 nodes
            sess = ort_session(blob, threads=threads, optimize=False, profile_dir=Path(tmp) if profiled else None)
            if not profiled:
                stats = time_call(lambda s=sess: s.run(None, feeds), warmup=50, iters=300, min_time_s=0.05)
                out.append(stats["p50_ms"])
                continue
            for _ in range(100):
                sess.run(None, feeds)
            trace = json.loads(Path(sess.end_profiling()).read_text())
            durs = [e["dur"] for e in trace if e.get("cat") == "Node" and e["name"].endswith("_kernel_time")]
            out.append(float(np.median(durs)) * 1e-3 if durs else 0.0)
    plain_per_node_ms, recorded_ms = out[0] / nodes, out[1]
    _INFLATION[threads] = max(0.0, recorded_ms - plain_per_node_ms) * 1e-3
    return _INFLATION[threads]


def kind_times(
    model: bytes | Path, shape: tuple[int, ...], *, threads: int, warmup: int = 3, runs: int = 10
) -> KindTimes:
    """({kind: seconds per inference of its kernels}, {kind: kernels per inference}) of ``model`` on ONNX Runtime's
    CPU execution provider, from ``runs`` profiled inferences after ``warmup``; each kernel's recorded time less
    the profiler's own cost per event (:func:`profiler_inflation_s`; at least a tenth of the recorded time stays)."""
    inflation_us = profiler_inflation_s(threads) * 1e6
    import onnx

    from edgecnn.runtime.ort_session import ort_session

    with tempfile.TemporaryDirectory(prefix="edgecnn-kinds-") as tmp:
        optimized = Path(tmp) / "optimized.onnx"
        sess = ort_session(model, threads=threads, profile_dir=Path(tmp), optimized_model=optimized)
        x = np.random.default_rng(1).standard_normal(shape).astype(np.float32)
        feeds = {sess.get_inputs()[0].name: x}
        for _ in range(warmup + runs):
            sess.run(None, feeds)
        trace = json.loads(Path(sess.end_profiling()).read_text())
        graph = onnx.load(str(optimized), load_external_data=False).graph
    starts = sorted(e["ts"] for e in trace if e.get("name") == "model_run")
    first = starts[warmup] if len(starts) > warmup else 0
    events = [
        e for e in trace if e.get("cat") == "Node" and e.get("name", "").endswith("_kernel_time") and e["ts"] >= first
    ]
    out_shapes, in_shapes = {}, {}
    for e in events:
        name, args = e["name"][: -len("_kernel_time")], e.get("args", {})
        outs = args.get("output_type_shape") or []
        if outs:
            out_shapes[name] = next(iter(outs[0].values()))
        in_shapes[name] = [next(iter(d.values()), []) for d in args.get("input_type_shape") or []]
    kinds = classify(graph, out_shapes, in_shapes)
    acc: dict[str, float] = defaultdict(float)
    count: dict[str, int] = defaultdict(int)
    for e in events:
        k = kinds.get(e["name"][: -len("_kernel_time")], OTHER)
        acc[k] += max(e["dur"] - inflation_us, 0.1 * e["dur"]) * 1e-6
        count[k] += 1
    n = max(1, len(starts) - warmup)
    return {k: v / n for k, v in acc.items()}, {k: round(v / n) for k, v in count.items()}
