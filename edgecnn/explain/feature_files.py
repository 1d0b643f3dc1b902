"""Feature visualization, filters and exemplars as files: PNG + JSON under an output folder, each written atomically
(a temp file beside it, then a rename). What ``edgecnn visualize`` runs; images arrive as paths or uint8 arrays
(the CLI loads a folder or the embedded digits)."""

from __future__ import annotations

import io
import json
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from edgecnn.errors import ConfigError, InputSpecError
from edgecnn.fileio import atomic_write_bytes

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff")


def write_atomic(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to a temp file in ``path``'s folder and rename it into place: a reader never sees half."""
    return atomic_write_bytes(path, data)


def write_png(img: np.ndarray, path: str | os.PathLike) -> Path:
    """An (H, W, 3) uint8 or [0, 1] float picture as a PNG, atomically."""
    from PIL import Image

    arr = np.asarray(img)
    if arr.dtype != np.uint8:
        arr = (np.clip(arr, 0, 1) * 255).round().astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return write_atomic(path, buf.getvalue())


def write_json(doc: Any, path: str | os.PathLike) -> Path:
    return write_atomic(path, (json.dumps(doc, indent=2, default=float) + "\n").encode())


def image_paths(inputs: Sequence[str | os.PathLike]) -> list[Path]:
    """Image files from paths and folders (a folder: its image files by suffix, sorted); none found raises."""
    out: list[Path] = []
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            out += sorted(q for q in p.iterdir() if q.is_file() and q.suffix.lower() in IMAGE_SUFFIXES)
        elif p.exists():
            out.append(p)
        else:
            raise InputSpecError(f"image {str(p)!r} does not exist", hint="pass image files or a folder of them")
    if not out:
        raise InputSpecError(
            f"no image files in {', '.join(map(str, inputs))}", hint=f"use files ending in {', '.join(IMAGE_SUFFIXES)}"
        )
    return out


def _grid(images: Sequence[np.ndarray], cols: int, gap: int = 4) -> np.ndarray:
    """Equal-size (H, W, 3) uint8 pictures in rows of ``cols`` on white."""
    h, w = images[0].shape[:2]
    rows = -(-len(images) // cols)
    out = np.full((rows * (h + gap) - gap, cols * (w + gap) - gap, 3), 255, np.uint8)
    for i, im in enumerate(images):
        r, c = divmod(i, cols)
        out[r * (h + gap) : r * (h + gap) + h, c * (w + gap) : c * (w + gap) + w] = im
    return out


def _u8(img: np.ndarray) -> np.ndarray:
    return (np.clip(img, 0, 1) * 255).round().astype(np.uint8)


def _resize(img: np.ndarray, size: int) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.fromarray(img).resize((size, size), Image.NEAREST))


def features_files(
    model: Any,
    out: str | os.PathLike,
    *,
    layer: str | None,
    channels: Sequence[int] | None,
    classes: Sequence[int] | None,
    labels: Sequence[str] | None = None,
    size: int | None = None,
    steps: int = 256,
    lr: float = 0.05,
    seed: int = 0,
    transforms: bool = True,
) -> dict[str, Any]:
    """Activation maximization per channel (or class): ``<unit>.png`` each, ``features.png`` (all side by side)
    and ``features.json``."""
    from edgecnn.explain.features import visualize

    t0 = time.perf_counter()
    fv = visualize(
        model,
        layer=layer,
        channels=channels,
        target_class=classes,
        size=size,
        steps=steps,
        lr=lr,
        seed=seed,
        transforms=transforms,
    )
    out = Path(out)
    units = []
    for img, u, act in zip(fv.images, fv.units, fv.activation, strict=True):
        name = f"channel{u}.png" if fv.objective == "channel" else f"class{u}.png"
        write_png(_u8(img), out / name)
        rec: dict[str, Any] = {"unit": u, "png": name, "activation": act}
        if fv.objective == "class" and labels and u < len(labels):
            rec["label"] = labels[u]
        units.append(rec)
    write_png(_grid([_u8(i) for i in fv.images], cols=min(len(fv.images), 8)), out / "features.png")
    doc = fv.to_dict() | {"units": units, "seconds": time.perf_counter() - t0}
    write_json(doc, out / "features.json")
    return doc


def filters_files(model: Any, out: str | os.PathLike, *, zoom: int = 8) -> dict[str, Any]:
    """The first conv's kernels: ``filters.png`` and ``filters.json``."""
    from edgecnn.explain.features import filters_grid

    g = filters_grid(model, zoom=zoom)
    out = Path(out)
    write_png(g.image, out / "filters.png")
    doc = g.to_dict() | {"png": "filters.png"}
    write_json(doc, out / "filters.json")
    return doc


def _draw_box(img: np.ndarray, box: tuple[int, int, int, int], color=(255, 32, 32)) -> np.ndarray:
    y0, x0, y1, x1 = box
    out = img.copy()
    out[y0, x0:x1] = out[y1 - 1, x0:x1] = color
    out[y0:y1, x0] = out[y0:y1, x1 - 1] = color
    return out


def exemplars_files(
    model: Any,
    images: Sequence[Any],
    names: Sequence[str],
    out: str | os.PathLike,
    *,
    layer: str,
    channel: int,
    top: int = 9,
    size: int | None = None,
) -> dict[str, Any]:
    """The ``top`` images (paths or uint8 arrays, preprocessed as the model says) that activate ``channel`` of
    ``layer`` most: ``exemplars.png`` (each with its peak's receptive field boxed), ``crops.png`` (the boxes, all
    at one size) and ``exemplars.json``."""
    import dataclasses

    from edgecnn.explain.features import exemplars
    from edgecnn.explain.render import to_display
    from edgecnn.runtime import preprocess_batch

    if len(images) != len(names):
        raise ConfigError(f"{len(images)} images but {len(names)} names")
    pre = getattr(model, "preprocessing", None)
    if pre is None:
        raise InputSpecError("this model records no image preprocessing", hint="use a zoo model or a checkpoint")
    if size:
        pre = dataclasses.replace(pre, input_size=size)
    t0 = time.perf_counter()
    x = preprocess_batch(list(images), pre)
    ex = exemplars(model, x, layer=layer, channel=channel, top=top)
    shown, crops = [], []
    side = x.shape[2]
    for i, box in zip(ex.indices, ex.boxes, strict=True):
        pic = to_display(x[i], pre)
        shown.append(_draw_box(pic, box))
        y0, x0, y1, x1 = box
        crops.append(_resize(np.ascontiguousarray(pic[y0:y1, x0:x1]), side))
    out = Path(out)
    cols = min(len(shown), 9)
    write_png(_grid(shown, cols), out / "exemplars.png")
    write_png(_grid(crops, cols), out / "crops.png")
    doc = ex.to_dict()
    for rec in doc["top"]:
        rec["image"] = names[rec["index"]]
    doc |= {"images": len(images), "input_size": side, "seconds": time.perf_counter() - t0}
    doc |= {"png": "exemplars.png", "crops_png": "crops.png"}
    write_json(doc, out / "exemplars.json")
    return doc
