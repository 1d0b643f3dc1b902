"""`edgecnn optimize` + `edgecnn check` on the embedded digits task (issue 21's must-show), through the real commands.

1. Train the shipped ``mnist_embedded`` recipe (MobileNetV2 ×0.5, 36 px) — or reuse ``--checkpoint``.
2. ``edgecnn optimize CKPT --device local --max-latency-ratio 0.125 --max-drop 0.5 --eval-data embedded
   --calib-data embedded`` with its defaults (onnx + openvino × fp32 + int8 × 36/32/28 px), timed end to end.
3. ``edgecnn check OUT/bundle --budgets OUT/budgets.toml --json`` in a fresh process: both budgets re-measured.
4. The record's Pareto marks re-derived here: no measured candidate on the front is dominated by another.
5. ``edgecnn optimize … --device cortex-a76-rpi5 --max-latency MS`` (onnx, 36 px): the chosen candidate's predicted
   latency and band, and which figures were predicted / measured.

    nice -n 19 .venv/bin/python benchmarks/optimize_embedded.py [--checkpoint CKPT] [--threads 1]

Writes benchmarks/results/optimize_embedded.{json,md} and copies the Pareto plot beside them.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent


def _edgecnn(*args: str) -> tuple[subprocess.CompletedProcess[str], float]:
    t0 = time.perf_counter()
    p = subprocess.run([sys.executable, "-m", "edgecnn", *args], capture_output=True, text=True, cwd=REPO)
    return p, time.perf_counter() - t0


def _dominates(a: dict, b: dict) -> bool:
    no_worse = a["latency_ms"] <= b["latency_ms"] and a["size_mb"] <= b["size_mb"] and a["top1"] >= b["top1"]
    return no_worse and (a["latency_ms"] < b["latency_ms"] or a["size_mb"] < b["size_mb"] or a["top1"] > b["top1"])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--checkpoint", help="a trained mnist_embedded checkpoint (default: train one)")
    ap.add_argument("--epochs", type=int, help="train the recipe for this many epochs (default: the recipe's 28)")
    ap.add_argument("--threads", type=int, default=1, help="intra-op threads for bundles and PyTorch alike")
    ap.add_argument("--rpi5-latency", type=float, default=1.0, help="latency budget (ms) on cortex-a76-rpi5")
    ap.add_argument("--out", type=Path, default=HERE / "results" / "optimize_embedded.json")
    args = ap.parse_args()
    from edgecnn.runtime.env import fingerprint

    res: dict = {
        "benchmark": "optimize_embedded",
        "command": "nice -n 19 .venv/bin/python benchmarks/optimize_embedded.py " + " ".join(sys.argv[1:]),
        "environment": fingerprint(args.threads),
        "load_average_start": os.getloadavg(),
    }
    with tempfile.TemporaryDirectory(prefix="edgecnn-optimize-") as tmp:
        work = Path(tmp)
        ckpt = args.checkpoint
        if ckpt is None:
            from edgecnn.train.quick import train_embedded_default

            t0 = time.perf_counter()
            tr = train_embedded_default(
                work / "train", epochs=args.epochs, overrides=["train.threads=1", "train.progress=false"]
            )
            ckpt = str(tr.checkpoint)
            res["train"] = {
                "test_top1": tr.test_top1,
                "epochs": tr.epochs,
                "seconds": round(time.perf_counter() - t0, 1),
            }
        res["checkpoint"] = ckpt
        out = work / "opt"
        p, secs = _edgecnn("optimize", ckpt, "--device", "local", "--max-latency-ratio", "0.125", "--max-drop", "0.5",
                           "--eval-data", "embedded", "--calib-data", "embedded", "--threads", str(args.threads),
                           "--out", str(out))  # fmt: skip
        rec = json.loads((out / "record.json").read_text())
        res["local"] = {"exit": p.returncode, "seconds": round(secs, 1), "record": rec, "stdout": p.stdout[-6000:]}
        built = [c for c in rec["candidates"] if c["status"] == "built"]
        front = [c for c in built if not c["dominated"]]
        res["local"]["front_dominated_pairs"] = [
            [a["key"], b["key"]] for b in front for a in built if a is not b and _dominates(a, b)
        ]
        res["local"]["marks_agree"] = all(
            c["dominated"] == any(_dominates(o, c) for o in built if o is not c) for c in built
        )
        if p.returncode == 0:
            q, qsecs = _edgecnn("check", str(out / "bundle"), "--budgets", str(out / "budgets.toml"), "--json")
            res["check"] = {"exit": q.returncode, "seconds": round(qsecs, 1), "report": json.loads(q.stdout or "{}")}
            shutil.copy(out / "pareto.png", args.out.with_name("optimize_embedded_pareto.png"))
        rout = work / "rpi5"
        p, secs = _edgecnn("optimize", ckpt, "--device", "cortex-a76-rpi5", "--max-latency", str(args.rpi5_latency),
                           "--max-drop", "0.5", "--eval-data", "embedded", "--calib-data", "embedded",
                           "--targets", "onnx", "--resolutions", "36", "--out", str(rout))  # fmt: skip
        rrec = json.loads((rout / "record.json").read_text())
        res["rpi5"] = {"exit": p.returncode, "seconds": round(secs, 1), "record": rrec, "stdout": p.stdout[-4000:]}
    res["load_average_end"] = os.getloadavg()
    args.out.write_text(json.dumps(res, indent=2, default=str) + "\n")
    args.out.with_suffix(".md").write_text(markdown(res))
    print(args.out.with_suffix(".md").read_text())


def markdown(res: dict) -> str:
    loc = res["local"]
    rec = loc["record"]
    md = [
        "# `edgecnn optimize` and `edgecnn check` on the embedded digits",
        "",
        f"`{res['command']}` — {res['environment'].get('cpu', '?')}, {res['environment'].get('cores', '?')} cores; "
        f"load average {res['load_average_start'][0]:.1f} at the start, {res['load_average_end'][0]:.1f} at the end "
        "(a shared machine: latency figures carry its noise; ratios are measured side by side).",
        "",
        f"Model: `{rec['model']}` (mnist_embedded: MobileNetV2 ×0.5, 36 px"
        + (
            f", trained here for {res['train']['epochs']} epochs to test top-1 {100 * res['train']['test_top1']:.2f} %"
            if "train" in res
            else ""
        )
        + f"). fp32 PyTorch reference top-1 {100 * rec['baseline']['reference_top1']:.2f} % on the embedded test "
        "split; "
        f"PyTorch eager fp32 p50 {rec['baseline'].get('pytorch_eager_fp32_ms', float('nan')):.3f} ms.",
        "",
        f"## Local: budgets {rec['budgets']} — exit {loc['exit']}, {loc['seconds']:.0f} s end to end",
        "",
        "| candidate | status | latency ms | × faster than eager | MiB | top-1 % | drop pt | Pareto | budgets |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for c in sorted(rec["candidates"], key=lambda c: (c["status"] != "built", c["latency_ms"] or 1e9)):
        if c["status"] != "built":
            md.append(f"| {c['key']} | {c['status']} | | | | | | | {c['reason']} |")
            continue
        mark = "**chosen**" if c["key"] == rec["chosen"] else ("dominated" if c["dominated"] else "front")
        miss = ", ".join(k for k, ok in c["meets"].items() if not ok) or "all met"
        md.append(
            f"| {c['key']} | built | {c['latency_ms']:.3f} | {1 / c['ratio_vs_eager']:.1f} | {c['size_mb']:.2f} | "
            f"{100 * c['top1']:.2f} | {c['drop_points']:+.2f} | {mark} | {miss} |"
        )
    md += [
        "",
        f"Pareto marks agree with a re-derivation: **{loc['marks_agree']}**; front members dominated by another "
        f"measured candidate: **{len(loc['front_dominated_pairs'])}**. Plot: `optimize_embedded_pareto.png`.",
    ]
    if "check" in res:
        ck = res["check"]["report"]
        md += ["", f"## `edgecnn check` of the chosen bundle in a fresh process — exit {res['check']['exit']}", ""]
        md += [
            f"- {f['name']}: {f['value']:.4g} {f['unit']} ({f['how']}) vs {f['limit']} → "
            f"{'PASS' if f['ok'] else 'FAIL'}"
            f" — {f['detail']}"
            for f in ck.get("figures", [])
        ]
    rp = res["rpi5"]
    r = rp["record"]
    md += ["", f"## cortex-a76-rpi5 (predicted): budgets {r['budgets']} — exit {rp['exit']}", ""]
    md += [f"Figures: {r['figures']}", ""]
    md += ["| candidate | status | predicted ms | band ms | MiB | top-1 % | budgets |", "|---|---|---|---|---|---|---|"]
    for c in r["candidates"]:
        band = f"{c['predicted_band_ms'][0]:.3f}–{c['predicted_band_ms'][1]:.3f}" if c["predicted_band_ms"] else ""
        if c["status"] != "built":
            md.append(f"| {c['key']} | {c['status']} | {c['predicted_ms'] or ''} | {band} | | | {c['reason']} |")
            continue
        mark = " (chosen)" if c["key"] == r["chosen"] else ""
        miss = ", ".join(k for k, ok in c["meets"].items() if not ok) or "all met"
        md.append(f"| {c['key']}{mark} | built | {c['latency_ms']:.3f} | {band} | {c['size_mb']:.2f} | "
                  f"{100 * c['top1']:.2f} | {miss} |")  # fmt: skip
    return "\n".join(md) + "\n"


if __name__ == "__main__":
    main()
