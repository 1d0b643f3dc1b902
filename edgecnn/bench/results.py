"""Results I/O: JSON (with the environment), CSV (flat, one row per subject × batch), and rows for people."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

from edgecnn.bench.measure import BenchResult
from edgecnn.errors import ConfigError

CSV_FIELDS = (
    "label",
    "kind",
    "model",
    "backend",
    "device",
    "precision",
    "resolution",
    "batch",
    "threads",
    "p50_ms",
    "p90_ms",
    "p99_ms",
    "mean_ms",
    "std_ms",
    "min_ms",
    "cov",
    "iters",
    "warmup",
    "throughput",
    "first_inference_ms",
    "load_s",
    "peak_rss_mb",
    "file_bytes",
    "ratio",
    "warnings",
    "cpu",
    "cores",
)


def to_json(results: list[BenchResult], per_layer: dict[str, Any] | None = None) -> dict[str, Any]:
    """The document ``edgecnn bench --json`` prints; ``environment`` is repeated in each result on purpose."""
    return {
        "schema": "edgecnn.bench/1",
        "results": [r.to_dict() for r in results],
        **({"per_layer": per_layer} if per_layer else {}),
    }


def to_csv(results: list[BenchResult]) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=CSV_FIELDS, extrasaction="ignore", lineterminator="\n")
    w.writeheader()
    for r in results:
        d = r.to_dict()
        d["warnings"] = " | ".join(r.warnings)
        d["cpu"] = r.environment.get("cpu")
        d["cores"] = r.environment.get("cores")
        w.writerow(d)
    return buf.getvalue()


def table_rows(results: list[BenchResult]) -> tuple[list[str], list[list[str]]]:
    # header widths size the console (cli.base.print_table): pad the subject header to the longest label
    width = max((len(r.label) for r in results), default=7)
    cols = ["subject".ljust(width), "backend".ljust(max((len(_short(r.backend)) for r in results), default=7))]
    cols += ["prec", "batch", "p50 ms", "p90 ms", "p99 ms", "CoV", "img/s", "first ms", "load s", "RSS MiB", "size MiB"]
    has_ratio = any(r.ratio is not None for r in results)
    if has_ratio:
        cols.append("× base")
    rows = []
    for r in results:
        row = [
            r.label,
            _short(r.backend),
            r.precision,
            str(r.batch),
            f"{r.p50_ms:.3f}",
            f"{r.p90_ms:.3f}",
            f"{r.p99_ms:.3f}",
            f"{r.cov:.1%}",
            f"{r.throughput:.1f}",
            f"{r.first_inference_ms:.1f}",
            f"{r.load_s:.2f}",
            f"{r.peak_rss_mb:.0f}",
            f"{r.file_bytes / 2**20:.1f}" if r.file_bytes else "-",
        ]
        if has_ratio:
            row.append(f"{r.ratio:.2f}" if r.ratio is not None else "-")
        rows.append(row)
    # cli.base.print_table sizes the console from the header lengths (+40): pad the first header so that the widest
    # cell of every column fits and nothing is truncated
    need = sum(max([len(c), *(len(r[i]) for r in rows)]) + 3 for i, c in enumerate(cols)) + 4
    have = sum(len(c) for c in cols) + 40
    if need > have:
        cols[0] = cols[0].ljust(len(cols[0]) + need - have)
    return cols, rows


def read_results(path: Path) -> list[dict[str, Any]]:
    """Read ``edgecnn bench --json`` output back (for plots); a wrong file is a ConfigError, not a traceback."""
    try:
        doc = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ConfigError(f"cannot read bench results {str(path)!r}: {e}") from None
    if not isinstance(doc, dict) or doc.get("schema") != "edgecnn.bench/1" or not isinstance(doc.get("results"), list):
        raise ConfigError(
            f"{str(path)!r} is not `edgecnn bench --json` output", hint="write it with `edgecnn bench ... --json > f`"
        )
    return doc["results"]


def _short(backend: str) -> str:
    return backend.replace("onnxruntime", "ort").replace("openvino", "ov").replace("pytorch-", "pt-")


def write_results(out: Path, doc: dict[str, Any], markdown: str | list[str]) -> None:
    """A benchmark's record: ``doc`` as JSON at ``out`` (numpy scalars as floats) and ``markdown`` (text or lines)
    beside it as ``out`` with ``.md`` — written together, so the two never describe different runs."""
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(doc, indent=2, default=float) + "\n")
    text = markdown if isinstance(markdown, str) else "\n".join(markdown) + "\n"
    out.with_suffix(".md").write_text(text)
