"""The root click group: ``--debug``, ``--version``, and turning EdgeCNNError into one clear line + exit code."""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Sequence
from typing import Any

import click

from edgecnn import limits
from edgecnn._version import __version__
from edgecnn.errors import EdgeCNNError

# Shared option types: one range per quantity (edgecnn/limits.py), checked by click at parse time.
RESOLUTION = click.IntRange(limits.MIN_RESOLUTION, limits.MAX_RESOLUTION)
THREADS = click.IntRange(limits.MIN_THREADS, limits.MAX_THREADS)
TOP_K = click.IntRange(1, limits.MAX_TOP_K)
BATCH = click.IntRange(1, limits.MAX_BATCH)


def _one_line(text: str) -> str:
    return " ".join(part.strip() for part in text.splitlines() if part.strip())


def _os_error_line(e: OSError) -> str:
    where = f": {e.filename!s}" if e.filename else ""
    return f"{e.strerror or type(e).__name__}{where} (check the path and its permissions)"


class EdgeGroup(click.Group):
    """A click group whose commands report EdgeCNNError as ``error: …`` (traceback only with --debug), and whose
    usage errors (click's own: a missing argument, a bad option value) use the same one-line format, exit 2."""

    def main(  # type: ignore[override]
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        argv = list(sys.argv[1:] if args is None else args)
        if any("\x00" in a for a in argv):  # os.stat in click.Path would raise a bare ValueError
            click.echo("error: an argument contains a NUL byte (see 'edgecnn --help')", err=True)
            sys.exit(2)
        try:
            rv = super().main(argv, prog_name, complete_var, standalone_mode=False, **extra)
        except click.exceptions.NoArgsIsHelpError as e:  # a bare group: its help, as click prints it
            click.echo(e.format_message(), err=True)
            sys.exit(e.exit_code)
        except click.UsageError as e:
            where = e.ctx.command_path if e.ctx is not None else (prog_name or "edgecnn")
            click.echo(f"error: {where}: {_one_line(e.format_message())} (see '{where} --help')", err=True)
            sys.exit(e.exit_code)
        except click.ClickException as e:
            click.echo(f"error: {_one_line(e.format_message())}", err=True)
            sys.exit(e.exit_code)
        except click.Abort:
            click.echo("error: aborted", err=True)
            sys.exit(1)
        sys.exit(rv if isinstance(rv, int) else 0)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except EdgeCNNError as e:
            if (ctx.obj or {}).get("debug"):
                raise
            click.echo(f"error: {_one_line(str(e))}", err=True)
            ctx.exit(e.exit_code)
        except OSError as e:  # the file system said no (read-only, full, permission, not a directory): one line
            if (ctx.obj or {}).get("debug"):
                raise
            click.echo(f"error: {_os_error_line(e)}", err=True)
            ctx.exit(1)
        except MemoryError:
            if (ctx.obj or {}).get("debug"):
                raise
            click.echo("error: out of memory (use a smaller resolution, batch or sample count)", err=True)
            ctx.exit(1)


@click.group(cls=EdgeGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110})
@click.version_option(__version__, "--version", prog_name="edgecnn")
@click.option("--debug", is_flag=True, help="Show tracebacks and debug logs.")
@click.pass_context
def cli(ctx: click.Context, debug: bool) -> None:
    """edgecnn — build, analyse, compress, export and run CNNs on edge devices."""
    ctx.ensure_object(dict)["debug"] = debug
    logging.basicConfig(level=logging.DEBUG if debug else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")


def echo_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, sort_keys=False))


def human(n: float, unit: str = "") -> str:
    """1234567 → '1.23M' (SI prefixes; bytes use 'B' with binary prefixes)."""
    if unit == "B":
        for prefix in ("", "Ki", "Mi", "Gi"):
            if abs(n) < 1024 or prefix == "Gi":
                return f"{n:.1f} {prefix}B" if prefix else f"{int(n)} B"
            n /= 1024
    for prefix, div in (("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if abs(n) >= div:
            return f"{n / div:.2f}{prefix}"
    return str(int(n))


def _looks_numeric(text: str) -> bool:
    return bool(text) and (text[0].isdigit() or text[0] in "-+.") and not text.replace(".", "").isalpha()


def print_table(title: str, columns: list[str], rows: list[list[str]]) -> None:
    """A table for people: rich when installed, plain aligned text otherwise."""
    try:
        from rich.console import Console
        from rich.table import Table
    except ImportError:
        widths = [max(len(str(x)) for x in col) for col in zip(columns, *rows, strict=False)]
        click.echo(title)
        for row in [columns, *rows]:
            click.echo(
                "  ".join(
                    str(c).rjust(w) if i else str(c).ljust(w) for i, (c, w) in enumerate(zip(row, widths, strict=False))
                )
            )
        return
    table = Table(title=title, title_justify="left")
    for i, c in enumerate(columns):
        numeric = all(_looks_numeric(str(r[i])) for r in rows if i < len(r))
        table.add_column(c, justify="right" if numeric and i else "left", no_wrap=not i)  # names stay whole
    for r in rows:
        table.add_row(*map(str, r))
    natural = sum(max([len(str(c)), *(len(str(r[i])) for r in rows if i < len(r))]) + 3 for i, c in enumerate(columns))
    Console(width=max(100, min(natural + 4, 400)), soft_wrap=True).print(table)  # cells whole, up to 400 columns
