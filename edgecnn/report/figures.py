"""The report's figures: matplotlib drawn to SVG text, deterministic and self-contained.

Every figure is one ``<svg>`` with ``role="img"`` and an ``aria-label`` (its alt text). The same data gives the same
bytes: no date in the metadata, a fixed ``svg.hashsalt`` per figure (it also keeps the element ids of two figures
in one page apart), and text kept as text (``svg.fonttype = none``: smaller, selectable, no glyph definitions)."""

from __future__ import annotations

import io
import math
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from edgecnn.sdk import import_sdk

if TYPE_CHECKING:
    from markupsafe import Markup

PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf")


def svg(key: str, alt: str, draw: Callable[[Any], None], *, size: tuple[float, float] = (8.0, 3.6)) -> Markup:
    """Run ``draw(fig)`` on a new figure and return it as inline SVG markup labelled ``alt``."""
    matplotlib = import_sdk("matplotlib", "report")
    markupsafe = import_sdk("markupsafe", "report")  # comes with Jinja2
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rc = {"svg.hashsalt": f"edgecnn-report-{key}", "svg.fonttype": "none", "font.family": "sans-serif", "font.size": 9}
    with matplotlib.rc_context(rc):
        fig = plt.figure(figsize=size)
        try:
            draw(fig)
            fig.tight_layout()
            buf = io.StringIO()
            fig.savefig(buf, format="svg", metadata={"Date": None, "Creator": "edgecnn"})
        finally:
            plt.close(fig)
    text = buf.getvalue()
    text = text[text.index("<svg") :]  # no XML declaration or DOCTYPE inside HTML
    label = markupsafe.escape(alt)
    text = text.replace("<svg ", f'<svg role="img" aria-label="{label}" ', 1)
    return markupsafe.Markup(text)  # matplotlib escapes its own text; the alt text is escaped above


def _short(name: str, n: int = 34) -> str:
    return name if len(name) <= n else "…" + name[-(n - 1) :]


def per_layer_bars(key: str, alt: str, names: Sequence[str], values: Sequence[float], xlabel: str) -> Markup:
    """Horizontal bars, one per named layer, largest first (the caller picks and orders them)."""

    def draw(fig: Any) -> None:
        ax = fig.add_subplot()
        ys = range(len(names))
        ax.barh(ys, list(values)[::-1], color=PALETTE[0])
        ax.set_yticks(list(ys), [_short(n) for n in names][::-1])
        ax.set_xlabel(xlabel)
        ax.grid(True, axis="x", alpha=0.3)

    return svg(key, alt, draw, size=(8.0, max(2.2, 0.26 * len(names) + 1.0)))


def layer_profile(key: str, alt: str, macs: Sequence[int], acts: Sequence[int]) -> Markup:
    """MACs and output activation memory per layer, in network order."""

    def draw(fig: Any) -> None:
        a, b = fig.subplots(2, 1, sharex=True)
        edges = [i - 0.5 for i in range(len(macs) + 1)]  # one filled step path per panel, not one bar per layer
        a.stairs([m / 1e6 for m in macs], edges, fill=True, color=PALETTE[0])
        a.set_ylabel("MMACs")
        b.stairs([v / 2**10 for v in acts], edges, fill=True, color=PALETTE[3])
        b.set_ylabel("output KiB (fp32)")
        b.set_xlabel("layer (network order)")
        for ax in (a, b):
            ax.grid(True, axis="y", alpha=0.3)

    return svg(key, alt, draw, size=(8.0, 4.0))


def training_curves(key: str, alt: str, rows: Sequence[dict[str, Any]]) -> Markup:
    """Loss (train, val) and validation top-1 / top-5 per epoch."""

    def draw(fig: Any) -> None:
        a, b = fig.subplots(1, 2)
        ep = [r["epoch"] for r in rows]
        for k, c in (("train_loss", PALETTE[0]), ("val_loss", PALETTE[1])):
            pts = [(e, r[k]) for e, r in zip(ep, rows, strict=True) if isinstance(r.get(k), (int, float))]
            if pts:
                a.plot(*zip(*pts, strict=True), marker="o", ms=3, color=c, label=k.replace("_", " "))
        a.set_xlabel("epoch")
        a.set_ylabel("loss")
        a.legend()
        for k, c in (("val_top1", PALETTE[2]), ("val_top5", PALETTE[3])):
            pts = [(e, 100 * r[k]) for e, r in zip(ep, rows, strict=True) if isinstance(r.get(k), (int, float))]
            if pts:
                b.plot(*zip(*pts, strict=True), marker="o", ms=3, color=c, label=k.replace("_", " "))
        b.set_xlabel("epoch")
        b.set_ylabel("accuracy (%)")
        if b.lines:
            b.legend()
        for ax in (a, b):
            ax.grid(True, alpha=0.3)

    return svg(key, alt, draw)


def latency_spread(key: str, alt: str, rows: Sequence[dict[str, Any]]) -> Markup:
    """Per subject: a line from the fastest call to p99, a box from p50 to p90 (log time axis)."""

    def draw(fig: Any) -> None:
        ax = fig.add_subplot()
        for i, r in enumerate(rows):
            y = len(rows) - 1 - i
            ax.plot([r["min_ms"], r["p99_ms"]], [y, y], color="#555", lw=1)
            ax.plot([r["p50_ms"], r["p90_ms"]], [y, y], color=PALETTE[i % len(PALETTE)], lw=7, solid_capstyle="butt")
            ax.plot([r["p50_ms"]], [y], marker="|", ms=14, color="black")
        ax.set_yticks(range(len(rows)), [_short(f"{r['label']} b{r['batch']}") for r in rows][::-1])
        ax.set_xscale("log")
        ax.set_xlabel("latency (ms, log): line = fastest … p99, bar = p50 … p90, tick = p50")
        ax.grid(True, axis="x", which="both", alpha=0.3)

    return svg(key, alt, draw, size=(8.0, max(2.0, 0.45 * len(rows) + 1.1)))


def predictions(key: str, alt: str, rows: Sequence[dict[str, Any]]) -> Markup:
    """Predicted latency per profile with its error band."""

    def draw(fig: Any) -> None:
        ax = fig.add_subplot()
        for i, r in enumerate(rows):
            y = len(rows) - 1 - i
            ax.plot([r["low_ms"], r["high_ms"]], [y, y], color=PALETTE[i % len(PALETTE)], lw=6, alpha=0.45)
            ax.plot([r["total_ms"]], [y], marker="o", color=PALETTE[i % len(PALETTE)])
        names = [_short(f"{r['model']} · {r['profile']} · {r['precision']}", 44) for r in rows]
        ax.set_yticks(range(len(rows)), names[::-1])
        ax.set_xscale("log")
        ax.set_xlabel("predicted latency (ms, log): dot = estimate, bar = error band")
        ax.grid(True, axis="x", which="both", alpha=0.3)

    return svg(key, alt, draw, size=(8.0, max(2.0, 0.45 * len(rows) + 1.1)))


def tradeoff(key: str, alt: str, points: Sequence[dict[str, Any]]) -> Markup:
    """Accuracy (y) against p50 latency (x, log); marker area grows with the model file size."""

    def draw(fig: Any) -> None:
        ax = fig.add_subplot()
        for i, p in enumerate(points):
            mib = (p.get("file_bytes") or 0) / 2**20
            area = 30 + 40 * math.sqrt(max(mib, 0.01))
            ax.scatter([p["p50_ms"]], [p["top1"]], s=area, alpha=0.6, color=PALETTE[i % len(PALETTE)])
            ax.annotate(
                f"{_short(p['label'], 28)} ({mib:.1f} MiB)",
                (p["p50_ms"], p["top1"]),
                fontsize=8,
                xytext=(5, 4),
                textcoords="offset points",
            )
        ax.set_xscale("log")
        ax.set_xlabel("p50 latency (ms, log)")
        ax.set_ylabel("top-1 accuracy (%)")
        ax.grid(True, which="both", alpha=0.3)
        ax.margins(0.25)

    return svg(key, alt, draw, size=(8.0, 4.2))
