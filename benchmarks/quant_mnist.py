"""INT8 on real labelled data: a model trained on the 5,000 embedded MNIST digits (``edgecnn.train``; the
architecture is the checkpoint's own) quantized for ``onnx`` and ``openvino`` with edgecnn's defaults — top-1 drop
on the held-out test split, target ≤ 0.5 points — and, on the same model, naive settings (per-tensor weights, no
bias correction) with and without the budget mode (``--max-drop``) (issue: compression).

Calibration: 300 images of the train split; evaluation: the 500-image test split (seed 0 cut, as the trainer's),
both through the checkpoint's own evaluation transform.

    .venv/bin/python benchmarks/quant_mnist.py [--checkpoint RUN/model.safetensors] [--targets onnx openvino]

Without ``--checkpoint`` it first trains the recipe (``edgecnn.train.quick.train_embedded_default``, minutes).
Writes benchmarks/results/quant_mnist.json (+ .md, and the per-run reports under quant_mnist-<run>/).
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--checkpoint", type=Path, help="a trained mnist_embedded checkpoint (default: train one)")
    ap.add_argument("--targets", nargs="+", default=["onnx", "openvino"])
    ap.add_argument("--max-drop", type=float, default=0.5)
    ap.add_argument("--skip-fragile", action="store_true")
    ap.add_argument("--out", type=Path, default=HERE / "results" / "quant_mnist.json")
    args = ap.parse_args()
    from edgecnn.bench.results import write_results
    from edgecnn.errors import AccuracyBudgetError
    from edgecnn.exporters.int8 import make_config
    from edgecnn.exporters.int8_report import build_report, write_report
    from edgecnn.models.resolve import resolve_model
    from edgecnn.quant.lint import lint_model
    from edgecnn.runtime.env import fingerprint

    work = Path(tempfile.mkdtemp(prefix="edgecnn-qmnist-"))
    ckpt = args.checkpoint
    if ckpt is None:
        from edgecnn.train.quick import train_embedded_default

        ckpt = Path(train_embedded_default(work / "train").checkpoint)
    net, info = resolve_model(str(ckpt))
    cfg = make_config(net, "embedded", eval_data="embedded")
    results: dict = {
        "benchmark": "quant_mnist",
        "checkpoint": str(ckpt),
        "model": getattr(net, "edgecnn_name", type(net).__name__),
        "checkpoint_sha256": info.sha256 if info else None,
        "calibration": cfg.calibration.record(),
        "evaluation": cfg.evaluation.record() if cfg.evaluation else None,
        "environment": fingerprint(2),
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "runs": {},
    }
    import dataclasses

    from edgecnn.exporters import ExportOptions, Precision, export_bundle

    def run(name: str, target: str, qcfg, *, report: bool = True) -> None:
        t = time.perf_counter()
        opts = ExportOptions(target=target, precision=Precision.INT8, quant=qcfg)
        entry: dict = {"target": target, "settings": qcfg.record() | {"calibration": None, "evaluation": None}}
        try:
            res = export_bundle(net, opts, work / name, overwrite=True)
            q = res.manifest["quantization"]
            entry |= {
                "fp32_vs_int8": q["fp32_vs_int8"],
                "kept_float": q["kept_float"],
                "fallback_trials": q["fallback_trials"],
                "selftest_ok": res.manifest["parity"]["ok"],
            }
            if report:
                findings = [f.to_dict() for f in lint_model(net, per_channel=qcfg.per_channel)]
                rep = build_report(res.bundle, net, findings=findings)
                write_report(rep, args.out.with_name(f"quant_mnist-{name}"))
                entry["size_bytes"] = rep["size_bytes"]
                entry["latency_p50_ms"] = {k: rep["latency"][k]["p50_ms"] for k in ("fp32", "int8")}
        except AccuracyBudgetError as e:
            entry["error"] = str(e)
        except Exception as e:  # noqa: BLE001 - a collapse the parity guard catches is a result here
            entry["error"] = f"{type(e).__name__}: {e}"
        entry["seconds"] = time.perf_counter() - t
        results["runs"][name] = entry
        c = entry.get("fp32_vs_int8") or {}
        print(name, c.get("fp32_top1"), c.get("int8_top1"), c.get("top1_drop_points"), entry.get("error"), flush=True)

    for target in args.targets:
        run(f"default-{target}", target, cfg)
    if not args.skip_fragile:
        naive = dataclasses.replace(cfg, per_channel=False, bias_correction=False, fast_bias_correction=False)
        for target in args.targets:
            run(f"naive-{target}", target, naive, report=False)
            run(f"naive-budget-{target}", target, dataclasses.replace(naive, max_drop=args.max_drop), report=False)
    shutil.rmtree(work, ignore_errors=True)
    md = [
        f"# INT8 on a model trained on the embedded MNIST digits ({results['model']})",
        "",
        f"Calibration {cfg.calibration.record()['samples']} train images, evaluation "
        f"{len(cfg.evaluation or [])} test images. `{results['command']}`",
        "",
        "| run | target | fp32 top-1 | int8 top-1 | drop (points) | agreement | SQNR dB | float layers | note |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, e in results["runs"].items():
        c = e.get("fp32_vs_int8") or {}
        pct = lambda v: f"{100 * v:.2f} %" if v is not None else "-"  # noqa: E731
        md.append(
            f"| {name} | {e['target']} | {pct(c.get('fp32_top1'))} | {pct(c.get('int8_top1'))} | "
            f"{c.get('top1_drop_points', float('nan')):.2f} | {pct(c.get('top1_agreement'))} | "
            f"{c.get('sqnr_db', float('nan')):.1f} | {len(e.get('kept_float', []))} | {e.get('error', '')[:160]} |"
        )
    md += ["", f"Machine: {results['environment'].get('cpu', '?')}; shared with other jobs while measured."]
    write_results(args.out, results, md)


if __name__ == "__main__":
    main()
