"""Per-layer latency sources for latency-aware pruning (``edgecnn prune --target-latency``).

:func:`edgecnn.prune.prune_model` sits below measurement, so the latency it spends comes from here as callables:

* :func:`measured` — this machine: the model exported to ONNX (the bundle exporter's path) and profiled by ONNX
  Runtime layer by layer (:func:`edgecnn.bench.perlayer.layer_times_onnxruntime`), and candidates timed end to
  end without the profiler (its ~2 µs per kernel event would bias small models);
* :func:`on_profile` — a hardware profile that is not here: the estimator's per-layer roofline times
  (:mod:`edgecnn.bench.estimate`).

:func:`channel_multiple` reads the channel multiple a profile's vector units want off the profile.
"""

from __future__ import annotations

import math
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from edgecnn.profiles import Profile

LayerCosts = Callable[[Any], tuple[dict[str, float], float]]
Measure = Callable[[Any], float]


def _export(model: Any, resolution: int, folder: Path) -> Path:
    import torch

    from edgecnn.onnx_graph.torch_export import export_onnx

    in_chans = getattr(getattr(model, "edgecnn_options", None), "in_chans", 3)
    example = torch.zeros(1, in_chans, resolution, resolution)
    return export_onnx(model.eval(), example, folder / "m.onnx", opset=18, dynamic_batch=None)


def measured(
    resolution: int, *, threads: int, runs: int = 30, min_time_s: float = 1.0, rounds: int = 3
) -> tuple[LayerCosts, Measure]:
    """(per-layer ONNX Runtime times of a model, end-to-end p50 ms of a candidate) on this machine, fp32.
    The end-to-end figure is the median of ``rounds`` timed rounds (a loaded machine drifts between rounds)."""
    from edgecnn.bench.fit_profile import time_graph
    from edgecnn.bench.perlayer import layer_times_onnxruntime

    def layer_costs(model: Any) -> tuple[dict[str, float], float]:
        """Profiled per-layer times, scaled so they sum like the unprofiled end-to-end time (the profiler's own
        overhead per kernel event would otherwise inflate every layer)."""
        import onnx

        with tempfile.TemporaryDirectory(prefix="edgecnn-prune-") as tmp:
            path = _export(model, resolution, Path(tmp))
            graph_input = onnx.load(str(path), load_external_data=False).graph.input[0]
            dims = tuple(d.dim_value for d in graph_input.type.tensor_type.shape.dim)
            x = np.random.default_rng(0).standard_normal(dims).astype(np.float32)
            per = layer_times_onnxruntime(path, {graph_input.name: x}, threads=threads, runs=runs)
        total = measure(model)
        scale = total / per.end_to_end_ms if per.end_to_end_ms > 0 else 1.0
        return {t.layer: t.ms * scale for t in per.layers}, total

    def measure(model: Any) -> float:
        with tempfile.TemporaryDirectory(prefix="edgecnn-prune-") as tmp:
            blob = _export(model, resolution, Path(tmp)).read_bytes()
        in_chans = getattr(getattr(model, "edgecnn_options", None), "in_chans", 3)
        shape = (1, in_chans, resolution, resolution)
        times = [
            time_graph(blob, shape, threads=threads, warmup=5, iters=20, min_time_s=min_time_s) for _ in range(rounds)
        ]
        return 1e3 * float(np.median(times))

    return layer_costs, measure


def on_profile(profile: Profile, *, precision: str, resolution: int) -> LayerCosts:
    """Per-layer predicted ms of a model on ``profile`` (the estimator's roofline), and the predicted total."""
    from edgecnn.bench.estimate import estimate_ops
    from edgecnn.bench.roofline import model_ops

    def layer_costs(model: Any) -> tuple[dict[str, float], float]:
        est = estimate_ops(model_ops(model, resolution), profile, precision=precision, resolution=resolution)
        costs: dict[str, float] = {}
        for layer in est.layers:
            costs[layer.name] = costs.get(layer.name, 0.0) + layer.ms
        return costs, est.total_ms

    return layer_costs


def channel_multiple(profile: Profile) -> int:
    """The channel multiple a profile's device runs fastest: a CPU's fp32 SIMD lanes (peak fp32 GOP/s ÷ cores ÷
    clock ÷ 2 ops per FMA ÷ 2 FMA pipes — 16 on AVX-512, 8 on AVX2, 4 on 128-bit NEON, never below 8); 8 on a GPU
    (tensor-core fp16/int8 tiles want multiples of 8, NVIDIA "Deep Learning Performance" guide); 16 on NPUs and DLAs
    (16-channel int8 tiles)."""
    if profile.kind == "cpu" and profile.cores and profile.clock_ghz and "fp32" in profile.peak_gops:
        lanes = profile.peak_gops["fp32"] / (profile.cores * profile.clock_ghz * 2 * 2)
        return max(8, 2 ** round(math.log2(max(lanes, 1.0))))
    return 8 if profile.kind == "gpu" else 16 if profile.kind in ("npu", "dla") else 8
