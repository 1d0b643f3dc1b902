"""A model as a list of costed ops, and the roofline time of one op on a profile.

Roofline (Williams, Waterman & Patterson, "Roofline: an insightful visual performance model", CACM 2009): an op
takes at least ``ops / (peak × efficiency[kind])`` (+ a calibrated cost per output element) and at least ``bytes /
(bandwidth × memory_efficiency)``; the larger bound wins, plus a fixed per-kernel dispatch cost. Op kinds follow the
ceilings that differ most on real hardware: dense k×k conv, pointwise 1×1 conv, depthwise conv (MobileNets'
separable split: Howard et al. 2017 §3.1 — few MACs per byte, so memory-bound), pooling, elementwise (activations
that do not fuse, residual adds, SE multiplies, padding), and linear (fully connected: weight-bandwidth-bound at
batch 1). Four elementwise ops that runtimes treat very differently get optional kinds of their own, which fall back
to ``elementwise`` on a profile without them: ``swish`` (SiLU/GELU: a transcendental per element; ONNX Runtime runs
it as a separate QuickGelu pass), ``hardswish`` (piecewise linear; fuses into the conv on most runtimes at fp32),
``add`` (the residual add; ONNX Runtime's NCHWc conv absorbs it at fp32) and ``gate`` (the SE channel multiply: a
broadcast, and on ONNX Runtime two layout reorders around it). A calibrated profile fits each, or marks it fused
(costing nothing) at a precision.

The ops come from the forward-hook walk that :mod:`edgecnn.analysis.static` also reads (:mod:`edgecnn.analysis.walk`;
meta device, no weights), plus the functional ops that analysis does not count: the residual add of inverted
residuals and the SE multiply. BN is folded into the preceding conv by every exporter; ReLU/ReLU6/sigmoid-like gates
fuse into the conv on the runtimes edgecnn targets (ORT ``ConvActivationFusion``, OpenVINO, TensorRT), other
activations cost an elementwise pass.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from edgecnn.precision import BYTES

FUSABLE = ("ReLU", "ReLU6", "Hardsigmoid", "Sigmoid")
PADS = ("PadSame", "ZeroPad2d", "ConstantPad2d")
ACTIVATIONS = ("ReLU", "ReLU6", "Hardsigmoid", "Sigmoid", "Hardswish", "SiLU", "GELU", "PReLU", "Tanh")
# Decoder ops: a resize reads 4 neighbours per output (bilinear; ONNX Resize), a pixel shuffle (DepthToSpace) only
# moves data (memory roof alone, like padding).
RESIZES = ("Resize", "Upsample")
SHUFFLES = ("PixelShuffle",)
ACTIVATION_KINDS = {"SiLU": "swish", "GELU": "swish", "Hardswish": "hardswish"}  # the rest: elementwise


@dataclass(frozen=True, kw_only=True)
class Op:
    """One costed op. ``macs`` for conv/linear; ``elements`` touched for the others; byte counts are per element
    width (multiply by the precision's bytes): activations in/out and weights."""

    name: str
    kind: str  # stem | dense | pointwise | depthwise | pooling | elementwise | linear | swish | hardswish | add | gate
    type: str
    macs: int
    elements: int
    in_elems: int
    out_elems: int
    weight_elems: int
    fusable: bool = False  # an activation that fuses into the preceding conv
    kernels: int = 1  # kernels the runtime launches for it (each pays the per-kernel overhead)
    island_bytes: float = 0.0  # run in float between Q/DQ at int8 (see as_island): its bytes, whatever the precision
    act_elems: int = 0  # elements of activations fused into this op's epilogue (see fold_activations)

    def work(self) -> float:
        """Operations: 2 per MAC for conv/linear, 1 per element otherwise."""
        return 2.0 * self.macs if self.macs else float(self.elements)

    def bytes(self, precision: str) -> float:
        if self.island_bytes:
            return self.island_bytes
        return float(BYTES[precision] * (self.in_elems + self.out_elems + self.weight_elems))

    def weight_bytes(self, precision: str) -> float:
        return float(BYTES[precision] * self.weight_elems)


def _conv_kind(m, out_hw: tuple[int, ...]) -> str:  # noqa: ANN001  (torch module)
    if m.groups == 1 and m.in_channels <= 4 and tuple(m.kernel_size) != (1, 1):
        return "stem"  # a k×k conv on the image: GEMM depth 3·k² — far from the dense ceiling
    if m.groups > 1 and m.groups == m.in_channels:
        return "depthwise"
    if tuple(m.kernel_size) == (1, 1) and m.groups == 1:
        # on a 1×1 map (squeeze-excite's reduce/expand convs) a pointwise conv is a matrix-vector product, like a
        # fully connected layer: bound by reading its weights, not by the GEMM ceiling
        return "linear" if tuple(out_hw) == (1, 1) else "pointwise"
    return "dense"


def as_island(op: Op, kernels: int) -> Op:
    """``op`` as an int8 runtime runs it when it has no integer kernel for it: in float between a DequantizeLinear
    and a QuantizeLinear. ``kernels`` passes (dequantize, the float op, quantize, and for a 4-kernel op — x·f(x) —
    the integer multiply by x), one element-pass of work each, never fused; bytes: dequantize 1 → 4 per input
    element, the float op 4 + 4, quantize 4 → 1 per output element, the multiply two int8 operands in and one out.
    ONNX Runtime's element-wise kernels are far from the memory roof (a dequantize of 14×14×200 takes ~9 µs), so the
    work term at the op kind's int8 efficiency is what calibration fits."""
    passes = 2 * op.in_elems + op.out_elems + (op.out_elems if kernels > 3 else 0)
    nbytes = 5.0 * op.in_elems + 4.0 * (op.in_elems + op.out_elems) + 5.0 * op.out_elems
    nbytes += 3.0 * op.out_elems if kernels > 3 else 0.0
    return replace(op, macs=0, elements=passes, weight_elems=0, fusable=False, kernels=kernels, island_bytes=nbytes)


def fold_activations(ops: list[Op]) -> list[Op]:
    """The ops a runtime that fuses activations runs: fused ones (``fusable``: ReLU-like activations, SE gates, and
    padding folded into the next conv's pads) leave the list, and an activation's elements are added to the
    ``act_elems`` of the op before it — the epilogue pass over the output that the producing conv then pays
    (priced per element: ``estimator.fused_activation_ns``)."""
    acts = fused_epilogues(ops)
    return [
        replace(op, act_elems=op.act_elems + acts[i]) if i in acts else op for i, op in enumerate(ops) if not op.fusable
    ]


def fused_epilogues(ops: list[Op]) -> dict[int, int]:
    """{index of an op that stays: elements of the activations fused into it} (see :func:`fold_activations`)."""
    acts: dict[int, int] = {}
    last = None
    for i, op in enumerate(ops):
        if not op.fusable:
            last = i
        elif op.type in FUSABLE and last is not None:
            acts[last] = acts.get(last, 0) + op.out_elems
    return acts


def int8_view(ops: list[Op], float_ops: dict[str, int]) -> list[Op]:
    """The op list as an int8 runtime runs it: the op types in ``float_ops`` (type → kernels) as float islands."""
    return [as_island(op, float_ops[op.type]) if op.type in float_ops else op for op in ops]


def model_ops(model, resolution: int, *, batch: int = 1, in_chs: int | None = None) -> list[Op]:  # noqa: ANN001
    """Walk ``model`` once on ``batch``×C×res×res (on whatever device its parameters live — use meta) → ops.
    C is ``in_chs``, else the image channels :func:`edgecnn.analysis.walk.input_channels` reads off the model."""
    from edgecnn.analysis.walk import input_channels, walk_layers
    from edgecnn.layers.squeeze_excite import SqueezeExcite

    chans = in_chs or input_channels(model)
    calls = walk_layers(model, (batch, chans, resolution, resolution), _costs_time)
    se_gates = {id(m.gate) for m in model.modules() if isinstance(m, SqueezeExcite)}
    return _order([op for call in calls if (op := _call_op(call, se_gates)) is not None])


def _costs_time(m) -> bool:  # noqa: ANN001  (torch module)
    """The modules :func:`_call_op` turns into ops (others are containers, or cost nothing once exported)."""
    from torch import nn

    from edgecnn.layers.blocks import InvertedResidual
    from edgecnn.layers.squeeze_excite import SqueezeExcite

    t = type(m).__name__
    if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear, *_pool_types(), SqueezeExcite)) or t in ACTIVATIONS:
        return True
    if t in PADS or t in RESIZES or t in SHUFFLES:
        return True
    return isinstance(m, InvertedResidual) and m.has_skip


def _pool_types() -> tuple[type, ...]:
    """The pooling modules (a function: roofline imports torch only when a model is walked)."""
    from torch import nn

    return (nn.MaxPool2d, nn.AvgPool2d, nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d)


def _call_op(call, se_gates: set[int]) -> Op | None:  # noqa: ANN001  (edgecnn.analysis.walk.LayerCall)
    """One layer call as a costed op; None for a padding module that pads nothing."""
    from torch import nn

    from edgecnn.layers.blocks import InvertedResidual
    from edgecnn.layers.squeeze_excite import SqueezeExcite

    m, t = call.module, type(call.module).__name__
    n_in, n_out = call.in_elems, call.out_elems
    io = {"in_elems": n_in, "out_elems": n_out}
    if isinstance(m, nn.Conv2d):
        kind = _conv_kind(m, call.out_shape[-2:])
        return Op(
            name=call.name, kind=kind, type=t, macs=call.macs(), elements=n_out, **io, weight_elems=m.weight.numel()
        )
    if isinstance(m, nn.ConvTranspose2d):  # a k×k GEMM scattered back: the dense ceiling (depthwise if grouped)
        kind = "depthwise" if m.groups > 1 and m.groups == m.in_channels else "dense"
        return Op(
            name=call.name, kind=kind, type=t, macs=call.macs(), elements=n_out, **io, weight_elems=m.weight.numel()
        )
    if t in RESIZES:
        taps = m.taps() if hasattr(m, "taps") else (4 if getattr(m, "mode", "nearest") != "nearest" else 0)
        return Op(
            name=call.name, kind="elementwise", type="Resize", macs=0, elements=taps * n_out, **io, weight_elems=0
        )
    if t in SHUFFLES:
        return Op(name=call.name, kind="elementwise", type="DepthToSpace", macs=0, elements=0, **io, weight_elems=0)
    if isinstance(m, nn.Linear):
        return Op(
            name=call.name, kind="linear", type=t, macs=call.macs(), elements=n_out, **io, weight_elems=m.weight.numel()
        )
    if isinstance(m, _pool_types()):
        return Op(name=call.name, kind="pooling", type=t, macs=0, elements=n_in, **io, weight_elems=0)
    if t in ACTIVATIONS or (t in PADS and call.out_shape != call.in_shape):
        return Op(
            name=call.name,
            # the SE gate's activation (on a 1×1 map) is part of the gate: where it does not fuse it is one more tiny
            # kernel of the squeeze-excite, not an element-wise pass over a feature map
            kind="gate" if id(m) in se_gates else ACTIVATION_KINDS.get(t, "elementwise"),
            type=t,
            macs=0,
            elements=0 if t in PADS else n_out,  # padding is a copy: no arithmetic, memory roof only
            **io,
            weight_elems=0,
            # explicit padding before a conv folds into the conv's pads (ORT PadFusion, OpenVINO, TensorRT)
            fusable=t in FUSABLE or t in PADS,
        )
    if isinstance(m, SqueezeExcite):  # x * gate(x): the multiply analysis does not count
        return Op(name=f"{call.name}.mul", kind="gate", type="Mul", macs=0, elements=n_out, **io, weight_elems=0)
    if isinstance(m, InvertedResidual) and m.has_skip:
        io = {"in_elems": 2 * n_out, "out_elems": n_out}
        return Op(name=f"{call.name}.add", kind="add", type="Add", macs=0, elements=n_out, **io, weight_elems=0)
    return None


def _order(ops: list[Op]) -> list[Op]:
    """Forward hooks fire child-first: SE's multiply and the residual add come after their block's convs —
    already the execution order. Nothing to reorder; kept as a seam for graph-level passes."""
    return ops


def op_time_s(
    op: Op,
    *,
    peak_gops: float,
    efficiency: float,
    bandwidth_gbs: float,
    memory_efficiency: float,
    precision: str,
    overhead_s: float,
    cache_bytes: float = 0.0,
    cache_bandwidth_gbs: float | None = None,
    l2_bytes: float = 0.0,
    l2_bandwidth_gbs: float | None = None,
    weights_resident: bool = True,
    element_ns: float = 0.0,
    activation_ns: float = 0.0,
) -> tuple[float, str]:
    """Roofline time of one op and which roof binds ("compute" or "memory"). An op whose bytes fit in the cores'
    L2 streams at ``l2_bandwidth_gbs``, else one that fits in the last cache level at ``cache_bandwidth_gbs``
    (repeated inference keeps weights and activations hot there), else at DRAM ``bandwidth_gbs``.
    ``weights_resident=False`` (a model whose per-inference traffic overflows the last cache level, see
    :func:`weights_resident`): the weights come from DRAM every inference, the activations as above.
    ``element_ns``: a fixed cost per output element on the compute side (requantize, activate, store) — why a conv
    with few input channels per output runs fewer MACs per second than a wide one. ``activation_ns``: per element
    of the activations fused into the op (``op.act_elems``)."""
    compute = op.work() / (peak_gops * 1e9 * efficiency)
    compute += (op.out_elems * element_ns + op.act_elems * activation_ns) * 1e-9
    memory = memory_time_s(
        op.bytes(precision),
        0.0 if weights_resident else op.weight_bytes(precision),
        bandwidth_gbs=bandwidth_gbs,
        memory_efficiency=memory_efficiency,
        cache_bytes=cache_bytes,
        cache_bandwidth_gbs=cache_bandwidth_gbs,
        l2_bytes=l2_bytes,
        l2_bandwidth_gbs=l2_bandwidth_gbs,
    )
    return max(compute, memory) + overhead_s * op.kernels, "compute" if compute >= memory else "memory"


def weights_resident(ops: list[Op], precision: str, cache_bytes: float) -> bool:
    """Whether weights stay cached from one inference to the next: an LRU last-level cache keeps them only when the
    whole per-inference traffic (every op's weights and activations) fits in it — a cyclic sweep larger than the
    cache misses on every access."""
    return sum(op.bytes(precision) for op in ops) <= cache_bytes


def memory_time_s(
    nbytes: float,
    dram_weight_bytes: float,
    *,
    bandwidth_gbs: float,
    memory_efficiency: float,
    cache_bytes: float,
    cache_bandwidth_gbs: float | None,
    l2_bytes: float = 0.0,
    l2_bandwidth_gbs: float | None = None,
) -> float:
    """Seconds to move ``nbytes`` of which ``dram_weight_bytes`` come from DRAM; the rest at the bandwidth of the
    smallest level it fits in."""
    rest = nbytes - dram_weight_bytes
    bw = memory_bandwidth(rest, bandwidth_gbs, cache_bytes, cache_bandwidth_gbs, l2_bytes, l2_bandwidth_gbs)
    return (rest / bw + dram_weight_bytes / bandwidth_gbs) / (1e9 * memory_efficiency)


def memory_bandwidth(
    nbytes: float,
    dram_gbs: float,
    cache_bytes: float,
    cache_gbs: float | None,
    l2_bytes: float = 0.0,
    l2_gbs: float | None = None,
) -> float:
    """The bandwidth (GB/s) an op moving ``nbytes`` streams at: the smallest level it fits in."""
    if l2_gbs and nbytes <= l2_bytes:
        return l2_gbs
    if cache_gbs and nbytes <= cache_bytes:
        return cache_gbs
    return dram_gbs
