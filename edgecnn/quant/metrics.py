"""Accuracy and agreement measures for float vs quantized outputs (numpy only).

SQNR is 20·log10(‖ref‖ / ‖ref − test‖) in dB, as ONNX Runtime's ``qdq_loss_debug`` computes it; ~20 dB is a
usable classifier head, < 10 dB is a collapse.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np


def topk_accuracy(logits: np.ndarray, labels: np.ndarray, k: int) -> float:
    k = min(k, logits.shape[-1])
    top = np.argsort(-logits, axis=-1)[:, :k]
    return float((top == labels[:, None]).any(axis=1).mean())


def sqnr_db(ref: np.ndarray, test: np.ndarray) -> float:
    eps = 1e-30
    num = max(float(np.linalg.norm(ref.astype(np.float64))), eps)
    den = max(float(np.linalg.norm(ref.astype(np.float64) - test)), eps)
    return 20.0 * math.log10(num / den)


def cosine(ref: np.ndarray, test: np.ndarray) -> float:
    """Mean per-sample cosine similarity of flattened outputs."""
    a = ref.reshape(len(ref), -1).astype(np.float64)
    b = test.reshape(len(test), -1).astype(np.float64)
    den = np.maximum(np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1), 1e-30)
    return float(((a * b).sum(axis=1) / den).mean())


def compare(ref: np.ndarray, test: np.ndarray, labels: np.ndarray | None = None) -> dict[str, Any]:
    """fp32 (``ref``) vs quantized (``test``) logits: agreement, SQNR, cosine, and accuracies when labelled."""
    out: dict[str, Any] = {
        "samples": len(ref),
        "top1_agreement": float((ref.argmax(-1) == test.argmax(-1)).mean()),
        "sqnr_db": sqnr_db(ref, test),
        "cosine": cosine(ref, test),
    }
    if labels is not None:
        out.update(
            fp32_top1=topk_accuracy(ref, labels, 1),
            int8_top1=topk_accuracy(test, labels, 1),
            fp32_top5=topk_accuracy(ref, labels, 5),
            int8_top5=topk_accuracy(test, labels, 5),
        )
        out["top1_drop_points"] = 100.0 * (out["fp32_top1"] - out["int8_top1"])
    return out


def run_batched(fn: Any, data: np.ndarray, batch: int) -> np.ndarray:
    """Run ``fn`` on ``data`` in slices of ``batch`` (a static-batch model takes exactly that many)."""
    n = len(data) - len(data) % batch
    if n == 0:
        raise ValueError(f"need at least {batch} samples, got {len(data)}")
    return np.concatenate([fn(data[i : i + batch]) for i in range(0, n, batch)])
