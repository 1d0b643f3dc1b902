"""``edgecnn profile MODEL --profile NAME`` (predicted latency) and ``edgecnn profile fit`` (a profile fitted to
this machine; ``edgecnn profile calibrate`` is its deprecated old name)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from edgecnn.cli.base import RESOLUTION, THREADS, TOP_K, cli
from edgecnn.cli.bench_cmd import DefaultCommandGroup

if TYPE_CHECKING:
    from edgecnn.bench.fit_profile import Fit
    from edgecnn.profiles import Profile


class _ProfileGroup(DefaultCommandGroup):
    default_cmd = "predict"


@cli.group("profile", cls=_ProfileGroup)
def profile_group() -> None:
    """Predict latency on a hardware profile; fit a local profile to micro-benchmarks."""


@profile_group.command("predict", epilog="Also: `edgecnn profile fit [--out FILE]` fits a profile to this machine.")
@click.argument("model")
@click.option("--profile", "-p", "profile_name", required=True, help="Profile name (`edgecnn list profiles`) or .toml.")
@click.option("--precision", help="fp32, fp16, bf16, int8 (default: the profile's first).")
@click.option("--resolution", "-r", type=RESOLUTION, help="Input size (default: the model's).")
@click.option("--batch", type=int, default=1, show_default=True)
@click.option("--top", type=TOP_K, default=10, show_default=True, help="Slowest layers shown.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable, every layer included.")
def profile_predict_cmd(
    model: str, profile_name: str, precision: str | None, resolution: int | None, batch: int, top: int, as_json: bool
) -> None:
    """Predict MODEL's latency and memory on a device you may not have (roofline per layer)."""
    from edgecnn.bench.estimate import estimate_model
    from edgecnn.cli.base import echo_json, human, print_table
    from edgecnn.errors import ConfigError
    from edgecnn.profiles import PRECISIONS, get_profile

    if precision is not None and precision not in PRECISIONS:
        raise ConfigError(f"unknown --precision {precision!r}", hint=f"one of {', '.join(PRECISIONS)}")
    prof = get_profile(profile_name)
    est = estimate_model(model, prof, precision=precision, resolution=resolution, batch=batch)
    if as_json:
        echo_json(est.to_dict())
        return
    slow = sorted(est.layers, key=lambda x: -x.ms)[:top]
    print_table(
        f"{model} on {prof.name} ({est.precision}, {est.resolution}px, batch {batch}): slowest layers",
        ["layer", "kind", "bound", "ms", "share"],
        [[x.name, x.kind, x.bound, f"{x.ms:.3f}", f"{x.ms / est.total_ms:.1%}"] for x in slow],
    )
    kinds = ", ".join(f"{k} {v:.2f}" for k, v in sorted(est.by_kind_ms.items(), key=lambda kv: -kv[1]))
    click.echo(
        f"predicted {est.total_ms:.2f} ms  (band {est.low_ms:.2f}–{est.high_ms:.2f} ms, ±{est.error_band:.0%})\n"
        f"by kind (ms): {kinds}\n"
        f"memory: weights {human(est.weights_mib * 2**20, 'B')}, largest layer in+out "
        f"{human(est.peak_activation_mib * 2**20, 'B')}, working set ≥ {human(est.working_set_mib * 2**20, 'B')}"
    )
    cal = prof.calibration
    how = (
        f"calibrated {cal['created']} on {cal['cpu']} ({cal['method']}; "
        f"op median |error| {cal['median_abs_error']:.0%}; graph factor {prof.estimator.get('graph_factor', 1.0):.2f})"
        if cal
        else "uncalibrated: efficiencies are edgecnn defaults (see the profile's [sources])"
    )
    click.echo(f"profile {prof.name} [{prof.path}]: {how}")


_FIT_OPTIONS = (
    click.option(
        "--base", default="x86-avx512-server", show_default=True, help="Profile to take peaks and caches from."
    ),
    click.option("--threads", type=THREADS, help="Threads to fit for (default: usable cores)."),
    click.option("--iters", type=int, default=30, show_default=True, help="Timed runs per micro-benchmark (at least)."),
    click.option(
        "--models",
        default="",
        help="Zoo models timed whole to fit a graph factor, e.g. mobilenet_v3_small,mobilenet_v2 (needs torch; off by "
        "default: two whole models are noisier than 33 single ops — see benchmarks/results/bench_estimator.md).",
    ),
    click.option("--resolution", "-r", type=RESOLUTION, default=160, show_default=True, help="Their resolution."),
    click.option("--int8/--no-int8", default=True, show_default=True, help="Also fit int8 efficiencies (QDQ graphs)."),
    click.option(
        "--suite",
        type=click.Choice(["blocks", "ops"]),
        default="blocks",
        show_default=True,
        help="blocks: synthetic chains of edgecnn blocks exported like bundles (needs torch); ops: single-op ONNX "
        "graphs (torch-free, less faithful: lone ops pay layout reorders a model does not).",
    ),
    click.option(
        "--rounds",
        type=int,
        default=5,
        show_default=True,
        help="blocks suite: time every chain this many times, interleaved over the suite, and keep the fastest round.",
    ),
    click.option("--out", type=click.Path(dir_okay=False), help="Profile file to write (default local-<base>.toml)."),
    click.option("--json", "as_json", is_flag=True, help="Print the fit and every micro-benchmark as JSON."),
)


@dataclass(frozen=True, kw_only=True)
class _Int8Fit:
    """What the int8 half of a fit adds to the profile (all None / empty when int8 was not fitted)."""

    efficiency: dict[str, float] | None = None
    median_abs_error: float | None = None
    fused: tuple[str, ...] | None = None
    element_ns: dict[str, float] | None = None
    estimator: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True)
class _SuiteFit:
    """One suite measured and fitted: the fp32 fit, its points (name, seconds), how it was made, the int8 part."""

    result: Fit
    points: list[tuple[str, float]]
    method: str
    int8: _Int8Fit


@dataclass(frozen=True, kw_only=True)
class _Machine:
    """Where the fit runs: threads, the base profile's peaks scaled to them, and a progress line writer."""

    prior: Profile
    threads: int
    iters: int
    peak: float  # fp32 GOPS for these threads
    peak8: float  # int8 GOPS for these threads (0 when int8 is not fitted)
    fit_int8: bool
    say: Any


def _fit_options(fn: Any) -> Any:
    for option in reversed(_FIT_OPTIONS):
        fn = option(fn)
    return fn


@profile_group.command("fit")
@_fit_options
def profile_fit_cmd(
    base: str,
    threads: int | None,
    iters: int,
    models: str,
    resolution: int,
    int8: bool,
    suite: str,
    rounds: int,
    out: str | None,
    as_json: bool,
) -> None:
    """Micro-benchmark each op kind here (ONNX Runtime) and write a profile whose efficiencies fit them."""
    from edgecnn.bench.measure import environment_warnings, usable_cores
    from edgecnn.profiles import get_profile
    from edgecnn.sdk import import_sdk

    prior = get_profile(base)
    names = _check_fit_args(prior, iters=iters, rounds=rounds, threads=threads, models=models, resolution=resolution)
    import_sdk("onnxruntime", "onnxruntime")
    import_sdk("onnx", "all")
    n = threads or usable_cores()
    path = Path(out or f"local-{prior.name}.toml")
    fit_int8_here = int8 and "int8" in prior.precisions
    scale = n / (prior.cores or n)  # the profile's peaks are for all its cores; the fit runs on n
    machine = _Machine(
        prior=prior,
        threads=n,
        iters=iters,
        peak=prior.peak("fp32") * scale,
        peak8=prior.peak("int8") * scale if fit_int8_here else 0.0,
        fit_int8=fit_int8_here,
        say=(lambda m: None) if as_json else (lambda m: click.echo(f"· {m}", err=True)),
    )
    warns = environment_warnings(n)
    fitted = _fit_block_suite(machine, rounds) if suite == "blocks" else _fit_op_suite(machine)
    factor, ratios, env = _write_fitted_profile(path, machine, fitted, names, resolution, contended=bool(warns))
    if as_json:
        _echo_fit_json(path, fitted, factor, ratios, suite, env, warns)
    else:
        _echo_fit_summary(path, fitted, factor, ratios, suite, warns)


class _DeprecatedAlias(click.Command):
    """An old command name that still works: one warning line on stderr (even for ``--help``), then the new one."""

    def __init__(self, name: str, new: click.Command, group_path: str) -> None:
        super().__init__(name, callback=new.callback, params=new.params, help=new.help, hidden=True)
        self.warning = f"warning: `{group_path} {name}` is deprecated; use `{group_path} {new.name}`"

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        click.echo(self.warning, err=True)
        return super().parse_args(ctx, args)


profile_group.add_command(_DeprecatedAlias("calibrate", profile_fit_cmd, "edgecnn profile"))


def _check_fit_args(
    prior: Profile, *, iters: int, rounds: int, threads: int | None, models: str, resolution: int
) -> list[str]:
    """Reject bad options before anything is timed; → the zoo models to fit a graph factor on."""
    from edgecnn.errors import ConfigError

    if prior.kind != "cpu" or "fp32" not in prior.precisions:
        raise ConfigError(f"fit runs on this CPU: --base must be a CPU profile with fp32, not {prior.name!r}")
    if iters < 1 or rounds < 1 or (threads is not None and threads < 1):
        raise ConfigError("--iters, --rounds and --threads must be >= 1")
    names = [m for m in models.split(",") if m]
    if names:
        from edgecnn.models import get_model_entry

        for m in names:
            get_model_entry(m)  # unknown model → error with suggestion before anything runs
        if resolution < 32:
            raise ConfigError(f"--resolution must be >= 32, got {resolution}")
    return names


def _fit_block_suite(machine: _Machine, rounds: int) -> _SuiteFit:
    """The blocks suite: chains exported like bundles, timed (fastest of ``rounds``) and profiled per op kind."""
    from edgecnn.bench.fit_blocks import block_suite, fit_blocks, measure_blocks
    from edgecnn.bench.fit_profile import empty_call_s
    from edgecnn.profiles import FLOAT_OPS_INT8
    from edgecnn.sdk import import_sdk

    import_sdk("torch", "torch")
    prior, n = machine.prior, machine.threads
    base_s = empty_call_s(threads=n, iters=machine.iters)
    precs = ("fp32", "int8") if machine.fit_int8 else ("fp32",)
    islands: set[str] = set()
    per_kind: dict = {}  # per precision and chain: profiled kernel time per op kind (each kind fitted to its own)
    measured = measure_blocks(
        block_suite(),
        threads=n,
        precisions=precs,
        iters=machine.iters,
        base_s=base_s,
        progress=machine.say,
        float_ops=islands,
        kinds=per_kind,
        rounds=rounds,
    )
    l2 = prior.l2_cache_bytes_for(n)
    common_fit = dict(bandwidth_gbs=prior.bandwidth_gbs, cache_bytes=prior.last_cache_bytes, l2_bytes=l2)
    common_fit["fused_activations"] = prior.estimator["fused_activations"]
    result = fit_blocks(
        measured["fp32"], base_s, precision="fp32", peak_gops=machine.peak, kinds=per_kind["fp32"], **common_fit
    )
    points = [(name, t) for name, _, t in measured["fp32"]]
    int8 = _Int8Fit()
    if machine.fit_int8:
        r8 = fit_blocks(
            measured["int8"],
            base_s,
            precision="int8",
            peak_gops=machine.peak8,
            memory_from=result,
            kinds=per_kind["int8"],  # a kind is fused only where the int8 chains run no kernel of it
            # ops it has no integer kernel for run in float between Q/DQ (seen in the chains' optimized graphs)
            float_ops={k: v for k, v in FLOAT_OPS_INT8.items() if k in islands},
            own_overhead=True,  # an int8 kernel's fixed cost (requantization set-up) is its own
            **common_fit,
        )
        int8 = _Int8Fit(
            efficiency=r8.efficiency,
            median_abs_error=r8.median_abs_error,
            fused=r8.fused,
            element_ns=r8.element_ns,
            estimator={
                "float_ops_int8": sorted(islands & set(FLOAT_OPS_INT8)),
                "layer_overhead_us_int8": r8.layer_overhead_us,
                "fused_activation_ns_int8": r8.fused_activation_ns,
            },
        )
    method = (
        f"onnxruntime block-chain micro-benchmarks ({len(points)} synthetic chains of edgecnn blocks; kernels "
        "profiled and each op kind fitted to its own share)"
    )
    return _SuiteFit(result=result, points=points, method=method, int8=int8)


def _fit_op_suite(machine: _Machine) -> _SuiteFit:
    """The ops suite: torch-free single-op graphs (and their QDQ twins for int8)."""
    from edgecnn.bench.fit_profile import default_suite, fit_ops, measure_suite

    prior, n = machine.prior, machine.threads
    base_s, op_points = measure_suite(default_suite(), threads=n, iters=machine.iters, progress=machine.say)
    result = fit_ops(op_points, base_s, peak_gops=machine.peak, bandwidth_gbs=prior.bandwidth_gbs, prior=prior)
    points = [(op.name, t) for op, t in op_points]
    int8 = _Int8Fit()
    if machine.fit_int8:
        from edgecnn.bench.fit_int8 import fit_int8, int8_suite, measure_int8

        p8 = measure_int8(int8_suite(), base_s, threads=n, iters=machine.iters, progress=machine.say)
        effs, err = fit_int8(
            p8,
            result,
            peak_gops=machine.peak8,
            bandwidth_gbs=prior.bandwidth_gbs,
            cache_bytes=prior.last_cache_bytes,
        )
        int8 = _Int8Fit(efficiency=effs, median_abs_error=err)
    method = f"onnxruntime fp32 single-op micro-benchmarks ({len(points)} graphs), log-space grid fit"
    return _SuiteFit(result=result, points=points, method=method, int8=int8)


def _write_fitted_profile(
    path: Path, machine: _Machine, fitted: _SuiteFit, names: list[str], resolution: int, *, contended: bool
) -> tuple[float, dict[str, float], dict[str, Any]]:
    """Write the profile; with ``names``, time those whole models against it and write it again with the graph
    factor. → (graph factor, measured/predicted per model, environment)."""
    from edgecnn.bench.fit_profile import graph_factor, write_profile
    from edgecnn.profiles import get_profile
    from edgecnn.runtime.env import fingerprint

    n = machine.threads
    env = fingerprint(n)
    common = dict(
        threads=n,
        peak_gops=machine.peak,
        cpu=str(env["cpu"]),
        points=len(fitted.points),
        contended=contended,
        int8=fitted.int8.efficiency,
        int8_fused=fitted.int8.fused,
        int8_estimator=fitted.int8.estimator,
        int8_element_ns=fitted.int8.element_ns,
        method=fitted.method,
    )
    write_profile(path, machine.prior, fitted.result, **common)
    factor, ratios = 1.0, {}
    if names:
        factor, ratios = graph_factor(
            names, resolution, get_profile(str(path)), threads=n, iters=machine.iters, progress=machine.say
        )
        models = f"{','.join(names)} @ {resolution}px"
        write_profile(path, machine.prior, fitted.result, **common, factor=factor, factor_models=models)
    return factor, ratios, env


def _echo_fit_json(
    path: Path,
    fitted: _SuiteFit,
    factor: float,
    ratios: dict[str, float],
    suite: str,
    env: dict[str, Any],
    warns: list[str],
) -> None:
    from edgecnn.cli.base import echo_json

    result = fitted.result
    echo_json(
        {
            "profile": str(path),
            "fit": {k: v for k, v in result.__dict__.items() if k != "residuals"},
            "graph_factor": factor,
            "int8_efficiency": fitted.int8.efficiency,
            "int8_median_abs_error": fitted.int8.median_abs_error,
            "graph_ratios": ratios,
            "suite": suite,
            "points": [{"name": name, "ms": t * 1e3, "residual": result.residuals[name]} for name, t in fitted.points],
            "environment": env,
            "warnings": warns,
        }
    )


def _echo_fit_summary(
    path: Path, fitted: _SuiteFit, factor: float, ratios: dict[str, float], suite: str, warns: list[str]
) -> None:
    for w in warns:
        click.echo(f"warning: {w}", err=True)
    result, int8_effs = fitted.result, fitted.int8.efficiency
    effs = ", ".join(f"{k} {v:.3f}" for k, v in result.efficiency.items())
    click.echo(
        f"wrote {path}: efficiencies {effs}; memory efficiency {result.memory_efficiency:.2f}, "
        f"cache bandwidth {result.cache_bandwidth_gbs:.0f} GB/s, per-op overhead {result.layer_overhead_us:.1f} µs, "
        f"per-call {result.model_overhead_us:.1f} µs; median |error| over {len(fitted.points)} {suite} "
        f"{result.median_abs_error:.0%}; "
        f"graph factor {factor:.2f} ({', '.join(f'{k} {v:.2f}' for k, v in ratios.items()) or 'not fitted'})"
        + (
            f"; int8 efficiencies {', '.join(f'{k} {v:.3f}' for k, v in int8_effs.items())} "
            f"(median |error| {fitted.int8.median_abs_error:.0%})"
            if int8_effs
            else ""
        )
        + "\n"
        f"use it: edgecnn profile MODEL --profile {path}"
    )
