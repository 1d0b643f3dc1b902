"""``edgecnn.quant.quantize``: model (zoo name, checkpoint or module) + calibration data → a verified INT8 bundle
for one target, the lint findings, and the report. The CLI (``edgecnn quantize`` / ``export --precision int8``) is
a thin shell over this."""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from torch import nn

from edgecnn.errors import ConfigError
from edgecnn.quant.config import CalibMethod, QuantConfig, Rounding
from edgecnn.quant.lint import Finding, lint_model
from edgecnn.quant.samples import DEFAULT_SAMPLES, SampleSet, load_samples

if TYPE_CHECKING:
    from edgecnn.quant.qat import QatConfig

log = logging.getLogger(__name__)
EVAL_SAMPLES = 1000
TRAIN_SAMPLES = 4000  # QAT fine-tuning images (the embedded digits' whole train split)


@dataclass(frozen=True, kw_only=True)
class QuantizeResult:
    bundle: Path | None
    manifest: dict[str, Any] | None
    findings: list[Finding]
    report: dict[str, Any] | None = None
    report_files: dict[str, Path] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def resolve(model: str | nn.Module, weights: str | None) -> nn.Module:
    if isinstance(model, nn.Module):
        return model.eval()
    from edgecnn.models.resolve import resolve_model

    net, _ = resolve_model(model, weights=weights)
    return net


def evaluation_transform(net: nn.Module, resolution: int | None) -> Any:
    """The model's evaluation transform at the export resolution (never a training transform)."""
    pre = getattr(net, "preprocessing", None)
    if pre is not None and resolution and pre.input_size != resolution:
        pre = pre.at_resolution(resolution)
    return pre


def make_config(
    net: nn.Module,
    calib_data: str | SampleSet,
    *,
    eval_data: str | SampleSet | None = None,
    method: str = "mse",
    samples: int = DEFAULT_SAMPLES,
    max_drop: float | None = None,
    resolution: int | None = None,
    keep_float: tuple[str, ...] = (),
    seed: int = 0,
    per_channel: bool = True,
    rounding: str = "gptq",
) -> QuantConfig:
    try:
        meth = CalibMethod(method)
    except ValueError:
        raise ConfigError(f"unknown --method {method!r}", hint="one of mse, minmax, entropy, percentile") from None
    try:
        rnd = Rounding(rounding)
    except ValueError:
        raise ConfigError(f"unknown rounding {rounding!r}", hint="one of gptq, nearest") from None
    pre = evaluation_transform(net, resolution)
    if isinstance(calib_data, SampleSet):
        calib = calib_data
    else:
        calib = load_samples(calib_data, pre, samples=samples, seed=seed)
    ev = None
    if eval_data is not None:
        ev = (
            eval_data
            if isinstance(eval_data, SampleSet)
            else load_samples(eval_data, pre, samples=EVAL_SAMPLES, seed=seed + 1, split="test")
        )
    return QuantConfig(
        calibration=calib,
        method=meth,
        max_drop=max_drop,
        evaluation=ev,
        keep_float=keep_float,
        per_channel=per_channel,
        rounding=rnd,
    )


def _train_samples(net: nn.Module, spec: str, resolution: int | None, samples: int) -> SampleSet:
    try:
        return load_samples(spec, evaluation_transform(net, resolution), samples=samples, seed=2)
    except ConfigError as e:
        raise ConfigError(f"--train-data: {e.message}", hint=e.hint) from None


def quantize(
    model: str | nn.Module,
    *,
    target: str,
    calib_data: str | SampleSet,
    eval_data: str | SampleSet | None = None,
    method: str = "mse",
    samples: int = DEFAULT_SAMPLES,
    max_drop: float | None = None,
    out: str | os.PathLike | None = None,
    weights: str | None = None,
    resolution: int | None = None,
    keep_float: tuple[str, ...] = (),
    overwrite: bool = False,
    lint_only: bool = False,
    report: bool = True,
    report_dir: str | os.PathLike | None = None,
    measure_latency: bool = True,
    progress: Callable[[str], None] | None = None,
    per_channel: bool = True,
    rounding: str = "gptq",
    qat: QatConfig | None = None,
    train_data: str | SampleSet | None = None,
    train_samples: int = TRAIN_SAMPLES,
) -> QuantizeResult:
    """Lint, quantize for ``target`` through the export driver (bundle verified by selftest), and report.

    With ``qat`` the model is fine-tuned with NNCF fake quantizers on ``train_data`` first
    (:mod:`edgecnn.quant.qat`) and the bundle carries the scales QAT learned; ``per_channel=False`` is the scheme
    of accelerators with one weight scale per tensor."""
    from edgecnn.exporters import TARGETS, ExportOptions, Precision, export_bundle

    TARGETS.get(target)  # unknown target → "did you mean", before any work
    if qat is None and train_data is not None:
        raise ConfigError("--train-data is for quantization-aware training", hint="add --qat-epochs N, or drop it")
    if qat is not None and train_data is None:
        raise ConfigError(
            "QAT needs training data", hint="pass --train-data DIR|FILE.npz|embedded (labelled, for fine-tuning)"
        )
    net = resolve(model, weights)
    cfg = make_config(
        net,
        calib_data,
        eval_data=eval_data,
        method=method,
        samples=samples,
        max_drop=max_drop,
        resolution=resolution,
        keep_float=keep_float,
        per_channel=per_channel,
        rounding=rounding,
    )
    if qat is not None:
        cfg.check_qat()
    elif target == "openvino":
        from edgecnn.quant.openvino_flow import check_openvino_config

        check_openvino_config(cfg)
    findings = lint_model(
        net,
        per_channel=cfg.per_channel,
        calibration_samples=len(cfg.calibration),
        bias_correction=cfg.bias_correction or target != "openvino",
        qat=qat is not None,
    )
    if lint_only:
        return QuantizeResult(bundle=None, manifest=None, findings=findings)
    if qat is not None:
        from edgecnn.quant.qat import train_qat

        train = (
            train_data
            if isinstance(train_data, SampleSet)
            else _train_samples(net, train_data, resolution, train_samples)
        )
        (progress or log.info)(f"quantization-aware training: {qat.epochs} epoch(s) on {len(train)} samples")
        trained = train_qat(
            net,
            cfg.calibration,
            train,
            qat,
            per_channel=cfg.per_channel,
            signed_activations=target == "tensorrt",  # TensorRT takes only signed, symmetric int8 Q/DQ
            preset=str(cfg.preset),
            bias_correction=cfg.bias_correction,
            overflow_fix=cfg.overflow_fix,
            evaluation=cfg.evaluation,
            progress=progress,
        )
        cfg = dataclasses.replace(cfg, qat=trained)
    opts = ExportOptions(target=target, precision=Precision.INT8, resolution=resolution, quant=cfg)
    result = export_bundle(net, opts, out, overwrite=overwrite, progress=progress)
    if not report:
        return QuantizeResult(bundle=result.bundle, manifest=result.manifest, findings=findings, notes=result.notes)
    from edgecnn.quant.report import build_report, write_report

    (progress or log.info)("measuring fp32 vs int8 for the report")
    rep = build_report(result.bundle, net, findings=[f.to_dict() for f in findings], measure_latency=measure_latency)
    rdir = Path(report_dir) if report_dir else result.bundle.with_name(result.bundle.name + "-report")
    files = write_report(rep, rdir)
    return QuantizeResult(
        bundle=result.bundle,
        manifest=result.manifest,
        findings=findings,
        report=rep,
        report_files=files,
        notes=result.notes,
    )
