"""Device-side commands: ``edgecnn run``, ``selftest``, ``inspect``, ``build-engine`` (no torch needed)."""

from __future__ import annotations

import click

from edgecnn.cli.base import THREADS, TOP_K, cli, echo_json, human, print_table

_backend = click.option("--backend", help="onnxruntime, openvino or tensorrt (default: the bundle target's).")
_device = click.option("--device", help="Backend device: cpu/cuda (onnxruntime), CPU/GPU/NPU (openvino).")
_threads = click.option("--threads", type=THREADS, help="Intra-op threads.")


@cli.command("run")
@click.argument("bundle", type=click.Path())
@click.argument("images", nargs=-1, required=True, type=click.Path())
@click.option("--top-k", "-k", type=TOP_K, default=5, show_default=True)
@_backend
@_device
@_threads
@click.option(
    "--out",
    "-o",
    "out_dir",
    type=click.Path(file_okay=False),
    help="Segmentation / super-resolution: folder for the overlay / upscaled PNGs (default: beside each image).",
)
@click.option("--json", "as_json", is_flag=True)
def run_cmd(
    bundle: str,
    images: tuple[str, ...],
    top_k: int,
    backend: str | None,
    device: str | None,
    threads: int | None,
    out_dir: str | None,
    as_json: bool,
) -> None:
    """Run BUNDLE on IMAGES with the bundle's own preprocessing: a classifier prints its top-k; a segmentation
    bundle writes ``<image>.overlay.png`` (and the index mask ``<image>.mask.png``); a super-resolution bundle
    writes ``<image>.x<scale>.png``."""
    from edgecnn.runtime import load

    sess = load(bundle, backend=backend, device=device, threads=threads)
    if sess.task["kind"] != "classification":
        _run_dense(sess, images, out_dir, as_json)
        return
    results = {img: sess.predict_image(img, top_k=top_k)[0] for img in images}
    if as_json:
        echo_json(
            [
                {"image": img, "top_k": [{"index": p.index, "label": p.label, "score": p.score} for p in preds]}
                for img, preds in results.items()
            ]
        )
        return
    for img, preds in results.items():
        click.echo(f"{img}: " + ", ".join(f"{p.label} ({p.score:.1%})" for p in preds))


def _run_dense(sess, images: tuple[str, ...], out_dir: str | None, as_json: bool) -> None:
    """Write each image's overlay + mask (segmentation) or upscaled image (super-resolution) as PNG."""
    from pathlib import Path

    import numpy as np
    from PIL import Image

    from edgecnn.errors import ConfigError
    from edgecnn.runtime.dense import overlay
    from edgecnn.runtime.preprocess import load_image

    task = sess.task
    rows = []
    for img in images:
        folder = Path(out_dir) if out_dir else Path(img).parent
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise ConfigError(
                f"--out {str(folder)!r} cannot be created: {e.strerror}", hint="choose another --out"
            ) from None
        stem = folder / Path(img).stem
        if task["kind"] == "segmentation":
            mask = sess.segment(img)
            rgb = np.asarray(load_image(img).convert("RGB"))
            over, mpath = stem.with_name(stem.name + ".overlay.png"), stem.with_name(stem.name + ".mask.png")
            Image.fromarray(overlay(rgb, mask, np.asarray(task["palette"], np.uint8))).save(over)
            Image.fromarray(mask).save(mpath)
            counts = np.bincount(mask.ravel(), minlength=len(task["classes"]))
            present = {task["classes"][i]: round(float(c) / mask.size, 4) for i, c in enumerate(counts) if c}
            rows.append({"image": img, "overlay": str(over), "mask": str(mpath), "class_fractions": present})
        else:
            up = sess.upscale(img)
            path = stem.with_name(f"{stem.name}.x{task['scale']}.png")
            Image.fromarray(up).save(path)
            rows.append({"image": img, "upscaled": str(path), "size": [up.shape[1], up.shape[0]]})
    if as_json:
        echo_json(rows)
        return
    for r in rows:
        if "overlay" in r:
            top = ", ".join(f"{k} {v:.1%}" for k, v in sorted(r["class_fractions"].items(), key=lambda kv: -kv[1])[:4])
            click.echo(f"{r['image']}: overlay {r['overlay']}, mask {r['mask']} ({top})")
        else:
            click.echo(f"{r['image']}: {r['upscaled']} ({r['size'][0]}×{r['size'][1]})")


@cli.command("selftest")
@click.argument("bundle", type=click.Path())
@_backend
@_device
@click.option("--json", "as_json", is_flag=True)
def selftest_cmd(bundle: str, backend: str | None, device: str | None, as_json: bool) -> None:
    """Re-check BUNDLE's golden vectors on this device (exit 1 when outside tolerance)."""
    from edgecnn.runtime import load

    sess = load(bundle, backend=backend, device=device)
    report = sess.selftest()
    if as_json:
        echo_json(report)
    else:
        verdict = "PASS" if report["ok"] else "FAIL"
        click.echo(
            f"{verdict}: {report['count']} golden vectors on {report['backend']}/{report['device']}, max "
            f"relative error {report['max_rel_error']:.2e} (tolerance {report['tolerance']['max_rel_error']:.0e}"
            f"{', top-k identical' if report['top_k_identical'] else ', top-k DIFFERS'})"
        )
    if not report["ok"]:
        raise SystemExit(1)


@cli.command("inspect")
@click.argument("bundle", type=click.Path())
@click.option("--json", "as_json", is_flag=True)
def inspect_cmd(bundle: str, as_json: bool) -> None:
    """Summarize BUNDLE's manifest and verify its files (schema, containment, sizes, sha256)."""
    from edgecnn.runtime import open_bundle

    b = open_bundle(bundle)
    m = b.manifest.data
    if as_json:
        echo_json({"verified": True, "manifest": m})
        return
    inp, out = b.manifest.inputs[0], b.manifest.outputs[0]
    dims = lambda s: "×".join("N" if d == -1 else str(d) for d in s.shape)  # noqa: E731
    rows = [
        ["model", f"{m['model']['name']} ({(m['model'].get('source') or {}).get('kind', 'unknown source')})"],
        ["target / precision", f"{m['target']} / {m['precision']}"],
        ["input", f"{inp.name} {inp.dtype} {dims(inp)}" + (f" batch {inp.dim_range(0)}" if inp.dynamic else "")],
        ["output", f"{out.name} {out.dtype} {dims(out)}"],
        ["labels", f"{len(m['labels'])} classes" if m["labels"] else "none"],
        ["preprocessing", _pre(b.manifest.preprocessing.to_dict() if m["preprocessing"] is not None else None)],
        ["files", ", ".join(f"{n} {human(f['size'], 'B')}" for n, f in m["files"].items())],
        ["producer", ", ".join(f"{k} {v}" for k, v in m["producer"].items())],
        ["parity at export", f"{m['parity']['max_rel_error']:.1e} on {m['parity']['backend']}" if m["parity"] else "-"],
        ["verified", "schema, containment, sizes, sha256: OK"],
    ]
    print_table(f"bundle {bundle}", ["field", "value"], rows)


def _pre(p: dict | None) -> str:
    if not p:
        return "none"
    crop = (
        f"resize {p['resize_size']} → crop {p['input_size']}"
        if p["crop_mode"] == "resize_crop"
        else f"crop {p['crop_fraction']:.3f} → resize {p['input_size']}"
        if p["crop_mode"] == "crop_resize"
        else f"resize {p['input_size']}"
    )
    mean, std = ([round(v, 4) for v in p[k]] for k in ("mean", "std"))
    return f"{p['color']}, {crop} ({p['interpolation']}), mean {mean}, std {std} (of 0–1 pixels)"


@cli.command("build-engine")
@click.argument("bundle", type=click.Path())
@click.option("--rebuild", is_flag=True, help="Build even when a cached engine exists.")
def build_engine_cmd(bundle: str, rebuild: bool) -> None:
    """Build (and cache) the TensorRT engine of a tensorrt BUNDLE for this GPU and TensorRT version."""
    from edgecnn.errors import ConfigError
    from edgecnn.runtime import open_bundle
    from edgecnn.runtime.trt_engine import cached_engine

    b = open_bundle(bundle)
    if b.manifest.target != "tensorrt":
        raise ConfigError(f"bundle {bundle!r} targets {b.manifest.target!r}, not tensorrt")
    click.echo(f"engine: {cached_engine(b, rebuild=rebuild)}")
