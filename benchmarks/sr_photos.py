"""Super-resolution x3 on held-out real photos: train the shipped ``sr_photos`` recipe on patches of the photos that
ship in scikit-image / scikit-learn, score PSNR / SSIM on the Y channel of three held-out photos against bicubic,
then export onnx / openvino at fp32 and int8 and score every bundle through the runtime (tiled at the bundle's
input size). Must show: PSNR(Y) >= bicubic + 1.0 dB; INT8 within 0.3 dB of float.

    OMP_WAIT_POLICY=PASSIVE nice -n 19 .venv/bin/python benchmarks/sr_photos.py [--threads 1] [--set KEY=VALUE]

Writes benchmarks/results/sr_photos_<model>.{json,md}.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from train_common import RESULTS, environment, quiet_threads, scratch_dir, write_result  # noqa: E402

quiet_threads()
TILE = 128  # LR tile of the static bundles (held-out LR photos are 100×150 … 142×213 px: 1–4 tiles)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--set", dest="sets", action="append", default=[], help="recipe override KEY=VALUE")
    ap.add_argument("--calibration", type=int, default=64, help="LR training tiles used for INT8 calibration")
    args = ap.parse_args()

    import torch

    from edgecnn import runtime
    from edgecnn.data.superres import TRAIN_PHOTOS, sr_patches
    from edgecnn.exporters import ExportOptions, Precision, export_bundle
    from edgecnn.models.resolve import resolve_model
    from edgecnn.quant.config import QuantConfig
    from edgecnn.quant.int8_ops import bundle_int8_ops
    from edgecnn.quant.samples import SampleSet
    from edgecnn.train.dense import evaluate_sr, fit_dense, load_dense_data, torch_upscaler
    from edgecnn.train.recipe import load_recipe

    torch.set_num_threads(args.threads)
    env = environment(args.threads)
    recipe = load_recipe("sr_photos", [*args.sets, f"train.threads={args.threads}"])
    name = recipe.model.name
    scale = int(name.rsplit("_x", 1)[1])
    data = load_dense_data(recipe, "super_resolution", scale)
    out = scratch_dir(f"sr_photos_{name}")
    shutil.rmtree(out, ignore_errors=True)
    t0 = time.perf_counter()
    res = fit_dense(recipe, out / "run", data=data, report=lambda m: print(m, flush=True))
    train_s = time.perf_counter() - t0
    load_after = list(os.getloadavg())
    net, _ = resolve_model(str(res.checkpoint))
    rows = [{"path": "pytorch fp32 (whole photo)", **_short(evaluate_sr(torch_upscaler(net), data.test, scale))}]
    calib, _ = sr_patches(TRAIN_PHOTOS, scale, n=args.calibration, lr_patch=TILE, seed=123)
    # the output layer (ESPCN's sub-pixel conv, FSRCNN's deconvolution) is where 8-bit steps show in the image:
    # INT8 is measured fully quantized and with that one layer kept in float
    last = "to_subpixels" if hasattr(net, "to_subpixels") else "deconv"
    for target in ("onnx", "openvino"):
        for prec in ("fp32", "int8", "int8-last-float"):
            quant = None
            if prec.startswith("int8"):
                keep = (last,) if prec == "int8-last-float" else ()
                quant = QuantConfig(
                    calibration=SampleSet(data=calib, source="LR tiles of the training photos"), keep_float=keep
                )
            t = time.perf_counter()
            r = export_bundle(
                net,
                ExportOptions(target=target, precision=Precision(prec[:4]), resolution=TILE, quant=quant),
                out / f"{target}-{prec}",
            )
            sess = runtime.load(r.bundle)
            scores = evaluate_sr(sess.upscale_y, data.test, scale)
            rows.append(
                {
                    "path": f"{target} {prec} (tiles {TILE}²)",
                    **_short(scores),
                    "export_s": round(time.perf_counter() - t, 1),
                    "parity_max_rel_error": r.manifest["parity"].get("max_rel_error"),
                    "fp32_cosine": r.manifest["parity"].get("fp32_cosine"),
                    **({"int8_ops": bundle_int8_ops(r.bundle)} if quant else {}),
                }
            )
            print(rows[-1], flush=True)
    fp32 = rows[0]["psnr"]
    tag = f"_{name}"
    result = {
        "benchmark": "sr_photos",
        "model": name,
        "command": "OMP_WAIT_POLICY=PASSIVE nice -n 19 .venv/bin/python benchmarks/sr_photos.py "
        + " ".join(sys.argv[1:]),
        "recipe": recipe.to_dict(),
        "environment": env,
        "load_average_after_training": load_after,
        "train_wall_s": round(train_s, 1),
        "history": res.history,
        "held_out_photos": [p[0] for p in data.test],
        "rows": rows,
        "must_show": {
            "gain_ge_1db": rows[0]["gain_db"] >= 1.0,
            "int8_within_0.3db": {r["path"]: abs(fp32 - r["psnr"]) <= 0.3 for r in rows if "int8" in r["path"]},
        },
    }
    write_result(f"sr_photos{tag}.json", result)
    _markdown(result, f"sr_photos{tag}.md")
    return 0


def _short(s: dict) -> dict:
    keys = ("psnr", "ssim", "bicubic_psnr", "bicubic_ssim", "gain_db")
    return {**{k: round(s[k], 4) for k in keys}, "photos": s["photos"]}


def _markdown(r: dict, fname: str) -> None:
    lines = [
        f"# Super-resolution ×3 on held-out real photos ({r['model']}, Y channel)",
        "",
        f"Command: `{r['command']}`  ",
        f"Training: {r['train_wall_s']} s on {r['environment']['torch_threads']} thread(s) (load average at start "
        f"{r['environment']['load_average_at_start']}, after {r['load_average_after_training']}); "
        f"held out: {', '.join(r['held_out_photos'])}; {r['environment']['cpu']}.",
        "",
        "| path | PSNR(Y) dB | bicubic dB | gain dB | SSIM | bicubic SSIM |",
        "|---|---|---|---|---|---|",
    ]
    for row in r["rows"]:
        lines.append(
            f"| {row['path']} | {row['psnr']:.2f} | {row['bicubic_psnr']:.2f} | {row['gain_db']:+.2f} | "
            f"{row['ssim']:.4f} | {row['bicubic_ssim']:.4f} |"
        )
    lines += ["", f"Must show: {r['must_show']}", ""]
    (RESULTS / fname).write_text("\n".join(lines))


if __name__ == "__main__":
    raise SystemExit(main())
