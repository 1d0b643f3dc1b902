"""Export options and per-target capabilities, validated before any work starts (never a silent rewrite)."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING

from edgecnn.errors import ConfigError

if TYPE_CHECKING:
    from edgecnn.quant.config import QuantConfig


class Precision(StrEnum):
    FP32 = "fp32"
    FP16 = "fp16"
    BF16 = "bf16"
    INT8 = "int8"


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


@dataclass(frozen=True, kw_only=True)
class DynamicBatch:
    min: int
    opt: int
    max: int

    @classmethod
    def parse(cls, text: str) -> DynamicBatch:
        """'MIN:OPT:MAX' (or 'MIN:MAX', opt = min)."""
        parts = text.split(":")
        try:
            nums = [int(p) for p in parts]
        except ValueError:
            nums = []
        if len(nums) == 2:
            nums = [nums[0], nums[0], nums[1]]
        if len(nums) != 3 or not 1 <= nums[0] <= nums[1] <= nums[2]:
            raise ConfigError(
                f"--dynamic-batch {text!r} is not MIN:OPT:MAX with 1 <= MIN <= OPT <= MAX",
                hint="e.g. --dynamic-batch 1:8:32",
            )
        return cls(min=nums[0], opt=nums[1], max=nums[2])


@dataclass(frozen=True, kw_only=True)
class ExportOptions:
    """What the user asked for. ``target_options`` holds target-specific keys (validated by the target)."""

    target: str
    precision: Precision = Precision.FP32
    resolution: int | None = None
    batch: int = 1
    dynamic_batch: DynamicBatch | None = None
    opset: int = 18
    target_options: dict[str, object] = field(default_factory=dict)
    quant: QuantConfig | None = None  # INT8 only: calibration data and quantizer settings (edgecnn.quant)

    def __post_init__(self) -> None:
        if self.resolution is not None and self.resolution < 8:
            raise ConfigError(f"--resolution must be >= 8, got {self.resolution}")
        if self.batch < 1:
            raise ConfigError(f"--batch must be >= 1, got {self.batch}")
        if self.dynamic_batch is not None and self.batch != 1:
            raise ConfigError("--batch and --dynamic-batch are exclusive", hint="give one of them")


@dataclass(frozen=True, kw_only=True)
class TargetSpec:
    """What a target accepts: precisions, dynamic batch, opsets and its own option names with defaults."""

    name: str
    description: str
    precisions: tuple[Precision, ...]
    dynamic_batch: bool = True
    opsets: tuple[int, int] = (17, 21)
    options: dict[str, object] = field(default_factory=dict)

    def validate(self, opts: ExportOptions) -> dict[str, object]:
        """Check ``opts`` against this target; returns the target options with defaults filled in."""
        if opts.precision is Precision.INT8 and opts.quant is None and Precision.INT8 in self.precisions:
            raise ConfigError(
                f"--precision int8 for {self.name!r} needs calibration data",
                hint="pass --calib-data DIR|FILE.npz|embedded (or use `edgecnn quantize`)",
            )
        if opts.quant is not None and opts.precision is not Precision.INT8:
            raise ConfigError(f"quantization settings were given for --precision {opts.precision}; they need int8")
        if opts.precision not in self.precisions:
            raise ConfigError(
                f"target {self.name!r} does not take --precision {opts.precision}",
                hint=f"supported: {', '.join(self.precisions)}",
            )
        if opts.dynamic_batch and not self.dynamic_batch:
            raise ConfigError(f"target {self.name!r} does not support --dynamic-batch")
        lo, hi = self.opsets
        if not lo <= opts.opset <= hi:
            raise ConfigError(f"--opset {opts.opset} is outside {lo}..{hi} for target {self.name!r}")
        unknown = sorted(set(opts.target_options) - set(self.options))
        if unknown:
            from edgecnn.registry import suggest

            close = suggest(unknown[0], list(self.options))
            raise ConfigError(
                f"target {self.name!r} has no option {unknown[0]!r}",
                hint=f"did you mean {close!r}?" if close else f"options: {', '.join(self.options) or 'none'}",
            )
        merged = {**self.options, **opts.target_options}
        for k, default in self.options.items():
            if not isinstance(merged[k], type(default)):
                raise ConfigError(
                    f"option {k!r} of target {self.name!r} must be {type(default).__name__}, got {merged[k]!r}"
                )
        return merged
