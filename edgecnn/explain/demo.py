"""The ``make demo`` stage for explanation: Grad-CAM of a (real, pretrained) model on photos, and the fp32-vs-bundle
comparison (RISE with the same seeded masks through each bundle). The demo owns the model, the bundles and the
photos; this stage only explains them and writes PNG + JSON."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from torch import nn

log = logging.getLogger(__name__)


def demo_stage(
    out_dir: str | os.PathLike,
    model: nn.Module,
    bundles: Mapping[str, str | os.PathLike],
    photos: Sequence[str | os.PathLike],
    *,
    masks: int = 300,
    seed: int = 0,
    echo: Any = None,
    compare_photos: Sequence[str | os.PathLike] | None = None,
) -> dict[str, Any]:
    """Grad-CAM overlays of ``model`` on ``photos`` under ``out_dir/gradcam``, then per bundle (name → directory)
    the parity of RISE maps fp32 vs bundle on ``compare_photos`` (default: ``photos``) under
    ``out_dir/compare-<name>``. ``echo`` (e.g. ``click.echo``) receives one line per result. Returns
    {"gradcam": records, "<name>": summary, "seconds": ...}."""
    from edgecnn.explain.attribution import cam
    from edgecnn.explain.compare import compare
    from edgecnn.explain.render import overlay, save_png, side_by_side, to_display
    from edgecnn.runtime import load, preprocess_batch

    say = echo or log.info
    t0 = time.perf_counter()
    out = Path(out_dir)
    pre = model.preprocessing
    x = preprocess_batch(list(photos), pre)
    names = [Path(p).stem for p in photos]
    attr = cam(model, x, method="gradcam")
    result: dict[str, Any] = {"gradcam": []}
    float_maps: dict[tuple, Any] = {}
    for i, name in enumerate(names):
        png = save_png(
            side_by_side([to_display(x[i], pre), overlay(x[i], attr.maps[i], pre)]), out / "gradcam" / f"{name}.png"
        )
        result["gradcam"].append({"image": name, "class": attr.classes[i], "png": str(png)})
    say(f"  Grad-CAM at {attr.layer!r}: {len(names)} overlays in {out / 'gradcam'} ({time.perf_counter() - t0:.1f}s)")
    cphotos = list(compare_photos) if compare_photos is not None else list(photos)
    names = [Path(p).stem for p in cphotos]
    for bname, bundle in bundles.items():
        t = time.perf_counter()
        sess = load(bundle)
        xb, bpre = sess.preprocess(cphotos), sess.preprocessing  # both models see the bundle's input
        key = (xb.shape, hash(xb.tobytes()))
        res = compare(
            model, sess, xb, names=names, method="rise", n_masks=masks, seed=seed, float_maps=float_maps.get(key)
        )
        float_maps[key] = res.float_maps  # the next bundle with the same input reuses the float model's maps
        d = out / f"compare-{bname}"
        for i, name in enumerate(names):
            panel = [
                to_display(xb[i], bpre),
                overlay(xb[i], res.float_maps.maps[i], bpre),
                overlay(xb[i], res.bundle_maps.maps[i], bpre),
            ]
            save_png(side_by_side(panel), d / f"{name}.png")
        s = res.summary()
        result[bname] = s | {"rows": [r.to_dict() for r in res.rows]}
        say(
            f"  fp32 vs {bname}: RISE ({masks} masks) median Spearman {s['median_spearman']:.2f}, median top-15% IoU "
            f"{s['median_top_iou']:.2f}, top-1 agreement {s['top1_agreement']:.0%}, looks elsewhere: "
            f"{', '.join(s['looks_elsewhere']) or 'none'} ({time.perf_counter() - t:.1f}s) → {d}"
        )
    result["seconds"] = time.perf_counter() - t0
    return result
