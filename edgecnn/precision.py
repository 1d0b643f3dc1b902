"""The precision vocabulary, one list for the whole package: what a bundle's numbers are stored and computed in,
how many bytes a value takes, and the parity rule an export of that precision must meet."""

from __future__ import annotations

from enum import StrEnum

from edgecnn.errors import ConfigError


class Precision(StrEnum):
    FP32 = "fp32"
    FP16 = "fp16"
    BF16 = "bf16"
    INT8 = "int8"


# Bytes per stored value (weights, activations) — the roofline's traffic and the analysis' weight sizes.
BYTES = {Precision.FP32: 4, Precision.FP16: 2, Precision.BF16: 2, Precision.INT8: 1}

# Parity rule per precision: max |Δ| ≤ max_rel_error × max |reference|, and top-k identical where k > 0.
TOLERANCE = {
    Precision.FP32: {"max_rel_error": 1e-4, "top_k": 5},
    Precision.FP16: {"max_rel_error": 2e-2, "top_k": 0},
    Precision.BF16: {"max_rel_error": 6e-2, "top_k": 0},
    # INT8 golden outputs are the quantized model's own outputs at export (not PyTorch's): on another CPU the int8
    # kernels may round a requantization step differently, so a few per cent of the output range and the same top-1.
    Precision.INT8: {"max_rel_error": 5e-2, "top_k": 1},
}
# INT8 must still compute the float model's function: cosine of int8 vs PyTorch logits on the golden inputs (real
# calibration samples). A collapse (e.g. per-tensor depthwise weights) falls far below; healthy INT8 is > 0.98.
INT8_MIN_COSINE = 0.9


def parse_precision(text: str, *, flag: str = "--precision") -> Precision:
    """``text`` as a :class:`Precision`, or a :class:`ConfigError` naming the flag and the accepted values."""
    try:
        return Precision(text)
    except ValueError:
        raise ConfigError(f"unknown {flag} {text!r}", hint=f"one of {', '.join(Precision)}") from None
