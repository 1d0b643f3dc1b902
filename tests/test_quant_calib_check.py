"""Calibration-set diagnostics (issue 20): distinct images, coverage of the evaluation ranges, lint findings."""

from __future__ import annotations

import numpy as np
import torch

import edgecnn
from edgecnn.quant.calib_check import check_calibration, distinct_images, range_coverage
from edgecnn.quant.lint import lint_model
from edgecnn.quant.samples import from_arrays


def _net() -> torch.nn.Module:
    torch.manual_seed(0)
    return edgecnn.create_model("mobilenet_v2", num_classes=10).eval()


def test_distinct_images_counts_copies_and_mirrors_once():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((3, 3, 8, 8)).astype(np.float32)
    assert distinct_images(x) == 3
    dup = np.concatenate([x, x[:1], x[1:2, ..., ::-1]])
    assert distinct_images(dup) == 3


def test_coverage_full_on_own_data_and_low_on_narrow_calibration():
    net = _net()
    rng = np.random.default_rng(0)
    ev = rng.standard_normal((8, 3, 32, 32)).astype(np.float32)
    own = range_coverage(net, ev, ev)
    assert own["median_range_covered"] == 1.0 and own["evaluation_values_outside"] == 0.0
    narrow = range_coverage(net, 0.05 * ev, ev)  # dim photos of the same scenes: every range shrinks
    assert narrow["median_range_covered"] < 0.5 and narrow["evaluation_values_outside"] > 0.1
    assert narrow["tensors"] == own["tensors"] > 10


def test_check_and_lint_recommend_for_a_small_duplicated_narrow_set():
    net = _net()
    rng = np.random.default_rng(1)
    ev = from_arrays(rng.standard_normal((8, 3, 32, 32)).astype(np.float32), source="ev")
    cal_x = 0.05 * ev.data[:4]
    cal = from_arrays(np.concatenate([cal_x, cal_x[:2, ..., ::-1]]), source="cal")
    chk = check_calibration(net, cal, ev)
    assert (chk.samples, chk.distinct) == (6, 4)
    assert "add images like the evaluation data" in chk.recommendation and "294 more" in chk.recommendation
    codes = {f.code: f for f in lint_model(net, calibration=chk)}
    assert {"calibration-size", "calibration-duplicates", "calibration-coverage"} <= set(codes)
    assert "4 distinct" in codes["calibration-size"].message
    good = check_calibration(net, ev, ev)
    assert good.coverage["median_range_covered"] == 1.0 and "calibration-coverage" not in {
        f.code for f in lint_model(net, calibration=good)
    }
    assert check_calibration(None, cal).coverage is None
