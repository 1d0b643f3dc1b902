"""Compact architecture strings, parsed into typed block arguments.

A network is a tuple of stages; a stage is a tuple of block strings; a block string is ``type`` followed by
``_``-separated tokens (the notation of the TF MnasNet/EfficientNet releases and timm, made strict):

=========  =====================================================  ==============
token      meaning                                                example
=========  =====================================================  ==============
``ds``     depthwise-separable block (MobileNetV1)                ``ds_s2_c128``
``ir``     inverted residual / MBConv (MobileNetV2/V3, EffNet)    ``ir_r2_k3_s2_e6_c24``
``rN``     repeats (scaled by the depth multiplier)               ``r3``
``kN``     depthwise kernel size                                  ``k5``
``sN``     stride of the first repeat                             ``s2``
``dN``     depthwise dilation                                     ``d2``
``eF``     expansion ratio (mid = in · e)                         ``e6``, ``e4.6``
``mN``     explicit mid (expanded) channels, scaled by width      ``m184``
``cN``     output channels, scaled by width                       ``c80``
``se``     squeeze-excitation (sized by the family's SE rule)     ``se``
``aX``     activation override: re, r6, hs, si                    ``ahs``
=========  =====================================================  ==============

Unknown or repeated tokens raise ArchSpecError naming the block string and the token.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from enum import StrEnum

from edgecnn.errors import ArchSpecError
from edgecnn.layers.activations import Act


class BlockType(StrEnum):
    DS = "ds"
    IR = "ir"


_ACT_CODES = {"re": Act.RELU, "r6": Act.RELU6, "hs": Act.HARDSWISH, "si": Act.SILU}
_TOKEN = re.compile(r"^(?P<key>r|k|s|d|e|m|c|a)(?P<val>.+)$")


@dataclass(frozen=True, kw_only=True)
class BlockArgs:
    """One block string, parsed. Channel counts are unscaled (width 1.0)."""

    type: BlockType
    out_chs: int
    repeats: int = 1
    kernel_size: int = 3
    stride: int = 1
    dilation: int = 1
    exp_ratio: float = 1.0
    mid_chs: int | None = None
    se: bool = False
    act: Act | None = None


def parse_block(text: str) -> BlockArgs:
    """Parse one block string (see module docstring)."""
    parts = text.strip().split("_")
    try:
        btype = BlockType(parts[0])
    except ValueError:
        raise ArchSpecError(f"block {text!r}: unknown block type {parts[0]!r}", hint="use 'ds' or 'ir'") from None
    fields: dict[str, object] = {}
    for tok in parts[1:]:
        if tok == "se":
            key, value = "se", True
        else:
            m = _TOKEN.match(tok)
            if not m:
                raise ArchSpecError(f"block {text!r}: unknown token {tok!r}", hint="tokens: rN kN sN dN eF mN cN se aX")
            key, raw = m["key"], m["val"]
            try:
                if key == "a":
                    value = _ACT_CODES[raw]
                elif key == "e":
                    value = float(raw)
                else:
                    value = int(raw)
            except (KeyError, ValueError):
                raise ArchSpecError(f"block {text!r}: bad value in token {tok!r}") from None
        name = {
            "r": "repeats",
            "k": "kernel_size",
            "s": "stride",
            "d": "dilation",
            "e": "exp_ratio",
            "m": "mid_chs",
            "c": "out_chs",
            "a": "act",
            "se": "se",
        }[key]
        if name in fields:
            raise ArchSpecError(f"block {text!r}: token {tok!r} repeats {name}")
        fields[name] = value
    if "out_chs" not in fields:
        raise ArchSpecError(f"block {text!r}: missing output channels", hint="add a cN token, e.g. c24")
    if "exp_ratio" in fields and "mid_chs" in fields:
        raise ArchSpecError(f"block {text!r}: give either eF or mN, not both")
    if btype is BlockType.DS and ({"exp_ratio", "mid_chs", "se"} & fields.keys()):
        raise ArchSpecError(f"block {text!r}: a 'ds' block has no expansion or squeeze-excitation")
    ratio = fields.get("exp_ratio", 1.0)
    if not (isinstance(ratio, float) and math.isfinite(ratio) and ratio > 0):
        raise ArchSpecError(f"block {text!r}: expansion ratio must be a finite number > 0, got {ratio!r}")
    for name in ("repeats", "kernel_size", "stride", "dilation", "out_chs", "mid_chs"):
        if name in fields and int(fields[name]) < 1:  # type: ignore[call-overload]
            raise ArchSpecError(f"block {text!r}: {name} must be >= 1")
    return BlockArgs(type=btype, **fields)  # type: ignore[arg-type]


def parse_arch(stages: tuple[tuple[str, ...], ...]) -> tuple[tuple[BlockArgs, ...], ...]:
    """Parse every block string of every stage."""
    if not stages or not all(stages):
        raise ArchSpecError("architecture needs at least one non-empty stage")
    return tuple(tuple(parse_block(b) for b in stage) for stage in stages)
