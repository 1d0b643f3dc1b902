"""Latency of the segmentation and super-resolution bundles (fp32 / int8, onnx / openvino) against PyTorch eager,
side by side in one run (interleaved rounds in one process), plus what each INT8 runtime really runs in int8 (and
what stays float, with the reason) and `edgecnn profile` predictions for two device profiles.

    OMP_WAIT_POLICY=PASSIVE nice -n 19 .venv/bin/python benchmarks/dense_latency.py [--threads 2] [--min-time 3]

Writes benchmarks/results/dense_latency.{json,md}. Weights: the trained checkpoints of seg_embedded.py /
sr_photos.py when they are in the scratch folder, else seeded random init (latency does not depend on them).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from train_common import RESULTS, environment, quiet_threads, scratch_dir, write_result  # noqa: E402

quiet_threads()
EDGECNN = str(Path(sys.executable).with_name("edgecnn"))
PROFILES = ("cortex-a76-rpi5", "jetson-orin-nano")
# (model, resolution, trained checkpoint left by a benchmark, options)
SUBJECTS = (
    ("unet_mobilenet_v3_small", 64, "seg_embedded/run/model.safetensors", {"num_classes": 11, "width_mult": 0.5}),
    ("lraspp_mobilenet_v3_large", 224, None, {}),
    ("espcn_x3", 128, "sr_photos_espcn_x3/run/model.safetensors", {}),
    ("fsrcnn_x3", 128, None, {}),
)


def _model(name: str, ckpt: str | None, options: dict):
    import torch

    from edgecnn.models import create_model
    from edgecnn.models.resolve import resolve_model

    path = Path(scratch_dir("x")).parent / ckpt if ckpt else None
    if path is not None and path.is_file():
        return resolve_model(str(path))[0], str(path)
    torch.manual_seed(0)
    return create_model(name, **options).eval(), "random init (seed 0)"


def _calibration(net, res: int):
    """Real images for the INT8 ranges: digit canvases (the segmentation net), photos (the others)."""
    import numpy as np

    from edgecnn.data.superres import TRAIN_PHOTOS, photo, sr_patches

    c = net.edgecnn_options.in_chans
    if c == 1:
        return sr_patches(TRAIN_PHOTOS, net.scale, n=32, lr_patch=res, seed=7)[0]
    pre = net.preprocessing.at_resolution(res) if net.preprocessing else None
    from edgecnn.runtime.preprocess import preprocess_batch

    if net.edgecnn_options.num_classes == 11:  # the digit-canvas net
        from edgecnn.data.segmentation import embedded_canvas_splits

        train, _, _ = embedded_canvas_splits(train=32, val=1, test=1, size=res)
        return preprocess_batch(list(train.images), pre)
    rng = np.random.default_rng(0)
    crops = []
    for name in TRAIN_PHOTOS:
        img = photo(name)
        for _ in range(3):
            r, q = rng.integers(0, img.shape[0] - 200), rng.integers(0, img.shape[1] - 200)
            crops.append(np.ascontiguousarray(img[r : r + 200, q : q + 200]))
    return preprocess_batch(crops, pre)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--min-time", type=float, default=0.5, help="seconds per subject per round")
    ap.add_argument("--rounds", type=int, default=5, help="interleaved rounds (the VM has slow/fast phases)")
    args = ap.parse_args()

    from edgecnn.exporters import ExportOptions, Precision, export_bundle
    from edgecnn.quant.config import QuantConfig
    from edgecnn.quant.int8_ops import bundle_int8_ops
    from edgecnn.quant.samples import SampleSet

    env = environment(args.threads)
    root = scratch_dir("dense_latency")
    shutil.rmtree(root, ignore_errors=True)
    out: dict = {
        "benchmark": "dense_latency",
        "command": "OMP_WAIT_POLICY=PASSIVE nice -n 19 .venv/bin/python benchmarks/dense_latency.py "
        + " ".join(sys.argv[1:]),
        "environment": env,
        "models": [],
    }
    for name, res, ckpt, options in SUBJECTS:
        net, weights = _model(name, ckpt, options)
        calib = SampleSet(data=_calibration(net, res), source="real images")
        bundles = {}
        for target in ("onnx", "openvino"):
            for prec in ("fp32", "int8"):
                quant = QuantConfig(calibration=calib) if prec == "int8" else None
                opts = ExportOptions(target=target, precision=Precision(prec), resolution=res, quant=quant)
                bundles[f"{target}-{prec}"] = export_bundle(net, opts, root / f"{name}-{target}-{prec}").bundle
        load_before = list(os.getloadavg())
        bench = _time_side_by_side(net, bundles, res, threads=args.threads, rounds=args.rounds, min_time=args.min_time)
        ops = {k: bundle_int8_ops(p) for k, p in bundles.items() if k.endswith("int8")}
        profiles = {}
        for prof in PROFILES:
            for prec in ("fp32", "int8"):
                p = subprocess.run(
                    [EDGECNN, "profile", name, "-p", prof, "--precision", prec, "-r", str(res), "--json"],
                    capture_output=True,
                    text=True,
                    check=True,
                )
                est = json.loads(p.stdout)
                profiles[f"{prof} {prec}"] = round(est["total_ms"], 3)
        out["models"].append(
            {
                "model": name,
                "resolution": res,
                "weights": weights,
                "load_average_before": load_before,
                "bench": bench,
                "int8_ops": ops,
                "profile_predictions_ms": profiles,
            }
        )
        print(name, "done", flush=True)
    write_result("dense_latency.json", out)
    _markdown(out)
    return 0


def _time_side_by_side(net, bundles: dict, res: int, *, threads: int, rounds: int, min_time: float) -> list[dict]:
    """PyTorch eager (the very module exported) and every bundle through edgecnn.runtime, timed in interleaved
    rounds in this one process: per subject the median of the rounds' p50 and the rounds' min..max."""
    import numpy as np
    import torch

    from edgecnn import runtime
    from edgecnn.runtime.timing import time_call

    torch.set_num_threads(threads)
    c = net.edgecnn_options.in_chans
    x = np.random.default_rng(0).random((1, c, res, res)).astype(np.float32)
    xt = torch.from_numpy(x)

    def eager():
        with torch.inference_mode():
            return net(xt)

    subjects = {"pytorch eager fp32": eager}
    for label, path in bundles.items():
        sess = runtime.load(path, threads=threads)
        subjects[label.replace("-", " ")] = lambda s=sess: s.predict(x)
    p50s: dict[str, list[float]] = {k: [] for k in subjects}
    for _ in range(rounds):
        for label, fn in subjects.items():
            p50s[label].append(time_call(fn, warmup=5, iters=20, min_time_s=min_time)["p50_ms"])
    base = float(np.median(p50s["pytorch eager fp32"]))
    return [
        {
            "subject": k,
            "p50_ms": float(np.median(v)),
            "round_min_ms": float(min(v)),
            "round_max_ms": float(max(v)),
            "rounds_p50_ms": v,
            "speedup_vs_eager": base / float(np.median(v)),
        }
        for k, v in p50s.items()
    ]


def _markdown(r: dict) -> None:
    lines = [
        "# Dense bundles: latency against PyTorch eager (side by side, interleaved rounds, one process)",
        "",
        f"Command: `{r['command']}`  ",
        f"CPU {r['environment']['cpu']}, {r['environment']['torch_threads']} threads, load average at start "
        f"{r['environment']['load_average_at_start']} — a shared machine: read the ratios, measured side by side, "
        "not the absolute times.",
        "",
    ]
    for m in r["models"]:
        lines += [f"## {m['model']} @ {m['resolution']} px ({m['weights']})", ""]
        lines += ["| subject | p50 ms (median of rounds) | rounds min..max | × eager |", "|---|---|---|---|"]
        for row in m["bench"]:
            lines.append(
                f"| {row['subject']} | {row['p50_ms']:.3f} | {row['round_min_ms']:.3f}..{row['round_max_ms']:.3f} | "
                f"{row['speedup_vs_eager']:.2f} |"
            )
        lines += ["", "INT8: what the runtime runs in int8 / float:", ""]
        for k, v in m["int8_ops"].items():
            lines.append(f"- {k}: int8 {v['int8']}; float {v['float']}; data movement {v['data_movement']}")
            for op, why in v["why_float"].items():
                lines.append(f"  - {op}: {why}")
        lines += ["", "`edgecnn profile` predictions (ms): "
                  + ", ".join(f"{k} {v}" for k, v in m["profile_predictions_ms"].items()), ""]  # fmt: skip
    (RESULTS / "dense_latency.md").write_text("\n".join(lines))


if __name__ == "__main__":
    raise SystemExit(main())
