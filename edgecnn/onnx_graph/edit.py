"""File-level edits of ONNX models: metadata, the exporter's debugging aids, fp16 weights, op listing, and
applying a :mod:`edgecnn.onnx_graph.rewrites` pass to a file."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from edgecnn.errors import ExportError

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


def rewrite_file(path: Path, rewrite: Any) -> int:
    """Apply a :mod:`edgecnn.onnx_graph.rewrites` pass to the ONNX file at ``path`` (rewritten only if it changed)."""
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
