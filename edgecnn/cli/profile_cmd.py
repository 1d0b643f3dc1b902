"""``edgecnn profile MODEL --profile NAME`` (predicted latency) and ``edgecnn profile calibrate``."""

from __future__ import annotations

import click

from edgecnn.cli.base import cli
from edgecnn.cli.bench_cmd import DefaultCommandGroup


class _ProfileGroup(DefaultCommandGroup):
    default_cmd = "predict"


@cli.group("profile", cls=_ProfileGroup)
def profile_group() -> None:
    """Predict latency on a hardware profile; calibrate a local profile from micro-benchmarks."""


@profile_group.command(
    "predict", epilog="Also: `edgecnn profile calibrate [--out FILE]` fits a profile to this machine."
)
@click.argument("model")
@click.option("--profile", "-p", "profile_name", required=True, help="Profile name (`edgecnn list profiles`) or .toml.")
@click.option("--precision", help="fp32, fp16, bf16, int8 (default: the profile's first).")
@click.option("--resolution", "-r", type=int, help="Input size (default: the model's).")
@click.option("--batch", type=int, default=1, show_default=True)
@click.option("--top", type=int, default=10, show_default=True, help="Slowest layers shown.")
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


@profile_group.command("calibrate")
@click.option("--base", default="x86-avx512-server", show_default=True, help="Profile to take peaks and caches from.")
@click.option("--threads", type=int, help="Threads to calibrate for (default: usable cores).")
@click.option("--iters", type=int, default=30, show_default=True, help="Timed runs per micro-benchmark (at least).")
@click.option(
    "--models",
    default="",
    help="Zoo models timed whole to fit a graph factor, e.g. mobilenet_v3_small,mobilenet_v2 (needs torch; off by "
    "default: two whole models are noisier than 33 single ops — see benchmarks/results/bench_estimator.md).",
)
@click.option("--resolution", "-r", type=int, default=160, show_default=True, help="Resolution of those models.")
@click.option("--int8/--no-int8", default=True, show_default=True, help="Also fit int8 efficiencies (QDQ graphs).")
@click.option(
    "--suite",
    type=click.Choice(["blocks", "ops"]),
    default="blocks",
    show_default=True,
    help="blocks: synthetic chains of edgecnn blocks exported like bundles (needs torch); ops: single-op ONNX "
    "graphs (torch-free, less faithful: lone ops pay layout reorders a model does not).",
)
@click.option(
    "--rounds",
    type=int,
    default=5,
    show_default=True,
    help="blocks suite: time every chain this many times, interleaved over the suite, and keep the fastest round.",
)
@click.option("--out", type=click.Path(dir_okay=False), help="Profile file to write (default local-<base>.toml).")
@click.option("--json", "as_json", is_flag=True, help="Print the fit and every micro-benchmark as JSON.")
def profile_calibrate_cmd(
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
    from pathlib import Path

    from edgecnn.bench.calibrate import default_suite, fit, graph_factor, measure_suite, write_profile
    from edgecnn.bench.measure import environment_warnings, usable_cores
    from edgecnn.cli.base import echo_json
    from edgecnn.errors import ConfigError
    from edgecnn.profiles import FLOAT_OPS_INT8, get_profile
    from edgecnn.runtime.env import fingerprint
    from edgecnn.sdk import import_sdk

    prior = get_profile(base)
    if prior.kind != "cpu" or "fp32" not in prior.precisions:
        raise ConfigError(f"calibrate runs on this CPU: --base must be a CPU profile with fp32, not {prior.name!r}")
    if iters < 1 or rounds < 1 or (threads is not None and threads < 1):
        raise ConfigError("--iters, --rounds and --threads must be >= 1")
    names = [m for m in models.split(",") if m]
    if names:
        from edgecnn.models import get_model_entry

        for m in names:
            get_model_entry(m)  # unknown model → error with suggestion before anything runs
        if resolution < 32:
            raise ConfigError(f"--resolution must be >= 32, got {resolution}")
    import_sdk("onnxruntime", "onnxruntime")
    import_sdk("onnx", "all")
    n = threads or usable_cores()
    path = Path(out or f"local-{prior.name}.toml")
    say = (lambda m: None) if as_json else (lambda m: click.echo(f"· {m}", err=True))
    warns = environment_warnings(n)
    int8_effs, int8_err, int8_fused, int8_extra = None, None, None, {}
    int8_elem: dict[str, float] | None = None
    fit_int8_here = int8 and "int8" in prior.precisions
    scale = n / (prior.cores or n)  # the profile's peaks are for all its cores; calibration runs on n
    peak = prior.peak("fp32") * scale
    peak8 = prior.peak("int8") * scale if fit_int8_here else 0.0
    if suite == "blocks":
        from edgecnn.bench.calibrate import empty_call_s
        from edgecnn.bench.calibrate_blocks import block_suite, fit_blocks, measure_blocks

        import_sdk("torch", "torch")
        base_s = empty_call_s(threads=n, iters=iters)
        precs = ("fp32", "int8") if fit_int8_here else ("fp32",)
        islands: set[str] = set()
        per_kind: dict = {}  # per precision and chain: profiled kernel time per op kind (each kind fitted to its own)
        measured = measure_blocks(
            block_suite(),
            threads=n,
            precisions=precs,
            iters=iters,
            base_s=base_s,
            progress=say,
            float_ops=islands,
            kinds=per_kind,
            rounds=rounds,
        )
        l2 = prior.l2_cache_bytes_for(n)
        common_fit = dict(bandwidth_gbs=prior.bandwidth_gbs, cache_bytes=prior.last_cache_bytes, l2_bytes=l2)
        common_fit["fused_activations"] = prior.estimator["fused_activations"]
        result = fit_blocks(
            measured["fp32"], base_s, precision="fp32", peak_gops=peak, kinds=per_kind["fp32"], **common_fit
        )
        points = [(name, t) for name, _, t in measured["fp32"]]
        if fit_int8_here:
            r8 = fit_blocks(
                measured["int8"],
                base_s,
                precision="int8",
                peak_gops=peak8,
                memory_from=result,
                kinds=per_kind["int8"],  # a kind is fused only where the int8 chains run no kernel of it
                # ops it has no integer kernel for run in float between Q/DQ (seen in the chains' optimized graphs)
                float_ops={k: v for k, v in FLOAT_OPS_INT8.items() if k in islands},
                own_overhead=True,  # an int8 kernel's fixed cost (requantization set-up) is its own
                **common_fit,
            )
            int8_effs, int8_err, int8_fused = r8.efficiency, r8.median_abs_error, r8.fused
            int8_elem = r8.element_ns
            int8_extra = {"float_ops_int8": sorted(islands & set(FLOAT_OPS_INT8))}
            int8_extra["layer_overhead_us_int8"] = r8.layer_overhead_us
            int8_extra["fused_activation_ns_int8"] = r8.fused_activation_ns
        method = (
            f"onnxruntime block-chain micro-benchmarks ({len(points)} synthetic chains of edgecnn blocks; kernels "
            "profiled and each op kind fitted to its own share)"
        )
    else:
        base_s, op_points = measure_suite(default_suite(), threads=n, iters=iters, progress=say)
        result = fit(op_points, base_s, peak_gops=peak, bandwidth_gbs=prior.bandwidth_gbs, prior=prior)
        points = [(op.name, t) for op, t in op_points]
        if fit_int8_here:
            from edgecnn.bench.calibrate_int8 import fit_int8, int8_suite, measure_int8

            p8 = measure_int8(int8_suite(), base_s, threads=n, iters=iters, progress=say)
            int8_effs, int8_err = fit_int8(
                p8,
                result,
                peak_gops=peak8,
                bandwidth_gbs=prior.bandwidth_gbs,
                cache_bytes=prior.last_cache_bytes,
            )
        method = f"onnxruntime fp32 single-op micro-benchmarks ({len(points)} graphs), log-space grid fit"
    env = fingerprint(n)
    common = dict(
        threads=n,
        peak_gops=peak,
        cpu=str(env["cpu"]),
        points=len(points),
        contended=bool(warns),
        int8=int8_effs,
        int8_fused=int8_fused,
        int8_estimator=int8_extra,
        int8_element_ns=int8_elem,
        method=method,
    )
    write_profile(path, prior, result, **common)
    factor, ratios = 1.0, {}
    if names:
        factor, ratios = graph_factor(names, resolution, get_profile(str(path)), threads=n, iters=iters, progress=say)
        write_profile(path, prior, result, **common, factor=factor, factor_models=f"{','.join(names)} @ {resolution}px")
    if as_json:
        echo_json(
            {
                "profile": str(path),
                "fit": {k: v for k, v in result.__dict__.items() if k != "residuals"},
                "graph_factor": factor,
                "int8_efficiency": int8_effs,
                "int8_median_abs_error": int8_err,
                "graph_ratios": ratios,
                "suite": suite,
                "points": [{"name": name, "ms": t * 1e3, "residual": result.residuals[name]} for name, t in points],
                "environment": env,
                "warnings": warns,
            }
        )
        return
    for w in warns:
        click.echo(f"warning: {w}", err=True)
    effs = ", ".join(f"{k} {v:.3f}" for k, v in result.efficiency.items())
    click.echo(
        f"wrote {path}: efficiencies {effs}; memory efficiency {result.memory_efficiency:.2f}, "
        f"cache bandwidth {result.cache_bandwidth_gbs:.0f} GB/s, per-op overhead {result.layer_overhead_us:.1f} µs, "
        f"per-call {result.model_overhead_us:.1f} µs; median |error| over {len(points)} {suite} "
        f"{result.median_abs_error:.0%}; "
        f"graph factor {factor:.2f} ({', '.join(f'{k} {v:.2f}' for k, v in ratios.items()) or 'not fitted'})"
        + (
            f"; int8 efficiencies {', '.join(f'{k} {v:.3f}' for k, v in int8_effs.items())} "
            f"(median |error| {int8_err:.0%})"
            if int8_effs
            else ""
        )
        + "\n"
        f"use it: edgecnn profile MODEL --profile {path}"
    )
