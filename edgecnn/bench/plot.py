"""Latency vs accuracy vs size: one PNG for choosing a model *on this device* (matplotlib, Agg backend)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from edgecnn.errors import ConfigError, MissingDependencyError

log = logging.getLogger(__name__)


def plot_tradeoff(
    results: list[dict[str, Any]], accuracy: dict[str, float], out: Path, *, batch: int = 1, title: str | None = None
) -> Path:
    """Scatter p50 latency (x, log) against top-1 accuracy (y); marker area ∝ file size. Subjects without an
    accuracy are drawn on a strip below the axis so they are not lost (and logged)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise MissingDependencyError("matplotlib is not installed", hint='pip install "edgecnn[all]"') from None
    rows = [r for r in results if r.get("batch") == batch]
    if not rows:
        raise ConfigError(f"no results at batch {batch} to plot", hint="pick --batch from the results file")
    fig, ax = plt.subplots(figsize=(8, 5.5))
    known = [accuracy.get(r["label"], accuracy.get(r["model"])) for r in rows]
    floor = min((a for a in known if a is not None), default=0.0) - 2.0
    sizes = [max((r.get("file_bytes") or 0) / 2**20, 0.5) for r in rows]
    for r, acc, mb in zip(rows, known, sizes, strict=True):
        y = acc if acc is not None else floor
        ax.scatter(r["p50_ms"], y, s=20 * mb, alpha=0.55, marker="o" if acc is not None else "x")
        ax.annotate(
            f"{r['label']} ({mb:.1f} MiB)", (r["p50_ms"], y), fontsize=7, xytext=(4, 3), textcoords="offset points"
        )
        if acc is None:
            log.info("no accuracy for %s: drawn on the bottom strip", r["label"])
    ax.set_xscale("log")
    ax.set_xlabel(f"p50 latency, batch {batch} (ms, log scale)")
    ax.set_ylabel("top-1 accuracy (%)  — × = not given")
    env = rows[0].get("environment", {})
    ax.set_title(title or f"latency vs accuracy vs size — {env.get('cpu', '?')}, {rows[0].get('threads')} threads")
    ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=120)
    plt.close(fig)
    return out


def parse_accuracy(items: tuple[str, ...]) -> dict[str, float]:
    """``NAME=TOP1`` pairs (NAME is a result label or a model name)."""
    out = {}
    for item in items:
        name, sep, value = item.partition("=")
        try:
            out[name] = float(value)
        except ValueError:
            raise ConfigError(
                f"--accuracy {item!r} is not NAME=TOP1", hint="e.g. --accuracy mobilenet_v2=72.0"
            ) from None
        if not sep or not name:
            raise ConfigError(f"--accuracy {item!r} is not NAME=TOP1", hint="e.g. --accuracy mobilenet_v2=72.0")
    return out
