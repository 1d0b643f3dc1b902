"""``--keep-float`` names → graph nodes, checked before quantization starts.

A name is either a PyTorch module path — the report's "layer" column, e.g. ``blocks.0.0.conv_dw`` (all quantizable
nodes of that module and its children) — or a node of the graph being quantized (an ONNX node name, or an
OpenVINO op name). A name that is neither is a :class:`ConfigError` listing the closest names: a misspelt layer
must not silently leave the model fully quantized.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping, Sequence

from edgecnn.errors import ConfigError


def _under(layer: str, name: str) -> bool:
    return bool(layer) and (layer == name or layer.startswith(name + "."))


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
