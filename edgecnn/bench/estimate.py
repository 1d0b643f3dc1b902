"""Predicted latency of a model on a hardware profile: per-layer roofline times, total, error band, memory.

A prediction never travels without its profile's provenance (where every figure comes from, and whether the
efficiencies were fitted by ``edgecnn profile fit``) and an error band: the profile's ``error_band``
(relative), the band a calibration measured, or the wider of the two.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Any

from edgecnn.bench.roofline import Op, fused_epilogues, int8_view, model_ops, op_time_s, weights_resident
from edgecnn.errors import ConfigError
from edgecnn.precision import BYTES
from edgecnn.profiles import Profile


@dataclass(frozen=True, kw_only=True)
class LayerEstimate:
    name: str
    kind: str
    type: str
    ms: float
    bound: str  # compute | memory | fused
    gops: float
    mbytes: float


@dataclass(frozen=True, kw_only=True)
class Estimate:
    model: str
    profile: str
    precision: str
    resolution: int
    batch: int
    total_ms: float
    low_ms: float
    high_ms: float
    error_band: float
    weights_mib: float
    peak_activation_mib: float
    working_set_mib: float
    by_kind_ms: dict[str, float]
    layers: tuple[LayerEstimate, ...]
    provenance: dict[str, Any] = field(default_factory=dict)

    def to_dict(self, *, per_layer: bool = True) -> dict[str, Any]:
        d = asdict(self)
        d["layers"] = [asdict(x) for x in self.layers] if per_layer else None
        return d


def estimate_ops(
    ops: list[Op],
    profile: Profile,
    *,
    precision: str,
    model: str = "?",
    resolution: int = 0,
    batch: int = 1,
) -> Estimate:
    """Sum roofline times over ``ops`` on ``profile`` (activations that fuse cost nothing when the profile fuses, and
    so do ops of the kinds the profile lists as fused at ``precision``). An op the profile's runtime runs in float
    between Q/DQ at ``precision`` (``estimator.float_ops_int8``) never fuses: it costs its dequantize / float op /
    quantize passes and traffic and a dispatch per kernel (:func:`edgecnn.bench.roofline.as_island`)."""
    if precision not in profile.precisions:
        raise ConfigError(
            f"profile {profile.name!r} does not run {precision}",
            hint=f"its precisions: {', '.join(profile.precisions)}",
        )
    est = profile.estimator
    peak = profile.peak(precision)
    resident = weights_resident(ops, precision, profile.last_cache_bytes)
    fused_kinds = profile.fused_kinds_for(precision)
    overhead_s = profile.layer_overhead_us_for(precision) * 1e-6
    memory = dict(
        bandwidth_gbs=profile.bandwidth_gbs,
        memory_efficiency=est["memory_efficiency"],
        cache_bytes=profile.last_cache_bytes,
        cache_bandwidth_gbs=est.get("cache_bandwidth_gbs"),
        l2_bytes=profile.l2_cache_bytes,
        l2_bandwidth_gbs=est.get("l2_bandwidth_gbs"),
    )
    ops = int8_view(ops, profile.float_ops_for(precision))
    act_ns = profile.fused_activation_ns_for(precision)
    # a fused activation costs its producer an epilogue pass (roofline.fold_activations); it stays listed as fused
    acts = fused_epilogues(ops) if est["fused_activations"] else {}
    layers = []
    for i, op in enumerate(ops):
        if i in acts:
            op = replace(op, act_elems=acts[i])
        if not op.island_bytes and ((op.fusable and est["fused_activations"]) or op.kind in fused_kinds):
            layers.append(
                LayerEstimate(name=op.name, kind=op.kind, type=op.type, ms=0.0, bound="fused", gops=0, mbytes=0)
            )
            continue
        t, bound = op_time_s(
            op,
            peak_gops=peak,
            efficiency=profile.efficiency_for(precision, op.kind),
            element_ns=profile.element_ns_for(precision, op.kind),
            activation_ns=act_ns,
            precision=precision,
            overhead_s=overhead_s,
            weights_resident=resident,
            **memory,
        )
        layers.append(
            LayerEstimate(
                name=op.name,
                kind=op.kind,
                type=op.type,
                ms=t * 1e3,
                bound=bound,
                gops=op.work() / 1e9,
                mbytes=op.bytes(precision) / 1e6,
            )
        )
    # graph_factor: whole-graph effects single-op micro-benchmarks do not see (activations leaving the cache between
    # layers, layout reorders), fitted by calibration on whole models at another resolution; 1.0 when absent
    factor = float(est.get("graph_factor", 1.0))
    layers = [replace(x, ms=x.ms * factor) for x in layers]
    total = sum(x.ms for x in layers) + est["model_overhead_us"] * 1e-3
    band = float(est["error_band"])
    if profile.calibration:
        band = max(band, 2 * float(profile.calibration["median_abs_error"]))
    by_kind: dict[str, float] = {}
    for x in layers:
        by_kind[x.kind] = by_kind.get(x.kind, 0.0) + x.ms
    width = BYTES[precision]
    weights = sum(op.weight_elems for op in ops) * width
    peak_act = max((op.in_elems + op.out_elems for op in ops), default=0) * width
    return Estimate(
        model=model,
        profile=profile.name,
        precision=precision,
        resolution=resolution,
        batch=batch,
        total_ms=total,
        low_ms=total / (1 + band),
        high_ms=total * (1 + band),
        error_band=band,
        weights_mib=weights / 2**20,
        peak_activation_mib=peak_act / 2**20,
        working_set_mib=(weights + peak_act) / 2**20,
        by_kind_ms=by_kind,
        layers=tuple(layers),
        provenance=profile.provenance(),
    )


def estimate_model(
    name: str, profile: Profile, *, precision: str | None = None, resolution: int | None = None, batch: int = 1
) -> Estimate:
    """Predict a zoo model (built on the meta device: no weights, no compute) on ``profile``."""
    import torch

    from edgecnn.models import create_model, get_model_entry

    entry = get_model_entry(name)
    res = resolution or entry.default_resolution
    if res < 8 or batch < 1:
        raise ConfigError(f"--resolution must be >= 8 and --batch >= 1, got {res} and {batch}")
    with torch.device("meta"):
        model = create_model(name)
    ops = model_ops(model, res, batch=batch)
    prec = precision or profile.precisions[0]
    return estimate_ops(ops, profile, precision=prec, model=name, resolution=res, batch=batch)
