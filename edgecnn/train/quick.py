"""One call for demos: train the shipped embedded-default recipe and report its test accuracy."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

from edgecnn.train.trainer import TrainResult


def _stderr(msg: str) -> None:
    sys.stderr.write(msg + "\n")
    sys.stderr.flush()


def train_embedded_default(
    out_dir: str | Path,
    *,
    epochs: int | None = None,
    overrides: list[str] | None = None,
    report: Callable[[str], None] | None = _stderr,
) -> TrainResult:
    """Train the ``mnist_embedded`` recipe (a small MobileNetV3 on the 5,000 embedded MNIST digits) into ``out_dir``.

    Progress lines go to ``report`` (stderr by default: this is the ``make demo`` entry point). Returns the
    checkpoint path (``out_dir/model.safetensors`` + ``model.json``), test top-1, wall time and images/s.
    """
    from edgecnn.train.recipe import load_recipe
    from edgecnn.train.trainer import fit

    extra = list(overrides or [])
    if epochs is not None:
        extra.append(f"optim.epochs={int(epochs)}")
    recipe = load_recipe("mnist_embedded", extra)
    result = fit(recipe, out_dir, report=report or (lambda _m: None))
    if report is not None and result.test_top1 is not None:
        report(
            f"embedded default: test top-1 {100 * result.test_top1:.2f}% in {result.wall_time_s:.0f} s "
            f"({result.images_per_s:.0f} train images/s) → {result.checkpoint}"
        )
    return result
