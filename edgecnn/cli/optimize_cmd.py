"""``edgecnn optimize MODEL|CHECKPOINT --device local|PROFILE --max-… …``: search target × precision × resolution
(× model variants) under latency / size / accuracy budgets, keep the fastest bundle that meets them all."""

from __future__ import annotations

import tempfile
from pathlib import Path

import click

from edgecnn.cli.base import THREADS, cli, echo_json, print_table


def _csv(text: str | None, cast: type = str) -> tuple:
    if not text:
        return ()
    from edgecnn.errors import ConfigError

    try:
        return tuple(cast(x.strip()) for x in text.split(",") if x.strip())
    except ValueError:
        raise ConfigError(f"{text!r} is not a comma-separated list of {cast.__name__}") from None


@cli.command("optimize", short_help="Pick the fastest deployment that meets latency / size / accuracy budgets.")
@click.argument("model")
@click.option("--device", default="local", show_default=True, help="'local' (measure here) or a hardware profile.")
@click.option("--max-latency", type=click.FloatRange(min=0, min_open=True), help="Latency budget, ms (p50, batch 1).")
@click.option("--max-latency-ratio", type=click.FloatRange(min=0, min_open=True),
              help="Latency budget relative to PyTorch eager fp32 here (e.g. 0.125 = 8x faster).")  # fmt: skip
@click.option("--max-size", type=click.FloatRange(min=0, min_open=True), help="Size budget, MiB (model files).")
@click.option("--max-drop", type=click.FloatRange(0, 100), help="Top-1 drop budget vs fp32, points.")
@click.option("--min-top1", type=click.FloatRange(0, 1), help="Top-1 floor (0..1).")
@click.option("--eval-data", required=True, help="Labelled evaluation data: DIR, FILE.npz or 'embedded'.")
@click.option("--calib-data", default="embedded", show_default=True, help="INT8 calibration data.")
@click.option("--calib-samples", type=click.IntRange(1, 100_000), default=300, show_default=True)
@click.option("--eval-samples", type=click.IntRange(1, 1_000_000), default=1000, show_default=True)
@click.option("--targets", default="onnx,openvino", show_default=True, help="Export targets to search.")
@click.option("--precisions", help="Precisions to search (default: what the device runs; CPU here: fp32,int8).")
@click.option("--resolutions", help="Input sizes to search (default: native, -12.5 %, -25 %).")
@click.option("--variant", "variants", multiple=True, metavar="NAME=CHECKPOINT",
              help="Another checkpoint of the same task (a narrower or pruned model) to search too.")  # fmt: skip
@click.option("--threads", type=THREADS, help="Intra-op threads when timing here.")
@click.option("--rounds", type=click.IntRange(1, 100), default=3, show_default=True, help="Interleaved timing rounds.")
@click.option("--iters", type=click.IntRange(1, 100_000), default=50, show_default=True, help="Timed calls per round.")
@click.option("--out", "out_dir", type=click.Path(file_okay=False), default="optimized", show_default=True)
@click.option("--overwrite", is_flag=True, help="Replace OUT/bundle if it exists.")
@click.option("--json", "as_json", is_flag=True, help="Print the record as JSON.")
def optimize_cmd(
    model: str,
    device: str,
    max_latency: float | None,
    max_latency_ratio: float | None,
    max_size: float | None,
    max_drop: float | None,
    min_top1: float | None,
    eval_data: str,
    calib_data: str,
    calib_samples: int,
    eval_samples: int,
    targets: str,
    precisions: str | None,
    resolutions: str | None,
    variants: tuple[str, ...],
    threads: int | None,
    rounds: int,
    iters: int,
    out_dir: str,
    overwrite: bool,
    as_json: bool,
) -> None:
    """Search MODEL's deployments for DEVICE; write OUT/bundle (the choice), OUT/record.json, OUT/pareto.png and
    OUT/budgets.toml (for `edgecnn check`). Exit 1 with the closest candidates when nothing meets the budgets."""
    from edgecnn import limits as L
    from edgecnn.deploy.budgets import parse_budgets
    from edgecnn.deploy.optimize import Space, budgets_toml, optimize, write_outputs
    from edgecnn.errors import ConfigError
    from edgecnn.exporters import TARGETS
    from edgecnn.exporters.driver import check_writable_dir

    out = Path(out_dir)
    if (out / "bundle").exists() and not overwrite:
        raise ConfigError(f"{str(out / 'bundle')!r} exists", hint="pass --overwrite or another --out")
    check_writable_dir(out.parent if not out.exists() else out, "--out")
    for t in _csv(targets):
        TARGETS.get(t)  # did-you-mean before any work
    res_list = _csv(resolutions, int)
    if any(not L.MIN_RESOLUTION <= r <= L.MAX_RESOLUTION for r in res_list):
        raise ConfigError(f"--resolutions {resolutions!r}: each must be in {L.MIN_RESOLUTION}..{L.MAX_RESOLUTION}")
    var: dict[str, str] = {}
    for v in variants:
        name, sep, path = v.partition("=")
        if not sep or not name or not path:
            raise ConfigError(f"--variant {v!r} is not NAME=CHECKPOINT")
        var[name] = str(Path(path).resolve())
    reference = str(Path(model).resolve()) if Path(model).is_file() else None
    budgets = {
        "max_latency_ms": max_latency,
        "max_latency_ratio": max_latency_ratio,
        "max_size_mb": max_size,
        "max_drop_points": max_drop,
        "min_top1": min_top1,
    }
    measure = {"device": device, "eval_data": eval_data if eval_data == "embedded" else str(Path(eval_data).resolve()),
               "eval_samples": eval_samples, "rounds": rounds, "iters": iters}  # fmt: skip
    if threads:
        measure["threads"] = threads
    if reference:
        measure["reference"] = reference
    elif max_drop is not None:
        raise ConfigError(
            "--max-drop needs MODEL as an edgecnn checkpoint (the fp32 reference `edgecnn check` re-measures against)"
        )
    spec = parse_budgets({"budgets": {k: v for k, v in budgets.items() if v is not None}, "measure": measure},
                         where="optimize budgets")  # fmt: skip
    space = Space(targets=_csv(targets), precisions=_csv(precisions) or None, resolutions=res_list or None)
    say = lambda msg: click.echo(msg, err=True)  # noqa: E731
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".optimize-", dir=out) as tmp:
        result = optimize(model, spec.budgets, spec.measure, calib_data=calib_data, calib_samples=calib_samples,
                          space=space, variants=var,
                          work=Path(tmp), say=say)  # fmt: skip
        bundle = write_outputs(result, out, budgets_toml(spec.budgets, spec.measure), overwrite=overwrite)
    if as_json:
        echo_json(result.record)
    else:
        rows = []
        for c in sorted(result.candidates, key=lambda c: (c.status != "built", c.latency_ms or 1e99)):
            if c.status != "built":
                rows.append([c.key, c.status, "-", "-", "-", "-", c.reason[:60]])
                continue
            lat = f"{c.latency_ms:.3f} ({c.latency_how[0]})"
            ratio = f" {1 / c.ratio_vs_eager:.1f}x" if c.ratio_vs_eager else ""
            mark = "chosen" if result.chosen is c else ("dominated" if c.dominated else "front")
            miss = ", ".join(k for k, ok in c.meets.items() if not ok) or "all budgets met"
            rows.append([c.key, mark, lat + ratio, f"{c.size_mb:.2f}", f"{100 * c.top1:.2f}",
                         f"{c.drop_points:+.2f}", miss])  # fmt: skip
        cols = ["candidate", "", "latency ms (m/p) vs eager", "MiB", "top-1 %", "drop pt", "budgets"]
        print_table(f"edgecnn optimize {model} on {device}", cols, rows)
        click.echo(f"record: {out / 'record.json'}; plot: {out / 'pareto.png'}; budgets: {out / 'budgets.toml'}")
    if bundle is None:
        closest = ", ".join(c.key for c in result.closest) or "none built"
        click.echo(f"error: no candidate meets the budgets; closest: {closest} (see {out / 'record.json'})", err=True)
        click.get_current_context().exit(1)
    click.echo(f"chosen: {result.chosen.key} → {bundle}  (CI gate: edgecnn check {bundle} --budgets "
               f"{out / 'budgets.toml'})", err=True)  # fmt: skip
