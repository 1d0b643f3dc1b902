"""Embedded segmentation: train the shipped ``seg_canvases`` recipe (U-Net on MobileNetV3-Small, M2NIST-like digit
canvases) on the CPU, then export onnx / openvino bundles at fp32 and int8 and score every one through the runtime
on the held-out test canvases. Must show: test mIoU >= 85 % after <= 10 minutes of training; INT8 within 1.0 point.

    OMP_WAIT_POLICY=PASSIVE nice -n 19 .venv/bin/python benchmarks/seg_embedded.py [--threads 2] [--set KEY=VALUE]

Writes benchmarks/results/seg_embedded.{json,md}.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from train_common import RESULTS, environment, quiet_threads, scratch_dir, write_result  # noqa: E402

quiet_threads()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--set", dest="sets", action="append", default=[], help="recipe override KEY=VALUE")
    ap.add_argument("--calibration", type=int, default=128, help="training canvases used for INT8 calibration")
    ap.add_argument("--tag", default="", help="suffix of the result files and scratch folder (a second run)")
    ap.add_argument("--from-run", help="skip training: export and score this finished run directory (its run/)")
    args = ap.parse_args()

    import numpy as np
    import torch

    from edgecnn import runtime
    from edgecnn.exporters import ExportOptions, Precision, export_bundle
    from edgecnn.quant.config import QuantConfig
    from edgecnn.quant.int8_ops import bundle_int8_ops
    from edgecnn.quant.samples import SampleSet
    from edgecnn.train.dense import evaluate_segmentation, fit_dense, load_dense_data, torch_predictor
    from edgecnn.train.recipe import load_recipe

    torch.set_num_threads(args.threads)
    env = environment(args.threads)
    recipe = load_recipe("seg_canvases", [*args.sets, f"train.threads={args.threads}"])
    data = load_dense_data(recipe, "segmentation")
    name = f"seg_embedded{'_' + args.tag if args.tag else ''}"
    out = scratch_dir(name)
    if args.from_run:  # score and export a finished run of this script (its log holds the epochs' times)
        import json
        from types import SimpleNamespace

        run = Path(args.from_run)
        history = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines() if line.strip()]
        res = SimpleNamespace(checkpoint=run / "model.safetensors", epochs=len(history), history=history)
        train_s = sum(h["epoch_time_s"] for h in history)
        load_after_train = None
        out = out.with_name("seg_embedded_export")
        shutil.rmtree(out, ignore_errors=True)
    else:
        shutil.rmtree(out, ignore_errors=True)
        t0 = time.perf_counter()
        res = fit_dense(recipe, out / "run", data=data, report=lambda m: print(m, flush=True))
        train_s = time.perf_counter() - t0
        load_after_train = list(__import__("os").getloadavg())

    from edgecnn.models.resolve import resolve_model

    net, _ = resolve_model(str(res.checkpoint))
    k = len(data.classes)
    rows = [
        {
            "path": "pytorch fp32",
            **_short(evaluate_segmentation(torch_predictor(net, data.preprocessing), data.test, k)),
        }
    ]
    pre = data.preprocessing
    mean, std = np.array(pre.mean, np.float32).reshape(1, 3, 1, 1), np.array(pre.std, np.float32).reshape(1, 3, 1, 1)
    calib = (data.train.images[: args.calibration].transpose(0, 3, 1, 2).astype(np.float32) / 255 - mean) / std
    for target in ("onnx", "openvino"):
        for prec in ("fp32", "int8"):
            quant = None
            if prec == "int8":
                quant = QuantConfig(calibration=SampleSet(data=np.ascontiguousarray(calib), source="train canvases"))
            t = time.perf_counter()
            r = export_bundle(
                net, ExportOptions(target=target, precision=Precision(prec), quant=quant), out / f"{target}-{prec}"
            )
            export_s = time.perf_counter() - t
            sess = runtime.load(r.bundle)

            def predict(images, sess=sess):
                x = (images.transpose(0, 3, 1, 2).astype(np.float32) / 255 - mean) / std
                return np.concatenate(
                    [sess.predict(np.ascontiguousarray(x[i : i + 1])).argmax(1) for i in range(len(x))]
                )

            scores = evaluate_segmentation(predict, data.test, k)
            q = r.manifest.get("quantization") or {}
            rows.append(
                {
                    "path": f"{target} {prec}",
                    **_short(scores),
                    "export_s": round(export_s, 1),
                    "parity": r.manifest["parity"].get("max_rel_error"),
                    "quantized_ops": _quantized_summary(q),
                    **({"int8_ops": bundle_int8_ops(r.bundle)} if quant else {}),
                }
            )
            print(rows[-1], flush=True)
    fp32 = rows[0]["miou"]
    result = {
        "benchmark": "seg_embedded",
        "command": "OMP_WAIT_POLICY=PASSIVE nice -n 19 .venv/bin/python benchmarks/seg_embedded.py "
        + " ".join(sys.argv[1:]),
        "recipe": recipe.to_dict(),
        "environment": env,
        "load_average_after_training": load_after_train,
        "train_wall_s": round(train_s, 1),  # with --from-run: the sum of the logged epoch times
        "from_run": args.from_run,
        "epochs": res.epochs,
        "history": res.history,
        "test_canvases": len(data.test),
        "classes": list(data.classes),
        "rows": rows,
        "int8_drop_points": {r["path"]: round(100 * (fp32 - r["miou"]), 2) for r in rows if "int8" in r["path"]},
        "must_show": {
            "miou_ge_85": fp32 >= 0.85,
            "train_le_10_min": train_s <= 600,
            "int8_within_1_point": all(abs(fp32 - r["miou"]) <= 0.01 for r in rows if "int8" in r["path"]),
        },
    }
    write_result(f"{name}.json", result)
    _markdown(result, f"{name}.md")
    return 0


def _short(s: dict) -> dict:
    return {
        "miou": round(s["miou"], 4),
        "pixel_accuracy": round(s["pixel_accuracy"], 4),
        "class_iou": [None if v is None else round(v, 4) for v in s["class_iou"]],
        "class_accuracy": [None if v is None else round(v, 4) for v in s["class_accuracy"]],
    }


def _quantized_summary(q: dict) -> dict | None:
    if not q:
        return None
    keep = {k: q[k] for k in ("backend", "quantized_ops", "float_ops", "kept_float") if k in q}
    return keep or {"keys": sorted(q)[:12]}


def _markdown(r: dict, fname: str) -> None:
    lines = [
        "# Embedded segmentation (U-Net decoder on MobileNetV3-Small, digit canvases)",
        "",
        f"Command: `{r['command']}`  ",
        f"Training: {r['epochs']} epochs in {r['train_wall_s']} s on {r['environment']['torch_threads']} threads "
        f"(load average at start {r['environment']['load_average_at_start']}, after training "
        f"{r['load_average_after_training']}); CPU {r['environment']['cpu']}.  ",
        f"Test set: {r['test_canvases']} canvases of held-out digits; mIoU over {len(r['classes'])} classes "
        "(background + 10 digits), faint digit rims ignored (255).",
        "",
        "| path | mIoU | pixel acc. | Δ vs fp32 (points) |",
        "|---|---|---|---|",
    ]
    base = r["rows"][0]["miou"]
    for row in r["rows"]:
        lines.append(
            f"| {row['path']} | {100 * row['miou']:.2f} % | {100 * row['pixel_accuracy']:.2f} % | "
            f"{100 * (row['miou'] - base):+.2f} |"
        )
    lines += [
        "",
        "Per-class IoU (PyTorch fp32): "
        + ", ".join(
            f"{c} {100 * v:.1f}" for c, v in zip(r["classes"], r["rows"][0]["class_iou"], strict=True) if v is not None
        ),
        "",
        f"Must show: {r['must_show']}",
        "",
    ]
    (RESULTS / fname).write_text("\n".join(lines))


if __name__ == "__main__":
    raise SystemExit(main())
