"""Building blocks of the zoo. Names load lazily, so ``edgecnn.layers.geometry`` stays torch-free."""

from __future__ import annotations

import importlib
from typing import Any

_WHERE = {
    "Act": "activations",
    "make_act": "activations",
    "DepthwiseSeparable": "blocks",
    "InvertedResidual": "blocks",
    "SESpec": "blocks",
    "conv_params": "blocks",
    "separable_savings": "blocks",
    "ConvBNAct": "conv_bn_act",
    "NormSpec": "conv_bn_act",
    "PadSame": "conv_bn_act",
    "DropPath": "drop",
    "SpatialDropout": "drop",
    "drop_path": "drop",
    "conv_out_size": "geometry",
    "effective_kernel": "geometry",
    "make_divisible": "geometry",
    "same_padding": "geometry",
    "SpatialPyramidPooling": "spp",
    "SqueezeExcite": "squeeze_excite",
    "Resize": "upsample",
    "TransposedConvUp": "upsample",
    "transposed_out_size": "upsample",
}
__all__ = sorted(_WHERE)


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(importlib.import_module(f"edgecnn.layers.{_WHERE[name]}"), name)
    raise AttributeError(f"module 'edgecnn.layers' has no attribute {name!r}")
