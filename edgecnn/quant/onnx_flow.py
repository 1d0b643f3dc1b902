"""The ONNX/TensorRT INT8 flow: pre-process → resolve ``keep_float`` → compensated weight rounding → QDQ quantize →
measure → (budget missed) return the most sensitive layers to float, doubling their number, until the top-1 drop
fits → record what stayed float and why. A budget that cannot be met is an error that shows the best drop found."""

from __future__ import annotations

import logging
import shutil
import tempfile
from pathlib import Path
from typing import Any

from edgecnn.errors import AccuracyBudgetError
from edgecnn.onnx_graph.scopes import scopes_for
from edgecnn.quant.config import CalibMethod, QuantConfig, Rounding
from edgecnn.quant.layer_error import layer_errors, rank_sensitive
from edgecnn.quant.metrics import compare
from edgecnn.quant.names import resolve_keep_float
from edgecnn.quant.ort_ptq import QdqScheme, ort_logits, preprocess_for_quant, quantizable_nodes, quantize_qdq
from edgecnn.quant.ranges import activation_ranges
from edgecnn.quant.rounding import rounding_for, write_rounded

log = logging.getLogger(__name__)
LAYER_ERROR_SAMPLES = 8
WORST_LAYERS = 10
BISECT_STEPS = 4


def budget_steps(n: int) -> list[int]:
    """1, 2, 4, … layers in float, ending with all ``n`` candidates."""
    steps, k = [], 1
    while k < n:
        steps.append(k)
        k *= 2
    return [*steps, n] if n else []


class _Source:
    """The float model the quantizer reads: ``pre`` with compensated-rounded weights, float where kept float."""

    def __init__(self, pre: Path, cfg: QuantConfig, batch: int, scheme: QdqScheme) -> None:
        self.pre, self.path = pre, pre.with_name("rounded.onnx")
        self.cfg, self.batch, self.scheme = cfg, batch, scheme
        self.ranges: dict[str, tuple[float, float]] | None = None  # --method mse: from the first model, reused
        self.rounded = rounding_for(pre, cfg, batch)

    def __call__(self, keep: list[str]) -> Path:
        path = write_rounded(self.pre, self.path, self.rounded, keep=keep) if self.rounded else self.pre
        if self.cfg.method is CalibMethod.MSE and self.ranges is None:
            data, symmetric = self.cfg.calibration.data, self.scheme.signed_activations
            self.ranges = activation_ranges(path, data, batch=self.batch, symmetric=symmetric)
        return path


def _search(
    src: _Source,
    out: Path,
    cfg: QuantConfig,
    batch: int,
    scheme: QdqScheme,
    keep: list[str],
    ranked: list[str],
    ref: Any,
    trials: list[dict[str, Any]],
) -> tuple[int, dict[str, Any]]:
    """Fewest of the ``ranked`` layers in float that meet the budget: doubling, then bisecting the last gap
    (at most ``BISECT_STEPS`` more trials). Leaves that model in ``out``; raises when even all of them miss."""
    ev = cfg.evaluation if cfg.evaluation is not None else cfg.calibration
    budget = float(cfg.max_drop or 0.0)

    def trial(k: int) -> dict[str, Any]:
        exclude = keep + ranked[:k]
        quantize_qdq(src(exclude), out, cfg, batch=batch, scheme=scheme, exclude=exclude, ranges=src.ranges)
        m = compare(ref, ort_logits(out, ev.data, batch), ev.labels)
        trials.append({"float_layers": len(keep) + k, "top1_drop_points": m["top1_drop_points"]})
        log.info("budget: %d layers in float → drop %.2f points", len(keep) + k, m["top1_drop_points"])
        return m

    lo, hit, best = 0, None, None
    for k in budget_steps(len(ranked)):
        m = trial(k)
        if best is None or m["top1_drop_points"] < best[1]["top1_drop_points"]:
            best = (k, m)
        if m["top1_drop_points"] <= budget:
            hit = (k, m)
            break
        lo = k
    if hit is None:
        total = len(ranked) + len(keep)
        if best is None:
            raise AccuracyBudgetError(
                f"--max-drop {cfg.max_drop} points is not reachable: no quantizable layer is left to return to float",
                hint="raise --max-drop, calibrate on more representative data, or use QAT",
            )
        k, m = best
        raise AccuracyBudgetError(
            f"--max-drop {cfg.max_drop} points is not reachable: best top-1 drop {m['top1_drop_points']:.2f} points "
            f"(top-1 {100 * m['fp32_top1']:.2f} → {100 * m['int8_top1']:.2f} %) with {len(keep) + k} of {total} "
            f"quantizable layers in float, after {len(trials)} trials up to all {total} in float",
            hint="raise --max-drop, calibrate on more representative data, try --method entropy, or use QAT",
        )
    hi, last = hit[0], hit[0]
    for _ in range(BISECT_STEPS):
        if hi - lo <= 1:
            break
        mid = (lo + hi) // 2
        m, last = trial(mid), mid
        if m["top1_drop_points"] <= budget:
            hi, hit = mid, (mid, m)
        else:
            lo = mid
    if last != hit[0]:
        exclude = keep + ranked[: hit[0]]
        quantize_qdq(src(exclude), out, cfg, batch=batch, scheme=scheme, exclude=exclude, ranges=src.ranges)
    return hit


def quantize_onnx_file(fp32: Path, out: Path, cfg: QuantConfig, *, batch: int, scheme: QdqScheme) -> dict[str, Any]:
    """Quantize ``fp32`` into ``out`` (QDQ) laid out for ``scheme``; returns the manifest record."""
    work = Path(tempfile.mkdtemp(prefix=".quant-", dir=out.parent))
    try:
        pre = preprocess_for_quant(fp32, work / "pre.onnx")
        layers, scopes = scopes_for(pre, fp32)
        candidates = quantizable_nodes(pre)
        requested = resolve_keep_float(
            cfg.keep_float, layers=layers, quantizable=candidates, nodes=list(scopes), scopes=scopes
        )
        keep = list(dict.fromkeys(n for hits in requested.values() for n in hits))
        ev = cfg.evaluation if cfg.evaluation is not None else cfg.calibration
        ev.check_shape(tuple(cfg.calibration.data.shape[1:]), "evaluation")
        ref = ort_logits(pre, ev.data, batch)
        src = _Source(pre, cfg, batch, scheme)
        quantize_qdq(src(keep), out, cfg, batch=batch, scheme=scheme, exclude=keep, ranges=src.ranges)
        metrics = compare(ref, ort_logits(out, ev.data, batch), ev.labels)
        errs = layer_errors(pre, out, cfg.calibration.data[: LAYER_ERROR_SAMPLES * batch], batch=batch, layers=layers)
        fallback: list[dict[str, Any]] = []
        why = {n: f"requested (keep_float {r!r})" for r, hits in requested.items() for n in hits}
        if cfg.max_drop is not None and metrics["top1_drop_points"] > cfg.max_drop:
            ranked = rank_sensitive(errs, [n for n in candidates if n not in keep])
            loss = {e.owner: e.loss_db for e in errs}
            k, metrics = _search(src, out, cfg, batch, scheme, keep, ranked, ref, fallback)
            keep = keep + ranked[:k]
            for n in ranked[:k]:
                why[n] = f"accuracy budget: adds {loss.get(n, float('nan')):.1f} dB of quantization noise"
            errs = layer_errors(
                pre, out, cfg.calibration.data[: LAYER_ERROR_SAMPLES * batch], batch=batch, layers=layers
            )
        return {
            "backend": "onnxruntime.quantization",
            "format": "QDQ",
            "activations": scheme.activations,
            "weights": "int8 symmetric " + ("per-channel" if cfg.per_channel else "per-tensor"),
            **cfg.record(),
            # ONNX Runtime's static quantizer has none; edgecnn's removes the weights' mean shift (rounding.py)
            "bias_correction": "weights: (W − Q)·E[x]"
            if cfg.rounding_bias_correction and cfg.rounding is Rounding.GPTQ
            else None,
            "kept_float": [{"node": n, "layer": layers.get(n, ""), "why": why[n]} for n in keep],
            "fallback_trials": fallback,
            "fp32_vs_int8": {**metrics, "on": "evaluation" if cfg.evaluation is not None else "calibration"},
            "layer_errors": [e.to_dict() for e in errs[:WORST_LAYERS]],
        }
    finally:
        shutil.rmtree(work, ignore_errors=True)
