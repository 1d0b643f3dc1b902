"""Gradient-free attribution that needs only forward passes, so it runs on any bundle through the torch-free
runtime (fp32, fp16, INT8; ONNX or OpenVINO) — where Grad-CAM cannot, having no gradients.

- RISE (Petsiuk et al., BMVC 2018): the saliency of a pixel is the expected class probability over random masks
  that keep it.
- Occlusion (Zeiler & Fergus, ECCV 2014): the drop in class probability when a sliding window hides the pixel.

Both batch their perturbed copies at the bundle's batch size (``session_predictor``), are seeded, and show a tqdm
progress bar when asked. This module imports only numpy, the core and the runtime — never torch.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np

from edgecnn.errors import ConfigError
from edgecnn.explain.maps import Attribution, check_batch, normalize_maps, resize_bilinear, target_classes
from edgecnn.runtime.session import Session, softmax

log = logging.getLogger(__name__)

Predictor = Callable[[np.ndarray], np.ndarray]
"""Preprocessed float32 NCHW batch of any size → logits (N, classes)."""


def session_predictor(sess: Session, *, batch: int | None = None) -> Predictor:
    """Wrap a runtime session so it takes any number of images: chunks of the bundle's largest allowed batch (or
    ``batch``), the last chunk padded up to the bundle's smallest batch when the bundle is static."""
    lo, hi = sess.input.dim_range(0)
    size = min(max(batch or hi, lo), hi)

    def predict(x: np.ndarray) -> np.ndarray:
        outs = []
        for i in range(0, len(x), size):
            chunk = x[i : i + size]
            n = len(chunk)
            if n < lo:
                chunk = np.concatenate([chunk, np.repeat(chunk[-1:], lo - n, axis=0)])
            outs.append(np.asarray(sess.predict(np.ascontiguousarray(chunk, dtype=np.float32)))[:n])
        return np.concatenate(outs).astype(np.float32)

    predict.batch_size = size  # type: ignore[attr-defined]
    return predict


def batch_size_of(predict: Predictor, default: int = 32) -> int:
    """How many perturbed copies to send per call: the predictor's own batch size when it has one."""
    return int(getattr(predict, "batch_size", default))


def _progress(total: int, desc: str, enabled: bool) -> Any:
    if not enabled:
        return None
    try:
        from tqdm.auto import tqdm
    except ImportError:  # tqdm is in the [all] extra; without it, no bar
        return None
    return tqdm(total=total, desc=desc, unit="mask", leave=False)


def rise_grids(n_masks: int, grid: int, p_keep: float, size: tuple[int, int], seed: int) -> tuple[np.ndarray, ...]:
    """The random part of RISE's masks, drawn once (seeded): binary ``grid``×``grid`` cells and random shifts."""
    rng = np.random.default_rng(seed)
    cells = (rng.random((n_masks, grid, grid)) < p_keep).astype(np.float32)
    cell_h, cell_w = math.ceil(size[0] / grid), math.ceil(size[1] / grid)
    shifts = np.stack([rng.integers(0, cell_h, n_masks), rng.integers(0, cell_w, n_masks)], axis=1)
    return cells, shifts, np.array([cell_h, cell_w])


def rise_masks(cells: np.ndarray, shifts: np.ndarray, cell: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Smooth masks as in RISE: upsample the binary grid bilinearly to (grid+1)·cell, crop at the random shift."""
    grid = cells.shape[1]
    big = (int((grid + 1) * cell[0]), int((grid + 1) * cell[1]))
    up = resize_bilinear(cells, big)
    out = np.empty((len(cells), *size), dtype=np.float32)
    for i, (dy, dx) in enumerate(shifts):
        out[i] = up[i, dy : dy + size[0], dx : dx + size[1]]
    return out


def _chunks(total: int, size: int) -> Iterator[slice]:
    for i in range(0, total, size):
        yield slice(i, min(i + size, total))


def rise(
    predict: Predictor,
    x: np.ndarray,
    *,
    target: int | Sequence[int] | None = None,
    n_masks: int = 1000,
    grid: int = 7,
    p_keep: float = 0.5,
    baseline: float = 0.0,
    seed: int = 0,
    center: bool = True,
    batch: int | None = None,
    progress: bool = False,
) -> Attribution:
    """RISE saliency (Petsiuk et al. 2018) for each image of the preprocessed batch ``x``.

    Masked pixels take ``baseline`` in the model's input space (0 = the dataset mean colour after normalization).
    The same seeded masks serve every image, so two models explained with one seed see identical perturbations —
    what the fp32-vs-bundle parity compares. ``center`` subtracts the mean class probability over the masks before
    weighting (a control variate: Σ(p−p̄)·m is an affine function of RISE's Σp·m in expectation, so the [0, 1] map
    is the same, but without the pattern of how often each pixel was kept — noise that two models explained with
    the same masks would share and that would inflate their rank correlation). Cost: ``n_masks`` forward passes
    per image, batched."""
    x = check_batch(x)
    if n_masks < 1 or not 0 < p_keep < 1 or grid < 2:
        raise ConfigError(f"RISE needs n_masks ≥ 1, 0 < p_keep < 1 and grid ≥ 2 (got {n_masks}, {p_keep}, {grid})")
    size = (x.shape[2], x.shape[3])
    cells, shifts, cell = rise_grids(n_masks, grid, p_keep, size, seed)
    base_probs = softmax(predict(x).astype(np.float64))
    classes = target_classes(target, base_probs.argmax(1), base_probs.shape[1])
    step = batch or batch_size_of(predict)
    bar = _progress(n_masks * len(x), "RISE", progress)
    sal = np.zeros((len(x), *size), dtype=np.float64)
    cover = np.zeros(size, dtype=np.float64)
    prob_sum = np.zeros(len(x), dtype=np.float64)
    for sl in _chunks(n_masks, max(step, 1)):
        masks = rise_masks(cells[sl], shifts[sl], cell, size)
        cover += masks.sum(0)
        for i in range(len(x)):
            batch_x = x[i][None] * masks[:, None] + baseline * (1.0 - masks[:, None])
            probs = softmax(predict(batch_x.astype(np.float32)).astype(np.float64))[:, classes[i]]
            sal[i] += np.tensordot(probs, masks, axes=1)
            prob_sum[i] += probs.sum()
            if bar is not None:
                bar.update(len(masks))
    if bar is not None:
        bar.close()
    if center:  # Σ(p − p̄)·m = Σp·m − p̄·Σm
        sal -= (prob_sum / n_masks)[:, None, None] * cover[None]
    sal /= n_masks * p_keep
    return Attribution(
        maps=normalize_maps(sal),
        classes=tuple(int(c) for c in classes),
        scores=tuple(float(base_probs[i, c]) for i, c in enumerate(classes)),
        method="rise",
        extra={
            "n_masks": n_masks,
            "grid": grid,
            "p_keep": p_keep,
            "seed": seed,
            "baseline": baseline,
            "center": center,
        },
    )


def occlusion(
    predict: Predictor,
    x: np.ndarray,
    *,
    target: int | Sequence[int] | None = None,
    window: int | None = None,
    stride: int | None = None,
    baseline: float = 0.0,
    batch: int | None = None,
    progress: bool = False,
) -> Attribution:
    """Occlusion sensitivity (Zeiler & Fergus 2014): per pixel, the mean drop of the class probability over the
    windows that hide it. Default window: 1/7 of the side, stride half a window. Deterministic."""
    x = check_batch(x)
    h, w = x.shape[2], x.shape[3]
    window = window or max(1, round(min(h, w) / 7))
    stride = stride or max(1, window // 2)
    if window < 1 or stride < 1 or window > min(h, w):
        raise ConfigError(f"occlusion window {window} / stride {stride} does not fit a {h}×{w} input")
    ys = list(range(0, max(h - window, 0) + 1, stride))
    xs = list(range(0, max(w - window, 0) + 1, stride))
    if ys[-1] != h - window:
        ys.append(h - window)
    if xs[-1] != w - window:
        xs.append(w - window)
    boxes = [(y, xx) for y in ys for xx in xs]
    base_probs = softmax(predict(x).astype(np.float64))
    classes = target_classes(target, base_probs.argmax(1), base_probs.shape[1])
    step = batch or batch_size_of(predict)
    bar = _progress(len(boxes) * len(x), "occlusion", progress)
    maps = np.zeros((len(x), h, w))
    count = np.zeros((h, w))
    for y, xx in boxes:
        count[y : y + window, xx : xx + window] += 1
    for i in range(len(x)):
        p0 = base_probs[i, classes[i]]
        for sl in _chunks(len(boxes), max(step, 1)):
            batch_x = np.repeat(x[i][None], sl.stop - sl.start, axis=0)
            for j, (y, xx) in enumerate(boxes[sl]):
                batch_x[j, :, y : y + window, xx : xx + window] = baseline
            probs = softmax(predict(batch_x).astype(np.float64))[:, classes[i]]
            for (y, xx), p in zip(boxes[sl], probs, strict=True):
                maps[i, y : y + window, xx : xx + window] += p0 - p
            if bar is not None:
                bar.update(sl.stop - sl.start)
    if bar is not None:
        bar.close()
    maps /= np.maximum(count, 1)
    return Attribution(
        maps=normalize_maps(np.maximum(maps, 0)),
        classes=tuple(int(c) for c in classes),
        scores=tuple(float(base_probs[i, c]) for i, c in enumerate(classes)),
        method="occlusion",
        extra={"window": window, "stride": stride, "baseline": baseline, "windows": len(boxes)},
    )


PERTURBATION_METHODS: dict[str, Callable[..., Attribution]] = {"rise": rise, "occlusion": occlusion}
