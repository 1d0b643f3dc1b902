"""``edgecnn list models``: the zoo with params and MACs at each model's default resolution."""

from __future__ import annotations

import click

from edgecnn.cli.base import cli, echo_json, human, print_table


@cli.group("list")
def list_group() -> None:
    """List registered models (and, as they land, targets and profiles)."""


@list_group.command("models")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def list_models_cmd(as_json: bool) -> None:
    """Every zoo model with params and MACs at its default resolution (computed, not looked up)."""
    from edgecnn.analysis import analyze_named
    from edgecnn.models import get_model_entry, list_models

    rows = []
    for name in list_models():
        entry = get_model_entry(name)
        stats = analyze_named(name)
        rows.append(
            {
                "name": name,
                "family": entry.family,
                "task": entry.task,
                "resolution": entry.default_resolution,
                "params": stats.params,
                "macs": stats.macs,
                "paper": entry.paper,
            }
        )
    if as_json:
        echo_json(rows)
        return
    print_table(
        "edgecnn models",
        ["model", "family", "task", "res", "params", "MACs", "source"],
        [
            [r["name"], r["family"], r["task"], r["resolution"], human(r["params"]), human(r["macs"]), r["paper"]]
            for r in rows
        ],
    )


@list_group.command("profiles")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output (every figure and its source).")
def list_profiles_cmd(as_json: bool) -> None:
    """Built-in hardware profiles for `edgecnn profile MODEL --profile NAME`."""
    from edgecnn.profiles import builtin_profiles

    profiles = builtin_profiles()
    if as_json:
        echo_json([dict(p.raw) for p in profiles.values()])
        return
    rows = []
    for p in profiles.values():
        peaks = ", ".join(f"{k} {v / 1000:,.4g}" for k, v in p.peak_gops.items())
        rows.append([p.name, p.kind, f"{p.default_target}/{p.default_device}", peaks, f"{p.bandwidth_gbs:g} GB/s"])
    cols = ["profile", "kind", "target/device", "peak TOPS (dense)", "memory"]
    print_table("hardware profiles (`edgecnn list profiles --json` for every figure and its source)", cols, rows)
