"""PyTorch → ONNX with the torch.onnx *dynamo* exporter (the maintained path; the TorchScript exporter is
deprecated), single file (``external_data=False``), static or dynamic batch, checked by the ONNX checker and
shape inference, optional fp16 weights via ONNX Runtime's float16 converter (inputs/outputs stay float32)."""

from __future__ import annotations

import json
import logging
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import nn

from edgecnn.errors import ExportError
from edgecnn.exporters.options import DynamicBatch
from edgecnn.exporters.rewrites import global_average_pools, space_to_depth_stem

log = logging.getLogger(__name__)
INPUT, OUTPUT = "input", "logits"


def export_onnx(
    model: nn.Module, example: torch.Tensor, path: Path, *, opset: int, dynamic_batch: DynamicBatch | None
) -> Path:
    """Export ``model`` (eval mode) to ``path``; BN is folded into convs by the exporter's optimizer."""
    import onnx

    dynamic_shapes = None
    if dynamic_batch is not None:
        dynamic_shapes = ({0: torch.export.Dim("batch", min=dynamic_batch.min, max=dynamic_batch.max)},)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        logging.getLogger("torch.onnx").setLevel(logging.ERROR)
        try:
            torch.onnx.export(
                model.eval(),
                (example,),
                str(path),
                dynamo=True,
                external_data=False,
                opset_version=opset,
                input_names=[INPUT],
                output_names=[OUTPUT],
                dynamic_shapes=dynamic_shapes,
                verbose=False,
            )
        except Exception as e:  # torch.export raises many types; report the first line
            raise ExportError(
                f"torch.onnx.export failed: {str(e).splitlines()[0][:300]}",
                hint="rerun with --debug for the full exporter log",
            ) from e
    proto = onnx.shape_inference.infer_shapes(onnx.load(str(path)), strict_mode=True)
    global_average_pools(proto.graph)
    onnx.checker.check_model(proto, full_check=True)
    proto = onnx.shape_inference.infer_shapes(proto, strict_mode=True)
    strip_debug_metadata(proto)
    onnx.save(proto, str(path))
    return path


# The dynamo exporter annotates every node with debugging aids: the Python stack trace (with this machine's absolute
# paths), the FX node text, a display namespace and the rewrite rules applied — ~10 % of an INT8 MobileNet's file.
# The module path and class of each node (name scopes, class hierarchy) stay: per-layer reports map back with them.
DEBUG_METADATA = frozenset(
    {"pkg.torch.onnx.stack_trace", "pkg.torch.onnx.fx_node", "namespace", "pkg.onnxscript.rewriter.rule_name"}
)


def strip_debug_metadata(proto: Any) -> None:
    """Drop the exporter's per-node debugging metadata (``DEBUG_METADATA``) from ``proto`` in place."""
    for node in proto.graph.node:
        keep = [m for m in node.metadata_props if m.key not in DEBUG_METADATA]
        if len(keep) != len(node.metadata_props):
            del node.metadata_props[:]
            node.metadata_props.extend(keep)


def int8_rewrites(fp32: Path, *, flavour: str) -> int:
    """The exact rewrites an fp32 ONNX file gets before it is quantized for ``flavour`` (bundles and ``profile
    calibrate`` alike): for ONNX Runtime ("onnx"), the space-to-depth stem — its int8 convolution is slowest on a
    3-channel input (:func:`edgecnn.exporters.rewrites.space_to_depth_stem`). TensorRT builds its own kernels."""
    return rewrite_file(fp32, space_to_depth_stem) if flavour == "onnx" else 0


def rewrite_file(path: Path, rewrite: Any) -> int:
    """Apply a :mod:`edgecnn.exporters.rewrites` pass to the ONNX file at ``path`` (rewritten only if it changed)."""
    import onnx

    proto = onnx.load(str(path))
    changed = rewrite(proto.graph)
    if changed:
        onnx.checker.check_model(proto, full_check=True)
        onnx.save(proto, str(path))
    return changed


def to_fp16(path: Path) -> None:
    """Convert weights and compute to float16 in place, keeping float32 inputs/outputs (Cast at the edges)."""
    import onnx
    from onnxruntime.transformers.float16 import convert_float_to_float16

    proto = convert_float_to_float16(onnx.load(str(path)), keep_io_types=True)
    _toposort(proto.graph)  # the converter appends its input Casts at the end of the node list
    onnx.checker.check_model(proto)
    onnx.save(proto, str(path))


def _toposort(graph: Any) -> None:
    """Reorder ``graph.node`` so every node follows the producers of its inputs (Kahn's algorithm, stable)."""
    available = {i.name for i in graph.input} | {t.name for t in graph.initializer} | {""}
    pending, ordered = list(graph.node), []
    while pending:
        ready = [n for n in pending if all(i in available for i in n.input)]
        if not ready:
            raise ExportError("fp16 conversion produced a graph with a cycle or a dangling input")
        for n in ready:
            available.update(n.output)
        ordered += ready
        ready_ids = {id(n) for n in ready}
        pending = [n for n in pending if id(n) not in ready_ids]
    copies = [type(n)() for n in ordered]
    for c, n in zip(copies, ordered, strict=True):
        c.CopyFrom(n)
    del graph.node[:]
    graph.node.extend(copies)


def set_metadata(path: Path, facts: dict[str, Any]) -> None:
    """Write the key facts into ONNX ``metadata_props`` so the file alone is not anonymous."""
    import onnx

    proto = onnx.load(str(path))
    del proto.metadata_props[:]
    for k, v in facts.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = f"edgecnn.{k}", v if isinstance(v, str) else json.dumps(v)
    proto.producer_name, proto.producer_version = "edgecnn", str(facts.get("version", ""))
    onnx.save(proto, str(path))


def op_types(path: Path) -> set[str]:
    import onnx

    proto = onnx.load(str(path))
    ops = {n.op_type for n in proto.graph.node}
    for fn in proto.functions:
        ops |= {n.op_type for n in fn.node}
    return ops


def export_target_onnx(ctx: Any, *, flavour: str) -> tuple[Path, dict[str, Any] | None]:
    """The ONNX step shared by the onnx and tensorrt targets: export ``ctx.model`` to ``model.onnx`` and, for
    INT8, quantize it in place with the target's flavour of Q/DQ. Returns the path and the quantization record."""
    from edgecnn.exporters.options import Precision

    if ctx.opts.precision is Precision.INT8 and ctx.opts.quant.qat is not None:  # QAT: the scales it learned
        from edgecnn.quant.qat_export import build_onnx

        return build_onnx(ctx, flavour=flavour)
    path = export_onnx(
        ctx.model, ctx.example, ctx.workdir / "model.onnx", opset=ctx.opts.opset, dynamic_batch=ctx.opts.dynamic_batch
    )
    if ctx.opts.precision is not Precision.INT8:
        return path, None
    from edgecnn.quant.onnx_flow import quantize_onnx_file

    fp32 = path.rename(ctx.workdir / "fp32.onnx")
    int8_rewrites(fp32, flavour=flavour)
    record = quantize_onnx_file(fp32, path, ctx.opts.quant, batch=ctx.example.shape[0], flavour=flavour)
    fp32.unlink()
    return path, record
