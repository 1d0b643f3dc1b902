"""``edgecnn optimize``: the best deployment of one model for one device under latency, size and accuracy budgets.

1. **Enumerate** candidates over export target × precision × input resolution (× width when the model offers
   variants: a list of checkpoints of the same task, e.g. pruned ones).
2. **Prune with the estimator** before any export: a candidate whose exact weight size (params × bytes per value)
   exceeds the size budget, or whose *optimistic* predicted latency (the low end of the profile's band) exceeds an
   absolute latency budget, is dropped with the reason recorded.
3. **Build and measure the survivors**: each is exported (INT8: calibrated through the quantizer backend of its
   target) as a verified bundle; accuracy is top-1 on the evaluation data through :mod:`edgecnn.runtime`, the drop
   against the fp32 PyTorch model at its native resolution; latency is measured on this machine in interleaved
   rounds together with the PyTorch eager fp32 baseline (``device = local``), or predicted with its band for a
   hardware profile. Every figure records whether it was measured or predicted.
4. **Choose** the fastest candidate that meets every budget (ties: more accurate, then smaller); mark the Pareto
   front (latency ↓, size ↓, top-1 ↑) — dominated candidates are drawn faded in the plot. When nothing meets the
   budgets, the closest candidates (smallest worst relative violation) are returned and the caller exits non-zero.
"""

from __future__ import annotations

import dataclasses
import json
import math
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgecnn.deploy.budgets import LOCAL, Budgets, Measure
from edgecnn.errors import ConfigError

Say = Callable[[str], None]
BYTES_PER_VALUE = {"fp32": 4.0, "fp16": 2.0, "bf16": 2.0, "int8": 1.0}
LOCAL_PRECISIONS = ("fp32", "int8")  # what a CPU runs faster or equal; fp16/bf16 on request (--precisions)
DEFAULT_TARGETS = ("onnx", "openvino")


@dataclass(kw_only=True)
class Candidate:
    target: str
    precision: str
    resolution: int
    variant: str = "base"  # which model (width / pruning level) when several are given
    status: str = "planned"  # planned | pruned | built | failed
    reason: str = ""
    predicted_ms: float | None = None
    predicted_band_ms: tuple[float, float] | None = None
    weights_mb_estimate: float | None = None
    bundle: str | None = None
    size_mb: float | None = None
    latency_ms: float | None = None
    latency_how: str | None = None  # measured | predicted
    latency_rounds_ms: list[float] | None = None
    ratio_vs_eager: float | None = None
    top1: float | None = None
    drop_points: float | None = None
    build_s: float | None = None
    meets: dict[str, bool] = field(default_factory=dict)
    dominated: bool | None = None

    @property
    def key(self) -> str:
        v = "" if self.variant == "base" else f"-{self.variant}"
        return f"{self.target}-{self.precision}-{self.resolution}px{v}"


@dataclass(frozen=True, kw_only=True)
class Space:
    targets: tuple[str, ...] = DEFAULT_TARGETS
    precisions: tuple[str, ...] | None = None  # None: what the device runs (see LOCAL_PRECISIONS / the profile)
    resolutions: tuple[int, ...] | None = None  # None: native, −12.5 %, −25 % (multiples of 4, ≥ 16)


@dataclass(frozen=True, kw_only=True)
class Result:
    candidates: list[Candidate]
    chosen: Candidate | None
    closest: list[Candidate]
    baseline: dict[str, Any]
    record: dict[str, Any]


def default_resolutions(native: int) -> tuple[int, ...]:
    out = [native]
    for f in (0.875, 0.75):
        r = max(16, int(round(native * f / 4)) * 4)
        if r not in out:
            out.append(r)
    return tuple(out)


def enumerate_space(
    space: Space, native: int, device_precisions: tuple[str, ...], variants: list[str]
) -> list[Candidate]:
    from edgecnn.exporters import TARGETS

    precs = space.precisions or device_precisions
    bad = [p for p in precs if p not in device_precisions]
    if bad:
        raise ConfigError(
            f"--precisions {', '.join(bad)}: the device runs {', '.join(device_precisions)}",
            hint="drop them or choose another --device",
        )
    out = []
    for t in space.targets:
        tgt = TARGETS.get(t)
        for p in precs:
            if p not in [str(x) for x in tgt.precisions]:
                continue
            for r in space.resolutions or default_resolutions(native):
                for v in variants:
                    out.append(Candidate(target=t, precision=p, resolution=r, variant=v))
    if not out:
        raise ConfigError("no candidate: no target of --targets offers the --precisions asked")
    return out


def _params(net: Any) -> int:
    return sum(p.numel() for p in net.parameters())


def prune_with_estimator(
    cands: list[Candidate], nets: dict[str, Any], budgets: Budgets, profile: Any | None, say: Say
) -> None:
    """Drop candidates that cannot meet the size budget (exact weight bytes) or, on a profile, an absolute latency
    budget even at the optimistic end of the prediction band."""
    from edgecnn.bench.estimate import estimate_ops
    from edgecnn.bench.roofline import model_ops

    metas: dict[str, Any] = {}  # one weightless copy per model, walked for every candidate resolution
    for c in cands:
        net = nets[c.variant]
        c.weights_mb_estimate = _params(net) * BYTES_PER_VALUE[c.precision] / 2**20
        if budgets.max_size_mb is not None and c.weights_mb_estimate > budgets.max_size_mb:
            c.status, c.reason = "pruned", f"weights alone {c.weights_mb_estimate:.2f} MiB > {budgets.max_size_mb} MiB"
            continue
        if profile is None or c.precision not in profile.precisions:
            continue
        if c.variant not in metas:
            metas[c.variant] = _meta_copy(net)
        est = estimate_ops(model_ops(metas[c.variant], c.resolution), profile, precision=c.precision,
                           model=c.key, resolution=c.resolution)  # fmt: skip
        c.predicted_ms, c.predicted_band_ms = est.total_ms, (est.low_ms, est.high_ms)
        if budgets.max_latency_ms is not None and est.low_ms > budgets.max_latency_ms:
            c.status = "pruned"
            band = f"band {est.low_ms:.3g}–{est.high_ms:.3g}"
            c.reason = f"predicted {est.total_ms:.3g} ms ({band}) > {budgets.max_latency_ms} ms"
    kept = sum(c.status == "planned" for c in cands)
    say(f"estimator: {kept} of {len(cands)} candidates survive the size / predicted-latency budgets")


def _meta_copy(net: Any) -> Any:
    import copy

    return copy.deepcopy(net).to("meta")


def build(c: Candidate, net: Any, work: Path, calib: Any, say: Say) -> None:
    from edgecnn.exporters import ExportOptions, Precision, export_bundle
    from edgecnn.exporters.int8 import quantize

    t0 = time.perf_counter()
    out = work / c.key
    try:
        if c.precision == "int8":
            res = quantize(net, target=c.target, calib_data=calib, resolution=c.resolution, out=out, report=False,
                           measure_latency=False, progress=lambda _m: None)  # fmt: skip
            bundle = res.bundle
        else:
            opts = ExportOptions(target=c.target, precision=Precision(c.precision), resolution=c.resolution)
            bundle = export_bundle(net, opts, out).bundle
    except Exception as e:  # one candidate that does not build is a finding, not the end of the search
        c.status, c.reason = "failed", f"{type(e).__name__}: {str(e).splitlines()[0][:200] if str(e) else ''}"
        say(f"  {c.key}: build failed — {c.reason}")
        return
    c.bundle, c.status, c.build_s = str(bundle), "built", time.perf_counter() - t0


def evaluate(c: Candidate, ev_by_res: dict[int, Any], ref_top1: float, threads: int | None) -> Any:
    from edgecnn import runtime
    from edgecnn.deploy.check import model_files_bytes, predict_batches
    from edgecnn.quant.metrics import topk_accuracy

    sess = runtime.load(c.bundle, threads=threads)
    c.size_mb = model_files_bytes(sess.manifest) / 2**20
    ev = ev_by_res[c.resolution]
    c.top1 = topk_accuracy(predict_batches(sess, ev.data), ev.labels, 1)
    c.drop_points = 100.0 * (ref_top1 - c.top1)
    return sess


def pareto(cands: list[Candidate]) -> None:
    """Mark ``dominated`` among built candidates: another is no slower, no larger, no less accurate and better in
    one of the three."""
    built = [c for c in cands if c.status == "built" and c.latency_ms is not None]
    for c in built:
        c.dominated = any(
            o is not c
            and o.latency_ms <= c.latency_ms
            and o.size_mb <= c.size_mb
            and o.top1 >= c.top1
            and (o.latency_ms < c.latency_ms or o.size_mb < c.size_mb or o.top1 > c.top1)
            for o in built
        )


def judge(c: Candidate, b: Budgets) -> None:
    m: dict[str, bool] = {}
    if b.max_latency_ms is not None:
        m["max_latency_ms"] = c.latency_ms <= b.max_latency_ms
    if b.max_latency_ratio is not None and c.ratio_vs_eager is not None:
        m["max_latency_ratio"] = c.ratio_vs_eager <= b.max_latency_ratio
    if b.max_size_mb is not None:
        m["max_size_mb"] = c.size_mb <= b.max_size_mb
    if b.min_top1 is not None:
        m["min_top1"] = c.top1 >= b.min_top1
    if b.max_drop_points is not None:
        m["max_drop_points"] = c.drop_points <= b.max_drop_points
    c.meets = m


def violation(c: Candidate, b: Budgets) -> float:
    """The worst relative miss over the budgets (0 when all are met): how far the closest candidates are."""
    worst = 0.0
    for limit, value in ((b.max_latency_ms, c.latency_ms), (b.max_latency_ratio, c.ratio_vs_eager),
                         (b.max_size_mb, c.size_mb)):  # fmt: skip
        if limit is not None and value is not None:
            worst = max(worst, value / limit - 1.0)
    if b.min_top1 is not None and c.top1 is not None:
        worst = max(worst, (b.min_top1 - c.top1) / max(b.min_top1, 1e-9))
    if b.max_drop_points is not None and c.drop_points is not None:
        worst = max(worst, (c.drop_points - b.max_drop_points) / max(b.max_drop_points, 0.1))
    return worst


def optimize(
    model_spec: str,
    budgets: Budgets,
    measure: Measure,
    *,
    calib_data: str,
    calib_samples: int = 300,
    space: Space = Space(),
    variants: dict[str, str] | None = None,
    work: Path,
    say: Say = lambda _m: None,
) -> Result:
    """Search the deployment space of ``model_spec`` (a zoo name with weights or a checkpoint) — see the module
    docstring. ``variants`` maps a name to another checkpoint of the same task (e.g. a pruned one)."""
    import torch

    from edgecnn.bench.runners import session_call
    from edgecnn.deploy.check import eager_call, time_interleaved
    from edgecnn.models.resolve import resolve_model
    from edgecnn.quant.config import evaluation_transform, match_classes
    from edgecnn.quant.metrics import topk_accuracy
    from edgecnn.quant.samples import load_samples

    t_start = time.perf_counter()
    if measure.eval_data is None:
        raise ConfigError("optimize needs labelled evaluation data", hint="pass --eval-data DIR|FILE.npz|embedded")
    nets: dict[str, Any] = {}
    infos: dict[str, Any] = {}
    for name, spec in {"base": model_spec, **(variants or {})}.items():
        nets[name], infos[name] = resolve_model(spec)
    base = nets["base"]
    pre = getattr(base, "preprocessing", None)
    if pre is None:
        raise ConfigError(
            f"{model_spec!r} carries no evaluation preprocessing",
            hint="pass an edgecnn checkpoint (it records its input size and normalization)",
        )
    native = int(pre.input_size)
    profile = None
    device_precisions: tuple[str, ...] = LOCAL_PRECISIONS
    if measure.predicted:
        from edgecnn.profiles import get_profile

        profile = get_profile(measure.device)
        device_precisions = tuple(profile.precisions)
    elif space.precisions:
        device_precisions = tuple(dict.fromkeys((*LOCAL_PRECISIONS, "fp16", "bf16")))
    cands = enumerate_space(space, native, device_precisions, list(nets))
    say(f"{len(cands)} candidates: {', '.join(space.targets)} × {', '.join(sorted({c.precision for c in cands}))} × "
        f"{sorted({c.resolution for c in cands}, reverse=True)} px × {len(nets)} model(s)")  # fmt: skip
    prune_with_estimator(cands, nets, budgets, profile, say)

    ev_by_res = {}
    for r in sorted({c.resolution for c in cands}):
        ev = load_samples(measure.eval_data, evaluation_transform(base, r), samples=measure.eval_samples, seed=1,
                          split="test")  # fmt: skip
        if ev.labels is None:
            raise ConfigError(f"evaluation data {measure.eval_data!r} has no labels", hint="pass labelled data")
        ev_by_res[r] = match_classes(ev, getattr(base, "classes", None))
    ref_ev = ev_by_res.get(native)
    if ref_ev is None:
        ref_ev = match_classes(load_samples(measure.eval_data, pre, samples=measure.eval_samples, seed=1,
                                            split="test"), getattr(base, "classes", None))  # fmt: skip
    with torch.inference_mode():
        ref_logits = torch.cat([base(torch.from_numpy(ref_ev.data[i : i + 64])) for i in range(0, len(ref_ev), 64)])
    ref_top1 = topk_accuracy(ref_logits.numpy(), ref_ev.labels, 1)
    say(f"fp32 PyTorch reference at {native} px: top-1 {100 * ref_top1:.2f} % on {len(ref_ev)} samples")

    calib, calib_by_res = None, {}
    work.mkdir(parents=True, exist_ok=True)
    todo = [c for c in cands if c.status == "planned"]
    for i, c in enumerate(todo, 1):
        say(f"[{i}/{len(todo)}] building {c.key}")
        if c.precision == "int8":
            if c.resolution not in calib_by_res:
                calib_by_res[c.resolution] = load_samples(
                    calib_data, evaluation_transform(nets[c.variant], c.resolution), samples=calib_samples
                )
            calib = calib_by_res[c.resolution]
        build(c, nets[c.variant], work, calib, say)
    built = [c for c in cands if c.status == "built"]
    sessions = {}
    for c in built:
        sessions[c.key] = evaluate(c, ev_by_res, ref_top1, measure.threads)
    baseline: dict[str, Any] = {"reference_top1": ref_top1, "reference_resolution": native}
    if built and not measure.predicted:
        say(f"timing {len(built)} bundles + PyTorch eager fp32 here: {measure.rounds} interleaved rounds × "
            f"{measure.iters} calls")  # fmt: skip
        if measure.threads:
            torch.set_num_threads(measure.threads)
        calls = {c.key: session_call(sessions[c.key], measure.batch) for c in built}
        calls["pytorch_eager_fp32"] = eager_call(base, native, measure.batch)
        times = time_interleaved(calls, measure)
        eager = times["pytorch_eager_fp32"]["p50_ms"]
        baseline.update(
            pytorch_eager_fp32_ms=eager, pytorch_eager_rounds_ms=times["pytorch_eager_fp32"]["round_p50_ms"]
        )
        for c in built:
            t = times[c.key]
            c.latency_ms, c.latency_how, c.latency_rounds_ms = t["p50_ms"], "measured", t["round_p50_ms"]
            c.ratio_vs_eager = c.latency_ms / eager
    elif built:
        for c in built:
            if c.predicted_ms is None:
                c.status, c.reason = "pruned", f"{profile.name} does not run {c.precision}"
                continue
            c.latency_ms, c.latency_how = c.predicted_ms, "predicted"
    built = [c for c in cands if c.status == "built"]
    for c in built:
        judge(c, budgets)
    pareto(cands)
    feasible = [c for c in built if all(c.meets.values())]
    chosen = min(feasible, key=lambda c: (c.latency_ms, -c.top1, c.size_mb)) if feasible else None
    closest = [] if chosen else sorted(built, key=lambda c: violation(c, budgets))[:3]
    record = {
        "model": model_spec,
        "model_sha256": {k: (v.sha256 if v else None) for k, v in infos.items()},
        "variants": {"base": model_spec, **(variants or {})},
        "device": measure.device,
        "budgets": budgets.to_dict(),
        "measure": dataclasses.asdict(measure),
        "calib_data": calib_data,
        "calib_samples": calib_samples,
        "baseline": baseline,
        "figures": {
            "latency": "predicted (profile roofline with its band)" if measure.predicted else "measured here",
            "size": "measured (bundle model files)",
            "accuracy": "measured here through edgecnn.runtime on the evaluation data",
        },
        "candidates": [_cand_dict(c) for c in cands],
        "chosen": chosen.key if chosen else None,
        "closest": [c.key for c in closest],
        "seconds": round(time.perf_counter() - t_start, 1),
    }
    if measure.predicted:
        record["profile"] = {"name": profile.name, "calibrated": bool(profile.calibration)}
    return Result(candidates=cands, chosen=chosen, closest=closest, baseline=baseline, record=record)


def _cand_dict(c: Candidate) -> dict[str, Any]:
    d = dataclasses.asdict(c)
    d["key"] = c.key
    for k, v in list(d.items()):
        if isinstance(v, float) and not math.isfinite(v):
            d[k] = None
    return d


def plot_pareto(cands: list[Candidate], chosen: Candidate | None, path: Path, *, title: str) -> None:
    """Latency × top-1, marker area ∝ bundle size; dominated candidates faded, the chosen one ringed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    built = [c for c in cands if c.status == "built" and c.latency_ms is not None]
    fig, ax = plt.subplots(figsize=(7.5, 4.8), dpi=120)
    colors = {"onnx": "tab:blue", "openvino": "tab:purple", "tensorrt": "tab:green"}
    smax = max((c.size_mb for c in built), default=1.0) or 1.0
    for c in built:
        ax.scatter(c.latency_ms, 100 * c.top1, s=40 + 400 * c.size_mb / smax, color=colors.get(c.target, "gray"),
                   alpha=0.2 if c.dominated else 0.9, marker="s" if c.precision == "int8" else "o",
                   edgecolors="black" if not c.dominated else "none", linewidths=0.6)  # fmt: skip
        ax.annotate(f"{c.precision} {c.resolution}px", (c.latency_ms, 100 * c.top1), fontsize=7,
                    xytext=(4, 3), textcoords="offset points", alpha=0.35 if c.dominated else 1.0)  # fmt: skip
    if chosen is not None:
        ax.scatter(chosen.latency_ms, 100 * chosen.top1, s=600, facecolors="none", edgecolors="red", linewidths=1.5,
                   label=f"chosen: {chosen.key}")  # fmt: skip
    front = sorted((c for c in built if not c.dominated), key=lambda c: c.latency_ms)
    if front:
        ax.plot([c.latency_ms for c in front], [100 * c.top1 for c in front], color="black", lw=0.8, alpha=0.5,
                label="Pareto front (latency, top-1, size)")  # fmt: skip
    for t, col in colors.items():
        if any(c.target == t for c in built):
            ax.scatter([], [], color=col, label=t)
    ax.set_xscale("log")
    how = built[0].latency_how if built else "measured"
    ax.set_xlabel(f"latency, ms ({how}; log scale)")
    ax.set_ylabel("top-1, %")
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp, metadata={"Software": None})
    plt.close(fig)
    tmp.replace(path)


def write_outputs(res: Result, out: Path, budgets_toml: str, *, overwrite: bool) -> Path | None:
    """``out/bundle`` (the chosen one, re-verified), ``record.json``, ``pareto.png``, ``budgets.toml`` (for
    ``edgecnn check``) — each written atomically."""
    from edgecnn import runtime
    from edgecnn.train.checkpoint import atomic_write_bytes, atomic_write_json

    out.mkdir(parents=True, exist_ok=True)
    final = None
    if res.chosen is not None:
        final = out / "bundle"
        staged = out / ".bundle.tmp"
        if staged.exists():
            shutil.rmtree(staged)
        shutil.copytree(res.chosen.bundle, staged)
        runtime.load(staged).selftest()
        if final.exists():
            if not overwrite:
                raise ConfigError(f"{str(final)!r} exists", hint="pass --overwrite or another --out")
            shutil.rmtree(final)
        staged.replace(final)
        res.record["bundle"] = str(final)
    atomic_write_json(out / "record.json", res.record)
    atomic_write_bytes(out / "budgets.toml", budgets_toml.encode("utf-8"))
    title = f"{Path(res.record['model']).name} on {res.record['device']}: {len(res.candidates)} candidates"
    plot_pareto(res.candidates, res.chosen, out / "pareto.png", title=title)
    return final


def budgets_toml(b: Budgets, m: Measure) -> str:
    """The budgets as a file for ``edgecnn check`` (so CI re-checks exactly what was optimized for)."""
    lines = ["# written by edgecnn optimize: `edgecnn check BUNDLE --budgets THIS_FILE`", "[budgets]"]
    lines += [f"{k} = {v!r}" for k, v in b.to_dict().items()]
    lines.append("[measure]")
    for k, v in dataclasses.asdict(m).items():
        if v is None or (k == "device" and v == LOCAL):
            continue
        lines.append(f"{k} = {json.dumps(v)}")
    return "\n".join(lines) + "\n"
