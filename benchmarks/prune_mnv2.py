"""Pruned + INT8 MobileNetV2 (width 1.0) on the embedded MNIST digits (issue 18):

1. accuracy: the trained model pruned to <= 50 % of its MACs (uniform L1, channels in multiples of 8) and fine-tuned
   by distillation from itself unpruned — top-1 drop on the 500-image test split (target <= 0.5 points); then INT8
   for onnx and openvino (target <= 0.5 points more);
2. the headline: that pruned model as INT8 bundles at 224x224, batch 1, 2 threads, against PyTorch eager fp32 of the
   unpruned MobileNetV2-224 — rounds of one `edgecnn bench run` each, contenders side by side (target >= 12x);
3. latency-aware vs uniform: both pruned to the same latency target measured here (ONNX Runtime fp32, 224, 2
   threads), fine-tuned alike; both measured side by side and evaluated.

Accuracy is measured at the recipe's 36x36 input (the digits are 28x28); latency at 224x224 (the same weights, a
larger input: the network is fully convolutional up to its global pool).

    .venv/bin/python benchmarks/prune_mnv2.py --teacher RUN/model.safetensors [--epochs 5] [--rounds 5]

Without --teacher it first trains the mnist_embedded recipe at width 1.0 (benchmarks/train_embedded.py does the
same). Intermediate checkpoints and bundles go under --work (reused when present: a rerun only redoes what is
missing). Writes benchmarks/results/prune_mnv2.json (+ .md).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from train_common import quiet_threads  # noqa: E402


def log(msg: str) -> None:
    sys.stderr.write(f"[{time.strftime('%H:%M:%S')}] {msg}\n")
    sys.stderr.flush()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--teacher", type=Path, help="trained mnist_embedded width-1.0 checkpoint (default: train one)")
    ap.add_argument("--work", type=Path, default=Path("/tmp/edgecnn-bench/prune_mnv2"))
    ap.add_argument("--epochs", type=int, default=6, help="fine-tune epochs after pruning")
    ap.add_argument("--la-epochs", type=int, default=3, help="fine-tune epochs of the latency-aware comparison")
    ap.add_argument("--target-macs", type=float, default=0.5)
    ap.add_argument("--latency-fraction", type=float, default=0.6, help="latency target as a fraction of baseline")
    ap.add_argument("--max-drop", type=float, default=0.5, help="INT8 budget: sensitive layers stay float")
    ap.add_argument("--rounds", type=int, default=5, help="interleaved latency rounds")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--train-threads", type=int, default=1)
    ap.add_argument("--skip", nargs="*", default=[], choices=["int8", "headline", "latency-aware"])
    ap.add_argument("--out", type=Path, default=HERE / "results" / "prune_mnv2.json")
    args = ap.parse_args()
    quiet_threads()
    import torch

    from edgecnn.bench.results import write_results
    from edgecnn.models.resolve import resolve_model
    from edgecnn.prune import PruneConfig
    from edgecnn.prune.recover import accuracy, finetune_recipe, prune_and_recover
    from edgecnn.runtime.env import fingerprint
    from edgecnn.train.datasets import load_data
    from edgecnn.train.recipe import recipe_from_dict

    work = args.work
    work.mkdir(parents=True, exist_ok=True)
    load_start = [round(v, 2) for v in os.getloadavg()]
    torch.set_num_threads(args.train_threads)
    ckpt = args.teacher
    if ckpt is None:
        from edgecnn.train.quick import train_embedded_default

        log("training the teacher (mnist_embedded, width 1.0)")
        over = ["model.width_mult=1.0", f"train.threads={args.train_threads}", "train.progress=false"]
        ckpt = Path(train_embedded_default(work / "teacher", overrides=over).checkpoint)
    teacher, info = resolve_model(str(ckpt))
    recipe = recipe_from_dict(json.loads(info.metadata["recipe"]), source=str(ckpt))
    recipe = recipe.replace(
        train=__import__("dataclasses").replace(recipe.train, threads=args.train_threads, progress=False)
    )
    data = load_data(recipe.data)
    res_train = recipe.data.input_size
    doc: dict[str, Any] = {
        "benchmark": "prune_mnv2",
        "command": " ".join([".venv/bin/python", "benchmarks/prune_mnv2.py", *sys.argv[1:]]),
        "teacher": {"checkpoint": str(ckpt), "sha256": info.sha256, "width_mult": recipe.model.width_mult},
        "accuracy_resolution": res_train,
        "test_images": len(data.test) if data.test is not None else 0,
    }
    t_top1 = accuracy(teacher, data)["top1"]
    doc["teacher"]["test_top1"] = t_top1
    log(f"teacher test top-1 {100 * t_top1:.2f} %")
    ft = finetune_recipe(recipe, epochs=args.epochs)

    # 1. pruned to <= 50 % MACs, fine-tuned -------------------------------------------------------------------
    pruned_ckpt = work / "pruned" / "model.safetensors"
    cfg = PruneConfig(target_macs=args.target_macs, resolution=224, round_to=8)
    if not pruned_ckpt.exists():
        log(f"pruning to {args.target_macs:.0%} MACs and fine-tuning {args.epochs} epochs")
        rounds = prune_and_recover(teacher, cfg, ft, work / "pruned" / "finetune", data=data, report=log)
        from edgecnn.models.weights import save_weights

        before = accuracy(rounds[-1].pruned.model, data)["top1"]  # the pruned weights before fine-tuning
        (work / "pruned").mkdir(parents=True, exist_ok=True)
        (work / "pruned" / "before_finetune.json").write_text(json.dumps({"test_top1": before}))
        save_weights(rounds[-1].model, pruned_ckpt)
    pruned, pinfo = resolve_model(str(pruned_ckpt))
    from edgecnn.prune import layer_macs

    macs = {r: [int(layer_macs(teacher, r)[1]), int(layer_macs(pruned, r)[1])] for r in (res_train, 224)}
    params = [sum(p.numel() for p in m.parameters()) for m in (teacher, pruned)]
    p_top1 = accuracy(pruned, data)["top1"]
    doc["pruned"] = {
        "checkpoint": str(pruned_ckpt),
        "sha256": pinfo.sha256,
        "settings": cfg.record(),
        "finetune_epochs": args.epochs,
        "macs": {str(r): v for r, v in macs.items()},
        "macs_fraction_224": macs[224][1] / macs[224][0],
        "params": params,
        "test_top1_before_finetune": json.loads((work / "pruned" / "before_finetune.json").read_text())["test_top1"],
        "test_top1": p_top1,
        "top1_drop_points": 100 * (t_top1 - p_top1),
        "lineage": pruned.lineage,
    }
    log(f"pruned: MACs {macs[224][1] / macs[224][0]:.1%} at 224, test top-1 {100 * p_top1:.2f} %")

    # 2. INT8 at the accuracy resolution ----------------------------------------------------------------------
    from edgecnn.errors import AccuracyBudgetError
    from edgecnn.exporters.int8 import quantize

    if "int8" not in args.skip:
        doc["int8"] = {}
        for target in ("onnx", "openvino"):
            log(f"INT8 {target} at {res_train} (calibration 300 train images, evaluation on the test split)")
            kw = dict(
                calib_data="embedded",
                eval_data="embedded",
                out=work / f"int8-{target}-{res_train}",
                overwrite=True,
                measure_latency=False,
                report_dir=work / f"int8-{target}-{res_train}-report",
            )
            try:  # the budget mode: layers that cost accuracy stay in float until the drop is within --max-drop
                q = quantize(str(pruned_ckpt), target=target, max_drop=args.max_drop, **kw)
            except AccuracyBudgetError as e:
                log(f"  {target}: budget not met ({e}); recording the default quantization")
                q = quantize(str(pruned_ckpt), target=target, **kw)
            c = q.manifest["quantization"]["fp32_vs_int8"]
            doc["int8"][target] = {
                "fp32_top1": c.get("fp32_top1"),
                "int8_top1": c.get("int8_top1"),
                "drop_points_vs_pruned_fp32": 100 * (c["fp32_top1"] - c["int8_top1"]) if "int8_top1" in c else None,
                "drop_points_vs_teacher": 100 * (t_top1 - c["int8_top1"]) if "int8_top1" in c else None,
                "top1_agreement": c.get("top1_agreement"),
                "kept_float": q.manifest["quantization"].get("kept_float", []),
            }
            log(f"  {target}: int8 top-1 {100 * c.get('int8_top1', 0):.2f} %")

    # 3. the headline: INT8 bundles at 224 vs PyTorch eager fp32 unpruned ---------------------------------------
    if "headline" not in args.skip:
        bundles = {}
        for target in ("onnx", "openvino"):
            dest = work / f"int8-{target}-224"
            if not (dest / "manifest.json").exists():
                log(f"INT8 {target} bundle at 224")
                quantize(
                    str(pruned_ckpt),
                    target=target,
                    calib_data="embedded",
                    resolution=224,
                    out=dest,
                    overwrite=True,
                    measure_latency=False,
                    report=False,
                    samples=64,
                    keep_float=tuple(  # the layers the 36 px budget run kept in float
                        k["layer"] or k["node"] for k in (doc.get("int8") or {}).get(target, {}).get("kept_float", [])
                    ),
                )
            bundles[target] = dest
        doc["headline"] = bench_rounds(
            ["mobilenet_v2:eager", str(bundles["onnx"]), str(bundles["openvino"])], args, baseline="mobilenet_v2"
        )

    # 4. latency-aware vs uniform at the same measured latency -----------------------------------------------
    if "latency-aware" not in args.skip:
        ft_la = finetune_recipe(recipe, epochs=args.la_epochs)
        doc["latency_aware"] = latency_aware(teacher, ft_la, data, work, args, log)
        doc["latency_aware"]["finetune_epochs"] = args.la_epochs

    uptime = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    doc["environment"] = {
        **fingerprint(args.threads),
        "load_average_at_start": load_start,
        "load_average_at_end": [round(v, 2) for v in os.getloadavg()],
        "uptime": uptime,
    }
    write_results(args.out, doc, markdown(doc))
    print("\n".join(markdown(doc)))
    return 0


def bench_rounds(subjects: list[str], args: argparse.Namespace, *, baseline: str) -> dict[str, Any]:
    """``args.rounds`` runs of ``edgecnn bench run`` over all subjects (each run times them side by side); per-round
    p50s and speed-ups over ``baseline``, medians over rounds."""
    exe = str(Path(sys.executable).with_name("edgecnn"))
    per: dict[str, list[float]] = {}
    for i in range(args.rounds):
        cmd = [
            exe,
            "bench",
            "run",
            *subjects,
            "--threads",
            str(args.threads),
            "--resolution",
            "224",
            "--warmup",
            "20",
            "--iters",
            "100",
            "--baseline",
            baseline,
            "--json",
        ]
        log(f"bench round {i + 1}/{args.rounds}")
        out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
        data = json.loads(out)
        for row in data["results"]:
            per.setdefault(row["label"], []).append(row["p50_ms"])
    import numpy as np

    base = next(k for k in per if k.startswith(baseline))
    speed = {}
    for k, v in per.items():
        if k == base:
            continue
        r = np.asarray(per[base]) / np.asarray(v)
        speed[k] = {"median": float(np.median(r)), "min": float(r.min()), "max": float(r.max())}
    return {
        "command": " ".join(["edgecnn", "bench", "run", *subjects, "--threads", str(args.threads), "-r", "224"]),
        "rounds": args.rounds,
        "p50_ms_per_round": per,
        "p50_ms": {k: float(np.median(v)) for k, v in per.items()},
        "speedup_vs_eager_unpruned": speed,
    }


def latency_aware(teacher: Any, ft: Any, data: Any, work: Path, args: argparse.Namespace, say: Any) -> dict[str, Any]:
    from edgecnn.bench.layer_costs import measured
    from edgecnn.models.resolve import resolve_model
    from edgecnn.models.weights import save_weights
    from edgecnn.prune import PruneConfig
    from edgecnn.prune.recover import accuracy, prune_and_recover

    costs, measure = measured(224, threads=args.threads)
    baseline = measure(teacher)
    target = args.latency_fraction * baseline
    say(f"latency-aware vs uniform: baseline {baseline:.3f} ms, target {target:.3f} ms (ORT fp32, 224)")
    out: dict[str, Any] = {"baseline_ms": baseline, "target_ms": target, "source": "onnxruntime fp32 224 batch 1"}
    for alloc in ("greedy", "uniform"):
        ck = work / f"latency-{alloc}" / "model.safetensors"
        if not ck.exists():
            cfg = PruneConfig(target_latency_ms=target, allocation=alloc, resolution=224)
            rounds = prune_and_recover(
                teacher,
                cfg,
                ft,
                work / f"latency-{alloc}" / "finetune",
                data=data,
                layer_costs=costs,
                measure=measure,
                latency_source="measured",
                report=say,
            )
            save_weights(rounds[-1].model, ck)
        m, _ = resolve_model(str(ck))
        step = m.lineage[0]
        out[alloc] = {
            "checkpoint": str(ck),
            "macs": step["macs"],
            "test_top1": accuracy(m, data)["top1"],
            "channels_kept": step["channels_kept"],
        }
    # both pruned models measured side by side: rounds alternate between them
    models = {a: resolve_model(out[a]["checkpoint"])[0] for a in ("greedy", "uniform")}
    times: dict[str, list[float]] = {a: [] for a in models}
    for _ in range(args.rounds):
        for a, m in models.items():
            times[a].append(measure(m))
    import numpy as np

    for a in models:
        out[a]["measured_ms_per_round"] = times[a]
        out[a]["measured_ms"] = float(np.median(times[a]))
        out[a]["vs_target"] = out[a]["measured_ms"] / target
    return out


def markdown(doc: dict[str, Any]) -> list[str]:
    t, p = doc["teacher"], doc["pruned"]
    md = [
        "# Pruned + INT8 MobileNetV2 (width 1.0) on the embedded digits",
        "",
        f"`{doc['command']}`",
        "",
        f"Accuracy on the {doc['test_images']}-image test split at {doc['accuracy_resolution']}x"
        f"{doc['accuracy_resolution']}; latency at 224x224, batch 1.",
        "",
        "| model | MACs at 224 | params | test top-1 | drop (points) |",
        "|---|---|---|---|---|",
        f"| MobileNetV2 1.0 (teacher) | {p['macs']['224'][0]:,} | {p['params'][0]:,} "
        f"| {100 * t['test_top1']:.2f} % | - |",
        f"| pruned to {100 * p['macs_fraction_224']:.1f} % MACs, fine-tuned {p['finetune_epochs']} epochs "
        f"| {p['macs']['224'][1]:,} | {p['params'][1]:,} | {100 * p['test_top1']:.2f} % "
        f"| {p['top1_drop_points']:.2f} |",
    ]
    for target, r in (doc.get("int8") or {}).items():
        if r["int8_top1"] is not None:
            md.append(
                f"| pruned + INT8 {target} | | | {100 * r['int8_top1']:.2f} % | {r['drop_points_vs_teacher']:.2f} "
                f"({r['drop_points_vs_pruned_fp32']:+.2f} vs pruned fp32) |"
            )
    h = doc.get("headline")
    if h:
        md += [
            "",
            "## Headline: pruned INT8 bundles vs PyTorch eager fp32 unpruned MobileNetV2-224",
            "",
            f"`{h['command']}` × {h['rounds']} rounds (each one run, contenders side by side)",
            "",
            "| subject | p50 ms (median of rounds) | round p50s | speed-up (median, min..max) |",
            "|---|---|---|---|",
        ]
        for k, v in h["p50_ms_per_round"].items():
            s = h["speedup_vs_eager_unpruned"].get(k)
            sp = f"{s['median']:.1f}× ({s['min']:.1f}..{s['max']:.1f})" if s else "1.0× (baseline)"
            md.append(f"| {k} | {h['p50_ms'][k]:.3f} | {', '.join(f'{x:.2f}' for x in v)} | {sp} |")
    la = doc.get("latency_aware")
    if la:
        md += [
            "",
            "## Latency-aware (greedy, measured per-layer times) vs uniform at the same latency target",
            "",
            f"Baseline {la['baseline_ms']:.3f} ms, target {la['target_ms']:.3f} ms ({la['source']}, this machine).",
            "",
            "| allocation | MACs kept | measured ms (median) | vs target | test top-1 |",
            "|---|---|---|---|---|",
        ]
        for a in ("greedy", "uniform"):
            r = la[a]
            md.append(
                f"| {a} | {100 * r['macs'][1] / r['macs'][0]:.1f} % | {r['measured_ms']:.3f} | "
                f"{r['vs_target']:.2f} | {100 * r['test_top1']:.2f} % |"
            )
    env = doc["environment"]
    md += [
        "",
        f"Machine: {env.get('cpu', '?')}, shared and loaded while measured (`uptime`: {env['uptime']}); "
        "every ratio above was measured under that contention, side by side.",
    ]
    return md


if __name__ == "__main__":
    raise SystemExit(main())
