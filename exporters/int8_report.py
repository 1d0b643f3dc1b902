"""The quantization report: fp32 vs INT8 accuracy and agreement, SQNR / cosine, the worst layers, what stayed
float, file sizes and latency on this machine — as JSON (for tools), Markdown (for people) and PNG (at a glance).

Latency compares the fp32 and INT8 bundles of the same target on the same backend, interleaved in rounds so
background load hits both alike (docs/architecture.md, 9); the machine fingerprint is recorded with the figures.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger(__name__)
MODEL_FILES = ("model.onnx", "model.xml", "model.bin")


def model_bytes(manifest: dict[str, Any]) -> int:
    return sum(meta["size"] for name, meta in manifest["files"].items() if name in MODEL_FILES)


def interleaved_latency(
    sessions: dict[str, Any], x: np.ndarray, *, rounds: int = 3, warmup: int = 5, iters: int = 30
) -> dict[str, dict[str, Any]]:
    """p50/p90/p99 per session over ``rounds`` × ``iters`` calls, the sessions taking turns each round."""
    import time

    from edgecnn.runtime.timing import summarize

    for s in sessions.values():
        for _ in range(warmup):
            s.predict(x)
    samples: dict[str, list[float]] = {k: [] for k in sessions}
    round_p50: dict[str, list[float]] = {k: [] for k in sessions}
    for _ in range(rounds):
        for k, s in sessions.items():
            times = []
            for _ in range(iters):
                t = time.perf_counter()
                s.predict(x)
                times.append(time.perf_counter() - t)
            samples[k] += times
            round_p50[k].append(float(np.median(times) * 1e3))
    return {
        k: {**summarize(v), "round_p50_ms": round_p50[k], "warmup": warmup, "rounds": rounds}
        for k, v in samples.items()
    }


def build_report(
    int8_bundle: Path,
    net: Any,
    *,
    findings: list[dict[str, Any]],
    threads: int | None = None,
    measure_latency: bool = True,
    calibration_check: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Everything the report shows, from the INT8 bundle plus a throw-away fp32 bundle of the same target
    (``calibration_check``: :class:`edgecnn.quant.calib_check.CalibrationCheck` as a dict)."""
    from edgecnn.exporters.driver import export_bundle
    from edgecnn.exporters.options import ExportOptions
    from edgecnn.precision import Precision
    from edgecnn.runtime import load
    from edgecnn.runtime.env import fingerprint
    from edgecnn.runtime.manifest import Manifest

    parity = Manifest.read(int8_bundle).data["parity"] or {}
    q = load(int8_bundle, backend=parity.get("backend"))  # the backend that verified it at export
    m = q.manifest.data
    rec = m["quantization"] or {}
    report: dict[str, Any] = {
        "model": m["model"]["name"],
        "target": m["target"],
        "backend": q.backend_name,
        "resolution": m["model"]["resolution"],
        "settings": {k: rec.get(k) for k in ("backend", "format", "activations", "weights", "method", "preset")},
        "calibration": rec.get("calibration"),
        "evaluation": rec.get("evaluation"),
        "calibration_check": calibration_check,
        "qat": rec.get("qat"),
        "fp32_vs_int8": rec.get("fp32_vs_int8"),
        "layer_errors_worst10": rec.get("layer_errors", [])[:10],
        "kept_float": rec.get("kept_float", []),
        "fallback_trials": rec.get("fallback_trials", []),
        "lint": findings,
        "parity": m["parity"],
        "size_bytes": {"int8": model_bytes(m)},
    }
    # Named as the driver's work dirs (.NAME.tmp-PID-*): if this process is killed, the next export of the bundle
    # removes it (exporters/driver.py, clean_stale).
    tmp = Path(tempfile.mkdtemp(prefix=f".{int8_bundle.name}.tmp-{os.getpid()}-fp32ref-", dir=int8_bundle.parent))
    try:
        opts = ExportOptions(target=m["target"], precision=Precision.FP32, resolution=m["model"]["resolution"])
        fp32 = export_bundle(net, opts, tmp / "fp32", overwrite=True)
        report["size_bytes"]["fp32"] = model_bytes(fp32.manifest)
        report["size_ratio"] = report["size_bytes"]["fp32"] / max(report["size_bytes"]["int8"], 1)
        if measure_latency:
            f = load(fp32.bundle, backend=q.backend_name, threads=threads)
            q2 = load(int8_bundle, backend=q.backend_name, threads=threads)
            x = q.bundle.golden()[0][0]
            lat = interleaved_latency({"fp32": f, "int8": q2}, x)
            report["latency"] = {
                **lat,
                "speedup_p50": lat["fp32"]["p50_ms"] / max(lat["int8"]["p50_ms"], 1e-9),
                "threads": threads,
                "batch": int(x.shape[0]),
                "environment": fingerprint(threads),
                "note": "measured on this machine, fp32 and int8 interleaved; other load on the machine "
                "widens the spread",
            }
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return report


def explanation_parity(
    net: Any, int8_bundle: Path, images: list[Path], out_dir: Path, *, masks: int = 100, seed: int = 0
) -> dict[str, Any]:
    """Does the INT8 bundle still look where the float model looks? RISE with the same seeded masks on both, for
    the float model's top-1 (:func:`edgecnn.explain.compare.compare`): per image Spearman, top-15 % IoU, top-1
    agreement, "looks elsewhere"; a side-by-side PNG per image (picture | fp32 | int8) under ``out_dir/explain``."""
    from edgecnn.explain.compare import compare
    from edgecnn.explain.render import overlay, save_png, side_by_side, to_display
    from edgecnn.runtime import load

    sess = load(int8_bundle)
    x, pre = sess.preprocess([str(p) for p in images]), sess.preprocessing
    names = [p.name for p in images]
    res = compare(net, sess, x, names=names, method="rise", n_masks=masks, seed=seed)
    pngs = []
    for i, name in enumerate(names):
        panel = [to_display(x[i], pre), overlay(x[i], res.float_maps.maps[i], pre)]
        panel.append(overlay(x[i], res.bundle_maps.maps[i], pre))
        png = save_png(side_by_side(panel), out_dir / "explain" / f"{Path(name).stem}-fp32-vs-int8.png")
        pngs.append(str(png.relative_to(out_dir)))
    rows = [r.to_dict() | {"png": p} for r, p in zip(res.rows, pngs, strict=True)]
    return res.summary() | {"masks": masks, "seed": seed, "rows": rows}


def _explanation_lines(e: dict[str, Any] | None) -> list[str]:
    if not e:
        return []
    lines = [
        "",
        f"## Explanation parity (RISE, {e['masks']} seeded masks, class = the fp32 top-1)",
        "",
        f"Median Spearman {e['median_spearman']:.3f}, median top-{100 * e['top_fraction']:.0f} % IoU "
        f"{e['median_top_iou']:.3f}, top-1 agreement {100 * e['top1_agreement']:.1f} %; looks elsewhere: "
        f"{', '.join(e['looks_elsewhere']) or 'none'}.",
        "",
        "| image | fp32 top-1 | int8 top-1 | Spearman | top-15 % IoU | | view |",
        "|---|---|---|---|---|---|---|",
    ]
    lines += [
        f"| {r['image']} | {r['float_top1']} | {r['bundle_top1']} | {r['spearman']:.3f} | {r['top_iou']:.3f} | "
        f"{'**looks elsewhere**' if r['looks_elsewhere'] else ''} | `{r['png']}` |"
        for r in e["rows"]
    ]
    return lines


def _fmt(v: Any, pct: bool = False) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{100 * v:.2f} %" if pct else f"{v:.3f}"
    return str(v)


def _qat_lines(q: dict[str, Any] | None) -> list[str]:
    if not q:
        return []
    sim = q.get("simulated_top1") or {}
    line = (
        f"QAT: {q['epochs']} epoch(s) on {q['train_data']['samples']} samples from `{q['train_data']['source']}` "
        f"(lr {q['lr']}, distillation α {q['distill']['alpha']}); {q['scales']}."
    )
    if sim.get("ptq_init_top1") is not None:
        before, after = _fmt(sim["ptq_init_top1"], True), _fmt(sim["qat_top1"], True)
        line += f" Simulated top-1: {before} at the PTQ start → {after}."
    return [line]


def _calibration_lines(chk: dict[str, Any] | None) -> list[str]:
    """The calibration-set diagnostics: counts, coverage of the evaluation ranges, and the recommendation."""
    if not chk:
        return []
    lines = [f"Calibration set: {chk['samples']} samples, {chk['distinct_images']} distinct images."]
    cov = chk.get("coverage")
    if cov and cov.get("tensors"):
        lines.append(
            f"Coverage of the evaluation data's activation ranges ({cov['evaluation_samples']} samples, "
            f"{cov['tensors']} tensors): median {100 * cov['median_range_covered']:.0f} %, worst "
            f"{100 * cov['worst_range_covered']:.0f} % (`{cov['worst_tensor']}`); "
            f"{100 * cov['evaluation_values_outside']:.2f} % of evaluation values outside the calibration ranges."
        )
    else:
        lines.append("Coverage of the evaluation ranges: not measured (pass --eval-data).")
    lines.append(f"Recommendation: {chk['recommendation']}.")
    return lines


def to_markdown(r: dict[str, Any]) -> str:
    c = r.get("fp32_vs_int8") or {}
    cal = r.get("calibration") or {}
    lines = [
        f"# INT8 quantization report: {r['model']} → {r['target']} ({r['backend']})",
        "",
        f"Settings: {r['settings']['backend']}, {r['settings']['format']}, activations {r['settings']['activations']},"
        f" weights {r['settings']['weights']}, calibration method {r['settings']['method']}.",
        f"Calibration: {cal.get('samples')} samples from `{cal.get('source')}` (sha256 {cal.get('sha256', '')[:12]}…).",
        *_calibration_lines(r.get("calibration_check")),
        *_qat_lines(r.get("qat")),
        "",
        f"## fp32 vs int8 (on the {c.get('on', '?')} set, {c.get('samples')} samples)",
        "",
        "| measure | fp32 | int8 |",
        "|---|---|---|",
    ]
    if "fp32_top1" in c:
        lines += [
            f"| top-1 | {_fmt(c['fp32_top1'], True)} | {_fmt(c['int8_top1'], True)} |",
            f"| top-5 | {_fmt(c['fp32_top5'], True)} | {_fmt(c['int8_top5'], True)} |",
            f"| top-1 drop (points) | | {c['top1_drop_points']:.2f} |",
        ]
    lines += [
        f"| top-1 agreement | | {_fmt(c.get('top1_agreement'), True)} |",
        f"| output SQNR (dB) | | {_fmt(c.get('sqnr_db'))} |",
        f"| output cosine | | {_fmt(c.get('cosine'))} |",
        "",
        "## Size and latency",
        "",
        "| | fp32 | int8 | ratio |",
        "|---|---|---|---|",
        f"| model file bytes | {r['size_bytes'].get('fp32', '-')} | {r['size_bytes']['int8']} | "
        f"{r.get('size_ratio', 0):.2f}× smaller |",
    ]
    lat = r.get("latency")
    if lat:
        lines.append(
            f"| latency p50 (ms, batch {lat['batch']}) | {lat['fp32']['p50_ms']:.3f} | {lat['int8']['p50_ms']:.3f} | "
            f"speedup {lat['speedup_p50']:.2f}× |"
        )
        lines.append(
            f"| latency p90 (ms) | {lat['fp32']['p90_ms']:.3f} | {lat['int8']['p90_ms']:.3f} | |",
        )
        lines += ["", f"_{lat['note']}; CPU: {lat['environment'].get('cpu', '?')}._"]
    lines += _explanation_lines(r.get("explanation"))
    lines += ["", "## Worst layers (SQNR of the INT8 activation vs the float model)", ""]
    if r["layer_errors_worst10"]:
        lines += ["| layer | node | op | SQNR dB | dB added here |", "|---|---|---|---|---|"]
        lines += [
            f"| {e.get('layer') or '-'} | {e['node']} | {e['op_type']} | {e['sqnr_db']} | {e['loss_db']} |"
            for e in r["layer_errors_worst10"]
        ]
    elif r.get("qat"):
        lines.append("Not measured for QAT: fine-tuning changed the weights, so layers no longer line up with fp32's.")
    else:
        lines.append("No per-layer error was recorded for this bundle.")
    lines += ["", "## Kept in float", ""]
    lines += [
        f"- `{k['node']}`" + (f" (layer `{k['layer']}`)" if k.get("layer") else "") + f": {k['why']}"
        for k in r["kept_float"]
    ] or ["- nothing"]
    lines += ["", "## Quantization-risk lint", ""]
    lines += [f"- **{f['severity']}** `{f['code']}`: {f['message']} → {f['recommendation']}" for f in r["lint"]] or [
        "- no findings"
    ]
    return "\n".join(lines) + "\n"


def to_png(r: dict[str, Any], path: Path) -> None:
    """Two panels: worst-layer SQNR, and fp32 vs int8 size / latency."""
    from edgecnn.sdk import import_sdk

    matplotlib = import_sdk("matplotlib", "all")  # the PNG needs matplotlib; missing → the extra to install
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4))
    errs = r["layer_errors_worst10"]
    if errs:
        labels = [f"{e.get('layer') or e['node']} ({e['op_type']})"[-32:] for e in errs]
        a.barh(range(len(errs)), [e["sqnr_db"] for e in errs][::-1], color="#c44")
        a.set_yticks(range(len(errs)), labels[::-1])  # positions, not names: two rows may share a layer
        a.set_xlabel("SQNR vs float (dB, lower is worse)")
        a.set_title("worst 10 layers")
    else:
        a.text(0.5, 0.5, "no per-layer error recorded", ha="center", va="center")
        a.set_axis_off()
    names, fp32, int8 = ["size (MiB)"], [r["size_bytes"].get("fp32", 0) / 2**20], [r["size_bytes"]["int8"] / 2**20]
    if r.get("latency"):
        names.append("latency p50 (ms)")
        fp32.append(r["latency"]["fp32"]["p50_ms"])
        int8.append(r["latency"]["int8"]["p50_ms"])
    xs = np.arange(len(names))
    b.bar(xs - 0.2, fp32, 0.4, label="fp32")
    b.bar(xs + 0.2, int8, 0.4, label="int8")
    b.set_xticks(xs, names)
    c = r.get("fp32_vs_int8") or {}
    b.set_title(f"top-1 agreement {100 * c.get('top1_agreement', 0):.1f} %, SQNR {c.get('sqnr_db', 0):.1f} dB")
    b.legend()
    fig.suptitle(f"{r['model']} → {r['target']} INT8")
    fig.tight_layout()
    fig.savefig(path, dpi=100, format="png")
    plt.close(fig)


def write_report(report: dict[str, Any], out_dir: Path) -> dict[str, Path]:
    """report.json, report.md, report.png in ``out_dir`` (each written to a temp name, then renamed)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {"json": out_dir / "report.json", "md": out_dir / "report.md", "png": out_dir / "report.png"}
    tmp = {k: p.with_name(f".{p.name}.tmp") for k, p in paths.items()}
    tmp["json"].write_text(json.dumps(report, indent=2, default=float) + "\n", encoding="utf-8")
    tmp["md"].write_text(to_markdown(report), encoding="utf-8")
    to_png(report, tmp["png"])
    for k, p in paths.items():
        os.replace(tmp[k], p)
    return paths
