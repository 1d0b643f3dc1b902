"""The ONNX file step shared by targets whose bundles hold ``model.onnx``: the float export, or the INT8 model
from the target's quantizer backend."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from edgecnn.exporters.target import BuildContext
from edgecnn.onnx_graph.torch_export import export_onnx
from edgecnn.precision import Precision


def onnx_model(ctx: BuildContext, name: str = "model.onnx") -> tuple[Path, dict[str, Any] | None]:
    """Write the target's ONNX model to ``name`` in the work dir; returns it and the quantization record (INT8)."""
    path = ctx.workdir / name
    if ctx.opts.precision is Precision.INT8:
        quantized = ctx.quantize(path)
        for scratch in quantized.scratch:
            scratch.unlink(missing_ok=True)
        return path, quantized.record
    export_onnx(ctx.model, ctx.example, path, opset=ctx.opts.opset, dynamic_batch=ctx.opts.dynamic_batch)
    return path, None
