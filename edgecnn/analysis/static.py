"""Exact static analysis of any ``nn.Module``: per-layer output shape, params, MACs, activation and weight memory.

MACs follow the convention of torchvision's "GFLOPS" column (its weight tables): multiply-accumulates of
Conv2d/ConvTranspose2d and Linear at the given batch; BN, activations, pooling, residual adds and SE multiplies
are not counted (SE's 1×1 convs are). Resizes (``edgecnn.layers.Resize``) and pixel shuffles (``DepthToSpace``)
are listed per layer; pixel shuffle is a pure copy (0 MACs), and the interpolation taps of bilinear resizes
(4 per output element) are reported apart as ``resize_macs`` so ``macs`` stays comparable with published
figures. The model runs once on the *meta* device when its parameters live there
(no memory, no compute), so even EfficientNet-B7 at 600 px is analysed in well under a second.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn

from edgecnn.analysis.walk import LayerCall, input_channels, walk_layers
from edgecnn.errors import InputSpecError
from edgecnn.layers.upsample import Resize

_LEAF_TYPES = (
    nn.Conv2d,
    nn.ConvTranspose2d,
    nn.Linear,
    nn.BatchNorm2d,
    nn.ReLU,
    nn.ReLU6,
    nn.Hardswish,
    nn.Hardsigmoid,
    nn.SiLU,
    nn.Sigmoid,
    nn.MaxPool2d,
    nn.AvgPool2d,
    nn.AdaptiveAvgPool2d,
    nn.AdaptiveMaxPool2d,
    nn.Dropout,
    nn.Dropout2d,
    nn.Tanh,
    nn.PixelShuffle,
    nn.Upsample,
    Resize,
)


@dataclass(frozen=True, kw_only=True)
class LayerStats:
    """One leaf layer. ``weight_bytes_int8`` assumes BN folded into the preceding conv, int8 per-channel weights
    with an fp32 scale and an int32 bias per output channel — what INT8 deployments store."""

    name: str
    type: str
    output_shape: tuple[int, ...]
    params: int
    macs: int
    activation_bytes: int  # fp32 output tensor
    weight_bytes_fp32: int
    weight_bytes_fp16: int
    weight_bytes_int8: int


@dataclass(frozen=True, kw_only=True)
class ModelStats:
    """Totals plus the per-layer table. ``params`` counts each trainable parameter once."""

    model: str
    input_shape: tuple[int, ...]
    params: int
    macs: int
    resize_macs: int  # bilinear interpolation taps, not in ``macs`` (published MAC counts leave resizes out)
    activation_bytes: int  # sum of every layer's fp32 output
    peak_activation_bytes: int  # largest single layer output (a lower bound on working memory)
    weight_bytes_fp32: int
    weight_bytes_fp16: int
    weight_bytes_int8: int
    layers: tuple[LayerStats, ...]

    def to_dict(self, *, per_layer: bool = True) -> dict:
        d = asdict(self)
        d["input_shape"] = list(self.input_shape)
        if per_layer:
            d["layers"] = [{**asdict(layer), "output_shape": list(layer.output_shape)} for layer in self.layers]
        else:
            del d["layers"]
        return d


def _is_leaf(m: nn.Module) -> bool:
    """A layer the table lists: a known leaf type, or any childless module with parameters of its own."""
    return isinstance(m, _LEAF_TYPES) or (not list(m.children()) and any(True for _ in m.parameters(recurse=False)))


def _layer_stats(call: LayerCall) -> LayerStats:
    m = call.module
    params = sum(p.numel() for p in m.parameters(recurse=False) if p.requires_grad)
    return LayerStats(
        name=call.name,
        type=type(m).__name__,
        output_shape=call.out_shape,
        params=params,
        macs=call.macs(),
        activation_bytes=call.out_elems * 4,
        weight_bytes_fp32=4 * params,
        weight_bytes_fp16=2 * params,
        weight_bytes_int8=_int8_bytes(m),
    )


def _int8_bytes(m: nn.Module) -> int:
    if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
        out_ch = m.out_channels if not isinstance(m, nn.Linear) else m.out_features
        return m.weight.numel() + 8 * out_ch
    return 0


def analyze(
    model: nn.Module, input_size: int | tuple[int, int] = 224, *, batch: int = 1, in_chans: int | None = None
) -> ModelStats:
    """Analyse ``model`` on an input of ``batch``×C×H×W (C from the first conv unless given)."""
    h, w = (input_size, input_size) if isinstance(input_size, int) else input_size
    if h < 1 or w < 1 or batch < 1:
        raise InputSpecError(f"input size must be positive, got batch={batch}, {h}×{w}")
    c = in_chans or input_channels(model)
    try:
        calls = walk_layers(model, (batch, c, h, w), _is_leaf)
    except RuntimeError as e:
        raise InputSpecError(
            f"model does not accept input {batch}×{c}×{h}×{w}: {str(e).splitlines()[0]}",
            hint="try a larger --resolution",
        ) from None
    rows = [_layer_stats(call) for call in calls]
    params = sum(p.numel() for p in model.parameters() if p.requires_grad)
    acts = [r.activation_bytes for r in rows]
    return ModelStats(
        model=getattr(model, "edgecnn_name", type(model).__name__),
        input_shape=(batch, c, h, w),
        params=params,
        macs=sum(r.macs for r in rows),
        resize_macs=sum(c.out_elems * c.module.taps() for c in calls if isinstance(c.module, Resize)),
        activation_bytes=sum(acts),
        peak_activation_bytes=max(acts, default=0),
        weight_bytes_fp32=4 * params,
        weight_bytes_fp16=2 * params,
        weight_bytes_int8=sum(_int8_bytes(m) for m in model.modules()),
        layers=tuple(rows),
    )


def analyze_named(
    name: str,
    resolution: int | None = None,
    *,
    batch: int = 1,
    num_classes: int | None = None,
    width_mult: float | None = None,
    depth_mult: float | None = None,
) -> ModelStats:
    """Analyse a zoo model by name, built on the meta device (no weights allocated)."""
    from edgecnn.models.zoo import create_model, get_model_entry

    entry = get_model_entry(name)
    with torch.device("meta"):
        model = create_model(name, num_classes=num_classes, width_mult=width_mult, depth_mult=depth_mult)
    return analyze(model, entry.default_resolution if resolution is None else resolution, batch=batch)
