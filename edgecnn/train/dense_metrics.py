"""Dense-prediction metrics, numpy only (the runtime's outputs are scored with them too).

* Segmentation: a confusion matrix accumulated over images → mean IoU (Jaccard; the PASCAL VOC protocol: classes
  that never occur in the ground truth nor the prediction are left out of the mean), pixel accuracy, and per-class
  IoU / accuracy. Pixels labelled ``ignore_index`` are not scored.
* Super-resolution: PSNR and SSIM on the Y channel with ``scale`` pixels shaved from every border (the protocol
  of SRCNN / FSRCNN / ESPCN evaluations); SSIM per Wang et al. 2004 (11×11 Gaussian window, σ = 1.5).
"""

from __future__ import annotations

import math

import numpy as np


class ConfusionMatrix:
    """Accumulates (truth, prediction) pixel counts for ``num_classes`` classes."""

    def __init__(self, num_classes: int, *, ignore_index: int = 255) -> None:
        self.num_classes, self.ignore_index = num_classes, ignore_index
        self.matrix = np.zeros((num_classes, num_classes), np.int64)

    def update(self, truth: np.ndarray, pred: np.ndarray) -> None:
        truth, pred = np.asarray(truth).ravel(), np.asarray(pred).ravel()
        keep = truth != self.ignore_index
        t, p = truth[keep].astype(np.int64), pred[keep].astype(np.int64)
        if t.size and (t.max() >= self.num_classes or p.min() < 0 or p.max() >= self.num_classes):
            raise ValueError(f"labels outside 0..{self.num_classes - 1}")
        self.matrix += np.bincount(t * self.num_classes + p, minlength=self.num_classes**2).reshape(
            self.num_classes, self.num_classes
        )

    def scores(self) -> dict[str, float | list[float | None]]:
        """mIoU, pixel accuracy, mean class accuracy and per-class IoU / accuracy (None where undefined)."""
        m = self.matrix.astype(np.float64)
        tp, gt, pr = np.diag(m), m.sum(1), m.sum(0)
        union = gt + pr - tp
        iou = [float(a / u) if u else None for a, u in zip(tp, union, strict=True)]
        acc = [float(a / g) if g else None for a, g in zip(tp, gt, strict=True)]
        valid_iou = [v for v in iou if v is not None]
        valid_acc = [v for v in acc if v is not None]
        return {
            "miou": float(np.mean(valid_iou)) if valid_iou else 0.0,
            "pixel_accuracy": float(tp.sum() / m.sum()) if m.sum() else 0.0,
            "mean_class_accuracy": float(np.mean(valid_acc)) if valid_acc else 0.0,
            "class_iou": iou,
            "class_accuracy": acc,
        }


def _shave(x: np.ndarray, border: int) -> np.ndarray:
    return x[border:-border, border:-border] if border else x


def psnr(a: np.ndarray, b: np.ndarray, *, border: int = 0, peak: float = 1.0) -> float:
    """PSNR in dB of two H×W planes in [0, peak], ``border`` pixels shaved."""
    d = _shave(np.asarray(a, np.float64), border) - _shave(np.asarray(b, np.float64), border)
    mse = float(np.mean(d * d))
    return math.inf if mse == 0 else 10 * math.log10(peak * peak / mse)


def _gauss_filter(x: np.ndarray, sigma: float = 1.5, radius: int = 5) -> np.ndarray:
    """'valid' separable Gaussian filtering (the 11×11 SSIM window)."""
    t = np.arange(-radius, radius + 1)
    k = np.exp(-(t**2) / (2 * sigma**2))
    k /= k.sum()
    rows = np.apply_along_axis(lambda r: np.convolve(r, k, mode="valid"), 1, x)
    return np.apply_along_axis(lambda c: np.convolve(c, k, mode="valid"), 0, rows)


def ssim(a: np.ndarray, b: np.ndarray, *, border: int = 0, peak: float = 1.0) -> float:
    """Mean SSIM (Wang et al. 2004) of two H×W planes in [0, peak], ``border`` pixels shaved."""
    x, y = _shave(np.asarray(a, np.float64), border), _shave(np.asarray(b, np.float64), border)
    c1, c2 = (0.01 * peak) ** 2, (0.03 * peak) ** 2
    mx, my = _gauss_filter(x), _gauss_filter(y)
    sxx = _gauss_filter(x * x) - mx * mx
    syy = _gauss_filter(y * y) - my * my
    sxy = _gauss_filter(x * y) - mx * my
    s = ((2 * mx * my + c1) * (2 * sxy + c2)) / ((mx * mx + my * my + c1) * (sxx + syy + c2))
    return float(s.mean())
