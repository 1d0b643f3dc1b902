"""One measurement: first inference, warm-up, timed iterations, memory — plus the warnings a reader needs.

Latency statistics come from :func:`edgecnn.runtime.timing.time_call`; every result carries the environment
fingerprint (:func:`edgecnn.runtime.env.fingerprint`), so a number is never read without its machine. Noisy runs
(CoV above 5 %) and thread oversubscription (more intra-op threads than cores this process may use, or other
processes keeping the CPUs busy) are flagged, not hidden.
"""

from __future__ import annotations

import os
import resource
import sys
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from edgecnn.bench.runners import Loaded
from edgecnn.runtime.env import fingerprint
from edgecnn.runtime.timing import time_call

NOISY_COV = 0.05  # coefficient of variation above which a run is flagged noisy


@dataclass(frozen=True, kw_only=True)
class BenchResult:
    """One subject at one batch size. Times in ms; ``throughput`` in images/s at the p50 latency."""

    label: str
    kind: str
    model: str
    backend: str
    device: str
    precision: str
    resolution: int
    batch: int
    threads: int | None
    p50_ms: float
    p90_ms: float
    p99_ms: float
    mean_ms: float
    std_ms: float
    min_ms: float
    cov: float
    iters: int
    warmup: int
    throughput: float
    first_inference_ms: float
    load_s: float
    peak_rss_mb: float
    file_bytes: int | None
    ratio: float | None = None  # baseline p50 / this p50 (>1: faster than the baseline)
    warnings: tuple[str, ...] = ()
    environment: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["warnings"] = list(self.warnings)
        return d


def peak_rss_mb() -> float:
    """Peak resident set size of this process so far (MiB; ru_maxrss is KiB on Linux, bytes on macOS)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


def usable_cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def environment_warnings(threads: int | None) -> list[str]:
    """Oversubscription: more threads than usable cores, or a load average above the core count."""
    out = []
    cores = usable_cores()
    if threads and threads > cores:
        out.append(f"{threads} threads on {cores} usable cores: oversubscribed, latency will be unstable")
    try:
        load1 = os.getloadavg()[0]
    except OSError:
        load1 = 0.0
    if load1 > cores:
        out.append(f"load average {load1:.1f} exceeds {cores} cores: other processes compete for the CPU")
    return out


def measure(
    subject: Loaded,
    *,
    batch: int,
    warmup: int,
    iters: int,
    min_time_s: float,
    threads: int | None,
    env: dict[str, Any] | None = None,
) -> BenchResult:
    """Time ``subject`` at ``batch``: the first call (includes lazy compilation), then warm-up + iterations."""
    t0 = time.perf_counter()
    fn = subject.make(batch)  # makes the input and runs the first inference
    first_ms = (time.perf_counter() - t0) * 1e3
    stats = time_call(fn, warmup=warmup, iters=iters, min_time_s=min_time_s)
    warns = environment_warnings(threads)
    if stats["cov"] > NOISY_COV:
        warns.append(f"noisy: CoV {stats['cov']:.1%} > {NOISY_COV:.0%}; rerun on a quiet machine or raise --min-time")
    return BenchResult(
        label=subject.label,
        kind=subject.kind,
        model=subject.model,
        backend=subject.backend,
        device=subject.device,
        precision=subject.precision,
        resolution=subject.resolution,
        batch=batch,
        threads=threads,
        p50_ms=stats["p50_ms"],
        p90_ms=stats["p90_ms"],
        p99_ms=stats["p99_ms"],
        mean_ms=stats["mean_ms"],
        std_ms=stats["std_ms"],
        min_ms=stats["min_ms"],
        cov=stats["cov"],
        iters=int(stats["iters"]),
        warmup=warmup,
        throughput=batch * 1e3 / stats["p50_ms"] if stats["p50_ms"] else 0.0,
        first_inference_ms=first_ms,
        load_s=subject.load_s,
        peak_rss_mb=peak_rss_mb(),
        file_bytes=subject.file_bytes,
        warnings=tuple(warns),
        environment=env if env is not None else fingerprint(threads),
    )


def with_ratios(results: list[BenchResult], baseline: str | None) -> list[BenchResult]:
    """Add ``ratio`` = baseline p50 / p50 at the same batch; the baseline is a label or a label prefix."""
    from dataclasses import replace

    from edgecnn.errors import ConfigError

    if not baseline:
        return results
    base = {r.batch: r.p50_ms for r in results if r.label == baseline or r.label.startswith(baseline)}
    if not base:
        labels = sorted({r.label for r in results})
        raise ConfigError(f"--baseline {baseline!r} matches no measured subject", hint=f"one of {', '.join(labels)}")
    return [replace(r, ratio=base[r.batch] / r.p50_ms if r.batch in base and r.p50_ms else None) for r in results]
