"""Entry point: registers every command module on the root group."""

from __future__ import annotations

from edgecnn.cli import (  # noqa: F401  (each command module registers itself on `cli`)
    analyze_cmd,
    augment_cmd,
    bench_cmd,
    check_cmd,
    explain_cmd,
    export_cmd,
    list_cmd,
    optimize_cmd,
    profile_cmd,
    prune_cmd,
    quantize_cmd,
    report_cmd,
    runtime_cmd,
    train_cmd,
    visualize_cmd,
)
from edgecnn.cli.base import cli


def main() -> None:
    cli(prog_name="edgecnn")


if __name__ == "__main__":  # pragma: no cover
    main()
