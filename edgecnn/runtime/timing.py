"""Latency statistics: warm-up, then timed iterations, reported as percentiles and spread (docs/architecture.md, 9)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np


def summarize(samples_s: list[float] | np.ndarray) -> dict[str, float]:
    """p50/p90/p99/mean/std (ms), coefficient of variation, and throughput at batch 1 (1/p50)."""
    ms = np.asarray(samples_s, dtype=np.float64) * 1e3
    mean = float(ms.mean())
    return {
        "p50_ms": float(np.percentile(ms, 50)),
        "p90_ms": float(np.percentile(ms, 90)),
        "p99_ms": float(np.percentile(ms, 99)),
        "mean_ms": mean,
        "std_ms": float(ms.std()),
        "cov": float(ms.std() / mean) if mean else 0.0,
        "min_ms": float(ms.min()),
        "iters": int(ms.size),
    }


def time_call(
    fn: Callable[[], Any], *, warmup: int = 10, iters: int = 100, min_time_s: float = 0.0
) -> dict[str, float]:
    """Time ``fn`` after ``warmup`` calls, for ``iters`` calls or at least ``min_time_s`` seconds."""
    for _ in range(warmup):
        fn()
    samples: list[float] = []
    start = time.perf_counter()
    while len(samples) < iters or time.perf_counter() - start < min_time_s:
        t = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - t)
    return {**summarize(samples), "warmup": warmup}
