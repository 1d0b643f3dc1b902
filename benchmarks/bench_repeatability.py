"""Repeatability (issue 6, "must show"): five separate ``edgecnn bench BUNDLE --json`` processes on one bundle;
every run's p50 must lie within ±5 % of the median p50. Also records the per-layer view's coverage (layer times
sum within 10 % of end-to-end) from one ``--per-layer`` run per bundle.

    .venv/bin/python benchmarks/bench_repeatability.py [--model mobilenet_v2] [--runs 5] [--target onnx]

Writes benchmarks/results/bench_repeatability.json (+ .md).
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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="mobilenet_v2")
    ap.add_argument("--targets", default="onnx,openvino")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument(
        "--threads",
        default="1,2",
        help="comma-separated thread counts, each a separate series (default 1,2: on this 2-vCPU VM the 2-thread "
        "series flips between two host speed states across processes, the 1-thread series does not)",
    )
    ap.add_argument("--iters", type=int, default=200)
    ap.add_argument("--min-time", type=float, default=2.0)
    ap.add_argument("--work", type=Path, default=Path("/tmp/edgecnn-bench-repeat"))
    ap.add_argument("--out", type=Path, default=HERE / "results" / "bench_repeatability.json")
    args = ap.parse_args()
    from edgecnn.bench.measure import environment_warnings
    from edgecnn.bench.results import write_results
    from edgecnn.runtime.env import fingerprint

    args.work.mkdir(parents=True, exist_ok=True)
    report: dict = {}
    contention: set[str] = set()
    thread_counts = [int(t) for t in str(args.threads).split(",")]
    series = [(target, t) for t in thread_counts for target in args.targets.split(",")]
    for target, threads in series:
        bundle = args.work / f"{args.model}-{target}"
        if not (bundle / "manifest.json").is_file():
            subprocess.run([*EDGECNN, "export", args.model, "-t", target, "--out", str(bundle)], check=True)
        common = ["bench", str(bundle), "--threads", str(threads), "--json"]
        common += ["--iters", str(args.iters), "--min-time", str(args.min_time)]
        p50s, covs = [], []
        for i in range(args.runs):
            doc = json.loads(subprocess.run([*EDGECNN, *common], check=True, capture_output=True, text=True).stdout)
            r = doc["results"][0]
            p50s.append(r["p50_ms"])
            covs.append(r["cov"])
            contention.update(environment_warnings(threads))
            print(f"{target} t{threads} run {i + 1}: p50 {r['p50_ms']:.3f} ms (CoV {r['cov']:.1%})", file=sys.stderr)
        med = float(np.median(p50s))
        dev = [p / med - 1 for p in p50s]
        layer_doc = json.loads(
            subprocess.run(
                [*EDGECNN, *common[:-4], "--iters", "50", "--per-layer", "--json"],
                check=True,
                capture_output=True,
                text=True,
            ).stdout
        )
        view = next(iter(layer_doc.get("per_layer", {}).values()), {})
        report[f"{target} t{threads}"] = {
            "bundle": str(bundle),
            "target": target,
            "threads": threads,
            "p50_ms": p50s,
            "cov": covs,
            "median_p50_ms": med,
            "max_abs_deviation": max(abs(d) for d in dev),
            "within_5pct": all(abs(d) <= 0.05 for d in dev),
            "per_layer": {k: view.get(k) for k in ("backend", "sum_ms", "end_to_end_ms", "coverage")},
            "per_layer_within_10pct": abs(view.get("coverage", 0) - 1) <= 0.10,
            "slowest_layers": view.get("layers", [])[:5],
        }
    env = fingerprint(max(thread_counts))
    doc = {
        "benchmark": "bench_repeatability",
        "model": args.model,
        "runs": args.runs,
        "threads": thread_counts,
        "iters": args.iters,
        "min_time_s": args.min_time,
        "measured_under_contention": bool(contention),
        "contention": sorted(contention),
        "environment": env,
        "targets": report,
    }
    md = [
        f"Repeatability: {args.runs} separate `edgecnn bench` processes, {args.model}, batch 1, "
        f"threads {args.threads}, {env['cpu']}. `python benchmarks/bench_repeatability.py`",
        "**Measured under contention** (other jobs on the 2 cores): rerun on a quiet machine." if contention else "",
        "",
        "| target, threads | p50 per run (ms) | max deviation from median | within ±5 % | per-layer sum / end-to-end |",
        "|---|---|---|---|---|",
    ]
    for target, r in report.items():
        runs = ", ".join(f"{p:.3f}" for p in r["p50_ms"])
        cov = r["per_layer"].get("coverage")
        md.append(
            f"| {target} | {runs} | {r['max_abs_deviation']:.1%} | {r['within_5pct']} | "
            f"{cov:.0%} ({'within' if r['per_layer_within_10pct'] else 'outside'} ±10 %) |"
            if cov is not None
            else f"| {target} | {runs} | {r['max_abs_deviation']:.1%} | {r['within_5pct']} | n/a |"
        )
    write_results(args.out, doc, md)
    print("\n".join(md))


if __name__ == "__main__":
    main()
