"""``edgecnn export`` and ``edgecnn list targets``."""

from __future__ import annotations

import json

import click

from edgecnn.cli.base import BATCH, RESOLUTION, cli, echo_json, human, print_table
from edgecnn.cli.list_cmd import list_group


@cli.command("export")
@click.argument("model")
@click.option("--target", "-t", required=True, help="Export target (see `edgecnn list targets`).")
@click.option("--precision", "-p", default="fp32", show_default=True, help="fp32, fp16, bf16 (openvino), int8.")
@click.option("--resolution", "-r", type=RESOLUTION, help="Input size (default: the weights' preprocessing).")
@click.option("--batch", type=BATCH, default=1, show_default=True, help="Static batch size.")
@click.option("--dynamic-batch", metavar="MIN:OPT:MAX", help="Dynamic batch with its range, e.g. 1:8:32.")
@click.option("--opset", type=int, default=18, show_default=True, help="ONNX opset.")
@click.option(
    "--weights", type=click.Path(dir_okay=False), help="Weights to load (edgecnn/torchvision/EffNet-PyTorch)."
)
@click.option("--option", "-o", "target_opts", multiple=True, metavar="KEY=VALUE", help="Target-specific option.")
@click.option("--calib-data", help="INT8: class-per-folder DIR, FILE.npz or 'embedded' (see `edgecnn quantize`).")
@click.option("--samples", type=int, default=300, show_default=True, help="INT8: calibration samples.")
@click.option("--out", type=click.Path(file_okay=False), help="Bundle directory (default MODEL-TARGET-PRECISION).")
@click.option("--overwrite", is_flag=True, help="Replace an existing bundle (only once the new one is verified).")
@click.option("--json", "as_json", is_flag=True, help="Print the manifest as JSON.")
def export_cmd(
    model: str,
    target: str,
    precision: str,
    resolution: int | None,
    batch: int,
    dynamic_batch: str | None,
    opset: int,
    weights: str | None,
    target_opts: tuple[str, ...],
    calib_data: str | None,
    samples: int,
    out: str | None,
    overwrite: bool,
    as_json: bool,
) -> None:
    """Export MODEL (a zoo name or an edgecnn checkpoint) as a self-verifying deployment bundle."""
    from edgecnn.errors import ConfigError
    from edgecnn.exporters import TARGETS, DynamicBatch, ExportOptions, export_bundle
    from edgecnn.precision import Precision, parse_precision

    TARGETS.get(target)  # unknown target → error with suggestion, before anything else
    prec = parse_precision(precision)
    if calib_data is not None and prec is not Precision.INT8:
        raise ConfigError("--calib-data is for --precision int8")
    opts = ExportOptions(
        target=target,
        precision=prec,
        resolution=resolution,
        batch=batch,
        opset=opset,
        dynamic_batch=DynamicBatch.parse(dynamic_batch) if dynamic_batch else None,
        target_options=_parse_options(target_opts),
    )
    say = (lambda m: None) if as_json else (lambda m: click.echo(f"· {m}", err=True))
    if calib_data is not None:  # the one INT8 entry point (edgecnn quantize's), without its report
        from edgecnn.exporters.int8 import quantize

        result = quantize(
            model,
            target=target,
            calib_data=calib_data,
            samples=samples,
            resolution=resolution,
            weights=weights,
            out=out,
            overwrite=overwrite,
            report=False,
            progress=say,
            batch=opts.batch,
            dynamic_batch=opts.dynamic_batch,
            opset=opts.opset,
            target_options=opts.target_options,
        ).export
    else:
        result = export_bundle(model, opts, out, weights=weights, overwrite=overwrite, progress=say)
    m = result.manifest
    if as_json:
        echo_json({"bundle": str(result.bundle), "seconds": result.seconds, "notes": result.notes, "manifest": m})
        return
    if m["model"]["source"]["kind"] == "random-init":
        click.echo("note: no weights given — the bundle holds randomly initialised weights", err=True)
    for note in result.notes:
        click.echo(f"note: {note}", err=True)
    p = m["parity"]
    size = sum(f["size"] for f in m["files"].values())
    click.echo(
        f"bundle {result.bundle}  ({m['target']} {m['precision']}, {human(size, 'B')}, "
        f"parity {p['max_rel_error']:.1e} ≤ {p['tolerance']['max_rel_error']:.0e} on {p['backend']}, "
        f"{result.seconds['total']:.1f}s)"
    )


def _parse_options(items: tuple[str, ...]) -> dict[str, object]:
    from edgecnn.errors import ConfigError

    out: dict[str, object] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"--option {item!r} is not KEY=VALUE")
        try:  # numbers and true/false as JSON, anything else as a string
            value: object = json.loads(raw.lower() if raw.lower() in ("true", "false") else raw)
        except json.JSONDecodeError:
            value = raw
        out[key] = value
    return out


@list_group.command("targets")
@click.option("--json", "as_json", is_flag=True)
def list_targets_cmd(as_json: bool) -> None:
    """Export targets: the precisions and options each accepts, what runs it and what quantizes it."""
    from edgecnn.exporters import TARGETS

    targets = [TARGETS.get(name) for name in TARGETS.names()]
    if as_json:
        keys = ("name", "description", "dynamic_batch", "options", "runtime_backend", "quantizer")
        echo_json(
            [
                {
                    **{k: getattr(x, k) for k in keys},
                    "precisions": [str(p) for p in x.precisions],
                    "opsets": list(x.opsets),
                }
                for x in targets
            ]
        )
        return
    print_table(
        "export targets",
        ["target", "precisions", "opsets", "options", "runs on", "description"],
        [
            [
                x.name,
                ",".join(x.precisions),
                "{}-{}".format(*x.opsets),
                ", ".join(f"{k}={v}" for k, v in x.options.items()) or "-",
                x.runtime_backend,
                x.description,
            ]
            for x in targets
        ],
    )
