"""The OpenVINO INT8 flow: NNCF on the OpenVINO model (REFERENCE.md: NNCF for OpenVINO only — NNCF's QDQ ONNX is
slow in ONNX Runtime). ``nncf.quantize`` with a preset and bias correction (MobileNetV3-small loses up to 16 top-1
points without it, NNCF reference data); with ``--max-drop``, ``nncf.quantize_with_accuracy_control`` returns the
most sensitive operations to float until the absolute top-1 drop fits."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from edgecnn.errors import AccuracyBudgetError, ConfigError
from edgecnn.quant.config import CalibMethod, Preset, QuantConfig
from edgecnn.quant.metrics import compare, run_batched

log = logging.getLogger(__name__)
WEIGHTED_OPS = ("Convolution", "GroupConvolution", "MatMul", "ConvolutionBackpropData")


def _batches(data: np.ndarray, batch: int) -> list[np.ndarray]:
    n = len(data) - len(data) % batch
    return [data[i : i + batch] for i in range(0, n, batch)]


def ov_logits(model: Any, data: np.ndarray, batch: int) -> np.ndarray:
    """Run an OpenVINO model on CPU in true f32 for non-quantized ops (the bundle's own hint)."""
    import openvino as ov

    compiled = ov.Core().compile_model(model, "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    out = compiled.outputs[0]
    return run_batched(lambda x: compiled(x)[out], data, batch)


def float_ops(model: Any) -> list[str]:
    """Weighted ops whose weights do not come through a FakeQuantize: what NNCF left in float."""
    kept = []
    for op in model.get_ordered_ops():
        if op.get_type_name() not in WEIGHTED_OPS:
            continue
        src = op.input_value(1).get_node()
        while src.get_type_name() in ("Convert", "Reshape", "Transpose", "Unsqueeze"):
            src = src.input_value(0).get_node()
        if src.get_type_name() not in ("FakeQuantize", "FakeConvert", "Multiply", "Subtract"):
            kept.append(op.get_friendly_name())
    return kept


def check_openvino_config(cfg: QuantConfig) -> None:
    """NNCF chooses its own range estimators per preset: a --method other than minmax would be silently ignored."""
    if cfg.method is not CalibMethod.MINMAX:
        raise ConfigError(
            f"--method {cfg.method} applies to the onnx and tensorrt targets (ONNX Runtime's calibrators)",
            hint="for openvino leave --method out; NNCF picks range estimators from its preset",
        )


def quantize_openvino(onnx_fp32: Path, cfg: QuantConfig, *, batch: int) -> tuple[Any, dict[str, Any]]:
    """OpenVINO model (converted from the fp32 ONNX) → NNCF INT8 model and the manifest record."""
    from edgecnn.runtime.backends import import_sdk

    nncf = import_sdk("nncf", "all")  # a missing SDK → MissingDependencyError naming the extra
    ov = import_sdk("openvino", "openvino")
    from nncf.quantization.advanced_parameters import AdvancedQuantizationParameters, QuantizationParameters

    check_openvino_config(cfg)
    model = ov.convert_model(str(onnx_fp32))
    calib = _batches(cfg.calibration.data, batch)
    preset = {
        Preset.PERFORMANCE: nncf.QuantizationPreset.PERFORMANCE,
        Preset.MIXED: nncf.QuantizationPreset.MIXED,
    }[cfg.preset]
    ignored = nncf.IgnoredScope(names=list(cfg.keep_float)) if cfg.keep_float else None
    adv = AdvancedQuantizationParameters(
        disable_bias_correction=not cfg.bias_correction,
        weights_quantization_params=None if cfg.per_channel else QuantizationParameters(per_channel=False),
    )
    common: dict[str, Any] = {
        "preset": preset,
        "subset_size": len(calib) * batch,
        "fast_bias_correction": cfg.fast_bias_correction,
        "ignored_scope": ignored,
    }
    ev = cfg.evaluation if cfg.evaluation is not None else cfg.calibration
    ref = ov_logits(model, ev.data, batch)
    if cfg.max_drop is None:
        qmodel = nncf.quantize(model, nncf.Dataset(calib), advanced_parameters=adv, **common)
    else:
        labels = ev.labels
        assert labels is not None  # QuantConfig checked it
        val = [(x, y) for x, y in zip(_batches(ev.data, batch), _batches(labels, batch), strict=True)]

        def validate(compiled: Any, items: Any) -> tuple[float, list[float]]:
            out = compiled.outputs[0]
            hits = [float(v) for x, y in items for v in (compiled(x)[out].argmax(-1) == y)]
            return float(np.mean(hits)), hits

        qmodel = nncf.quantize_with_accuracy_control(
            model,
            nncf.Dataset(calib),
            nncf.Dataset(val, lambda item: item[0]),
            validate,
            max_drop=cfg.max_drop / 100.0,
            drop_type=nncf.DropType.ABSOLUTE,
            advanced_quantization_parameters=adv,
            **common,
        )
    metrics = compare(ref, ov_logits(qmodel, ev.data, batch), ev.labels)
    if cfg.max_drop is not None and metrics["top1_drop_points"] > cfg.max_drop:
        raise AccuracyBudgetError(
            f"--max-drop {cfg.max_drop} points is not reachable: NNCF's accuracy control got a top-1 drop of "
            f"{metrics['top1_drop_points']:.2f} points with {len(float_ops(qmodel))} layers in float",
            hint="raise --max-drop, calibrate on more representative data, or use QAT",
        )
    kept = float_ops(qmodel)
    why = "accuracy budget (NNCF accuracy control)" if cfg.max_drop is not None else "not quantizable by NNCF"
    requested = set(cfg.keep_float)
    return qmodel, {
        "backend": f"nncf {nncf.__version__}",
        "format": "OpenVINO IR with FakeQuantize",
        "activations": "int8 " + ("symmetric" if cfg.preset is Preset.PERFORMANCE else "asymmetric"),
        "weights": "int8 symmetric " + ("per-channel" if cfg.per_channel else "per-tensor"),
        **cfg.record(),
        "kept_float": [{"node": n, "why": "requested (keep_float)" if n in requested else why} for n in kept],
        "fallback_trials": [],
        "fp32_vs_int8": {**metrics, "on": "evaluation" if cfg.evaluation is not None else "calibration"},
        "layer_errors": [],
    }
