"""The one INT8 export entry point: model (zoo name, checkpoint or module) + calibration data → lint findings, an
optional quantization-aware fine-tuning, a verified INT8 bundle for one target (its quantizer backend, through the
export driver), and the fp32-vs-INT8 report. ``edgecnn quantize``, ``edgecnn export --precision int8`` and the
benchmark bundles all call :func:`quantize`."""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from torch import nn

from edgecnn.errors import ConfigError, EdgeCNNError
from edgecnn.exporters.driver import ExportResult, check_destination, check_writable_dir, export_bundle
from edgecnn.exporters.options import DynamicBatch, ExportOptions
from edgecnn.exporters.target import TARGETS
from edgecnn.models.resolve import as_module
from edgecnn.precision import Precision
from edgecnn.quant.calib_check import check_calibration
from edgecnn.quant.config import evaluation_transform, make_config
from edgecnn.quant.lint import Finding, lint_model
from edgecnn.quant.samples import DEFAULT_SAMPLES, SampleSet, load_samples
from edgecnn.runtime.env import cpu_flags

if TYPE_CHECKING:
    from edgecnn.quant.qat import QatConfig

log = logging.getLogger(__name__)
TRAIN_SAMPLES = 4000  # QAT fine-tuning images (the embedded digits' whole train split)


@dataclass(frozen=True, kw_only=True)
class QuantizeResult:
    """The lint findings, the verified bundle (None with ``lint_only``) and the report."""

    findings: list[Finding]
    export: ExportResult | None = None
    report: dict[str, Any] | None = None
    report_files: dict[str, Path] = field(default_factory=dict)

    @property
    def bundle(self) -> Path | None:
        return self.export.bundle if self.export else None

    @property
    def manifest(self) -> dict[str, Any] | None:
        return self.export.manifest if self.export else None

    @property
    def notes(self) -> list[str]:
        return self.export.notes if self.export else []


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
    batch: int = 1,
    dynamic_batch: DynamicBatch | None = None,
    opset: int = 18,
    target_options: dict[str, object] | None = None,
    explain_data: str | os.PathLike | list[str | os.PathLike] | None = None,
    explain_masks: int = 100,
    explain_images: int = 8,
) -> QuantizeResult:
    """Lint, quantize for ``target`` through the export driver (bundle verified by selftest), and report.

    The target's descriptor names the quantizer backend (:mod:`edgecnn.quant.backend`). With ``qat`` the model is
    fine-tuned with NNCF fake quantizers on ``train_data`` first (:mod:`edgecnn.quant.qat`) and the bundle carries
    the scales QAT learned; ``per_channel=False`` is the scheme of accelerators with one weight scale per tensor.
    ``explain_data`` (image files or folders) adds the fp32-vs-INT8 explanation parity to the report: RISE with
    ``explain_masks`` seeded masks on the float model and through the bundle, for the first ``explain_images``."""
    tgt = TARGETS.get(target)  # unknown target → "did you mean", before any work
    explain_paths = _explain_paths(explain_data, explain_images, report and not lint_only)
    if qat is None and train_data is not None:
        raise ConfigError("--train-data is for quantization-aware training", hint="add --qat-epochs N, or drop it")
    if qat is not None and train_data is None:
        raise ConfigError(
            "QAT needs training data", hint="pass --train-data DIR|FILE.npz|embedded (labelled, for fine-tuning)"
        )
    if out is not None:  # a bad destination is refused before minutes of calibration, not after
        check_destination(Path(out), overwrite)
    if report and report_dir is not None:
        check_writable_dir(Path(report_dir), "--report-dir")
    say = progress or log.info
    net = as_module(model, weights)
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
    ptq = tgt.quantizer_for(qat=False)
    tgt.quantizer_for(qat=qat is not None).check(cfg)
    check = check_calibration(net, cfg.calibration, cfg.evaluation)  # counts, distinct images, range coverage
    findings = lint_model(
        net,
        per_channel=cfg.per_channel,
        bias_correction=ptq.corrects_bias(cfg),
        qat=qat is not None,
        calibration=check,
        cpu_flags=cpu_flags(),
    )
    if lint_only:
        return QuantizeResult(findings=findings)
    if qat is not None:
        cfg = dataclasses.replace(cfg, qat=_train_qat(net, cfg, qat, train_data, resolution, train_samples, ptq, say))
    opts = ExportOptions(
        target=target,
        precision=Precision.INT8,
        resolution=resolution,
        batch=batch,
        dynamic_batch=dynamic_batch,
        opset=opset,
        target_options=dict(target_options or {}),
        quant=cfg,
    )
    result = export_bundle(net, opts, out, overwrite=overwrite, progress=progress)
    if not report:
        return QuantizeResult(findings=findings, export=result)
    from edgecnn.exporters.int8_report import build_report, write_report

    say("measuring fp32 vs int8 for the report")
    rep = build_report(
        result.bundle,
        net,
        findings=[f.to_dict() for f in findings],
        measure_latency=measure_latency,
        calibration_check=check.to_dict(),
    )
    rdir = Path(report_dir) if report_dir else result.bundle.with_name(result.bundle.name + "-report")
    if explain_paths:
        from edgecnn.exporters.int8_report import explanation_parity

        say(f"explaining fp32 vs int8 on {len(explain_paths)} image(s) (RISE, {explain_masks} masks)")
        rep["explanation"] = explanation_parity(net, result.bundle, explain_paths, rdir, masks=explain_masks)
    files = write_report(rep, rdir)
    return QuantizeResult(findings=findings, export=result, report=rep, report_files=files)


def _explain_paths(data: str | os.PathLike | list[str | os.PathLike] | None, limit: int, reporting: bool) -> list[Path]:
    """The explanation images, checked before any quantization work (the first ``limit``, sorted per folder)."""
    if data is None:
        return []
    if not reporting:
        raise ConfigError("--explain-data adds a section to the report", hint="drop --lint-only, or drop it")
    if limit < 1:
        raise ConfigError(f"explain_images must be >= 1, got {limit}")
    from edgecnn.explain.feature_files import image_paths
    from edgecnn.runtime.preprocess import load_image

    items = data if isinstance(data, list) else [data]
    try:
        paths = image_paths(items)[:limit]
        for p in paths:  # an image that will not decode fails now, not after the quantization
            load_image(p).close()
    except EdgeCNNError as e:
        raise type(e)(f"--explain-data: {e.message}", hint=e.hint) from None
    return paths


def _train_qat(
    net: nn.Module,
    cfg: Any,
    qat: QatConfig,
    train_data: str | SampleSet | None,
    resolution: int | None,
    samples: int,
    ptq: Any,
    say: Callable[[str], None],
) -> Any:
    """Fine-tune ``net`` with fake quantizers in the scheme the target's quantizer runs (signed activations for
    TensorRT); returns the QAT model the target's QAT backend exports."""
    from edgecnn.quant.qat import train_qat

    train = train_data if isinstance(train_data, SampleSet) else _train_samples(net, train_data, resolution, samples)
    say(f"quantization-aware training: {qat.epochs} epoch(s) on {len(train)} samples")
    return train_qat(
        net,
        cfg.calibration,
        train,
        qat,
        per_channel=cfg.per_channel,
        signed_activations=ptq.signed_activations,  # TensorRT takes only signed, symmetric int8 Q/DQ
        preset=str(cfg.preset),
        bias_correction=cfg.bias_correction,
        overflow_fix=cfg.overflow_fix,
        evaluation=cfg.evaluation,
        progress=say,
    )
