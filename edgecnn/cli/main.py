"""Entry point: registers every command module on the root group."""

from __future__ import annotations

from edgecnn.cli import analyze_cmd, list_cmd  # noqa: F401  (commands register themselves on `cli`)
from edgecnn.cli.base import cli


def main() -> None:
    cli(prog_name="edgecnn")


if __name__ == "__main__":  # pragma: no cover
    main()
