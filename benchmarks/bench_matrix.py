"""The standard matrix (issue 6): zoo models at 224 × {PyTorch eager, torch.compile, ORT fp32/int8, OpenVINO
fp32/bf16/int8} × batch {1, 8} → JSON with the environment + a Markdown table with ratios to PyTorch eager.

Bundles are exported with a dynamic batch (1..8) so one bundle serves both batch sizes; random-init weights
(latency does not depend on weight values). INT8 rows run when ``export_bundle(..., precision=int8)`` works (the
compression issue's quantizers) and are reported "not available: <reason>" otherwise. OpenVINO fp32 runs with
INFERENCE_PRECISION_HINT=f32 (the bundle records it); bf16 is OpenVINO's own bf16 execution on AVX512_BF16 CPUs.
edgecnn's OpenVINO figure vs ``benchmark_app`` on the same IR is benchmarks/runtime_overhead.py.

    .venv/bin/python benchmarks/bench_matrix.py --models mobilenet_v2,mobilenet_v3_small [--threads 2]

Writes benchmarks/results/bench_matrix.json (+ .md).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
PATHS = ("pytorch-eager", "pytorch-compile", "ort-fp32", "ort-int8", "ov-fp32", "ov-bf16", "ov-int8")


def bundle_for(model: str, path: str, work: Path) -> tuple[Path | None, str | None]:
    """The dynamic-batch (1..8) bundle for one matrix path, cached in ``work``; (None, why) when unavailable."""
    from edgecnn.bench.bundles import ensure_bundle

    target = "onnx" if path.startswith("ort") else "openvino"
    precision = path.split("-")[1]
    out = work / f"{model}-{target}-{precision}-b1to8"
    return ensure_bundle(model, target, precision, out, dynamic_batch="1:1:8")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", help="comma-separated subset (default: the whole zoo)")
    ap.add_argument("--paths", default=",".join(PATHS), help=f"subset of {','.join(PATHS)}")
    ap.add_argument("--batches", default="1,8")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--iters", type=int, default=30)
    ap.add_argument("--min-time", type=float, default=1.0)
    ap.add_argument("--work", type=Path, default=Path("/tmp/edgecnn-bench-matrix"))
    ap.add_argument("--out", type=Path, default=HERE / "results" / "bench_matrix.json")
    args = ap.parse_args()
    from edgecnn.bench.measure import environment_warnings, measure
    from edgecnn.bench.results import write_results
    from edgecnn.bench.runners import TorchMode, load_bundle, load_torch
    from edgecnn.models import list_models
    from edgecnn.runtime.env import fingerprint

    models = args.models.split(",") if args.models else list_models()
    paths = args.paths.split(",")
    batches = [int(b) for b in args.batches.split(",")]
    env = fingerprint(args.threads)
    contention: set[str] = set()
    results, unavailable = [], {}
    args.work.mkdir(parents=True, exist_ok=True)
    for model in models:
        for path in paths:
            t0 = time.perf_counter()
            if path.startswith("pytorch"):
                mode = TorchMode.EAGER if path == "pytorch-eager" else TorchMode.COMPILE
                subject = load_torch(model, mode=mode, resolution=224, threads=args.threads)
            else:
                bundle, why = bundle_for(model, path, args.work)
                if bundle is None:
                    unavailable[path] = why
                    print(f"{model} {path}: not available ({why})", file=sys.stderr)
                    continue
                subject = load_bundle(bundle, backend=None, device=None, threads=args.threads)
            for b in batches:
                r = measure(
                    subject,
                    batch=b,
                    warmup=5,
                    iters=args.iters,
                    min_time_s=args.min_time,
                    threads=args.threads,
                    env=env,
                )
                contention.update(environment_warnings(args.threads))
                results.append(
                    {"model": model, "path": path, **{k: v for k, v in r.to_dict().items() if k != "environment"}}
                )
                print(
                    f"{model} {path} b{b}: p50 {r.p50_ms:.2f} ms, {r.throughput:.0f} img/s, CoV {r.cov:.0%}",
                    file=sys.stderr,
                )
            print(f"  ({time.perf_counter() - t0:.0f} s incl. export/compile)", file=sys.stderr)
    eager = {(r["model"], r["batch"]): r["p50_ms"] for r in results if r["path"] == "pytorch-eager"}
    for r in results:
        base = eager.get((r["model"], r["batch"]))
        r["ratio_vs_eager"] = base / r["p50_ms"] if base else None
    doc = {
        "benchmark": "bench_matrix",
        "resolution": 224,
        "threads": args.threads,
        "measured_under_contention": bool(contention),
        "contention": sorted(contention),
        "environment": env,
        "results": results,
        "not_available": unavailable,
    }
    md = [
        f"Latency matrix, 224 px, {args.threads} threads, {env['cpu']}; p50 ms (× vs PyTorch eager at the same batch).",
        "**Measured under contention** (other jobs on the 2 cores): rerun on a quiet machine." if contention else "",
        "",
    ]
    for b in batches:
        md += [f"batch {b}:", "", "| model | " + " | ".join(paths) + " |", "|---" * (len(paths) + 1) + "|"]
        for model in models:
            cells = []
            for path in paths:
                r = next((x for x in results if x["model"] == model and x["path"] == path and x["batch"] == b), None)
                cells.append(
                    f"{r['p50_ms']:.2f} ({r['ratio_vs_eager']:.1f}×)"
                    if r and r["ratio_vs_eager"]
                    else (f"{r['p50_ms']:.2f}" if r else "n/a")
                )
            md.append(f"| {model} | " + " | ".join(cells) + " |")
        md.append("")
    md += [f"- {p}: not available — {why}" for p, why in unavailable.items()]
    write_results(args.out, doc, md)
    print("\n".join(md))


if __name__ == "__main__":
    main()
