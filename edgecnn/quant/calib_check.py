"""Calibration-set diagnostics: how many samples, how many distinct images, and — when evaluation data is given —
how well the calibration activations cover the ranges the evaluation data reaches, with a concrete recommendation.

A calibration set of a dozen photos is common (issue 20: the dozen real photos shipped in scikit-image and
scikit-learn); whether it is enough depends less on the count than on whether its activation ranges cover what the
deployed model sees. The coverage measure is per activation tensor (every leaf module's output, float model):
``covered = calibration range / evaluation range`` (1 = the calibration data reaches every value the evaluation
data does) and the fraction of evaluation values outside the calibration range (those are clipped by a quantizer
calibrated with min/max; MSE ranges clip more on purpose, :mod:`edgecnn.quant.ranges`).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from edgecnn.quant.samples import DEFAULT_SAMPLES, SampleSet

FEW_SAMPLES = 32  # below this, every quantizer statistic beyond a per-tensor range is an estimate from a handful
POOR_COVERAGE = 0.8  # median calibration/evaluation range ratio below which the calibration set misses content
BATCH = 16


@dataclass(frozen=True, kw_only=True)
class CalibrationCheck:
    """What the report and the lint say about a calibration set (``coverage``: None without evaluation data)."""

    samples: int
    distinct: int
    coverage: dict[str, Any] | None
    recommendation: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "samples": self.samples,
            "distinct_images": self.distinct,
            "coverage": self.coverage,
            "recommendation": self.recommendation,
        }


def distinct_images(data: np.ndarray) -> int:
    """Samples that are not an exact copy (or a horizontal mirror) of an earlier one: a flipped copy adds no new
    activation range to a CNN's per-tensor statistics."""
    seen: set[str] = set()
    n = 0
    for x in data:
        keys = {hashlib.sha256(np.ascontiguousarray(v).tobytes()).hexdigest() for v in (x, x[..., ::-1])}
        if not keys & seen:
            n += 1
        seen |= keys
    return n


def _leaf_ranges(model: nn.Module, data: np.ndarray, bounds: dict[str, tuple[float, float]] | None) -> dict:
    """Per leaf module: output min/max over ``data``, and with ``bounds`` the count of values outside them."""
    leaves = [(n, m) for n, m in model.named_modules() if n and not any(True for _ in m.children())]
    stats: dict[str, list[float]] = {}

    def hook(name: str) -> Any:
        def record(_m: nn.Module, _i: Any, out: Any) -> None:
            if not isinstance(out, torch.Tensor) or not out.is_floating_point():
                return
            s = stats.setdefault(name, [float("inf"), float("-inf"), 0.0, 0.0])
            s[0], s[1] = min(s[0], float(out.min())), max(s[1], float(out.max()))
            if bounds is not None and name in bounds:
                lo, hi = bounds[name]
                s[2] += float(((out < lo) | (out > hi)).sum())
            s[3] += out.numel()

        return record

    handles = [m.register_forward_hook(hook(n)) for n, m in leaves]
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            for i in range(0, len(data), BATCH):
                model(torch.from_numpy(np.ascontiguousarray(data[i : i + BATCH])))
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    return stats


def range_coverage(model: nn.Module, calibration: np.ndarray, evaluation: np.ndarray) -> dict[str, Any]:
    """How well ``calibration`` covers the activation ranges ``evaluation`` reaches (float model, per leaf module
    output): median and worst range ratio, the worst tensor, and the fraction of evaluation values outside."""
    cal = _leaf_ranges(model, calibration, None)
    ev = _leaf_ranges(model, evaluation, {k: (v[0], v[1]) for k, v in cal.items()})
    ratios: dict[str, float] = {}
    for name, (lo, hi, _, _) in ev.items():
        if name in cal and hi > lo:
            clo, chi = cal[name][:2]
            ratios[name] = float(min(1.0, (chi - clo) / (hi - lo)))
    if not ratios:
        return {"tensors": 0}
    worst = min(ratios, key=ratios.__getitem__)
    outside = sum(v[2] for v in ev.values()) / max(sum(v[3] for v in ev.values()), 1.0)
    return {
        "tensors": len(ratios),
        "median_range_covered": float(np.median(list(ratios.values()))),
        "worst_range_covered": ratios[worst],
        "worst_tensor": worst,
        "evaluation_values_outside": float(outside),
        "evaluation_samples": len(evaluation),
    }


def recommend(samples: int, distinct: int, coverage: dict[str, Any] | None) -> str:
    """One concrete next step for the calibration set (an empty problem list says so)."""
    tips = []
    if coverage is not None and coverage.get("tensors") and coverage["median_range_covered"] < POOR_COVERAGE:
        tips.append(
            f"the calibration activations cover a median {100 * coverage['median_range_covered']:.0f} % of the "
            f"evaluation ranges (worst {coverage['worst_tensor']}): add images like the evaluation data"
        )
    if distinct < samples:
        tips.append(f"{samples - distinct} sample(s) are copies or mirror images of others: replace them")
    if samples < DEFAULT_SAMPLES:
        more = DEFAULT_SAMPLES - samples
        tips.append(
            f"add {more} more representative image(s) to reach {DEFAULT_SAMPLES} (--samples {DEFAULT_SAMPLES}); "
            f"with fewer than {FEW_SAMPLES}, check the report's held-out agreement with --eval-data"
            if samples < FEW_SAMPLES
            else f"add {more} more representative image(s) to reach {DEFAULT_SAMPLES} (--samples {DEFAULT_SAMPLES})"
        )
    return "; ".join(tips) if tips else "the calibration set is large, distinct and covers the evaluation ranges"


def check_calibration(
    model: nn.Module | None, calibration: SampleSet, evaluation: SampleSet | None = None
) -> CalibrationCheck:
    """The calibration diagnostics for the report and the lint (coverage only with a model and evaluation data)."""
    n, distinct = len(calibration), distinct_images(calibration.data)
    cov = None
    if model is not None and evaluation is not None:
        cov = range_coverage(model, calibration.data, evaluation.data)
    return CalibrationCheck(samples=n, distinct=distinct, coverage=cov, recommendation=recommend(n, distinct, cov))
