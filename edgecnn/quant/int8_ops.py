"""Which operators of an INT8 model the runtime really executes in int8, and which stay in float — read from the
runtime itself, not from the Q/DQ nodes the quantizer wrote.

* ONNX Runtime: the graph after its optimizations (``ORT_ENABLE_ALL``, CPU provider): ``QLinear*`` nodes (and
  data-movement ops between Q and DQ) run in int8; any other compute op stays float between a DequantizeLinear and
  a QuantizeLinear. ConvTranspose is the known case: the CPU provider has no int8 ConvTranspose kernel
  (onnxruntime #8988), so a Q/DQ-wrapped transposed convolution is dequantized and runs in fp32.
* OpenVINO: the compiled model's runtime graph, each layer's ``runtimePrecision``.

The decoders of the dense models (transposed convolutions, resizes, pixel shuffles) are where this differs
between runtimes, so the dense benchmarks record it next to their accuracy.
"""

from __future__ import annotations

import collections
import tempfile
from pathlib import Path
from typing import Any

# Ops that move or reshape data: they carry int8 tensors as they are, no arithmetic to quantize.
DATA_MOVEMENT = {"Transpose", "Reshape", "DepthToSpace", "SpaceToDepth", "Concat", "Slice", "Flatten", "Squeeze"}
FLOAT_REASONS = {
    "ConvTranspose": "ONNX Runtime's CPU provider has no int8 ConvTranspose kernel (onnxruntime #8988): it is "
    "dequantized and runs in fp32",
    "PRelu": "no int8 PRelu kernel in ONNX Runtime: runs in fp32 between DequantizeLinear / QuantizeLinear",
    "HardSigmoid": "SE gate: fp32 (its QLinearMul partner is int8)",
    "Sigmoid": "gate: fp32",
    "Tanh": "no int8 Tanh kernel: fp32",
    "Resize": "fp32 resize on dequantized values",
}
_ORT_SKIP = {"QuantizeLinear", "DequantizeLinear"}


def ort_int8_ops(onnx_path: str | Path) -> dict[str, Any]:
    """Op counts of ``onnx_path`` as ONNX Runtime (CPU, all optimizations) executes it: int8 / float / movement."""
    import onnx
    import onnxruntime as ort

    with tempfile.TemporaryDirectory() as tmp:
        so = ort.SessionOptions()
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        so.optimized_model_filepath = str(Path(tmp) / "optimized.onnx")
        so.log_severity_level = 3
        ort.InferenceSession(str(onnx_path), so, providers=["CPUExecutionProvider"])
        graph = onnx.load(so.optimized_model_filepath).graph
    int8, flt, move = collections.Counter(), collections.Counter(), collections.Counter()
    for node in graph.node:
        op = node.op_type
        if op in _ORT_SKIP:
            continue
        if op.startswith("QLinear") or op in ("MatMulInteger", "ConvInteger", "DynamicQuantizeLinear"):
            int8[op] += 1
        elif op in DATA_MOVEMENT:
            move[op] += 1
        else:
            flt[op] += 1
    return _summary("onnxruntime", int8, flt, move)


def openvino_int8_ops(xml_path: str | Path) -> dict[str, Any]:
    """Layer counts of an OpenVINO IR by the precision its CPU plugin runs them in (``runtimePrecision``)."""
    import openvino as ov

    core = ov.Core()
    compiled = core.compile_model(core.read_model(str(xml_path)), "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    int8, flt, move = collections.Counter(), collections.Counter(), collections.Counter()
    for op in compiled.get_runtime_model().get_ordered_ops():
        rt = op.get_rt_info()
        kind = rt["layerType"].astype(str) if "layerType" in rt else op.get_type_name()
        prec = rt["runtimePrecision"].astype(str).lower() if "runtimePrecision" in rt else ""
        if kind in ("Input", "Output", "Parameter", "Result", "Const", "Constant"):
            continue
        if prec in ("i8", "u8"):
            int8[kind] += 1
        elif kind in ("Reorder", "Reshape", "Transpose", "DepthToSpace", "Concatenation", "Concat"):
            move[kind] += 1
        else:
            flt[kind] += 1
    return _summary("openvino", int8, flt, move)


def _summary(runtime: str, int8: collections.Counter, flt: collections.Counter, move: collections.Counter) -> dict:
    return {
        "runtime": runtime,
        "int8": dict(sorted(int8.items())),
        "float": dict(sorted(flt.items())),
        "data_movement": dict(sorted(move.items())),
        "why_float": {op: FLOAT_REASONS[op] for op in flt if op in FLOAT_REASONS and runtime == "onnxruntime"},
    }


def bundle_int8_ops(bundle: str | Path) -> dict[str, Any]:
    """:func:`ort_int8_ops` or :func:`openvino_int8_ops` of a bundle's entry file, by its suffix."""
    import json

    root = Path(bundle)
    entry = json.loads((root / "manifest.json").read_text())["entry"]
    return openvino_int8_ops(root / entry) if entry.endswith(".xml") else ort_int8_ops(root / entry)
