"""Node names and metadata that graph optimizers lose: without them a quantized model maps no kernel back to a
PyTorch layer, and ``--keep-float`` / ``--max-drop`` cannot name its nodes."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def restore_node_metadata(model: Path, source: Path) -> int:
    """Give each node of ``model`` without metadata that of the ``source`` node with its name, else the one
    producing its first output; and give every unnamed node a unique name. ORT's pre-processing rewrites some graphs
    (MobileNetV3's: every node) without their ``metadata_props``, and the bodies of the functions it inlines
    (MobileNetV3's HardSwish → HardSigmoid + Mul) come without names: the quantized bundle would then map no kernel
    back to a PyTorch layer, ORT's profiler would report every unnamed kernel under one empty name, and
    ``--keep-float`` / ``--max-drop`` could not name them. Returns the number of nodes changed (the file is
    rewritten only when there are any)."""
    import onnx

    src = onnx.load(str(source), load_external_data=False).graph.node
    by_name = {n.name: n for n in src if n.metadata_props}
    by_output = {o: n for n in src if n.metadata_props for o in n.output}
    proto = onnx.load(str(model))
    changed = name_unnamed_nodes(proto.graph)
    producer: dict[str, Any] = {}
    for n in proto.graph.node:  # topological order: an input's producer comes first
        origin = by_name.get(n.name) or (by_output.get(n.output[0]) if n.output else None)
        if origin is None and n.input:  # a node the rewrite created (an inlined function's body): its input's layer
            origin = producer.get(n.input[0])
        if origin is not None and not n.metadata_props:
            n.metadata_props.extend(origin.metadata_props)
            changed += 1
        if n.metadata_props:
            producer.update(dict.fromkeys(n.output, n))
    if changed:
        onnx.save(proto, str(model))
    return changed


def name_unnamed_nodes(graph: Any) -> int:
    """Name each unnamed node of ``graph`` after its op and first output (unique in the graph); returns how many."""
    taken = {n.name for n in graph.node if n.name}
    named = 0
    for n in graph.node:
        if n.name:
            continue
        base = f"{n.op_type}_{n.output[0]}" if n.output else n.op_type
        name, k = base, 1
        while name in taken:
            name, k = f"{base}_{k}", k + 1
        n.name = name
        taken.add(name)
        named += 1
    return named
