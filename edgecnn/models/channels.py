"""Pruned architectures: the channel counts of every conv, BatchNorm and linear layer, recorded in a checkpoint's
metadata and re-applied in plain torch, so a pruned checkpoint loads with no pruning library installed.

A structurally pruned network (Li et al., "Pruning Filters for Efficient ConvNets", ICLR 2017) is the zoo network
with fewer channels in some layers: the module tree, kernel sizes, strides and the forward code are unchanged. So
the record is only ``{module name: shape}``; rebuilding is ``create_model`` (the zoo defaults) followed by
replacing each listed module with a fresh one of the recorded shape, then loading the weights as usual.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from edgecnn.errors import WeightsFormatError

RECORD_VERSION = 1
MAX_CHANNELS = 1 << 16  # a recorded count above this is a corrupt file, not a network


def channel_record(model: nn.Module) -> dict[str, Any]:
    """The shape of every Conv2d / BatchNorm2d / Linear of ``model``: what :func:`apply_channel_record` needs."""
    layers: dict[str, dict[str, int | str]] = {}
    for name, m in model.named_modules():
        if isinstance(m, nn.Conv2d):
            layers[name] = {"kind": "conv", "in": m.in_channels, "out": m.out_channels, "groups": m.groups}
        elif isinstance(m, nn.BatchNorm2d):
            layers[name] = {"kind": "bn", "n": m.num_features}
        elif isinstance(m, nn.Linear):
            layers[name] = {"kind": "linear", "in": m.in_features, "out": m.out_features}
    return {"version": RECORD_VERSION, "layers": layers}


def _count(entry: dict[str, Any], key: str, where: str) -> int:
    v = entry.get(key)
    if not isinstance(v, int) or isinstance(v, bool) or not 1 <= v <= MAX_CHANNELS:
        raise WeightsFormatError(f"{where}: {key!r} must be an integer in [1, {MAX_CHANNELS}], got {v!r}")
    return v


def _reshaped(m: nn.Module, entry: dict[str, Any], where: str) -> nn.Module | None:
    """A fresh module of the recorded shape (same kernel, stride, padding, eps …), or None when ``m`` fits."""
    kind = entry.get("kind")
    if isinstance(m, nn.Conv2d) and kind == "conv":
        c_in, c_out, groups = _count(entry, "in", where), _count(entry, "out", where), _count(entry, "groups", where)
        if c_in % groups or c_out % groups:
            raise WeightsFormatError(f"{where}: channels {c_in}→{c_out} are not divisible by groups {groups}")
        if (c_in, c_out, groups) == (m.in_channels, m.out_channels, m.groups):
            return None
        return nn.Conv2d(
            c_in,
            c_out,
            m.kernel_size,
            m.stride,
            m.padding,
            m.dilation,
            groups,
            bias=m.bias is not None,
            padding_mode=m.padding_mode,
        )
    if isinstance(m, nn.BatchNorm2d) and kind == "bn":
        n = _count(entry, "n", where)
        if n == m.num_features:
            return None
        return nn.BatchNorm2d(n, m.eps, m.momentum, m.affine, m.track_running_stats)
    if isinstance(m, nn.Linear) and kind == "linear":
        c_in, c_out = _count(entry, "in", where), _count(entry, "out", where)
        if (c_in, c_out) == (m.in_features, m.out_features):
            return None
        return nn.Linear(c_in, c_out, bias=m.bias is not None)
    raise WeightsFormatError(f"{where}: recorded as {kind!r} but the model has a {type(m).__name__} there")


def apply_channel_record(model: nn.Module, record: Any, *, source: str = "checkpoint") -> int:
    """Reshape ``model`` in place to the recorded channel counts; returns how many modules were replaced.

    The model must be the zoo architecture the record was taken from (same module names); a record naming a
    module the model lacks, or a malformed entry, raises :class:`WeightsFormatError` naming the layer.
    """
    if (
        not isinstance(record, dict)
        or record.get("version") != RECORD_VERSION
        or not isinstance(record.get("layers"), dict)
    ):
        raise WeightsFormatError(
            f"{source}: the channel record is not a version-{RECORD_VERSION} object with 'layers'",
            hint="the checkpoint was edited or written by another tool; re-save it with edgecnn",
        )
    modules = dict(model.named_modules())
    replaced = 0
    for name, entry in record["layers"].items():
        where = f"{source}: channel record layer {name!r}"
        if name not in modules or not name or not isinstance(entry, dict):
            raise WeightsFormatError(
                f"{where} is not a layer of the {getattr(model, 'edgecnn_name', '')} model",
                hint="the checkpoint belongs to another architecture; build the model it names",
            )
        new = _reshaped(modules[name], entry, where)
        if new is None:
            continue
        parent_name, _, attr = name.rpartition(".")
        parent = modules[parent_name] if parent_name else model
        new.train(modules[name].training)
        setattr(parent, attr, new)
        modules[name] = new
        replaced += 1
    return replaced
