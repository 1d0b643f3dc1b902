"""FP32 vs deployed: explain the float model and a bundle with the same gradient-free method and the same seeded
perturbations, and report per image how far the two maps agree — so a user sees whether quantization moved where
the model looks, not only whether top-1 still matches."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from edgecnn.errors import ConfigError
from edgecnn.explain.maps import Attribution
from edgecnn.explain.metrics import spearman, top_iou
from edgecnn.explain.perturb import PERTURBATION_METHODS, session_predictor

if TYPE_CHECKING:
    from torch import nn

    from edgecnn.runtime import Session

log = logging.getLogger(__name__)

LOOKS_ELSEWHERE_IOU = 0.3
"""Top-15 % IoU below which the bundle is flagged as looking elsewhere (two random 15 % regions overlap ≈ 0.08)."""


@dataclass(frozen=True, kw_only=True)
class ParityRow:
    """One image: the two top-1 classes, the Spearman correlation and top-``frac`` IoU of the two maps, and the flag."""

    image: str
    float_top1: int
    bundle_top1: int
    top1_agrees: bool
    spearman: float
    top_iou: float
    looks_elsewhere: bool

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, kw_only=True)
class Comparison:
    """Per-image rows, both attributions (same class per image: the float model's top-1) and the summary."""

    rows: tuple[ParityRow, ...]
    float_maps: Attribution
    bundle_maps: Attribution
    method: str
    frac: float

    def summary(self) -> dict[str, Any]:
        sp = [r.spearman for r in self.rows]
        io = [r.top_iou for r in self.rows]
        return {
            "method": self.method,
            "images": len(self.rows),
            "median_spearman": float(np.median(sp)),
            "median_top_iou": float(np.median(io)),
            "top_fraction": self.frac,
            "top1_agreement": float(np.mean([r.top1_agrees for r in self.rows])),
            "looks_elsewhere": [r.image for r in self.rows if r.looks_elsewhere],
        }


def compare(
    model: nn.Module,
    session: Session,
    x: np.ndarray,
    *,
    names: Sequence[str] | None = None,
    method: str = "rise",
    frac: float = 0.15,
    iou_threshold: float = LOOKS_ELSEWHERE_IOU,
    target: int | Sequence[int] | None = None,
    float_maps: Attribution | None = None,
    **options: Any,
) -> Comparison:
    """Explain ``model`` (PyTorch, fp32) and ``session`` (any bundle) on the preprocessed batch ``x`` with the same
    gradient-free ``method`` and seed, for the same class (default: the float model's top-1), and compare per image.

    A bundle "looks elsewhere" on an image when the top-``frac`` regions of the two maps overlap less than
    ``iou_threshold`` (IoU). ``float_maps`` reuses the float model's maps from an earlier call with the same
    method, options and images (comparing one model with several bundles)."""
    from edgecnn.explain.attribution import torch_predictor

    if method not in PERTURBATION_METHODS:
        raise ConfigError(
            f"method {method!r} needs gradients, which a bundle does not have",
            hint=f"compare with one of {', '.join(PERTURBATION_METHODS)}",
        )
    names = list(names) if names is not None else [f"image{i}" for i in range(len(x))]
    fpred, bpred = torch_predictor(model), session_predictor(session)
    f_logits, b_logits = fpred(x), bpred(x)
    if f_logits.shape != b_logits.shape:
        raise ConfigError(
            f"the float model gives {f_logits.shape[1]} outputs and the bundle {b_logits.shape[1]}",
            hint="compare a bundle with the model it was exported from",
        )
    cls = f_logits.argmax(1) if target is None else target
    fn = PERTURBATION_METHODS[method]
    fm = float_maps if float_maps is not None else fn(fpred, x, target=cls, **options)
    if fm.maps.shape[0] != len(x) or list(fm.classes) != [int(c) for c in np.broadcast_to(cls, len(x))]:
        raise ConfigError("float_maps were computed for other images or classes", hint="recompute them")
    bm = fn(bpred, x, target=cls, **options)
    rows = []
    for i, name in enumerate(names):
        iou = top_iou(fm.maps[i], bm.maps[i], frac)
        rows.append(
            ParityRow(
                image=name,
                float_top1=int(f_logits[i].argmax()),
                bundle_top1=int(b_logits[i].argmax()),
                top1_agrees=bool(f_logits[i].argmax() == b_logits[i].argmax()),
                spearman=spearman(fm.maps[i], bm.maps[i]),
                top_iou=iou,
                looks_elsewhere=iou < iou_threshold,
            )
        )
    log.info("compared %d images with %s", len(rows), method)
    return Comparison(rows=tuple(rows), float_maps=fm, bundle_maps=bm, method=method, frac=frac)
