"""What the user asks an export for, validated before any work starts (never a silent rewrite). A target checks the
options against what it accepts (:meth:`edgecnn.exporters.target.Target.validate`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from edgecnn.errors import ConfigError
from edgecnn.onnx_graph.torch_export import DynamicBatch
from edgecnn.precision import INT8_MIN_COSINE, TOLERANCE, Precision

if TYPE_CHECKING:
    from edgecnn.quant.config import QuantConfig

__all__ = ["INT8_MIN_COSINE", "TOLERANCE", "DynamicBatch", "ExportOptions", "Precision"]


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
