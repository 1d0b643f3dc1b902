"""Estimator check (issue 6, "must show"): after ``edgecnn profile calibrate`` here, predicted vs measured batch-1
latency at 224 px for every zoo model in ONNX Runtime fp32 (and int8 when edgecnn can export INT8 bundles).

Targets: every model within ±20 % of measured, the predicted ranking equal to the measured one, and the median
absolute error recorded. Bundles are random-init (latency does not depend on weight values) and cached in --work.

    .venv/bin/python benchmarks/bench_estimator.py [--models mobilenet_v2,efficientnet_b0] [--profile local.toml]

Without --profile it calibrates first (``edgecnn profile calibrate``; the fitted profile is written beside the
results). Writes benchmarks/results/bench_estimator.json (+ .md).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
EDGECNN = [sys.executable, "-m", "edgecnn.cli.main"]


def export(model: str, precision: str, work: Path) -> tuple[Path | None, str | None]:
    """An ONNX bundle of ``model`` at 224 (cached in ``work``), or (None, why not)."""
    from edgecnn.bench.bundles import ensure_bundle

    return ensure_bundle(model, "onnx", precision, work / f"{model}-onnx-{precision}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", help="comma-separated subset (default: the whole zoo)")
    ap.add_argument("--profile", help="calibrated profile TOML (default: calibrate now)")
    ap.add_argument("--calib-models", default="", help="passed to `edgecnn profile calibrate --models` (graph factor)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--iters", type=int, default=50)
    ap.add_argument("--min-time", type=float, default=1.0)
    ap.add_argument("--work", type=Path, default=Path("/tmp/edgecnn-bench-estimator"))
    ap.add_argument("--out", type=Path, default=HERE / "results" / "bench_estimator.json")
    args = ap.parse_args()

    from edgecnn.bench.env import fingerprint
    from edgecnn.bench.estimate import estimate_model
    from edgecnn.bench.measure import environment_warnings, measure
    from edgecnn.bench.runners import load_bundle
    from edgecnn.models import list_models
    from edgecnn.profiles import get_profile

    models = args.models.split(",") if args.models else list_models()
    args.work.mkdir(parents=True, exist_ok=True)
    profile_path = Path(args.profile) if args.profile else args.out.with_name("bench_estimator_profile.toml")
    if not args.profile:
        print(f"calibrating → {profile_path}", file=sys.stderr)
        cmd = [*EDGECNN, "profile", "calibrate", "--threads", str(args.threads), "--out", str(profile_path)]
        cmd += ["--models", args.calib_models]
        subprocess.run(cmd, check=True)
    profile = get_profile(str(profile_path))
    env = fingerprint(args.threads)
    contention: set[str] = set()
    rows: list[dict] = []
    unavailable: dict[str, str] = {}
    calibrated_on = (profile.calibration or {}).get("models", "")
    for precision in ("fp32", "int8"):
        for model in models:
            bundle, why = export(model, precision, args.work)
            if bundle is None:
                unavailable[f"{model} {precision}"] = why or "?"
                print(f"{model} {precision}: not available ({why})", file=sys.stderr)
                continue
            pred = estimate_model(model, profile, precision=precision, resolution=224)
            ops_only = estimate_model(model, _no_graph_factor(profile), precision=precision, resolution=224)
            subject = load_bundle(bundle, backend="onnxruntime", device=None, threads=args.threads)
            res = measure(
                subject, batch=1, warmup=10, iters=args.iters, min_time_s=args.min_time, threads=args.threads, env=env
            )
            contention.update(environment_warnings(args.threads))
            err = pred.total_ms / res.p50_ms - 1
            rows.append(
                {
                    "model": model,
                    "precision": precision,
                    "predicted_ms": pred.total_ms,
                    "band_ms": [pred.low_ms, pred.high_ms],
                    "measured_p50_ms": res.p50_ms,
                    "measured_cov": res.cov,
                    "error": err,
                    "within_20pct": abs(err) <= 0.20,
                    "predicted_ops_only_ms": ops_only.total_ms,
                    "error_ops_only": ops_only.total_ms / res.p50_ms - 1,
                    "in_calibration_set": model in calibrated_on.split(" @")[0].split(","),
                }
            )
            print(
                f"{model} {precision}: predicted {pred.total_ms:.2f} ms, measured {res.p50_ms:.2f} ms ({err:+.0%})",
                file=sys.stderr,
            )
            write(args, profile_path, profile, env, contention, rows, unavailable)  # partial results survive a kill
    print(write(args, profile_path, profile, env, contention, rows, unavailable))


def _no_graph_factor(profile):  # noqa: ANN001, ANN202
    from dataclasses import replace

    return replace(profile, estimator={**profile.estimator, "graph_factor": 1.0})


def _summary(sub: list[dict], key: str, err_key: str) -> dict:
    pred_rank = [r["model"] for r in sorted(sub, key=lambda r: r[key])]
    meas_rank = [r["model"] for r in sorted(sub, key=lambda r: r["measured_p50_ms"])]
    return {
        "models": len(sub),
        "within_20pct": sum(abs(r[err_key]) <= 0.20 for r in sub),
        "median_abs_error": float(np.median([abs(r[err_key]) for r in sub])),
        "ranking_equal": pred_rank == meas_rank,
        "spearman": _spearman([r[key] for r in sub], [r["measured_p50_ms"] for r in sub]),
        "predicted_ranking": pred_rank,
        "measured_ranking": meas_rank,
    }


def write(args, profile_path, profile, env, contention, rows, unavailable) -> str:  # noqa: ANN001
    """Write the JSON and the Markdown table; returns the Markdown. Predictions are given with the calibrated
    profile as written (graph factor included) and from the single-op fit alone (graph factor 1)."""
    summary: dict = {}
    for precision in ("fp32", "int8"):
        sub = [r for r in rows if r["precision"] == precision]
        if not sub:
            summary[precision] = "not available"
            continue
        summary[precision] = _summary(sub, "predicted_ms", "error")
        summary[f"{precision} (single-op fit only)"] = _summary(sub, "predicted_ops_only_ms", "error_ops_only")
    doc = {
        "benchmark": "bench_estimator",
        "resolution": 224,
        "batch": 1,
        "threads": args.threads,
        "profile": str(profile_path),
        "profile_provenance": profile.provenance(),
        "profile_estimator": profile.estimator,
        "measured_under_contention": bool(contention),
        "contention": sorted(contention),
        "environment": env,
        "rows": rows,
        "summary": summary,
        "not_available": unavailable,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(doc, indent=2) + "\n")
    md = [
        f"Estimator vs measurement, ONNX Runtime, batch 1, 224 px, {args.threads} threads, {env['cpu']}; "
        f"profile {profile.name} ({profile_path}). * = model used (at another resolution) to fit the graph factor.",
        "**Measured under contention** (other jobs on the 2 cores): rerun on a quiet machine." if contention else "",
        "",
        f"| model | precision | predicted ms (graph factor {profile.estimator.get('graph_factor', 1.0):.2f}) "
        "| measured p50 ms | error | predicted ms (single-op fit only) | error |",
        "|---|---|---|---|---|---|---|",
        *[
            f"| {r['model']}{' *' if r['in_calibration_set'] else ''} | {r['precision']} | {r['predicted_ms']:.2f} "
            f"| {r['measured_p50_ms']:.2f} | {r['error']:+.0%} | {r['predicted_ops_only_ms']:.2f} "
            f"| {r['error_ops_only']:+.0%} |"
            for r in rows
        ],
        "",
    ]
    for precision, s in summary.items():
        if isinstance(s, str):
            md.append(f"- {precision}: {s}")
        else:
            md.append(
                f"- {precision}: {s['within_20pct']}/{s['models']} within ±20 %, "
                f"median |error| {s['median_abs_error']:.0%}, "
                f"ranking equal: {s['ranking_equal']} (Spearman {s['spearman']:.3f})"
            )
    md += [f"- not available: {k} — {v}" for k, v in unavailable.items()]
    text = "\n".join(md) + "\n"
    args.out.with_suffix(".md").write_text(text)
    return text


def _spearman(a: list[float], b: list[float]) -> float:
    if len(a) < 2:
        return 1.0
    ra, rb = np.argsort(np.argsort(a)), np.argsort(np.argsort(b))
    return float(np.corrcoef(ra, rb)[0, 1])


if __name__ == "__main__":
    main()
