"""The sections about what was measured or predicted: quantization, latency (measured, per layer, predicted),
accuracy × latency × size, explanations. Plain data plus SVG figures; an empty result leaves the section out."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

from edgecnn.report import figures

WORST_LAYERS = 15
# bench result fields the page shows; a result that lacks one (an older or hand-edited file) shows "–"
BENCH_FIELDS = (
    "label", "kind", "model", "backend", "device", "precision", "batch", "threads", "p50_ms", "p90_ms", "p99_ms",
    "min_ms", "mean_ms", "std_ms", "cov", "iters", "throughput", "file_bytes", "ratio",
)  # fmt: skip
PROFILE_FIELDS = (
    "model", "profile", "precision", "resolution", "batch", "total_ms", "low_ms", "high_ms", "error_band",
    "weights_mib", "working_set_mib",
)  # fmt: skip


def _num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def quantization(
    bundles: list[tuple[dict[str, Any], dict[str, Any]]], reports: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """One entry per INT8 bundle (its manifest's quantization record, plus the ``edgecnn quantize`` report found
    beside it) and per report passed on its own. ``bundles``: (model card, manifest) pairs."""
    out: list[dict[str, Any]] = []
    used: set[str] = set()
    for card, m in bundles:
        rec = m.get("quantization")
        if not rec:
            continue
        rep = next((r for r in reports if r.get("bundle") == card["path"]), None)
        if rep:
            used.add(rep["path"])
        out.append(_entry(len(out), card["name"], card["model"], m["target"], rec, rep["doc"] if rep else None))
    for r in reports:
        if r["path"] not in used:
            d = r["doc"]
            rec = {
                **_dict(d.get("settings")),
                "fp32_vs_int8": d.get("fp32_vs_int8"),
                "layer_errors": d.get("layer_errors_worst10") or [],
                "kept_float": d.get("kept_float") or [],
                "fallback_trials": d.get("fallback_trials") or [],
                "calibration": d.get("calibration"),
                "evaluation": d.get("evaluation"),
            }
            out.append(_entry(len(out), Path(r["path"]).parent.name, d.get("model", "?"), d.get("target", "?"), rec, d))
    return out


def _entry(i: int, name: str, model: str, target: str, rec: dict[str, Any], report: dict[str, Any] | None) -> dict:
    c = _dict(rec.get("fp32_vs_int8"))
    metrics = []
    for key, label, pct in (
        ("top1", "top-1", True),
        ("top5", "top-5", True),
    ):
        if f"fp32_{key}" in c:
            metrics.append({"measure": label, "fp32": c[f"fp32_{key}"], "int8": c.get(f"int8_{key}"), "pct": pct})
    errors = sorted(_dicts(rec.get("layer_errors")), key=lambda e: e["sqnr_db"] if _num(e.get("sqnr_db")) else 0)
    entry: dict[str, Any] = {
        "id": f"quant-{i + 1}",
        "name": name,
        "model": model,
        "target": target,
        "settings": {
            k: rec.get(k)
            for k in ("backend", "format", "activations", "weights", "method", "per_channel", "preset", "rounding")
            if rec.get(k) is not None
        },
        "calibration": _dict(rec.get("calibration")),
        "evaluation": _dict(rec.get("evaluation")),
        "compare": _dict(c),
        "metrics": metrics,
        "layer_errors": errors,
        "kept_float": _dicts(rec.get("kept_float")),
        "fallback_trials": list(rec.get("fallback_trials") or []),
        "lint": _dicts((report or {}).get("lint")),
        "size_bytes": _dict((report or {}).get("size_bytes")),
        "latency": _latency((report or {}).get("latency")),
        "recommendation": ((report or {}).get("calibration_check") or {}).get("recommendation"),
        "figure": None,
    }
    worst = errors[:WORST_LAYERS]
    if worst:
        entry["figure"] = figures.per_layer_bars(
            f"quant-{i}",
            f"SQNR of the {len(worst)} worst INT8 layers of {name} against the float model, in dB (lower is worse)",
            [f"{e.get('layer') or e.get('node')} ({e.get('op_type')})" for e in worst],
            [float(e.get("sqnr_db", 0)) for e in worst],
            "SQNR vs float (dB, lower is worse)",
        )
    return entry


def _dict(v: Any) -> dict[str, Any]:
    return v if isinstance(v, dict) else {}


def _dicts(v: Any) -> list[dict[str, Any]]:
    return [x for x in v if isinstance(x, dict)] if isinstance(v, list) else []


def _latency(lat: Any) -> dict[str, Any] | None:
    """The quantize report's fp32-vs-int8 timing, when it has the shape ``edgecnn quantize`` writes."""
    if not isinstance(lat, dict) or not all(
        isinstance(lat.get(k), dict) and _num(lat[k].get("p50_ms")) and _num(lat[k].get("p90_ms"))
        for k in ("fp32", "int8")
    ):
        return None
    return {**lat, "environment": _dict(lat.get("environment")), "note": str(lat.get("note", ""))} | {
        k: lat.get(k) for k in ("batch", "threads", "speedup_p50")
    }


def _env_key(env: dict[str, Any]) -> str:
    return json.dumps(env, sort_keys=True)


def latency(bench: list[dict[str, Any]]) -> dict[str, Any] | None:
    """Every measured result (with the environment it ran in, numbered), the spread figure and the per-layer views."""
    rows, envs, layer_views = [], {}, []
    for d in bench:
        for r in d["doc"]["results"]:
            if not isinstance(r, dict) or not _num(r.get("p50_ms")):
                continue
            env = r.get("environment") if isinstance(r.get("environment"), dict) else {}
            envs.setdefault(_env_key(env), {"n": len(envs) + 1, "env": env, "from": d["path"]})
            row = {k: r.get(k) for k in BENCH_FIELDS}
            for k in ("p90_ms", "p99_ms", "min_ms"):  # the spread figure needs numbers: a missing one is p50
                row[k] = r[k] if _num(r.get(k)) else r["p50_ms"]
            row["label"] = str(r.get("label") or "?")
            row["warnings"] = [str(w) for w in r.get("warnings") or [] if isinstance(w, str)]
            rows.append({**row, "env": envs[_env_key(env)]["n"], "from": d["path"]})
        for label, view in (d["doc"].get("per_layer") or {}).items():
            layer_views.append(_layer_view(len(layer_views), label, view))
    if not rows and not layer_views:
        return None
    fig = None
    if rows:
        fig = figures.latency_spread(
            "latency",
            f"Measured latency of {len(rows)} subject(s): fastest call to p99, with p50 and p90 marked",
            rows,
        )
    return {"rows": rows, "environments": list(envs.values()), "figure": fig, "per_layer": layer_views}


def _layer_view(i: int, label: str, view: dict[str, Any]) -> dict[str, Any]:
    layers = [x for x in view.get("layers") or [] if isinstance(x, dict)]
    top = sorted(layers, key=lambda x: -float(x.get("ms", 0)))[:WORST_LAYERS]
    return {
        "id": f"layers-{i + 1}",
        "label": label,
        "backend": view.get("backend"),
        "sum_ms": view.get("sum_ms"),
        "end_to_end_ms": view.get("end_to_end_ms"),
        "coverage": view.get("coverage"),
        "runs": view.get("runs"),
        "layers": layers,
        "figure": figures.per_layer_bars(
            f"layers-{i}",
            f"The {len(top)} slowest layers of {label} measured with {view.get('backend')}, in ms",
            [str(x.get("layer")) for x in top],
            [float(x.get("ms", 0)) for x in top],
            "measured time per call (ms)",
        )
        if top
        else None,
    }


def predictions(profiles: list[dict[str, Any]]) -> dict[str, Any] | None:
    """``edgecnn profile --json`` estimates: predicted ms with the profile's error band."""
    rows = []
    for d in profiles:
        doc = d["doc"]
        prov = doc.get("provenance")
        if not all(_num(doc.get(k)) for k in ("total_ms", "low_ms", "high_ms")):
            continue
        row = {k: doc.get(k) for k in PROFILE_FIELDS}
        rows.append({**row, "calibrated": bool(prov.get("calibration")) if isinstance(prov, dict) else False})
    if not rows:
        return None
    fig = figures.predictions(
        "predictions", f"Predicted latency on {len(rows)} hardware profile(s), each with its error band", rows
    )
    return {"rows": rows, "figure": fig}


def tradeoff(
    latency_rows: list[dict[str, Any]],
    cards: list[dict[str, Any]],
    manifests: list[dict[str, Any]],
    runs: list[dict[str, Any]],
    given: dict[str, float],
) -> dict[str, Any] | None:
    """Accuracy × latency × size for the measured subjects whose top-1 is known: given with ``--accuracy``, or
    recorded — an INT8 bundle's evaluation (``fp32_vs_int8``), the float model's top-1 on the same evaluation for a
    bundle of the same weights, or a training run's test top-1 for a bundle made from its checkpoint."""
    known: dict[str, tuple[float, str]] = {}
    by_sha: dict[str, tuple[float, str]] = {}
    for run in runs:
        test = run["final"].get("test_top1")
        if run["weights_sha256"] and isinstance(test, (int, float)):
            by_sha[run["weights_sha256"]] = (100 * test, f"test split of training run {run['path']}")
    for m in manifests:
        c = (m.get("quantization") or {}).get("fp32_vs_int8") or {}
        sha = (m["model"].get("source") or {}).get("sha256")
        if "fp32_top1" in c and sha:
            by_sha[sha] = (100 * c["fp32_top1"], f"float model on the INT8 evaluation set ({c.get('samples')} samples)")
    for card, m in zip(cards, manifests, strict=True):
        c = (m.get("quantization") or {}).get("fp32_vs_int8") or {}
        sha = (card["source"] or {}).get("sha256")
        if "int8_top1" in c:
            known[card["name"]] = (100 * c["int8_top1"], f"INT8 evaluation ({c.get('samples')} samples)")
        elif sha in by_sha:
            known[card["name"]] = by_sha[sha]
    for name, v in given.items():
        known[name] = (v, "given with --accuracy")
    points = []
    for r in latency_rows:
        acc = known.get(r["label"]) or known.get(Path(r["label"]).name) or known.get(r.get("model", ""))
        if acc is None or r.get("batch") != 1:
            continue
        points.append({**r, "top1": acc[0], "accuracy_from": acc[1]})
    if not points:
        return None
    fig = figures.tradeoff(
        "tradeoff",
        f"Top-1 accuracy against p50 latency at batch 1 for {len(points)} subject(s); marker size grows with file size",
        points,
    )
    return {"points": points, "figure": fig}


def _data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def explanations(explains: list[dict[str, Any]], compares: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``edgecnn explain`` outputs: each image's overlay (embedded), class, score; ``explain compare`` summaries."""
    out = []
    for d in explains:
        doc = d["doc"]
        images = []
        for r in doc["images"]:
            if not isinstance(r, dict):
                continue
            png = d["images"].get(str(r.get("overlay")))
            images.append(
                {
                    **r,
                    "src": _data_uri(png) if png else None,
                    "alt": f"{doc.get('method')} map of {Path(str(r.get('image'))).name} for class "
                    f"{r.get('label') or r.get('class')} (score {float(r.get('score') or 0):.3f})",
                }
            )
        doc = {**doc, "options": _dict(doc.get("options"))}
        out.append({"kind": "explain", "path": d["path"], "doc": doc, "images": images})
    for d in compares:
        doc = d["doc"]
        images = [
            {"name": n, "src": _data_uri(png), "alt": f"{n}: the picture, the float model's map, the bundle's map"}
            for n, png in sorted(d["images"].items())
        ]
        doc = {**doc, "summary": _dict(doc.get("summary"))}
        out.append({"kind": "compare", "path": d["path"], "doc": doc, "images": images})
    return out
