"""The sections about the model itself: model card, bundle verification, static analysis, training curves.

Each builder returns plain data (JSON-able dicts, figures as SVG markup) for the template, or an empty list when
its inputs are absent — the template leaves a section out when it has nothing to show."""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path
from typing import Any

from edgecnn.errors import EdgeCNNError
from edgecnn.report import figures

log = logging.getLogger(__name__)
TRAIN_COLUMNS = ("epoch", "lr", "train_loss", "val_loss", "val_top1", "val_top5", "epoch_time_s")


def bundle_id(index: int) -> str:
    return f"bundle-{index + 1}"


def model_card(index: int, bundle: Path, manifest: dict[str, Any]) -> dict[str, Any]:
    """What the bundle says about itself: the architecture, where the weights came from, preprocessing, labels."""
    model = manifest["model"]
    options = {k: v for k, v in (model.get("options") or {}).items() if v is not None}
    source = model.get("source") or {}
    return {
        "id": bundle_id(index),
        "path": str(bundle),
        "name": bundle.name,
        "model": model["name"],
        "options": options,
        "params": model.get("params"),
        "macs": model.get("macs"),
        "resolution": model.get("resolution"),
        "target": manifest["target"],
        "precision": manifest["precision"],
        "entry": manifest["entry"],
        "backend": (manifest.get("backend_options") or {}).get("runtime_backend"),
        "created": manifest.get("created"),
        "producer": manifest.get("producer") or {},
        "source": source,
        "inputs": manifest["inputs"],
        "outputs": manifest["outputs"],
        "preprocessing": manifest.get("preprocessing") or {},
        "labels": manifest.get("labels") or [],
    }


def verification(bundle: Path, *, selftest: bool) -> dict[str, Any]:
    """The runtime's own checks: manifest schema, tree, sizes and sha256 of every file, the golden archive
    (``open_bundle``) — then, with ``selftest``, the golden vectors run on this machine (``Session.selftest``)."""
    from edgecnn.runtime import load, open_bundle

    out: dict[str, Any] = {"files_ok": False, "files_error": None, "selftest": None, "selftest_error": None}
    try:
        open_bundle(bundle)
        out["files_ok"] = True
    except EdgeCNNError as e:
        out["files_error"] = str(e)
        return out
    if not selftest:
        out["selftest_error"] = "not run (--no-selftest)"
        return out
    try:
        out["selftest"] = load(bundle).selftest()
    except EdgeCNNError as e:  # a missing SDK or a backend that cannot open it here: say so, keep the report
        out["selftest_error"] = str(e)
    return out


def files_table(manifest: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"name": k, "size": v["size"], "sha256": v["sha256"]} for k, v in sorted(manifest["files"].items())]


def _analysis_from_manifest(manifest: dict[str, Any]) -> dict[str, Any] | None:
    """``edgecnn.analysis`` on the zoo architecture the bundle records (built on the meta device: shapes only)."""
    model = manifest["model"]
    if not model.get("resolution"):
        return None
    try:
        import torch

        from edgecnn.analysis import analyze
        from edgecnn.models.zoo import create_model
    except ImportError:
        log.info("static analysis needs torch: skipped for %s", model["name"])
        return None
    try:
        with torch.device("meta"):
            net = create_model(model["name"], **(model.get("options") or {}))
        stats = analyze(net, model["resolution"])
    except (EdgeCNNError, TypeError, RuntimeError) as e:
        log.info("no static analysis for %s: %s", model["name"], e)
        return None
    return {"resolution": model["resolution"], "batch": 1, **stats.to_dict()}


def static_analyses(manifests: list[dict[str, Any]], docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One analysis per distinct architecture × resolution: from ``edgecnn analyze --json`` inputs, else computed
    from each bundle's recorded architecture."""
    seen: dict[tuple, dict[str, Any]] = {}
    for d in docs:
        doc = d["doc"]
        key = (doc.get("model"), doc.get("resolution") or doc["input_shape"][-1], doc["params"])
        seen.setdefault(key, {**doc, "from": d["path"]})
    for m in manifests:
        model = m["model"]
        key = (model["name"], model.get("resolution"), model.get("params"))
        if key not in seen and (doc := _analysis_from_manifest(m)) is not None:
            seen[key] = {**doc, "model": model["name"], "from": "computed from the bundle's recorded architecture"}
    out = []
    for i, doc in enumerate(seen.values()):
        layers = doc.get("layers") or []
        res = doc.get("resolution") or doc["input_shape"][-1]
        entry = {
            "id": f"analysis-{i + 1}",
            "model": doc.get("model") or "?",
            "resolution": res,
            "from": doc["from"],
            "totals": {k: doc.get(k) for k in ("params", "macs", "activation_bytes", "peak_activation_bytes")}
            | {k: doc.get(k) for k in ("weight_bytes_fp32", "weight_bytes_fp16", "weight_bytes_int8")},
            "layers": layers,
            "figure": None,
        }
        if layers:
            entry["figure"] = figures.layer_profile(
                f"analysis-{i}",
                f"MACs and fp32 output memory of each of the {len(layers)} layers of {entry['model']} at {res} px, "
                "in network order",
                [int(x["macs"]) for x in layers],
                [int(x["activation_bytes"]) for x in layers],
            )
        out.append(entry)
    return out


def training_runs(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per run directory: the epoch table, the curves and the final test metrics of its checkpoint."""
    out = []
    for i, run in enumerate(runs):
        ckpt = run["checkpoint"] if isinstance(run["checkpoint"], dict) else {}
        arch = ckpt.get("arch") or {}
        metrics = ckpt.get("metrics") or {}
        rows = run["history"]
        name = arch.get("name") or (ckpt.get("recipe") or {}).get("model", {}).get("name") or "?"
        entry = {
            "id": f"run-{i + 1}",
            "path": run["path"],
            "model": name,
            "options": {k: v for k, v in (arch.get("options") or {}).items() if v is not None},
            "columns": [c for c in TRAIN_COLUMNS if any(c in r for r in rows)],
            "rows": rows,
            "final": {k: metrics.get(k) for k in ("epoch", "val_top1", "test_top1", "test_top5") if k in metrics},
            "classes": ckpt.get("classes") or [],
            "weights_sha256": _weights_sha256(Path(run["path"])),
            "figure": None,
        }
        if rows:
            entry["figure"] = figures.training_curves(
                f"train-{i}",
                f"Training curves of {name} ({run['path']}): loss and validation accuracy over {len(rows)} epoch(s)",
                rows,
            )
        out.append(entry)
    return out


def _weights_sha256(run_dir: Path) -> str | None:
    p = run_dir / "model.safetensors"
    if not p.is_file():
        return None
    h = hashlib.sha256()
    with open(p, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()
