"""``edgecnn check``: re-measure a bundle against its budgets — a CI gate.

The bundle is opened and self-tested through :mod:`edgecnn.runtime` (a bundle that does not verify fails the gate);
latency is timed here in interleaved rounds with the PyTorch eager fp32 build of the same model as baseline (or
predicted for a hardware profile, with the profile's error band); size is the bundle's model files; accuracy is
top-1 on the evaluation data through the bundle, against an fp32 reference checkpoint for the drop. Every figure
says whether it was measured or predicted.
"""

from __future__ import annotations

import statistics
import time
import xml.etree.ElementTree as ET
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgecnn.deploy.budgets import BudgetFile, Measure
from edgecnn.errors import ConfigError

GOLDEN = "golden.npz"


@dataclass(frozen=True, kw_only=True)
class Figure:
    """One budgeted quantity: its value, its limit and whether it holds."""

    name: str
    value: float
    limit: float
    ok: bool
    unit: str
    how: str  # measured | predicted
    detail: str = ""
    band: tuple[float, float] | None = None


@dataclass(frozen=True, kw_only=True)
class CheckReport:
    bundle: str
    device: str
    verified: bool
    verify_detail: str
    figures: tuple[Figure, ...]
    measurements: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.verified and all(f.ok for f in self.figures)

    def to_dict(self) -> dict[str, Any]:
        return {
            "bundle": self.bundle,
            "device": self.device,
            "ok": self.ok,
            "verified": self.verified,
            "verify_detail": self.verify_detail,
            "figures": [asdict(f) for f in self.figures],
            "measurements": self.measurements,
            "seconds": round(self.seconds, 2),
        }


def model_files_bytes(manifest: Any) -> int:
    """What ships to the device to run the model: every listed file but the golden vectors."""
    return sum(int(f["size"]) for name, f in manifest.files.items() if name != GOLDEN)


def _torch_model(manifest: Any, *, meta: bool) -> Any:
    """The bundle's architecture (random weights: latency does not depend on their values)."""
    import torch

    from edgecnn.models import create_model

    info = manifest.data["model"]
    name = info.get("name")
    opts = {k: v for k, v in (info.get("options") or {}).items() if v is not None}
    opts.pop("features_only", None)
    try:
        if meta:
            with torch.device("meta"):
                return create_model(name, **opts).eval()
        torch.manual_seed(0)
        return create_model(name, **opts).eval()
    except Exception as e:  # a bundle of a model this install does not know
        raise ConfigError(
            f"bundle model {name!r} ({opts}) cannot be rebuilt for the PyTorch baseline / estimate: {e}",
            hint="check against max_latency_ms on this machine instead",
        ) from None


def _resolution(manifest: Any) -> int:
    return int(manifest.data["model"].get("resolution") or manifest.inputs[0].concrete_shape(1)[-1])


def time_interleaved(calls: dict[str, Any], m: Measure) -> dict[str, dict[str, Any]]:
    """Each call timed ``m.rounds`` times, rounds interleaved (a busy machine hits all subjects alike); the median
    round's p50 is the figure, the spread of round p50s is kept."""
    from edgecnn.runtime.timing import time_call

    p50s: dict[str, list[float]] = {k: [] for k in calls}
    covs: dict[str, list[float]] = {k: [] for k in calls}
    for _ in range(m.rounds):
        for k, fn in calls.items():
            st = time_call(fn, warmup=m.warmup, iters=m.iters)
            p50s[k].append(st["p50_ms"])
            covs[k].append(st["cov"])
    return {
        k: {
            "p50_ms": statistics.median(v),
            "round_p50_ms": [round(x, 4) for x in v],
            "min_round_ms": min(v),
            "max_round_ms": max(v),
            "median_cov": statistics.median(covs[k]),
        }
        for k, v in p50s.items()
    }


def eager_call(net: Any, res: int, batch: int, chans: int = 3) -> Any:
    """PyTorch eager fp32 inference of ``net`` on a fixed seeded batch: the baseline both `check` and `optimize`
    time side by side with bundles."""
    import torch

    x = torch.from_numpy(np.random.default_rng(0).standard_normal((batch, chans, res, res)).astype(np.float32))

    def call() -> Any:
        with torch.inference_mode():
            return net(x)

    call()
    return call


def latency_local(bundle: Path, m: Measure, *, baseline: bool) -> dict[str, Any]:
    from edgecnn.bench.measure import environment_warnings
    from edgecnn.bench.runners import load_bundle
    from edgecnn.runtime.env import fingerprint

    if m.threads:
        import torch

        torch.set_num_threads(m.threads)
    loaded = load_bundle(bundle, backend=None, device=None, threads=m.threads)
    calls = {"bundle": loaded.make(m.batch)}
    if baseline:
        manifest = loaded.raw.manifest
        chans = int(manifest.inputs[0].concrete_shape(1)[1])
        calls["pytorch_eager_fp32"] = eager_call(_torch_model(manifest, meta=False), _resolution(manifest), m.batch,
                                                 chans)  # fmt: skip
    times = time_interleaved(calls, m)
    out: dict[str, Any] = {
        "latency": times,
        "batch": m.batch,
        "threads": m.threads,
        "rounds": m.rounds,
        "iters": m.iters,
        "warmup": m.warmup,
        "environment": fingerprint(m.threads),
        "warnings": environment_warnings(m.threads),
    }
    if baseline:
        out["ratio"] = times["bundle"]["p50_ms"] / times["pytorch_eager_fp32"]["p50_ms"]
    return out


def latency_predicted(manifest: Any, device: str, batch: int) -> dict[str, Any]:
    from edgecnn.bench.estimate import estimate_ops
    from edgecnn.bench.roofline import model_ops
    from edgecnn.profiles import get_profile

    prof = get_profile(device)
    prec = manifest.precision
    if prec not in prof.precisions:
        raise ConfigError(
            f"profile {prof.name!r} runs {', '.join(prof.precisions)}, not this bundle's {prec}",
            hint="check a bundle of a precision the device supports",
        )
    model = _torch_model(manifest, meta=True)
    res = _resolution(manifest)
    est = estimate_ops(model_ops(model, res, batch=batch), prof, precision=prec, model=model_name(manifest),
                       resolution=res, batch=batch)  # fmt: skip
    return {
        "profile": prof.name,
        "precision": prec,
        "predicted_ms": est.total_ms,
        "band_ms": [est.low_ms, est.high_ms],
        "error_band": est.error_band,
        "calibrated": bool(prof.calibration),
    }


def model_name(manifest: Any) -> str:
    return str(manifest.data["model"].get("name", "?"))


def predict_batches(sess: Any, x: np.ndarray) -> np.ndarray:
    """Run ``x`` through the session in batches the bundle accepts."""
    lo, hi = sess.input.dim_range(0)
    step = max(1, min(hi, 64))
    outs = []
    for i in range(0, len(x), step):
        chunk = x[i : i + step]
        if len(chunk) < lo:  # a fixed-batch bundle: pad, then drop the padding
            pad = np.repeat(chunk[-1:], lo - len(chunk), axis=0)
            outs.append(sess.predict(np.concatenate([chunk, pad]))[: len(chunk)])
        else:
            outs.append(sess.predict(chunk))
    return np.concatenate(outs)


def accuracy(sess: Any, m: Measure) -> dict[str, Any]:
    """Top-1 of the bundle (and of the fp32 reference when given) on the evaluation data."""
    from edgecnn.quant.config import match_classes
    from edgecnn.quant.metrics import topk_accuracy
    from edgecnn.quant.samples import load_samples

    pre = sess.preprocessing
    ev = load_samples(str(m.eval_data), pre, samples=m.eval_samples, seed=1, split="test")
    if ev.labels is None:
        raise ConfigError(
            f"evaluation data {m.eval_data!r} has no labels",
            hint="pass a class-per-folder directory, a .npz with 'y', or 'embedded'",
        )
    ev = match_classes(ev, sess.labels)
    logits = predict_batches(sess, ev.data)
    out: dict[str, Any] = {
        "eval_source": ev.source,
        "eval_samples": len(ev),
        "eval_sha256": ev.sha256,
        "top1": topk_accuracy(logits, ev.labels, 1),
    }
    if m.reference:
        import torch

        from edgecnn.models.resolve import resolve_model

        ref, info = resolve_model(m.reference)
        ref_pre = getattr(ref, "preprocessing", None)
        ref_ev = ev  # the reference at its own resolution: a lower-resolution bundle's drop includes the resolution
        if ref_pre is not None and ref_pre.input_size != pre.input_size:
            ref_ev = load_samples(str(m.eval_data), ref_pre, samples=m.eval_samples, seed=1, split="test")
            ref_ev = match_classes(ref_ev, sess.labels)
        with torch.inference_mode():
            ref_logits = torch.cat([ref(torch.from_numpy(ref_ev.data[i : i + 64])) for i in range(0, len(ref_ev), 64)])
        out["reference"] = m.reference
        out["reference_sha256"] = info.sha256 if info else None
        out["reference_top1"] = topk_accuracy(ref_logits.numpy(), ref_ev.labels, 1)
        out["reference_resolution"] = int(ref_ev.data.shape[-1])
        out["drop_points"] = 100.0 * (out["reference_top1"] - out["top1"])
    return out


def check_bundle(bundle: str | Path, spec: BudgetFile, *, progress: Any = None) -> CheckReport:
    """Verify, measure (or predict) and compare with ``spec``'s budgets."""
    from edgecnn import runtime

    say = progress or (lambda _msg: None)
    t0 = time.perf_counter()
    path = Path(bundle)
    b, m = spec.budgets, spec.measure
    sess = runtime.load(path, threads=m.threads)
    st = sess.selftest()
    verified = bool(st.get("ok"))
    detail = f"self-test {'PASS' if verified else 'FAIL'} on {st.get('count', '?')} golden vectors; hashes verified"
    figures: list[Figure] = []
    meas: dict[str, Any] = {"selftest": st}
    size_mb = model_files_bytes(sess.manifest) / 2**20
    meas["size_mb"] = size_mb
    if b.max_size_mb is not None:
        figures.append(Figure(name="max_size_mb", value=size_mb, limit=b.max_size_mb, ok=size_mb <= b.max_size_mb,
                              unit="MiB", how="measured", detail="model files of the bundle"))  # fmt: skip
    if b.max_latency_ms is not None or b.max_latency_ratio is not None:
        if m.predicted:
            say(f"predicting latency on {m.device}")
            pred = latency_predicted(sess.manifest, m.device, m.batch)
            meas["latency_predicted"] = pred
            figures.append(Figure(
                name="max_latency_ms", value=pred["predicted_ms"], limit=b.max_latency_ms,
                ok=pred["predicted_ms"] <= b.max_latency_ms, unit="ms", how="predicted",
                detail=f"{pred['profile']} {pred['precision']} batch {m.batch}, band ±{pred['error_band']:.0%}",
                band=tuple(pred["band_ms"]),
            ))  # fmt: skip
        else:
            say(f"timing {path.name} on this machine ({m.rounds} interleaved rounds × {m.iters} calls)")
            lat = latency_local(path, m, baseline=b.max_latency_ratio is not None)
            meas["latency_local"] = lat
            p50 = lat["latency"]["bundle"]["p50_ms"]
            if b.max_latency_ms is not None:
                figures.append(Figure(name="max_latency_ms", value=p50, limit=b.max_latency_ms,
                                      ok=p50 <= b.max_latency_ms, unit="ms", how="measured",
                                      detail=f"p50, batch {m.batch}, median of {m.rounds} rounds"))  # fmt: skip
            if b.max_latency_ratio is not None:
                eager = lat["latency"]["pytorch_eager_fp32"]["p50_ms"]
                figures.append(Figure(
                    name="max_latency_ratio", value=lat["ratio"], limit=b.max_latency_ratio,
                    ok=lat["ratio"] <= b.max_latency_ratio, unit="× eager", how="measured",
                    detail=f"bundle {p50:.3f} ms / PyTorch eager fp32 {eager:.3f} ms, interleaved",
                ))  # fmt: skip
    if b.min_top1 is not None or b.max_drop_points is not None:
        say(f"evaluating on {m.eval_data}")
        acc = accuracy(sess, m)
        meas["accuracy"] = acc
        if b.min_top1 is not None:
            figures.append(Figure(name="min_top1", value=acc["top1"], limit=b.min_top1, ok=acc["top1"] >= b.min_top1,
                                  unit="top-1", how="measured",
                                  detail=f"{acc['eval_samples']} samples of {acc['eval_source']}"))  # fmt: skip
        if b.max_drop_points is not None:
            figures.append(Figure(
                name="max_drop_points", value=acc["drop_points"], limit=b.max_drop_points,
                ok=acc["drop_points"] <= b.max_drop_points, unit="points", how="measured",
                detail=f"fp32 {100 * acc['reference_top1']:.2f} % → bundle {100 * acc['top1']:.2f} %",
            ))  # fmt: skip
    return CheckReport(
        bundle=str(path),
        device=m.device,
        verified=verified,
        verify_detail=detail,
        figures=tuple(figures),
        measurements=meas,
        seconds=time.perf_counter() - t0,
    )


def to_junit(report: CheckReport) -> str:
    """JUnit XML (the schema CI systems read: testsuites/testsuite/testcase/failure): one test case per budget and
    one for the bundle's verification."""
    cases: list[tuple[str, str | None, str]] = [
        ("verified", None if report.verified else report.verify_detail, report.verify_detail)
    ]
    for f in report.figures:
        cmp = "≥" if f.name.startswith("min_") else "≤"
        line = f"{f.name}: {f.value:.4g} {f.unit} ({f.how}) {cmp} {f.limit:.4g} required; {f.detail}"
        cases.append((f.name, None if f.ok else line, line))
    failures = sum(1 for _, fail, _ in cases if fail)
    suites = ET.Element("testsuites", name="edgecnn check", tests=str(len(cases)), failures=str(failures),
                        errors="0", time=f"{report.seconds:.3f}")  # fmt: skip
    suite = ET.SubElement(suites, "testsuite", name=f"edgecnn check {Path(report.bundle).name}",
                          tests=str(len(cases)), failures=str(failures), errors="0", skipped="0",
                          time=f"{report.seconds:.3f}")  # fmt: skip
    props = ET.SubElement(suite, "properties")
    ET.SubElement(props, "property", name="bundle", value=report.bundle)
    ET.SubElement(props, "property", name="device", value=report.device)
    for name, fail, line in cases:
        tc = ET.SubElement(suite, "testcase", classname=f"edgecnn.check.{Path(report.bundle).name}", name=name,
                           time="0")  # fmt: skip
        if fail:
            ET.SubElement(tc, "failure", message=fail, type="BudgetExceeded").text = fail
        else:
            ET.SubElement(tc, "system-out").text = line
    ET.indent(suites)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(suites, encoding="unicode") + "\n"
