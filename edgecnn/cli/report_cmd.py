"""``edgecnn report INPUT... --out report.html``: one self-contained HTML deployment report."""

from __future__ import annotations

import click

from edgecnn.cli.base import cli


@cli.command("report")
@click.argument("inputs", nargs=-1, required=True, metavar="BUNDLE|RUN_DIR|RESULTS.json...")
@click.option("--out", "-o", type=click.Path(), default="report.html", show_default=True, help="HTML file to write.")
@click.option("--accuracy", "-a", multiple=True, metavar="NAME=TOP1", help="Top-1 (%) of a bench label or model.")
@click.option("--title", help="Page title (default: the models reported on).")
@click.option("--no-selftest", is_flag=True, help="Verify files and hashes only; do not run the golden vectors.")
def report_cmd(
    inputs: tuple[str, ...], out: str, accuracy: tuple[str, ...], title: str | None, no_selftest: bool
) -> None:
    """Write one HTML page (no network, no external files) from bundles, `edgecnn train` run directories,
    `edgecnn quantize` reports, `edgecnn explain` outputs and `edgecnn bench/profile/analyze --json` files.

    Each section appears when its data exists: model card, bundle verification (hashes and the golden self-test,
    run now), static analysis, training curves, quantization, latency (measured, per layer, predicted),
    accuracy × latency × size, explanations."""
    from pathlib import Path

    from edgecnn.bench.plot import parse_accuracy
    from edgecnn.errors import ConfigError
    from edgecnn.report import build_context, collect, render_html, write_html

    dest = Path(out)
    if dest.is_dir():
        raise ConfigError(f"--out {out!r} is a directory", hint="name the HTML file, e.g. --out report.html")
    acc = parse_accuracy(accuracy)
    found = collect(list(inputs))
    try:
        ctx = build_context(found, accuracy=acc, selftest=not no_selftest, title=title)
    except (TypeError, AttributeError, KeyError, IndexError) as e:  # inputs are files from elsewhere: a bad input
        raise ConfigError(
            f"cannot render the report: an input has a field of an unexpected shape ({type(e).__name__}: {e})",
            hint="pass files written by edgecnn, unedited (--debug shows where)",
        ) from e
    written = write_html(render_html(ctx), dest)
    shown = ", ".join(name for _, name in ctx["sections"])
    click.echo(f"wrote {written} ({written.stat().st_size:,} bytes; sections: {shown})")
    for card in ctx["cards"]:
        v = card["verification"]
        if not v["files_ok"] or (v["selftest"] is not None and not v["selftest"]["ok"]):
            why = v["files_error"] or f"golden self-test max relative error {v['selftest']['max_rel_error']:.2e}"
            click.echo(f"warning: bundle {card['path']} failed verification: {why}", err=True)
