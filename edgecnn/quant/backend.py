"""The quantizer interface and registry (in the spirit of NNCF's algorithm / backend split).

A quantizer backend is one way of making an INT8 model for one kind of runtime: ONNX Runtime's QDQ for CPUs,
explicit symmetric Q/DQ for TensorRT, NNCF on OpenVINO IR, and NNCF quantization-aware training exported with the
scales it learned. An export target names its backends (``Target.quantizer`` / ``Target.qat_quantizer``); nothing
branches on target names. Each backend owns its settings check, calibration and activation ranges, weight rounding
(GPTQ, bias correction) and per-layer error, and writes the manifest's quantization record.

A new backend is a class with the :class:`Quantizer` attributes and methods, registered with
:func:`register_quantizer` — see ``docs/architecture.md``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from edgecnn.registry import Registry

if TYPE_CHECKING:
    import numpy as np

    from edgecnn.onnx_graph.torch_export import DynamicBatch
    from edgecnn.quant.config import QuantConfig


@dataclass(frozen=True, kw_only=True)
class QuantJob:
    """What a quantizer is given: the float PyTorch model and its example input, the export's settings, the work
    directory (everything written there that the target does not list is deleted) and the quantization settings."""

    model: Any  # torch.nn.Module in eval mode
    example: Any  # torch.Tensor, the input shape of the export
    workdir: Path
    opset: int
    dynamic_batch: DynamicBatch | None
    cfg: QuantConfig

    @property
    def batch(self) -> int:
        return int(self.example.shape[0])

    def export_fp32(self, name: str = "fp32.onnx") -> Path:
        """The float model as ONNX in the work directory (the exporter's node names and layer scopes)."""
        from edgecnn.onnx_graph.torch_export import export_onnx

        return export_onnx(
            self.model, self.example, self.workdir / name, opset=self.opset, dynamic_batch=self.dynamic_batch
        )


@dataclass(frozen=True, kw_only=True)
class Quantized:
    """A quantizer's result: the INT8 model (an ONNX file, or an in-memory model of the backend's SDK), the
    manifest's quantization record, and scratch files the target deletes once it has saved the model."""

    model: Any
    record: dict[str, Any]
    scratch: tuple[Path, ...] = field(default_factory=tuple)


class Quantizer(Protocol):
    """One INT8 path. ``produces`` is the model kind it returns: ``"onnx"`` (a file) or ``"openvino"``."""

    name: str
    produces: str
    signed_activations: bool  # int8 activations with zero point 0: QAT for this backend trains that way

    def check(self, cfg: QuantConfig) -> None:
        """Refuse settings this backend cannot honour (a :class:`ConfigError`), before any work starts."""
        ...

    def corrects_bias(self, cfg: QuantConfig) -> bool:
        """Whether the INT8 model's biases are corrected for the weight rounding (the lint's bias warning)."""
        ...

    def quantize(self, job: QuantJob, out: Path) -> Quantized:
        """Make the INT8 model; an ONNX-producing backend writes it to ``out``."""
        ...

    def logits(self, model: Any, data: np.ndarray, batch: int) -> np.ndarray:
        """Run a model this backend produced on preprocessed ``data`` (evaluation and reports)."""
        ...


QUANTIZERS: Registry[Quantizer] = Registry("quantizer")


def register_quantizer(quantizer: Quantizer) -> Quantizer:
    return QUANTIZERS.register(quantizer.name, quantizer)


def get_quantizer(name: str) -> Quantizer:
    """The registered quantizer ``name`` (the built-ins register on first use)."""
    import edgecnn.quant.quantizers  # noqa: F401  (registers the built-in backends)

    return QUANTIZERS.get(name)
