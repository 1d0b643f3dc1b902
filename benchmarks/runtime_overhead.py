"""Runtime overhead: edgecnn ``Session.predict`` vs the raw SDK call on the same file, and edgecnn's OpenVINO
latency vs OpenVINO's own ``benchmark_app`` on the same IR and settings (issue: export & runtime).

MobileNetV2-224, batch 1, fp32, 2 threads. Rounds interleave the contenders so machine noise hits both alike;
the figure is the median over rounds of each round's p50, and the ratio is taken round by round.

    .venv/bin/python benchmarks/runtime_overhead.py [--rounds 5] [--iters 200]

Writes benchmarks/results/runtime_overhead.json (+ .md).
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--iters", type=int, default=200)
    ap.add_argument("--warmup", type=int, default=30)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", type=Path, default=HERE / "results" / "runtime_overhead.json")
    args = ap.parse_args()
    import onnxruntime as ort
    import openvino as ov
    import torch

    import edgecnn
    from edgecnn import runtime
    from edgecnn.bench.results import write_results
    from edgecnn.exporters import ExportOptions, export_bundle
    from edgecnn.runtime.env import fingerprint
    from edgecnn.runtime.timing import time_call

    work = Path(tempfile.mkdtemp(prefix="edgecnn-overhead-"))
    torch.manual_seed(0)
    model = edgecnn.create_model("mobilenet_v2")
    bundles = {t: export_bundle(model, ExportOptions(target=t), work / t).bundle for t in ("onnx", "openvino")}
    x = np.random.default_rng(0).standard_normal((1, 3, 224, 224)).astype(np.float32)

    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.intra_op_num_threads, so.inter_op_num_threads = args.threads, 1
    raw_ort = ort.InferenceSession(str(bundles["onnx"] / "model.onnx"), so, providers=["CPUExecutionProvider"])
    core = ov.Core()
    cfg = {"INFERENCE_PRECISION_HINT": "f32", "INFERENCE_NUM_THREADS": args.threads, "PERFORMANCE_HINT": "LATENCY"}
    raw_ov = core.compile_model(str(bundles["openvino"] / "model.xml"), "CPU", cfg).create_infer_request()
    ec_ort = runtime.load(bundles["onnx"], threads=args.threads)
    ec_ov = runtime.load(bundles["openvino"], threads=args.threads)

    contenders = {
        "ort_raw": lambda: raw_ort.run(None, {"input": x}),
        "ort_edgecnn": lambda: ec_ort.predict(x),
        "ov_raw": lambda: raw_ov.infer({0: x}),
        "ov_edgecnn": lambda: ec_ov.predict(x),
    }
    rounds: dict[str, list[dict]] = {k: [] for k in contenders}
    bench_app: list[float] = []
    for r in range(args.rounds):
        for name, fn in contenders.items():
            rounds[name].append(time_call(fn, warmup=args.warmup, iters=args.iters))
        bench_app.append(_benchmark_app(bundles["openvino"] / "model.xml", args))
        print(
            f"round {r + 1}: "
            + ", ".join(f"{k} {v[-1]['p50_ms']:.3f}" for k, v in rounds.items())
            + f", benchmark_app {bench_app[-1]:.3f} ms",
            file=sys.stderr,
        )

    med = {k: float(np.median([s["p50_ms"] for s in v])) for k, v in rounds.items()}
    med["ov_benchmark_app"] = float(np.median(bench_app))

    def ratio(a: str, b: str, series_b: list[float] | None = None) -> float:
        pb = series_b or [s["p50_ms"] for s in rounds[b]]
        return float(np.median([s["p50_ms"] / q for s, q in zip(rounds[a], pb, strict=True)]))

    result = {
        "benchmark": "runtime_overhead",
        "model": "mobilenet_v2",
        "resolution": 224,
        "batch": 1,
        "precision": "fp32",
        "threads": args.threads,
        "rounds": args.rounds,
        "iters": args.iters,
        "warmup": args.warmup,
        "environment": fingerprint(args.threads),
        "median_p50_ms": med,
        "ratios": {
            "ort_edgecnn/ort_raw": ratio("ort_edgecnn", "ort_raw"),
            "ov_edgecnn/ov_raw": ratio("ov_edgecnn", "ov_raw"),
            "ov_edgecnn/benchmark_app": ratio("ov_edgecnn", "", bench_app),
        },
        "per_round": {k: v for k, v in rounds.items()} | {"ov_benchmark_app_median_ms": bench_app},
    }
    md = [
        "| path | median p50 (ms) |",
        "|---|---|",
        *[f"| {k} | {v:.3f} |" for k, v in med.items()],
        "",
        "| ratio | value (target ≤ 1.05) |",
        "|---|---|",
        *[f"| {k} | {v:.3f} |" for k, v in result["ratios"].items()],
    ]
    write_results(args.out, result, md)
    print("\n".join(md))


def _benchmark_app(xml: Path, args: argparse.Namespace) -> float:
    """OpenVINO's benchmark_app, same IR, sync API, one stream, f32, same threads → its reported median (ms)."""
    exe = Path(sys.executable).with_name("benchmark_app")
    cmd = [
        str(exe),
        "-m",
        str(xml),
        "-d",
        "CPU",
        "-api",
        "sync",
        "-hint",
        "none",
        "-nstreams",
        "1",
        "-nthreads",
        str(args.threads),
        "-infer_precision",
        "f32",
        "-niter",
        str(args.iters),
        "-shape",
        "[1,3,224,224]",
    ]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    m = re.search(r"Median:\s+([\d.]+) ms", out)
    if not m:
        raise RuntimeError(f"benchmark_app output had no median:\n{out[-2000:]}")
    return float(m.group(1))


if __name__ == "__main__":
    main()
