"""``--keep-float`` names → graph nodes, checked before quantization starts.

A name is either a PyTorch module path — the report's "layer" column, e.g. ``blocks.0.0.conv_dw`` (all quantizable
nodes of that module and its children) — or a node of the graph being quantized (an ONNX node name, or an
OpenVINO op name). A name that is neither is a :class:`ConfigError` listing the closest names: a misspelt layer
must not silently leave the model fully quantized.
"""

from __future__ import annotations

import ast
import difflib
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from edgecnn.errors import ConfigError


def _under(layer: str, name: str) -> bool:
    return bool(layer) and (layer == name or layer.startswith(name + "."))


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

    from edgecnn.bench.perlayer import onnx_scopes

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


def resolve_keep_float(
    requested: Sequence[str],
    *,
    layers: Mapping[str, str],
    quantizable: Iterable[str],
    nodes: Iterable[str] = (),
    scopes: Mapping[str, Sequence[str]] | None = None,
    what: str = "the graph",
) -> dict[str, list[str]]:
    """Each requested name → the node names to keep in float.

    ``layers`` maps node name → the module path reports show; ``scopes`` (optional) every module path the node sits
    in, so a leaf such as ``block.0`` is found too; ``quantizable`` are the nodes a module path expands to (the
    weighted ops); ``nodes`` are further node names accepted as given (e.g. every ONNX node)."""
    quant = list(quantizable)
    exact = set(quant) | set(nodes)
    scopes = scopes or {}
    out: dict[str, list[str]] = {}
    for name in requested:
        if name in exact:
            out[name] = [name]
            continue
        hits = [n for n in quant if any(_under(p, name) for p in [layers.get(n, ""), *scopes.get(n, ())])]
        if hits:
            out[name] = hits
            continue
        known = sorted({layers[n] for n in quant if layers.get(n)} | exact)
        close = difflib.get_close_matches(name, known, n=5, cutoff=0.6)
        raise ConfigError(
            f"--keep-float {name!r} is neither a layer nor a quantizable node of {what}",
            hint=("did you mean " + ", ".join(repr(c) for c in close))
            if close
            else "name a layer as the report's 'layer' column shows it (a module path such as "
            "'blocks.0.0.conv_dw'), or a graph node",
        )
    return out
