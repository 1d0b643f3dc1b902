"""Export options and per-target capabilities, validated before any work starts (never a silent rewrite)."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from edgecnn.errors import ConfigError


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
}


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
        if opts.precision is Precision.INT8:
            raise ConfigError(
                f"--precision int8 for {self.name!r} is not available yet",
                hint="INT8 arrives with `edgecnn quantize` (compression); export fp32/fp16 for now",
            )
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
