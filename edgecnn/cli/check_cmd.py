"""``edgecnn check BUNDLE --budgets budgets.toml``: re-measure a bundle against latency / size / accuracy budgets and
exit 0 (all met) or 1 — a CI gate, with JUnit XML for CI systems."""

from __future__ import annotations

from pathlib import Path

import click

from edgecnn.cli.base import THREADS, cli, echo_json, print_table


@cli.command("check", short_help="Re-measure a bundle against budgets (latency, size, accuracy); exit 1 if missed.")
@click.argument("bundle", type=click.Path(file_okay=False))
@click.option("--budgets", "budgets_path", required=True, type=click.Path(dir_okay=False), help="Budgets TOML file.")
@click.option("--device", help="'local' (measure here) or a hardware profile (predict). Overrides [measure].")
@click.option("--eval-data", help="Labelled evaluation data (DIR, FILE.npz, 'embedded'). Overrides [measure].")
@click.option("--reference", type=click.Path(dir_okay=False), help="fp32 checkpoint for the accuracy drop.")
@click.option("--threads", type=THREADS, help="Intra-op threads for timing. Overrides [measure].")
@click.option("--junit", type=click.Path(dir_okay=False), help="Write a JUnit XML report here.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def check_cmd(
    bundle: str,
    budgets_path: str,
    device: str | None,
    eval_data: str | None,
    reference: str | None,
    threads: int | None,
    junit: str | None,
    as_json: bool,
) -> None:
    """Check BUNDLE against the budgets in a TOML file: exit 0 when every budget holds, 1 when one does not."""
    from edgecnn.deploy.budgets import load_budgets
    from edgecnn.deploy.check import check_bundle, to_junit
    from edgecnn.exporters.driver import check_writable_dir
    from edgecnn.train.checkpoint import atomic_write_bytes

    spec = load_budgets(budgets_path, device=device, eval_data=eval_data, reference=reference, threads=threads)
    if junit:
        check_writable_dir(Path(junit).parent, "--junit")
    report = check_bundle(bundle, spec, progress=lambda msg: click.echo(msg, err=True))
    if junit:
        atomic_write_bytes(Path(junit), to_junit(report).encode("utf-8"))
    if as_json:
        echo_json(report.to_dict())
    else:
        rows = [["verified", "PASS" if report.verified else "FAIL", "-", "measured", report.verify_detail]]
        for f in report.figures:
            cmp = "≥" if f.name.startswith("min_") else "≤"
            band = f" (band {f.band[0]:.3g}–{f.band[1]:.3g})" if f.band else ""
            rows.append([f.name, "PASS" if f.ok else "FAIL", f"{f.value:.4g} {f.unit}{band} {cmp} {f.limit:.4g}",
                         f.how, f.detail])  # fmt: skip
        print_table(f"edgecnn check {bundle} on {report.device}", ["budget", "result", "figure", "how", "detail"], rows)
        click.echo(f"{'PASS' if report.ok else 'FAIL'}: {sum(f.ok for f in report.figures)}/{len(report.figures)} "
                   f"budgets met{'' if report.verified else '; the bundle does not verify'}", err=True)  # fmt: skip
    if not report.ok:
        click.get_current_context().exit(1)
