"""What ``edgecnn report`` reads: each path is recognised by what is in it, never by its name.

- a bundle directory (``manifest.json``) — checked with the runtime's own load and golden self-test;
- a training run directory (``log.jsonl`` and / or ``model.json`` from ``edgecnn train``);
- a quantization report (``report.json`` from ``edgecnn quantize``, or its ``OUT-report`` directory);
- an explanation directory or file (``explain.json`` / ``compare.json`` from ``edgecnn explain``);
- JSON from ``edgecnn bench --json``, ``edgecnn profile --json`` or ``edgecnn analyze --json``.

Anything else is a :class:`~edgecnn.errors.ConfigError` naming the path and what would have been accepted.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgecnn import limits as L
from edgecnn.errors import ConfigError

ACCEPTED = (
    "a bundle directory, an `edgecnn train` run directory, an `edgecnn quantize` report, an `edgecnn explain` "
    "output, or JSON from `edgecnn bench/profile/analyze --json`"
)
MAX_JSON_BYTES = 64 * 2**20


@dataclass(kw_only=True)
class Inputs:
    """Every input, sorted by kind (each list keeps the order given on the command line)."""

    bundles: list[Path] = field(default_factory=list)
    runs: list[dict[str, Any]] = field(default_factory=list)  # {"path", "history", "checkpoint"}
    bench: list[dict[str, Any]] = field(default_factory=list)  # {"path", "doc"}
    quant: list[dict[str, Any]] = field(default_factory=list)  # {"path", "doc", "images": {name: bytes}}
    profiles: list[dict[str, Any]] = field(default_factory=list)
    analyses: list[dict[str, Any]] = field(default_factory=list)
    explains: list[dict[str, Any]] = field(default_factory=list)  # {"path", "doc", "images": {name: bytes}}
    compares: list[dict[str, Any]] = field(default_factory=list)


def read_json(path: Path) -> Any:
    """A JSON file as untrusted input: size-capped, strict UTF-8, a ConfigError naming the file on failure."""
    try:
        size = path.stat().st_size
        if size > MAX_JSON_BYTES:
            raise ConfigError(f"report input {str(path)!r} is {size} bytes (more than {MAX_JSON_BYTES})")
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError) as e:
        raise ConfigError(f"cannot read report input {str(path)!r}: {str(e)[:200]}", hint=f"pass {ACCEPTED}") from None


def _read_log(path: Path) -> list[dict[str, Any]]:
    """``log.jsonl``: one object per epoch; a line cut short by an interrupted run is skipped, as on resume."""
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(row, dict) and isinstance(row.get("epoch"), int):
            rows.append(row)
    return rows


def _pngs(folder: Path, names: list[str]) -> dict[str, bytes]:
    """The named PNG files that exist in ``folder`` (names are taken from JSON: only plain names inside it)."""
    out = {}
    for name in names:
        if not isinstance(name, str) or Path(name).name != name or not name.lower().endswith(".png"):
            continue
        p = folder / name
        if p.is_file() and p.stat().st_size <= 8 * 2**20:
            out[name] = p.read_bytes()
    return out


def kind_of(doc: Any) -> str | None:
    """Which command wrote this JSON document (by its keys), or None."""
    if not isinstance(doc, dict):
        return None
    if doc.get("schema") == "edgecnn.bench/1" and isinstance(doc.get("results"), list):
        return "bench"
    if {"fp32_vs_int8", "kept_float", "size_bytes", "target"} <= doc.keys():
        return "quant"
    if {"profile", "total_ms", "low_ms", "high_ms", "precision"} <= doc.keys():
        return "profile"
    if {"params", "macs", "input_shape", "weight_bytes_fp32"} <= doc.keys():
        return "analysis"
    if {"method", "images", "kind", "source"} <= doc.keys() and isinstance(doc["images"], list):
        return "explain"
    if {"float", "bundle", "summary", "rows"} <= doc.keys():
        return "compare"
    return None


def _add_json(inputs: Inputs, path: Path, doc: Any) -> None:
    kind = kind_of(doc)
    if kind is None:
        raise ConfigError(f"report input {str(path)!r} is JSON that no edgecnn command writes", hint=f"pass {ACCEPTED}")
    entry: dict[str, Any] = {"path": str(path), "doc": doc}
    if kind == "bench":
        inputs.bench.append(entry)
    elif kind == "quant":
        inputs.quant.append(entry)
    elif kind == "profile":
        inputs.profiles.append(entry)
    elif kind == "analysis":
        inputs.analyses.append(entry)
    elif kind == "explain":
        names = [r.get("overlay") for r in doc["images"] if isinstance(r, dict)]
        inputs.explains.append({**entry, "images": _pngs(path.parent, names)})
    else:
        names = [f"{Path(str(r.get('image', ''))).stem}-compare.png" for r in doc["rows"] if isinstance(r, dict)]
        inputs.compares.append({**entry, "images": _pngs(path.parent, names)})


def collect(paths: list[str | Path]) -> Inputs:
    """Sort ``paths`` into :class:`Inputs`; every path is checked before anything heavy runs."""
    if not paths:
        raise ConfigError("nothing to report on", hint=f"pass {ACCEPTED}")
    if len(paths) > L.MAX_BATCH:
        raise ConfigError(f"{len(paths)} report inputs (at most {L.MAX_BATCH})")
    inputs = Inputs()
    for raw in paths:
        path = Path(raw)
        try:
            exists, is_dir = path.exists(), path.is_dir()
        except (OSError, ValueError) as e:
            raise ConfigError(f"report input {str(raw)[:200]!r} is not usable: {e}") from None
        if not exists:
            raise ConfigError(f"report input {str(path)!r} does not exist", hint=f"pass {ACCEPTED}")
        if not is_dir:
            _add_json(inputs, path, read_json(path))
            continue
        found = False
        if (path / "manifest.json").is_file():
            inputs.bundles.append(path)
            found = True
        if (path / "log.jsonl").is_file() or (path / "model.json").is_file():
            history = _read_log(path / "log.jsonl") if (path / "log.jsonl").is_file() else []
            ckpt = read_json(path / "model.json") if (path / "model.json").is_file() else None
            inputs.runs.append({"path": str(path), "history": history, "checkpoint": ckpt})
            found = True
        for name in ("report.json", "explain.json", "compare.json"):
            if (path / name).is_file():
                _add_json(inputs, path / name, read_json(path / name))
                found = True
        if not found:
            raise ConfigError(
                f"report input {str(path)!r} is a directory with nothing to report", hint=f"pass {ACCEPTED}"
            )
    return inputs


def quant_report_beside(bundle: Path) -> Path | None:
    """``edgecnn quantize --out B`` writes its report to ``B-report/report.json`` by default."""
    p = bundle.parent / f"{bundle.name}-report" / "report.json"
    return p if p.is_file() else None
