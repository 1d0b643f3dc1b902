"""``edgecnn bench BUNDLE|MODEL…`` (measured latency) and ``edgecnn bench plot RESULTS.json``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from edgecnn.cli.base import RESOLUTION, THREADS, TOP_K, cli, echo_json, print_table


class DefaultCommandGroup(click.Group):
    """A group whose first argument is a subcommand when it names one, else an argument of ``default_cmd``
    (``edgecnn bench m.onnx-bundle`` and ``edgecnn bench plot r.json`` side by side)."""

    default_cmd = "run"

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if not args or args[0] not in self.commands:  # `--help` too: the default command's options are the news
            args = [self.default_cmd, *args]
        return super().parse_args(ctx, args)

    def format_usage(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        run = self.commands[self.default_cmd]
        pieces = run.collect_usage_pieces(ctx)
        formatter.write_usage(ctx.command_path, " ".join(pieces) + f"  |  {ctx.command_path} COMMAND ...")


def _batches(text: str) -> list[int]:
    from edgecnn.errors import ConfigError

    try:
        out = [int(b) for b in text.split(",") if b.strip()]
    except ValueError:
        out = []
    if not out or min(out) < 1:
        raise ConfigError(f"--batch {text!r} is not a list of positive integers", hint="e.g. --batch 1,8")
    return out


@cli.group("bench", cls=DefaultCommandGroup)
def bench_group() -> None:
    """Measure latency of bundles (through edgecnn.runtime) and zoo models (PyTorch baselines)."""


@bench_group.command("run", epilog="Also: `edgecnn bench plot RESULTS.json...` draws latency vs accuracy vs size.")
@click.argument("subjects", nargs=-1, required=True, metavar="BUNDLE|MODEL[:eager,channels_last,compile]...")
@click.option("--backend", help="Runtime backend for bundles (default: the bundle target's).")
@click.option("--device", help="Device for bundles (cpu, cuda; CPU, GPU, NPU for OpenVINO).")
@click.option("--threads", type=THREADS, help="Intra-op threads (default: the library's own choice).")
@click.option("--batch", "batch_text", default="1", show_default=True, help="Batch sizes, comma-separated.")
@click.option("--resolution", "-r", type=RESOLUTION, help="Input size for zoo models (default: the model's).")
@click.option("--warmup", type=int, default=10, show_default=True, help="Untimed calls before timing.")
@click.option("--iters", type=int, default=100, show_default=True, help="Timed calls (at least).")
@click.option("--min-time", type=float, default=0.0, show_default=True, help="Time for at least this many seconds.")
@click.option("--baseline", help="Subject label (or prefix) to compute speed-up ratios against.")
@click.option("--per-layer", "per_layer", is_flag=True, help="Profile bundles layer by layer (ORT / OpenVINO).")
@click.option("--top", type=TOP_K, default=10, show_default=True, help="Slowest layers shown with --per-layer.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable results (with the environment).")
@click.option("--csv", "as_csv", is_flag=True, help="One CSV row per subject and batch.")
def bench_run_cmd(
    subjects: tuple[str, ...],
    backend: str | None,
    device: str | None,
    threads: int | None,
    batch_text: str,
    resolution: int | None,
    warmup: int,
    iters: int,
    min_time: float,
    baseline: str | None,
    per_layer: bool,
    top: int,
    as_json: bool,
    as_csv: bool,
) -> None:
    """Time each BUNDLE (via edgecnn.runtime) and each zoo MODEL (PyTorch eager, channels-last, torch.compile)."""
    from edgecnn.bench.measure import measure, with_ratios
    from edgecnn.bench.results import table_rows, to_csv, to_json
    from edgecnn.bench.runners import load_bundle, load_torch, parse_subject, torch_modes
    from edgecnn.errors import ConfigError, InputSpecError
    from edgecnn.runtime.env import fingerprint

    if as_json and as_csv:
        raise ConfigError("--json and --csv are exclusive")
    if warmup < 0 or iters < 1 or min_time < 0 or (threads is not None and threads < 1):
        raise ConfigError("--warmup >= 0, --iters >= 1, --min-time >= 0 and --threads >= 1 are required")
    batches = _batches(batch_text)
    plan = [(s, *parse_subject(s)) for s in subjects]  # every name checked before anything loads
    for s, kind, _ in plan:
        if kind == "model":
            torch_modes(s)
            if device and device.lower() not in ("cpu", "cuda") and not device.lower().startswith("cuda:"):
                raise ConfigError(
                    f"--device {device}: PyTorch baselines ({s}) run on cpu or cuda[:N]",
                    hint="bench OpenVINO devices (GPU, NPU) with bundles only",
                )
    say = (lambda m: None) if (as_json or as_csv) else (lambda m: click.echo(f"· {m}", err=True))
    env = fingerprint(threads)
    loaded = []
    for s, kind, path in plan:
        if kind == "bundle":
            say(f"loading {s}")
            loaded.append(load_bundle(path, backend=backend, device=device, threads=threads))
        else:
            for mode in torch_modes(s):
                say(f"building {s.split(':')[0]} ({mode})")
                loaded.append(
                    load_torch(s.split(":")[0], mode=mode, resolution=resolution, threads=threads, device=device)
                )
    if baseline and not any(x.label == baseline or x.label.startswith(baseline) for x in loaded):
        raise ConfigError(
            f"--baseline {baseline!r} matches no subject", hint=f"one of {', '.join(x.label for x in loaded)}"
        )
    results, skipped = [], []
    total = len(loaded) * len(batches)
    for i, subject in enumerate(loaded):
        for j, b in enumerate(batches):
            say(f"[{i * len(batches) + j + 1}/{total}] {subject.label} batch {b}")
            try:
                results.append(
                    measure(subject, batch=b, warmup=warmup, iters=iters, min_time_s=min_time, threads=threads, env=env)
                )
            except InputSpecError as e:
                skipped.append(f"{subject.label} batch {b}: {e}")
    if not results:
        raise InputSpecError("nothing could be measured: " + "; ".join(skipped))
    results = with_ratios(results, baseline)
    layers = _per_layer(loaded, threads, say) if per_layer else None
    if as_json:
        doc = to_json(results, layers)
        if skipped:
            doc["skipped"] = skipped
        echo_json(doc)
        return
    if as_csv:
        click.echo(to_csv(results), nl=False)
        return
    cols, rows = table_rows(results)
    print_table(f"edgecnn bench — {env['cpu']}, {threads or 'default'} threads", cols, rows)
    for msg in sorted({w for r in results for w in r.warnings}):
        click.echo(f"warning: {msg}", err=True)
    for msg in skipped:
        click.echo(f"skipped: {msg}", err=True)
    for label, view in (layers or {}).items():
        _print_layers(label, view, top)


def _per_layer(loaded: list[Any], threads: int | None, say: Any) -> dict[str, Any]:
    from edgecnn.bench.perlayer import LAYER_TIME_READERS

    out = {}
    for subject in loaded:
        if subject.kind != "bundle":
            continue
        sess = subject.raw
        say(f"profiling {subject.label} layer by layer")
        reader = LAYER_TIME_READERS.get(sess.backend_name)  # the profiler of the backend that runs it
        if reader is None:
            say(f"no per-layer profiler for {subject.backend}; skipped")
            continue
        out[subject.label] = reader(sess, {sess.input.name: subject_input(sess.input)}, threads).to_dict()
    return out


def subject_input(spec: Any) -> Any:
    import numpy as np

    return np.random.default_rng(0).standard_normal(spec.concrete_shape(spec.dim_range(0)[0])).astype(spec.dtype)


def _print_layers(label: str, view: dict[str, Any], top: int) -> None:
    rows = [[x["layer"], ",".join(x["ops"]), f"{x['ms']:.3f}", f"{x['share']:.1%}"] for x in view["layers"][:top]]
    print_table(
        f"{label}: slowest layers ({view['backend']}; layers sum {view['sum_ms']:.3f} ms = "
        f"{view['coverage']:.0%} of end-to-end {view['end_to_end_ms']:.3f} ms)",
        ["layer", "ops", "ms", "share"],
        rows,
    )
    if abs(view["coverage"] - 1) > 0.10:
        click.echo(
            f"warning: {label}: layer times sum to {view['coverage']:.0%} of end-to-end (outside ±10 %)", err=True
        )


@bench_group.command("plot")
@click.argument("results", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("--out", "-o", type=click.Path(dir_okay=False), default="bench.png", show_default=True)
@click.option("--accuracy", "-a", multiple=True, metavar="NAME=TOP1", help="Top-1 (%) of a label or model.")
@click.option("--batch", type=int, default=1, show_default=True, help="Which batch size to plot.")
@click.option("--title", help="Plot title (default: the CPU and threads).")
def bench_plot_cmd(
    results: tuple[str, ...], out: str, accuracy: tuple[str, ...], batch: int, title: str | None
) -> None:
    """Latency vs accuracy vs size (PNG) from one or more `edgecnn bench --json` files."""
    from edgecnn.bench.plot import parse_accuracy, plot_tradeoff
    from edgecnn.bench.results import read_results

    acc = parse_accuracy(accuracy)
    rows = [r for path in results for r in read_results(Path(path))]
    written = plot_tradeoff(rows, acc, Path(out), batch=batch, title=title)
    click.echo(f"wrote {written}")
