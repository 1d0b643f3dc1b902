"""Which PyTorch layer each ONNX node belongs to, from the dynamo exporter's per-node metadata.

The exporter records each node's module path in ``pkg.torch.onnx.name_scopes`` (and the module classes in
``pkg.torch.onnx.class_hierarchy``). A node is attributed to the module that owns it, and conv/BN/activation leaves
are folded into their parent (``blocks.3.0.conv_dw`` rather than ``…conv_dw.bn``) because the runtimes fuse them
into one kernel. Quantization (``--keep-float`` names, per-layer error), per-layer latency and reports all read
layers through these functions.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path
from typing import Any

_LEAF_CLASSES = ("torch.nn.modules.conv.", "torch.nn.modules.batchnorm.", "torch.nn.modules.activation.")


def onnx_scopes(onnx_path: Path) -> tuple[dict[str, str], dict[str, str]]:
    """ONNX node name → layer, and tensor name → layer of its producer, from the exporter's name scopes.

    Nodes without scopes — the Quantize/DequantizeLinear pairs a quantizer inserts, nodes a graph rewrite created —
    take the layer of the tensor they read (its producer's), else of the node that reads their output (a weight's
    DequantizeLinear belongs to its conv, the input's QuantizeLinear to the first layer)."""
    import onnx

    proto = onnx.load(str(onnx_path), load_external_data=False)
    nodes = list(proto.graph.node)
    by_node: dict[str, str] = {}
    by_tensor: dict[str, str] = {}
    unscoped = []
    for n in nodes:
        layer = _layer_of(n)
        if layer is None:
            unscoped.append(n)
            continue
        by_node[n.name] = layer
        by_tensor.update(dict.fromkeys(n.output, layer))
    consumers: dict[str, list[Any]] = defaultdict(list)
    for n in nodes:
        for i in n.input:
            consumers[i].append(n)
    for n in unscoped:  # topological order: a Q's layer is known before its DQ's
        layer = next((by_tensor[i] for i in n.input[:1] if i in by_tensor), None)
        if layer is not None:
            by_node[n.name] = layer
            by_tensor.update(dict.fromkeys(n.output, layer))
    for n in reversed(unscoped):  # what is left reads no layer's output: the layer of the node reading its output
        if n.name in by_node:
            continue
        layer = next((by_node[c.name] for o in n.output for c in consumers[o] if c.name in by_node), n.name)
        by_node[n.name] = layer
        by_tensor.update(dict.fromkeys(n.output, layer))
    return by_node, by_tensor


def _layer_of(node: Any) -> str | None:
    """The module owning ``node`` by the exporter's name scopes; None when the node carries none."""
    meta = {m.key: m.value for m in node.metadata_props}
    if "pkg.torch.onnx.name_scopes" not in meta:
        return None
    try:
        scopes = ast.literal_eval(meta["pkg.torch.onnx.name_scopes"])
        classes = ast.literal_eval(meta.get("pkg.torch.onnx.class_hierarchy", "[]"))
    except (ValueError, SyntaxError):
        return node.name
    modules = [s for s in scopes[:-1] if s]  # the last entry is the aten op, the first the root module
    if not modules:
        return "(model)" if scopes else node.name
    owner = classes[len(scopes) - 2] if len(classes) >= len(scopes) - 1 else ""
    if len(modules) > 1 and owner.startswith(_LEAF_CLASSES):
        return modules[-2]
    return modules[-1]


def node_scopes(onnx_path: Path) -> dict[str, list[str]]:
    """ONNX node → every module path it sits in: the dynamo exporter's ``pkg.torch.onnx.name_scopes`` (a BN-folded
    conv → ``['blocks', …, 'blocks.0.0.conv_dw', 'blocks.0.0.conv_dw.bn']``) plus the module owning its weight
    (``blocks.0.0.conv_dw.conv``: initializers keep the parameter names)."""
    import onnx

    proto = onnx.load(str(onnx_path), load_external_data=False)
    inits = {t.name for t in proto.graph.initializer}
    out: dict[str, list[str]] = {}
    for n in proto.graph.node:
        meta = {m.key: m.value for m in n.metadata_props}
        try:
            scopes = ast.literal_eval(meta.get("pkg.torch.onnx.name_scopes", "[]"))
        except (ValueError, SyntaxError):
            scopes = []
        owners = [i.removesuffix(".weight") for i in n.input if i in inits and i.endswith(".weight")]
        out[n.name] = [s for s in scopes[:-1] if s] + owners  # scopes: the root module first, the op last
    return out


def scopes_for(model: Path, source: Path) -> tuple[dict[str, str], dict[str, list[str]]]:
    """Node of ``model`` → (the layer reports show, every module path), read from ``source`` — the exporter's ONNX
    that ``model`` was derived from (ONNX Runtime's pre-processing may drop node metadata) — by node name, else by
    the node's first output tensor."""
    import onnx

    by_node, by_tensor = onnx_scopes(source)
    paths = node_scopes(source)
    src_nodes = {o: n.name for n in onnx.load(str(source), load_external_data=False).graph.node for o in n.output}
    layers: dict[str, str] = {}
    scopes: dict[str, list[str]] = {}
    for n in onnx.load(str(model), load_external_data=False).graph.node:
        origin = n.name if n.name in by_node else src_nodes.get(n.output[0] if n.output else "", "")
        layer = by_node.get(origin) or by_tensor.get(n.output[0] if n.output else "", "")
        if layer and layer != origin:
            layers[n.name] = layer
        scopes[n.name] = paths.get(origin, [])
    return layers, scopes
