"""Inputs → one self-contained HTML file: the context of every section, the Jinja2 template, the atomic write.

The page needs nothing but itself: CSS inline, figures inline SVG (explanation overlays as ``data:`` PNGs), the raw
inputs embedded as JSON for machines, one small script that only adds sorting to tables. A Content-Security-Policy
forbids every fetch and allows only that script (by its hash), so even a string that escaped escaping could not
load or run anything. Every user string goes through Jinja2's autoescape. Same inputs → same bytes: nothing here
reads a clock."""

from __future__ import annotations

import base64
import hashlib
import json
from importlib.resources import files
from pathlib import Path
from typing import Any

from edgecnn.errors import ConfigError
from edgecnn.fileio import atomic_write_bytes
from edgecnn.report import measured_sections, model_sections
from edgecnn.report.inputs import Inputs, quant_report_beside, read_json
from edgecnn.sdk import import_sdk

SCHEMA = "edgecnn.report/1"
SECTIONS = (
    ("model-card", "Model card"),
    ("verification", "Bundle verification"),
    ("static-analysis", "Static analysis"),
    ("training", "Training curves"),
    ("quantization", "Quantization"),
    ("latency", "Latency"),
    ("tradeoff", "Accuracy × latency × size"),
    ("explanations", "Explanations"),
)


def _quant_reports(inputs: Inputs) -> list[dict[str, Any]]:
    """The reports given, plus the one ``edgecnn quantize`` wrote beside each INT8 bundle; each tied to its bundle."""
    bundles = {b.resolve(): b for b in inputs.bundles}
    reports = [dict(r) for r in inputs.quant]
    have = {Path(r["path"]).resolve() for r in reports}
    for b in inputs.bundles:
        p = quant_report_beside(b)
        if p is not None and p.resolve() not in have:
            doc = read_json(p)
            if isinstance(doc, dict) and "fp32_vs_int8" in doc:
                reports.append({"path": str(p), "doc": doc})
    for r in reports:
        folder = Path(r["path"]).resolve().parent
        if folder.name.endswith("-report"):
            b = bundles.get(folder.parent / folder.name[: -len("-report")])
            r["bundle"] = str(b) if b is not None else None
    return reports


def build_context(
    inputs: Inputs, *, accuracy: dict[str, float] | None = None, selftest: bool = True, title: str | None = None
) -> dict[str, Any]:
    """Everything the template shows, plus ``data`` (the JSON embedded in the page)."""
    from edgecnn.runtime import Manifest

    manifests = [Manifest.read(b).data for b in inputs.bundles]  # a bad manifest is a one-line error here
    cards = [model_sections.model_card(i, b, m) for i, (b, m) in enumerate(zip(inputs.bundles, manifests, strict=True))]
    checks = [model_sections.verification(b, selftest=selftest) for b in inputs.bundles]
    for card, m, chk in zip(cards, manifests, checks, strict=True):
        card["verification"] = chk
        card["files"] = model_sections.files_table(m)
        card["parity"] = m.get("parity")
    runs = model_sections.training_runs(inputs.runs)
    quant_reports = _quant_reports(inputs)
    lat = measured_sections.latency(inputs.bench)
    ctx: dict[str, Any] = {
        "cards": cards,
        "analyses": model_sections.static_analyses(manifests, inputs.analyses),
        "runs": runs,
        "quant": measured_sections.quantization(list(zip(cards, manifests, strict=True)), quant_reports),
        "latency": lat,
        "predictions": measured_sections.predictions(inputs.profiles),
        "tradeoff": measured_sections.tradeoff(
            lat["rows"] if lat else [], cards, manifests, runs, dict(accuracy or {})
        ),
        "explanations": measured_sections.explanations(inputs.explains, inputs.compares),
    }
    present = {
        "model-card": bool(cards),
        "verification": bool(cards),
        "static-analysis": bool(ctx["analyses"]),
        "training": bool(runs),
        "quantization": bool(ctx["quant"]),
        "latency": bool(lat or ctx["predictions"]),
        "tradeoff": bool(ctx["tradeoff"]),
        "explanations": bool(ctx["explanations"]),
    }
    ctx["sections"] = [(sid, name) for sid, name in SECTIONS if present[sid]]
    models = sorted({c["model"] for c in cards} | {r["model"] for r in runs} | {q["model"] for q in ctx["quant"]})
    ctx["models"] = models
    ctx["title"] = title or ("Deployment report: " + (", ".join(models) if models else "edgecnn results"))
    ctx["data"] = {
        "schema": SCHEMA,
        "bundles": [
            {"path": c["path"], "manifest": m, "verification": c["verification"]}
            for c, m in zip(cards, manifests, strict=True)
        ],
        "training_runs": [{k: r[k] for k in ("path", "model", "rows", "final", "weights_sha256")} for r in runs],
        "quantization_reports": [{"path": r["path"], "report": r["doc"]} for r in quant_reports],
        "bench": [{"path": d["path"], "results": d["doc"]} for d in inputs.bench],
        "profiles": [{"path": d["path"], "estimate": d["doc"]} for d in inputs.profiles],
        "analyses": [{"path": d["path"], "analysis": d["doc"]} for d in inputs.analyses],
        "explanations": [{"path": d["path"], "explain": d["doc"]} for d in inputs.explains + inputs.compares],
        "accuracy_given": dict(accuracy or {}),
    }
    return ctx


def embed_json(data: Any) -> str:
    """JSON safe inside ``<script type="application/json">``: ``<``, ``>`` and ``&`` as \\u escapes, so no ``</script>``
    or ``<!--`` in the data can end or change the element."""
    text = json.dumps(data, indent=1, sort_keys=True, default=float, allow_nan=False, ensure_ascii=False)
    return text.replace("&", "\\u0026").replace("<", "\\u003c").replace(">", "\\u003e")


def _asset(name: str) -> str:
    return files("edgecnn.report").joinpath("templates", name).read_text(encoding="utf-8")


def render_html(ctx: dict[str, Any]) -> str:
    """The page as text (Jinja2, autoescape on)."""
    jinja2 = import_sdk("jinja2", "report")
    from markupsafe import Markup

    env = jinja2.Environment(
        loader=jinja2.FunctionLoader(lambda name: _asset(name)),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters.update(_FILTERS)
    script = _asset("sort.js")
    digest = base64.b64encode(hashlib.sha256(script.encode("utf-8")).digest()).decode("ascii")
    try:
        data = embed_json(ctx["data"])
    except ValueError as e:  # NaN / infinity in an input: JSON cannot carry it
        raise ConfigError(f"a report input holds a number JSON cannot carry: {e}") from None
    try:
        return env.get_template("report.html.j2").render(
            **ctx,
            css=Markup(_asset("report.css")),
            script=Markup(script),
            script_hash=digest,
            data_json=Markup(data),
        )
    except (jinja2.UndefinedError, TypeError, AttributeError, KeyError, ValueError) as e:
        # the inputs are files from elsewhere: a field of an unexpected type is a bad input, said in one line
        raise ConfigError(
            f"cannot render the report: an input has a field of an unexpected shape ({type(e).__name__}: {e})",
            hint="pass files written by edgecnn, unedited",
        ) from None


def write_html(text: str, out: Path) -> Path:
    """Write ``out`` atomically: a temp file beside it, then a rename (a reader never sees half a page, and an
    existing report is replaced only by a complete one)."""
    out = Path(out)
    if out.is_dir():
        raise ConfigError(f"--out {str(out)!r} is a directory", hint="name the HTML file, e.g. --out report.html")
    return atomic_write_bytes(out, text.encode("utf-8"), mode=0o644)


# -- template filters ----------------------------------------------------------------------------------------------


def _num(v: Any, digits: int = 3) -> str:
    if v is None or isinstance(v, bool):
        return "–" if v is None else str(v)
    if isinstance(v, int):
        return f"{v:,}"
    if isinstance(v, float):
        return f"{v:.{digits}f}"
    return str(v)


def _pct(v: Any, digits: int = 2) -> str:
    return "–" if not isinstance(v, (int, float)) else f"{100 * v:.{digits}f} %"


def _bytes(v: Any) -> str:
    if not isinstance(v, (int, float)):
        return "–"
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(v) < 1024 or unit == "GiB":
            return f"{v:.0f} {unit}" if unit == "B" else f"{v:.1f} {unit}"
        v /= 1024
    return str(v)


def _si(v: Any) -> str:
    if not isinstance(v, (int, float)):
        return "–"
    for prefix, div in (("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if abs(v) >= div:
            return f"{v / div:.2f} {prefix}"
    return f"{v:g}"


def _shape(v: Any) -> str:
    return "×".join(str(x) for x in v) if isinstance(v, list | tuple) else str(v)


def _compact(v: Any) -> str:
    """A value for a key/value table cell: lists and objects as compact JSON."""
    if isinstance(v, dict | list):
        return json.dumps(v, sort_keys=True, default=str)
    return _num(v, 4)


_FILTERS = {"num": _num, "pct": _pct, "bytes": _bytes, "si": _si, "shape": _shape, "compact": _compact}
