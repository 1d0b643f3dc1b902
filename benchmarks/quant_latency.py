"""MobileNetV2-224 batch 1, side by side in one run: PyTorch eager fp32, ONNX Runtime fp32 / INT8 (QDQ, u8/s8
per-channel) and OpenVINO fp32 (f32 hint) / INT8 (NNCF) — the INT8 bundles produced by edgecnn's defaults and run
through ``edgecnn.runtime`` (issue: compression; targets: INT8 ≥ 2× the same backend's fp32, ≥ 8× PyTorch eager,
file ≈ 4× smaller).

Random weights (latency does not depend on the values), with seeded non-trivial BN
statistics (the zoo's zero-init residual BN makes a fresh model's logits ~1e-8); calibration on seeded random
inputs. Rounds interleave the contenders so background load hits all alike; each figure is the median over rounds
of that round's p50, the speedups are taken round by round (median reported, min..max shown).

    .venv/bin/python benchmarks/quant_latency.py [--rounds 5] [--iters 100] [--threads 2]

Writes benchmarks/results/quant_latency.json (+ .md).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--iters", type=int, default=100)
    ap.add_argument("--warmup", type=int, default=20)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--calib", type=int, default=64)
    ap.add_argument("--out", type=Path, default=HERE / "results" / "quant_latency.json")
    args = ap.parse_args()
    import torch

    import edgecnn
    from edgecnn import runtime
    from edgecnn.bench.results import write_results
    from edgecnn.exporters import ExportOptions, Precision, export_bundle
    from edgecnn.exporters.int8_report import model_bytes
    from edgecnn.models.synthetic import randomize_batchnorm
    from edgecnn.quant.config import QuantConfig
    from edgecnn.quant.samples import from_arrays
    from edgecnn.runtime.env import fingerprint

    load_start = [round(v, 2) for v in os.getloadavg()]
    torch.manual_seed(0)
    torch.set_num_threads(args.threads)
    model = edgecnn.create_model("mobilenet_v2").eval()
    randomize_batchnorm(model)
    calib = from_arrays(np.random.default_rng(0).standard_normal((args.calib, 3, 224, 224)).astype(np.float32))
    work = Path(tempfile.mkdtemp(prefix="edgecnn-qlat-"))
    sizes, calls = {}, {}
    try:
        for target in ("onnx", "openvino"):
            for prec in (Precision.FP32, Precision.INT8):
                q = QuantConfig(calibration=calib) if prec is Precision.INT8 else None
                opts = ExportOptions(target=target, precision=prec, resolution=224, quant=q)
                res = export_bundle(model, opts, work / f"{target}-{prec}")
                sizes[f"{target} {prec}"] = model_bytes(res.manifest)
                sess = runtime.load(res.bundle, threads=args.threads)
                calls[f"{target} {prec}"] = sess.predict
        x = np.random.default_rng(1).standard_normal((1, 3, 224, 224)).astype(np.float32)
        xt = torch.from_numpy(x)

        def eager(_x: np.ndarray) -> object:
            with torch.no_grad():
                return model(xt)

        calls = {"pytorch eager fp32": eager, **calls}
        for fn in calls.values():
            for _ in range(args.warmup):
                fn(x)
        rounds: dict[str, list[float]] = {k: [] for k in calls}
        for _ in range(args.rounds):
            for k, fn in calls.items():
                times = []
                for _ in range(args.iters):
                    t = time.perf_counter()
                    fn(x)
                    times.append(time.perf_counter() - t)
                rounds[k].append(float(np.median(times) * 1e3))
    finally:
        shutil.rmtree(work, ignore_errors=True)

    def ratio(a: str, b: str) -> dict[str, float]:
        r = np.asarray(rounds[a]) / np.asarray(rounds[b])
        return {"median": float(np.median(r)), "min": float(r.min()), "max": float(r.max())}

    speedups = {
        "onnx int8 vs onnx fp32": ratio("onnx fp32", "onnx int8"),
        "openvino int8 vs openvino fp32": ratio("openvino fp32", "openvino int8"),
        "onnx int8 vs pytorch eager": ratio("pytorch eager fp32", "onnx int8"),
        "openvino int8 vs pytorch eager": ratio("pytorch eager fp32", "openvino int8"),
    }
    results = {
        "benchmark": "quant_latency",
        "model": "mobilenet_v2 (random weights), 224, batch 1",
        "threads": args.threads,
        "warmup": args.warmup,
        "iters_per_round": args.iters,
        "rounds": args.rounds,
        "calibration_samples": args.calib,
        "p50_ms_per_round": rounds,
        "p50_ms": {k: float(np.median(v)) for k, v in rounds.items()},
        "speedups": speedups,
        "size_bytes": sizes,
        "size_ratio": {t: sizes[f"{t} fp32"] / sizes[f"{t} int8"] for t in ("onnx", "openvino")},
        "environment": fingerprint(args.threads),
        "load_average_at_start": load_start,
        "load_average_at_end": [round(v, 2) for v in os.getloadavg()],
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
    }
    md = [
        "# MobileNetV2-224 batch 1: INT8 vs fp32, side by side",
        "",
        f"{args.threads} threads, {args.rounds} rounds × {args.iters} calls after {args.warmup} warm-up calls, "
        f"contenders interleaved. `{results['command']}`",
        "",
        "| path | p50 ms (median of rounds) | round p50s | file bytes |",
        "|---|---|---|---|",
    ]
    for k, v in rounds.items():
        md.append(f"| {k} | {np.median(v):.3f} | {', '.join(f'{t:.2f}' for t in v)} | {sizes.get(k, '-')} |")
    md += ["", "| speedup | median | min..max over rounds |", "|---|---|---|"]
    md += [f"| {k} | {v['median']:.2f}× | {v['min']:.2f}..{v['max']:.2f} |" for k, v in speedups.items()]
    md += [
        "",
        "File size fp32/int8: " + ", ".join(f"{t} {r:.2f}×" for t, r in results["size_ratio"].items()) + ".",
        f"Machine: {results['environment'].get('cpu', '?')}; load average (1, 5, 15 min) at start "
        f"{results['load_average_at_start']}, at end {results['load_average_at_end']}.",
    ]
    write_results(args.out, results, md)
    print("\n".join(md))


if __name__ == "__main__":
    main()
