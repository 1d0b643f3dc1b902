"""Image files in, overlay PNGs + JSON out: what ``edgecnn explain`` and the demo stage run. A SOURCE is a zoo
model name, an edgecnn checkpoint, or a bundle directory; gradient methods need the PyTorch model, RISE and
occlusion run on either (on a bundle through the torch-free runtime)."""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgecnn.errors import ConfigError, InputSpecError
from edgecnn.explain.attribution import GRADIENT_METHODS
from edgecnn.explain.perturb import PERTURBATION_METHODS

log = logging.getLogger(__name__)

METHODS = (*GRADIENT_METHODS, *PERTURBATION_METHODS)


def is_bundle(source: str | os.PathLike) -> bool:
    """A directory with a manifest.json."""
    return (Path(source) / "manifest.json").is_file()


@dataclass(frozen=True, kw_only=True)
class Explained:
    """What was explained and where the files went."""

    records: tuple[dict[str, Any], ...]
    out: Path
    seconds: float


def _labels_of(model: Any, weights_format: str | None) -> list[str] | None:
    labels = list(getattr(model, "classes", None) or []) or None
    if labels is None and weights_format in ("torchvision", "efficientnet_pytorch"):
        from importlib.resources import files

        labels = files("edgecnn.resources").joinpath("imagenet_classes.txt").read_text(encoding="utf-8").splitlines()
    return labels


def parse_target(target: str | int | None, labels: Sequence[str] | None, num_classes: int | None = None) -> int | None:
    """``--target-class``: an index, or a label name when the model / bundle carries labels."""
    if target is None or isinstance(target, int):
        return target
    text = str(target).strip()
    if text.lstrip("-").isdigit():
        return int(text)
    if not labels:
        raise ConfigError(
            f"--target-class {text!r} is a name, but this model / bundle carries no labels",
            hint="pass the class index instead",
        )
    if text in labels:
        return list(labels).index(text)
    from edgecnn.registry import suggest

    close = suggest(text, list(labels))
    raise ConfigError(f"unknown class {text!r}", hint=f"did you mean {close!r}?" if close else "pass the class index")


def _load_source(source: str, weights: str | None) -> tuple[str, Any, Any, list[str] | None]:
    """('bundle', session, preprocessing, labels) or ('model', module, preprocessing, labels)."""
    if is_bundle(source):
        from edgecnn.runtime import load

        sess = load(source)
        return "bundle", sess, sess.preprocessing, sess.labels or None
    from edgecnn.models.resolve import resolve_model

    model, info = resolve_model(source, weights=weights)
    return "model", model, getattr(model, "preprocessing", None), _labels_of(model, info.format if info else None)


def _preprocess(images: Sequence[str | os.PathLike], pre: Any) -> np.ndarray:
    from edgecnn.runtime import preprocess_batch

    if pre is None:
        raise InputSpecError(
            "this model records no image preprocessing", hint="use a zoo model, a checkpoint or a bundle that has one"
        )
    return preprocess_batch(list(images), pre)


def explain_images(
    source: str,
    images: Sequence[str | os.PathLike],
    *,
    out: str | os.PathLike,
    method: str | None = None,
    target: str | int | None = None,
    layer: str | None = None,
    weights: str | None = None,
    masks: int = 1000,
    seed: int = 0,
    faithfulness: bool = False,
    progress: bool = False,
) -> Explained:
    """Explain each image with ``method`` (default: Grad-CAM for a model, RISE for a bundle); write
    ``<image>-<method>.png`` overlays, ``maps.npz`` and ``explain.json`` under ``out``."""
    from edgecnn.explain.render import overlay, save_png

    t0 = time.perf_counter()
    kind, obj, pre, labels = _load_source(source, weights)
    method = method or ("gradcam" if kind == "model" else "rise")
    if method not in METHODS:
        from edgecnn.registry import suggest

        close = suggest(method, list(METHODS))
        raise ConfigError(f"unknown method {method!r}", hint=f"did you mean {close!r}?" if close else f"use {METHODS}")
    if kind == "bundle" and method in GRADIENT_METHODS:
        raise ConfigError(
            f"{method} needs gradients, which a bundle does not have",
            hint="use --method rise or occlusion on a bundle, or pass the PyTorch model / checkpoint",
        )
    if layer is not None and kind == "bundle":
        raise ConfigError("--layer needs the PyTorch model", hint="drop --layer, or pass the model / checkpoint")
    x = _preprocess(images, pre)
    cls = parse_target(target, labels)
    opts: dict[str, Any] = {}
    if method == "rise":
        opts = {"n_masks": masks, "seed": seed, "progress": progress}
    elif method == "occlusion":
        opts = {"progress": progress}
    if kind == "bundle":
        from edgecnn.explain.perturb import session_predictor

        predict = session_predictor(obj)
        attr = PERTURBATION_METHODS[method](predict, x, target=cls, **opts)
    else:
        from edgecnn.explain.attribution import explain, torch_predictor

        predict = torch_predictor(obj)
        attr = explain(obj, x, method=method, target=cls, layer=layer, **opts)
    faith = None
    if faithfulness:
        from edgecnn.explain.metrics import deletion_insertion

        grid = attr.extra.get("grid")  # the map's own grid (a CAM's layer, RISE's masks): the random maps' grid
        faith = deletion_insertion(
            predict, x, attr.maps, attr.classes, seed=seed, random_grid=tuple(grid) if isinstance(grid, list) else grid
        )
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    records = []
    for i, img in enumerate(images):
        png = save_png(overlay(x[i], attr.maps[i], pre), out / f"{Path(img).stem}-{method}.png")
        c = attr.classes[i]
        rec: dict[str, Any] = {
            "image": str(img),
            "method": method,
            "layer": attr.layer,
            "class": c,
            "label": labels[c] if labels and c < len(labels) else None,
            "score": attr.scores[i],
            "overlay": png.name,
            "peak_yx": [int(v) for v in np.unravel_index(int(attr.maps[i].argmax()), attr.maps[i].shape)],
        }
        if faith is not None:
            rec["faithfulness"] = faith[i].to_dict()
        records.append(rec)
    np.savez_compressed(out / "maps.npz", maps=attr.maps, classes=np.asarray(attr.classes))
    extra = {k: v for k, v in attr.extra.items() if isinstance(v, (int, float, str, list))}
    doc = {"source": str(source), "kind": kind, "method": method, "options": extra, "images": records}
    (out / "explain.json").write_text(json.dumps(doc, indent=2, default=float) + "\n", encoding="utf-8")
    return Explained(records=tuple(records), out=out, seconds=time.perf_counter() - t0)


def compare_images(
    float_source: str,
    bundle: str,
    images: Sequence[str | os.PathLike],
    *,
    out: str | os.PathLike,
    method: str = "rise",
    weights: str | None = None,
    masks: int = 1000,
    seed: int = 0,
    progress: bool = False,
) -> tuple[Any, Path]:
    """fp32 vs bundle parity per image (``edgecnn.explain.compare``); writes ``compare.json`` and one side-by-side
    PNG per image (picture | float map | bundle map). Both see the bundle's preprocessing."""
    from edgecnn.explain.compare import compare
    from edgecnn.explain.render import overlay, save_png, side_by_side, to_display

    if not is_bundle(bundle):
        raise ConfigError(f"{bundle!r} is not a bundle directory (no manifest.json)", hint="pass FLOAT then BUNDLE")
    if is_bundle(float_source):
        raise ConfigError(
            f"{float_source!r} is a bundle; the first argument is the float PyTorch model",
            hint="pass a zoo model name (with --weights) or a checkpoint",
        )
    _, model, _, _ = _load_source(float_source, weights)
    _, sess, pre, _ = _load_source(bundle, None)
    x = _preprocess(images, pre)
    opts: dict[str, Any] = {"progress": progress}
    if method == "rise":
        opts |= {"n_masks": masks, "seed": seed}
    names = [Path(p).name for p in images]
    res = compare(model, sess, x, names=names, method=method, **opts)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    for i, name in enumerate(names):
        panel = side_by_side(
            [
                to_display(x[i], pre),
                overlay(x[i], res.float_maps.maps[i], pre),
                overlay(x[i], res.bundle_maps.maps[i], pre),
            ]
        )
        save_png(panel, out / f"{Path(name).stem}-compare.png")
    doc = {
        "float": str(float_source),
        "bundle": str(bundle),
        "summary": res.summary(),
        "rows": [r.to_dict() for r in res.rows],
    }
    (out / "compare.json").write_text(json.dumps(doc, indent=2, default=float) + "\n", encoding="utf-8")
    return res, out
