"""INT8 micro-benchmarks for ``edgecnn profile fit``: QDQ single-op graphs that ONNX Runtime fuses into its
integer kernels (QLinearConv, QGemm, QLinearAdd/Mul, QLinearGlobalAveragePool), with uint8 activations and
per-channel int8 weights — the fast path on x86 (ONNX Runtime docs, "Quantize ONNX models": QDQ format, U8S8).

Inputs and outputs are uint8 so no float Quantize/Dequantize at the edges is timed: what is left is the integer op,
as inside a quantized model. The int8 efficiencies are fitted per kind with the memory parameters of the fp32 fit
(bytes at one per element); kinds without an int8 micro-benchmark keep the fp32 efficiency.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from edgecnn.bench.fit_profile import Fit, MicroBench, default_suite, time_graph
from edgecnn.bench.roofline import Op

INT8_KINDS = ("dense", "pointwise", "depthwise", "linear", "elementwise", "pooling")


def int8_suite() -> list[MicroBench]:
    """The fp32 suite's convs, fully connected, adds/multiplies and global pools (activations stay float in ORT)."""
    keep = ("Conv", "Gemm", "Add", "Mul", "GlobalAveragePool")
    return [mb for mb in default_suite() if mb.onnx_op in keep]


def build_qdq_graph(mb: MicroBench) -> bytes:
    """uint8 in → DequantizeLinear → op (weights: int8 + per-channel DequantizeLinear) → QuantizeLinear → uint8 out."""
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    f32 = np.float32
    inits = [
        numpy_helper.from_array(np.array(0.05, f32), "s"),
        numpy_helper.from_array(np.array(128, np.uint8), "zp"),
    ]
    nodes = [helper.make_node("DequantizeLinear", ["xq", "s", "zp"], ["x"])]
    inputs = ["x"]
    if mb.weight_shape is not None:
        c_out = mb.weight_shape[0]
        # per output channel (axis 0 of Conv's OIHW and of Gemm's transB weight), as edgecnn's INT8 exports store it
        wq = rng.integers(-127, 128, size=mb.weight_shape, dtype=np.int8)
        per_channel = True
        scale = np.full(c_out, 0.01, f32) if per_channel else np.array(0.01, f32)
        zero = np.zeros(c_out, np.int8) if per_channel else np.array(0, np.int8)
        inits += [
            numpy_helper.from_array(wq, "wq"),
            numpy_helper.from_array(scale, "ws"),
            numpy_helper.from_array(zero, "wz"),
        ]
        attrs = {"axis": 0} if per_channel else {}
        nodes.append(helper.make_node("DequantizeLinear", ["wq", "ws", "wz"], ["w"], **attrs))
        inputs.append("w")
    if mb.second_shape is not None:
        inits.append(numpy_helper.from_array(rng.integers(0, 255, size=mb.second_shape, dtype=np.uint8), "bq"))
        nodes.append(helper.make_node("DequantizeLinear", ["bq", "s", "zp"], ["b"]))
        inputs.append("b")
    nodes.append(helper.make_node(mb.onnx_op, inputs, ["y"], **mb.attrs))
    nodes.append(helper.make_node("QuantizeLinear", ["y", "s", "zp"], ["yq"]))
    graph = helper.make_graph(
        nodes,
        f"{mb.op.name}_int8",
        [helper.make_tensor_value_info("xq", TensorProto.UINT8, list(mb.in_shape))],
        [helper.make_tensor_value_info("yq", TensorProto.UINT8, None)],
        inits,
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)]).SerializeToString()


def measure_int8(
    suite: list[MicroBench],
    base_s: float,
    *,
    threads: int,
    warmup: int = 5,
    iters: int = 30,
    min_time_s: float = 0.05,
    progress: Callable[[str], None] | None = None,
) -> list[tuple[Op, float]]:
    """[(op, seconds above the empty call)] for the int8 graphs."""
    points = []
    for i, mb in enumerate(suite):
        if progress:
            progress(f"[int8 {i + 1}/{len(suite)}] {mb.op.name}")
        t = time_graph(
            build_qdq_graph(mb),
            mb.in_shape,
            threads=threads,
            warmup=warmup,
            iters=iters,
            min_time_s=min_time_s,
            dtype="uint8",
        )
        points.append((mb.op, max(t - base_s, 1e-7)))
    return points


def fit_int8(
    points: list[tuple[Op, float]], fp32: Fit, *, peak_gops: float, bandwidth_gbs: float, cache_bytes: float
) -> tuple[dict[str, float], float]:
    """Per-kind int8 efficiency (grid in log space), memory parameters from the fp32 fit; (efficiencies, median
    absolute relative error)."""
    effs = np.exp(np.linspace(math.log(0.001), math.log(1.0), 100))
    out: dict[str, float] = {}
    residuals = []
    for kind in INT8_KINDS:
        pts = [(op, t) for op, t in points if op.kind == kind]
        if not pts:
            continue
        ops = [op for op, _ in pts]
        work = np.array([op.work() for op in ops])
        nbytes = np.array([op.bytes("int8") for op in ops])
        bw = np.where(nbytes <= cache_bytes, fp32.cache_bandwidth_gbs, bandwidth_gbs)
        mem = nbytes / (bw * 1e9 * fp32.memory_efficiency)
        meas = np.array([t for _, t in pts])
        pred = (
            np.maximum(work[None, :] / (peak_gops * 1e9 * effs[:, None]), mem[None, :]) + fp32.layer_overhead_us * 1e-6
        )
        err = ((np.log(pred) - np.log(meas)[None, :]) ** 2).sum(axis=1)
        j = int(err.argmin())
        out[kind] = float(effs[j])
        residuals += list(pred[j] / meas - 1)
    return out, float(np.median(np.abs(residuals))) if residuals else 0.0
