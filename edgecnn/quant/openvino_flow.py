"""The OpenVINO INT8 flow: NNCF on the OpenVINO model (NNCF for OpenVINO only — NNCF's QDQ ONNX is
slow in ONNX Runtime). ``nncf.quantize`` with a preset, MSE-optimal activation ranges (NNCF's ``HISTOGRAM``
estimator, ``--method mse``, the default), one range per activation tensor (NNCF's per-channel ranges on depthwise
inputs break on a few dozen calibration images, benchmarks/results/quant_calib_size.md) and bias correction
(MobileNetV3-small loses up to 16 top-1 points without it, NNCF reference data) on weights already rounded by GPTQ
and bias-corrected for it (:mod:`edgecnn.quant.rounding`, on NNCF's own grid); with ``--max-drop``,
``nncf.quantize_with_accuracy_control`` returns the most sensitive operations to float until the absolute top-1 drop
fits — or the run fails showing the best drop NNCF found. Layers left in float get their original weights and biases
back. The record carries the per-layer error (fp32 IR vs INT8 IR)."""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Any

import numpy as np

from edgecnn.errors import AccuracyBudgetError, ConfigError
from edgecnn.quant.config import CalibMethod, Preset, QuantConfig, Rounding
from edgecnn.quant.metrics import compare, run_batched

log = logging.getLogger(__name__)
WEIGHTED_OPS = ("Convolution", "GroupConvolution", "MatMul", "ConvolutionBackpropData")
LAYER_ERROR_SAMPLES = 8
WORST_LAYERS = 10


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
    """NNCF has its own range estimators: ``mse`` is its ``HISTOGRAM`` estimator (MSE-optimal ranges on a
    histogram), ``minmax`` its preset's; entropy / percentile (ONNX Runtime's calibrators) would be ignored."""
    if cfg.method not in (CalibMethod.MINMAX, CalibMethod.MSE):
        raise ConfigError(
            f"--method {cfg.method} applies to the onnx and tensorrt targets (ONNX Runtime's calibrators)",
            hint="for openvino leave --method out (mse), or pass minmax for NNCF's preset estimators",
        )


def onnx_node(op_name: str) -> str:
    """The ONNX node an OpenVINO op came from (a Conv converts to ``<node>/WithoutBiases`` + its bias ``<node>``)."""
    return op_name.split("/")[0]


def _keep_float_ops(model: Any, cfg: QuantConfig, onnx_fp32: Path) -> dict[str, list[str]]:
    """``cfg.keep_float`` (module paths, ONNX node names or OpenVINO op names) → OpenVINO op names to ignore."""
    from edgecnn.onnx_graph.scopes import node_scopes, onnx_scopes
    from edgecnn.quant.names import resolve_keep_float

    if not cfg.keep_float:
        return {}
    scope, _ = onnx_scopes(onnx_fp32)
    paths = node_scopes(onnx_fp32)
    ops = [op.get_friendly_name() for op in model.get_ordered_ops() if op.get_type_name() not in ("Constant",)]
    weighted = [op.get_friendly_name() for op in model.get_ordered_ops() if op.get_type_name() in WEIGHTED_OPS]
    layers = {n: scope.get(onnx_node(n), "") for n in ops}
    by_node: dict[str, list[str]] = {}
    for n in ops:  # an ONNX node name stands for every op converted from it (conv + its bias add)
        by_node.setdefault(onnx_node(n), []).append(n)
    resolved = resolve_keep_float(
        cfg.keep_float,
        layers=layers,
        quantizable=weighted,
        nodes=[*ops, *by_node],
        scopes={n: paths.get(onnx_node(n), []) for n in ops},
        what="the OpenVINO model",
    )
    # every op converted from the same ONNX node goes with it (a conv's weighted op and its bias add)
    return {
        name: sorted({op for h in hits for op in by_node.get(onnx_node(h), [h])}) for name, hits in resolved.items()
    }


def _restore_float_weights(qmodel: Any, original: Any, names: list[str]) -> None:
    """Give the ops NNCF left in float their original weights and biases (the quantizer saw GPTQ-rounded weights
    and biases corrected for their rounding). A weighted op's bias is the Add with a constant that consumes it."""
    import openvino as ov

    src = {op.get_friendly_name(): op for op in original.get_ordered_ops()}

    def restore(op: Any) -> None:
        orig = src.get(op.get_friendly_name())
        if orig is None or orig.get_type_name() != op.get_type_name():
            return
        w, ow = op.input_value(1).get_node(), orig.input_value(1).get_node()
        if w.get_type_name() == "Constant" and ow.get_type_name() == "Constant" and w.get_shape() == ow.get_shape():
            op.input(1).replace_source_output(ov.opset13.constant(ow.get_data()).output(0))

    for op in qmodel.get_ordered_ops():
        if op.get_friendly_name() not in names:
            continue
        restore(op)
        for target in op.output(0).get_target_inputs():
            if target.get_node().get_type_name() == "Add":
                restore(target.get_node())


def _rounded_source(model: Any, onnx_fp32: Path, cfg: QuantConfig, batch: int) -> Any:
    """The model NNCF quantizes: with GPTQ rounding, the fp32 model with weights already rounded (and biases
    corrected for it) on NNCF's own grid; else the fp32 model itself."""
    if cfg.rounding is not Rounding.GPTQ:
        return model
    import openvino as ov

    from edgecnn.quant.rounding import rounding_for, write_rounded

    rounded = rounding_for(onnx_fp32, cfg, batch)
    path = write_rounded(onnx_fp32, onnx_fp32.with_name("rounded.onnx"), rounded)
    source = ov.convert_model(str(path))
    path.unlink()
    return source


def _nncf_settings(nncf: Any, cfg: QuantConfig, keep: list[str], subset: int) -> tuple[Any, dict[str, Any]]:
    """NNCF's advanced parameters and the arguments both of its entry points share, from ``cfg``."""
    from nncf.quantization.advanced_parameters import (
        AdvancedQuantizationParameters,
        OverflowFix,
        QuantizationParameters,
    )
    from nncf.quantization.range_estimator import RangeEstimatorParametersSet

    preset = {
        Preset.PERFORMANCE: nncf.QuantizationPreset.PERFORMANCE,
        Preset.MIXED: nncf.QuantizationPreset.MIXED,
    }[cfg.preset]
    ranges: dict[str, Any] = {}  # minmax: the preset's own estimators (mean of per-sample min/max, per tensor)
    if cfg.method is CalibMethod.MSE:  # NNCF's histogram estimator: MSE-optimal per-tensor ranges
        ranges["activations_range_estimator_params"] = RangeEstimatorParametersSet.HISTOGRAM
    adv = AdvancedQuantizationParameters(
        disable_bias_correction=not cfg.bias_correction,
        weights_quantization_params=None if cfg.per_channel else QuantizationParameters(per_channel=False),
        # per-tensor activation ranges: NNCF would give depthwise inputs one range per channel, each the extreme of
        # that channel over the calibration images — too few to estimate it (issue 20, quant_calib_size.md)
        activations_quantization_params=None
        if cfg.per_channel_activations
        else QuantizationParameters(per_channel=False),
        overflow_fix=OverflowFix.FIRST_LAYER if cfg.overflow_fix else OverflowFix.DISABLE,
        **ranges,
    )
    common: dict[str, Any] = {
        "preset": preset,
        "subset_size": subset,
        "fast_bias_correction": cfg.fast_bias_correction,
        "ignored_scope": nncf.IgnoredScope(names=keep) if keep else None,
    }
    return adv, common


def _run_nncf(nncf: Any, source: Any, cfg: QuantConfig, keep: list[str], batch: int) -> Any:
    """``nncf.quantize``, or with ``max_drop`` ``nncf.quantize_with_accuracy_control`` on the evaluation set."""
    calib = _batches(cfg.calibration.data, batch)
    adv, common = _nncf_settings(nncf, cfg, keep, len(calib) * batch)
    if cfg.max_drop is None:
        return nncf.quantize(source, nncf.Dataset(calib), advanced_parameters=adv, **common)
    ev = cfg.evaluation if cfg.evaluation is not None else cfg.calibration
    labels = ev.labels
    assert labels is not None  # QuantConfig checked it
    val = [(x, y) for x, y in zip(_batches(ev.data, batch), _batches(labels, batch), strict=True)]

    def validate(compiled: Any, items: Any) -> tuple[float, list[float]]:
        out = compiled.outputs[0]
        hits = [float(v) for x, y in items for v in (compiled(x)[out].argmax(-1) == y)]
        return float(np.mean(hits)), hits

    return nncf.quantize_with_accuracy_control(
        source,
        nncf.Dataset(calib),
        nncf.Dataset(val, lambda item: item[0]),
        validate,
        max_drop=cfg.max_drop / 100.0,
        drop_type=nncf.DropType.ABSOLUTE,
        advanced_quantization_parameters=adv,
        **common,
    )


def quantize_openvino(onnx_fp32: Path, cfg: QuantConfig, *, batch: int) -> tuple[Any, dict[str, Any]]:
    """OpenVINO model (converted from the fp32 ONNX) → NNCF INT8 model and the manifest record."""
    from edgecnn.sdk import import_sdk

    nncf = import_sdk("nncf", "all")  # a missing SDK → MissingDependencyError naming the extra
    ov = import_sdk("openvino", "openvino")
    from edgecnn.quant.layer_error import openvino_layer_errors

    check_openvino_config(cfg)
    model = ov.convert_model(str(onnx_fp32))
    requested = _keep_float_ops(model, cfg, onnx_fp32)  # unknown names fail here, before any calibration
    keep = sorted({n for hits in requested.values() for n in hits})
    source = _rounded_source(model, onnx_fp32, cfg, batch)
    ev = cfg.evaluation if cfg.evaluation is not None else cfg.calibration
    ref = ov_logits(model, ev.data, batch)
    try:
        qmodel = _run_nncf(nncf, source, cfg, keep, batch)
    except ValueError as e:  # NNCF's histogram cannot bin a (near-)constant activation: fall back to min/max
        if cfg.method is not CalibMethod.MSE or "bins" not in str(e):
            raise
        log.warning("NNCF histogram ranges failed (%s): using min/max ranges", e)
        cfg = dataclasses.replace(cfg, method=CalibMethod.MINMAX)
        qmodel = _run_nncf(nncf, source, cfg, keep, batch)
    kept = float_ops(qmodel)
    if source is not model:
        _restore_float_weights(qmodel, model, kept)
    metrics = compare(ref, ov_logits(qmodel, ev.data, batch), ev.labels)
    if cfg.max_drop is not None and metrics["top1_drop_points"] > cfg.max_drop:
        raise AccuracyBudgetError(
            f"--max-drop {cfg.max_drop} points is not reachable: NNCF's accuracy control got a top-1 drop of "
            f"{metrics['top1_drop_points']:.2f} points (top-1 {100 * metrics['fp32_top1']:.2f} → "
            f"{100 * metrics['int8_top1']:.2f} %) with {len(kept)} of {len(float_ops(model))} weighted layers in float",
            hint="raise --max-drop, calibrate on more representative data, or use QAT",
        )
    errs = openvino_layer_errors(
        model, qmodel, onnx_fp32, cfg.calibration.data[: LAYER_ERROR_SAMPLES * batch], batch=batch
    )
    return qmodel, _record(nncf, cfg, onnx_fp32, requested, kept, metrics, errs)


def _record(
    nncf: Any,
    cfg: QuantConfig,
    onnx_fp32: Path,
    requested: dict[str, list[str]],
    kept: list[str],
    metrics: dict[str, Any],
    errs: list[Any],
) -> dict[str, Any]:
    """The manifest's quantization record of an NNCF OpenVINO model."""
    from edgecnn.onnx_graph.scopes import onnx_scopes

    scope, _ = onnx_scopes(onnx_fp32)
    why = "accuracy budget (NNCF accuracy control)" if cfg.max_drop is not None else "not quantizable by NNCF"
    reason = {n: f"requested (keep_float {r!r})" for r, hits in requested.items() for n in hits}
    return {
        "backend": f"nncf {nncf.__version__}",
        "format": "OpenVINO IR with FakeQuantize",
        "activations": "int8 " + ("symmetric" if cfg.preset is Preset.PERFORMANCE else "asymmetric"),
        "activation_ranges": "NNCF HISTOGRAM estimator (MSE-optimal, per tensor)"
        if cfg.method is CalibMethod.MSE
        else "NNCF preset estimator (mean of per-sample min/max, per tensor)",
        "weights": "int8 symmetric " + ("per-channel" if cfg.per_channel else "per-tensor"),
        **cfg.record(),
        "activation_granularity": "NNCF's choice (per channel on depthwise inputs)"
        if cfg.per_channel_activations
        else "per tensor",
        "overflow_fix": "first layer (7-bit weights)" if cfg.overflow_fix else "disabled",
        "kept_float": [{"node": n, "layer": scope.get(onnx_node(n), ""), "why": reason.get(n, why)} for n in kept],
        "fallback_trials": [],
        "fp32_vs_int8": {**metrics, "on": "evaluation" if cfg.evaluation is not None else "calibration"},
        "layer_errors": [e.to_dict() for e in errs[:WORST_LAYERS]],
    }
