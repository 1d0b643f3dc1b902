"""What the user asks of INT8 quantization, validated before any work starts (no SDK imported here)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from edgecnn.errors import ConfigError
from edgecnn.quant.samples import SampleSet


class CalibMethod(StrEnum):
    """Activation-range estimators (ONNX Runtime's ``CalibrationMethod``: MinMax, Entropy, Percentile)."""

    MINMAX = "minmax"
    ENTROPY = "entropy"
    PERCENTILE = "percentile"


class Preset(StrEnum):
    """NNCF presets: ``performance`` = symmetric weights and activations, ``mixed`` = asymmetric activations."""

    PERFORMANCE = "performance"
    MIXED = "mixed"


@dataclass(frozen=True, kw_only=True)
class QuantConfig:
    """INT8 post-training quantization settings; the defaults are edgecnn's "fast and safe" choice.

    ``max_drop`` is the accepted top-1 drop in percentage points on ``evaluation`` (None: no budget).
    ``keep_float`` names graph nodes (ONNX node names / OpenVINO op names) that stay in float.
    ``per_channel=False`` exists to reproduce the naive per-tensor failure (REFERENCE.md), not for use.
    """

    calibration: SampleSet
    method: CalibMethod = CalibMethod.MINMAX
    per_channel: bool = True
    max_drop: float | None = None
    evaluation: SampleSet | None = None
    preset: Preset = Preset.PERFORMANCE
    fast_bias_correction: bool = True
    bias_correction: bool = True
    keep_float: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not isinstance(self.calibration, SampleSet):
            raise ConfigError("quantization needs a calibration SampleSet (see edgecnn.quant.samples)")
        if self.max_drop is not None:
            if not 0 <= self.max_drop < 100:
                raise ConfigError(f"--max-drop must be in [0, 100) top-1 points, got {self.max_drop}")
            ev = self.evaluation
            if ev is None or ev.labels is None:
                raise ConfigError(
                    "--max-drop needs labelled evaluation data",
                    hint="pass --eval-data (a class-per-folder directory, 'embedded', or a .npz with 'y')",
                )

    def record(self) -> dict[str, Any]:
        return {
            "method": str(self.method),
            "per_channel": self.per_channel,
            "max_drop": self.max_drop,
            "preset": str(self.preset),
            "bias_correction": self.bias_correction,
            "keep_float_requested": list(self.keep_float),
            "calibration": self.calibration.record(),
            "evaluation": None if self.evaluation is None else self.evaluation.record(),
        }
