"""``edgecnn quantize``: INT8 post-training quantization (or QAT) for one target, with lint, budget and report."""

from __future__ import annotations

from typing import Any

import click

from edgecnn.cli.base import RESOLUTION, cli, echo_json, human


@cli.command("quantize")
@click.argument("model")
@click.option("--target", "-t", required=True, help="onnx, openvino or tensorrt.")
@click.option(
    "--calib-data",
    required=True,
    help="A folder of photos (flat or class-per-folder), FILE.npz (preprocessed) or 'embedded'.",
)
@click.option(
    "--method", default="mse", show_default=True, help="Activation ranges: mse, minmax; entropy, percentile (ONNX)."
)
@click.option("--samples", type=int, default=300, show_default=True, help="Calibration samples (fewer: warning).")
@click.option("--max-drop", type=float, help="Accepted top-1 drop in points; sensitive layers fall back to float.")
@click.option("--eval-data", help="Labelled evaluation data (same forms as --calib-data; 'embedded' = test split).")
@click.option(
    "--keep-float",
    multiple=True,
    metavar="LAYER",
    help="Layer (module path, as the report shows it) or graph node to keep in float (repeatable).",
)
@click.option("--weights", type=click.Path(dir_okay=False), help="Weights for a zoo MODEL.")
@click.option("--resolution", "-r", type=RESOLUTION, help="Input size (default: the weights' preprocessing).")
@click.option("--out", type=click.Path(file_okay=False), help="Bundle directory (default MODEL-TARGET-int8).")
@click.option("--report-dir", type=click.Path(file_okay=False), help="Report directory (default OUT-report).")
@click.option("--no-latency", is_flag=True, help="Skip the fp32 vs int8 latency measurement in the report.")
@click.option("--overwrite", is_flag=True, help="Replace an existing bundle (only once the new one is verified).")
@click.option("--lint-only", is_flag=True, help="Only report quantization risks; write nothing.")
@click.option(
    "--per-tensor", is_flag=True, help="One weight scale per tensor (accelerators without per-channel int8 kernels)."
)
@click.option("--qat-epochs", type=int, help="Quantization-aware training: fine-tune N epochs with NNCF (torch).")
@click.option("--train-data", help="QAT: labelled training data (DIR, FILE.npz with 'y', 'embedded' = train split).")
@click.option("--train-samples", type=int, help="QAT: most training samples to use (default 4000).")
@click.option("--qat-lr", type=float, help="QAT: peak AdamW learning rate, cosine to 0 (default 1e-4).")
@click.option("--distill", type=float, help="QAT: weight of distillation from the fp32 model, 0..1 (default 0.5).")
@click.option(
    "--explain-data",
    multiple=True,
    type=click.Path(),
    help="Images (files or a folder) for the report's fp32-vs-int8 explanation parity (RISE; repeatable).",
)
@click.option("--explain-masks", type=click.IntRange(1, 10_000), default=100, show_default=True, help="RISE masks.")
@click.option("--explain-images", type=click.IntRange(1, 1000), default=8, show_default=True, help="Most images.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def quantize_cmd(
    model: str,
    target: str,
    calib_data: str,
    method: str,
    samples: int,
    max_drop: float | None,
    eval_data: str | None,
    keep_float: tuple[str, ...],
    weights: str | None,
    resolution: int | None,
    out: str | None,
    report_dir: str | None,
    no_latency: bool,
    overwrite: bool,
    lint_only: bool,
    per_tensor: bool,
    qat_epochs: int | None,
    train_data: str | None,
    train_samples: int | None,
    qat_lr: float | None,
    distill: float | None,
    explain_data: tuple[str, ...],
    explain_masks: int,
    explain_images: int,
    as_json: bool,
) -> None:
    """Quantize MODEL (a zoo name or an edgecnn checkpoint) to a verified INT8 bundle plus a report.

    With --qat-epochs the model is first fine-tuned with fake quantizers (QAT) on --train-data, and the bundle
    carries the scales QAT learned."""
    from edgecnn.errors import ConfigError
    from edgecnn.exporters.int8 import TRAIN_SAMPLES, quantize

    qat = None
    if qat_epochs is not None:
        from edgecnn.quant.qat import QatConfig

        given = {"lr": qat_lr, "distill_alpha": distill}
        qat = QatConfig(epochs=qat_epochs, **{k: v for k, v in given.items() if v is not None})
    else:
        for flag, v in (("--qat-lr", qat_lr), ("--distill", distill), ("--train-samples", train_samples)):
            if v is not None:
                raise ConfigError(f"{flag} is a QAT option", hint="add --qat-epochs N")
    if train_samples is not None and train_samples < 1:
        raise ConfigError(f"--train-samples must be >= 1, got {train_samples}")

    say = (lambda m: None) if as_json else (lambda m: click.echo(f"· {m}", err=True))
    res = quantize(
        model,
        target=target,
        calib_data=calib_data,
        eval_data=eval_data,
        method=method,
        samples=samples,
        max_drop=max_drop,
        out=out,
        weights=weights,
        resolution=resolution,
        keep_float=keep_float,
        overwrite=overwrite,
        lint_only=lint_only,
        report_dir=report_dir,
        measure_latency=not no_latency,
        progress=say,
        per_channel=not per_tensor,
        qat=qat,
        train_data=train_data,
        train_samples=train_samples or TRAIN_SAMPLES,
        explain_data=list(explain_data) or None,
        explain_masks=explain_masks,
        explain_images=explain_images,
    )
    _print_result(res, as_json)


def _print_result(res: Any, as_json: bool) -> None:
    """The lint findings, the bundle line and the report line (or all of it as JSON)."""
    findings = [f.to_dict() for f in res.findings]
    if as_json:
        echo_json(
            {
                "bundle": str(res.bundle) if res.bundle else None,
                "lint": findings,
                "report": res.report,
                "report_files": {k: str(v) for k, v in res.report_files.items()},
            }
        )
        return
    for f in findings:
        click.echo(f"{f['severity']}: [{f['code']}] {f['message']} → {f['recommendation']}")
    if res.bundle is None:
        if not findings:
            click.echo("no quantization risks found")
        return
    for note in res.notes:
        click.echo(f"note: {note}", err=True)
    q = res.manifest["quantization"] if res.manifest else {}
    c = q["fp32_vs_int8"]
    how = f"QAT {q['qat']['epochs']} epoch(s), " if q.get("qat") else ""
    line = f"bundle {res.bundle}  ({how}top-1 agreement {100 * c['top1_agreement']:.1f} %, SQNR {c['sqnr_db']:.1f} dB"
    if "top1_drop_points" in c:
        line += f", top-1 {100 * c['fp32_top1']:.2f} → {100 * c['int8_top1']:.2f} %"
    line += f", {len(q['kept_float'])} layer(s) in float)"
    click.echo(line)
    if res.report:
        r = res.report
        size = f"size {human(r['size_bytes'].get('fp32', 0), 'B')} → {human(r['size_bytes']['int8'], 'B')}"
        lat = r.get("latency")
        speed = f", p50 {lat['fp32']['p50_ms']:.2f} → {lat['int8']['p50_ms']:.2f} ms" if lat else ""
        click.echo(f"report {res.report_files['md']}  ({size}{speed})")
        e = r.get("explanation")
        if e:
            click.echo(
                f"explanation fp32 vs int8 (RISE, {e['masks']} masks, {len(e['rows'])} images): median Spearman "
                f"{e['median_spearman']:.2f}, median top-15 % IoU {e['median_top_iou']:.2f}, top-1 agreement "
                f"{100 * e['top1_agreement']:.0f} %, looks elsewhere: {', '.join(e['looks_elsewhere']) or 'none'}"
            )
