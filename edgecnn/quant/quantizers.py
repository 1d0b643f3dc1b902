"""The built-in quantizer backends (:mod:`edgecnn.quant.backend`), registered on first use.

=====================  =========  ============================================================================
name                   produces   path
=====================  =========  ============================================================================
``onnxruntime-qdq``    onnx       ONNX Runtime's quantizer, u8 activations / s8 per-channel weights, QDQ
``tensorrt-qdq``       onnx       ONNX Runtime's quantizer placing explicit signed symmetric Q/DQ for TensorRT
``nncf-openvino``      openvino   NNCF ``quantize`` (or accuracy control) on the OpenVINO model
``nncf-qat-qdq``       onnx       a QAT model (NNCF, torch) exported as QDQ with the scales it learned
``nncf-qat-tensorrt``  onnx       the same, refusing activation quantizers TensorRT cannot take
``nncf-qat-openvino``  openvino   the QAT QDQ ONNX converted to OpenVINO IR (FakeQuantize)
=====================  =========  ============================================================================
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from edgecnn.errors import ConfigError
from edgecnn.quant.backend import Quantized, QuantJob, register_quantizer
from edgecnn.quant.config import QuantConfig
from edgecnn.quant.ort_ptq import ORT_CPU, TENSORRT, QdqScheme, ort_logits


class OrtQdqQuantizer:
    """Post-training QDQ with ONNX Runtime's quantizer (:mod:`edgecnn.quant.onnx_flow`), laid out for ``scheme``:
    pre-processing, ``--keep-float`` names, GPTQ rounding, MSE ranges, the ``--max-drop`` float fallback search and
    the per-layer error all happen on the exported fp32 ONNX."""

    produces = "onnx"

    def __init__(self, name: str, scheme: QdqScheme) -> None:
        self.name, self.scheme = name, scheme
        self.signed_activations = scheme.signed_activations

    def check(self, cfg: QuantConfig) -> None:
        """Every setting of :class:`QuantConfig` applies to ONNX Runtime's quantizer."""

    def corrects_bias(self, cfg: QuantConfig) -> bool:
        return True  # the rounding's mean output shift is removed from each bias (edgecnn.quant.rounding)

    def quantize_file(self, fp32: Path, out: Path, cfg: QuantConfig, *, batch: int) -> dict[str, Any]:
        """Rewrite ``fp32`` for the scheme (in place) and quantize it into ``out``; returns the record."""
        from edgecnn.quant.onnx_flow import quantize_onnx_file

        self.scheme.prepare(fp32)
        return quantize_onnx_file(fp32, out, cfg, batch=batch, scheme=self.scheme)

    def quantize(self, job: QuantJob, out: Path) -> Quantized:
        fp32 = job.export_fp32()
        record = self.quantize_file(fp32, out, job.cfg, batch=job.batch)
        fp32.unlink()
        return Quantized(model=out, record=record)

    def logits(self, model: Any, data: np.ndarray, batch: int) -> np.ndarray:
        return ort_logits(model, data, batch)


class NncfOpenVINOQuantizer:
    """NNCF on the OpenVINO model converted from the fp32 ONNX (:mod:`edgecnn.quant.openvino_flow`)."""

    name = "nncf-openvino"
    produces = "openvino"
    signed_activations = False

    def check(self, cfg: QuantConfig) -> None:
        from edgecnn.quant.openvino_flow import check_openvino_config

        check_openvino_config(cfg)

    def corrects_bias(self, cfg: QuantConfig) -> bool:
        return cfg.bias_correction  # NNCF's own bias correction, when it is on

    def quantize(self, job: QuantJob, out: Path) -> Quantized:
        from edgecnn.quant.openvino_flow import quantize_openvino

        fp32 = job.export_fp32("intermediate.onnx")
        model, record = quantize_openvino(fp32, job.cfg, batch=job.batch)
        return Quantized(model=model, record=record, scratch=(fp32,))

    def logits(self, model: Any, data: np.ndarray, batch: int) -> np.ndarray:
        from edgecnn.quant.openvino_flow import ov_logits

        return ov_logits(model, data, batch)


class NncfQatQuantizer:
    """A quantization-aware-trained model (``QuantConfig.qat``) exported with its learned scales, nothing calibrated
    again (:mod:`edgecnn.quant.qat_export`); ``produces`` picks QDQ ONNX or OpenVINO IR converted from it."""

    def __init__(self, name: str, *, produces: str, signed_required: bool = False) -> None:
        self.name, self.produces, self.signed_required = name, produces, signed_required
        self.signed_activations = signed_required

    def check(self, cfg: QuantConfig) -> None:
        cfg.check_qat()

    def corrects_bias(self, cfg: QuantConfig) -> bool:
        return False  # QAT learns its weights and biases with the quantizers in place: nothing to correct

    def quantize(self, job: QuantJob, out: Path) -> Quantized:
        from edgecnn.quant.qat_export import check_scheme, evaluate, export_qat_onnx, qat_record

        qat = job.cfg.qat
        if qat is None:
            raise ConfigError("the QAT quantizer needs a QAT model", hint="train one with edgecnn.quant.qat.train_qat")
        check_scheme(qat, signed_required=self.signed_required)
        onnx_out = out if self.produces == "onnx" else job.workdir / "intermediate.onnx"
        path = export_qat_onnx(qat, job.example, onnx_out, opset=job.opset, dynamic_batch=job.dynamic_batch)
        if self.produces == "onnx":
            fmt = "QDQ (QAT scales)" + (", signed symmetric for TensorRT" if self.signed_required else "")
            metrics = evaluate(job, lambda x, b: ort_logits(path, x, b))
            return Quantized(model=path, record=qat_record(job, fmt=fmt, metrics=metrics))
        import openvino as ov

        model = ov.convert_model(str(path))
        metrics = evaluate(job, lambda x, b: self.logits(model, x, b))
        record = qat_record(job, fmt="OpenVINO IR with FakeQuantize (QAT scales)", metrics=metrics)
        return Quantized(model=model, record=record, scratch=(path,))

    def logits(self, model: Any, data: np.ndarray, batch: int) -> np.ndarray:
        if self.produces == "onnx":
            return ort_logits(model, data, batch)
        from edgecnn.quant.openvino_flow import ov_logits

        return ov_logits(model, data, batch)


register_quantizer(OrtQdqQuantizer("onnxruntime-qdq", ORT_CPU))
register_quantizer(OrtQdqQuantizer("tensorrt-qdq", TENSORRT))
register_quantizer(NncfOpenVINOQuantizer())
register_quantizer(NncfQatQuantizer("nncf-qat-qdq", produces="onnx"))
register_quantizer(NncfQatQuantizer("nncf-qat-tensorrt", produces="onnx", signed_required=True))
register_quantizer(NncfQatQuantizer("nncf-qat-openvino", produces="openvino"))
