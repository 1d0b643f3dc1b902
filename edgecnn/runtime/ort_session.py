"""The one ONNX Runtime session factory: the runtime's backend, quantization (calibration, ranges, rounding
statistics), per-layer profiling and profile fitting all open their sessions here, so threads, graph optimization,
profiling and the optimizers a bundle must run without are set in one way.

``WeightBiasQuantization`` (onnxruntime ≥ 1.21) takes a Conv/Gemm with float weights whose input comes from a
DequantizeLinear — exactly what a layer kept in float (``--keep-float``, ``--max-drop``) looks like in a QDQ model —
and quantizes its weights to int8 *per tensor* when the session loads. That silently undoes the float fallback, and
per-tensor weights collapse layers with wide per-channel ranges. Every session edgecnn opens on a QDQ model turns it
off (:data:`QDQ_DISABLED_OPTIMIZERS`); an INT8 bundle records it in ``backend_options`` so the device does the same.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from edgecnn.sdk import import_sdk

QDQ_DISABLED_OPTIMIZERS = ("WeightBiasQuantization",)
CPU = ("CPUExecutionProvider",)


def ort_session(
    model: str | Path | bytes,
    *,
    threads: int | None = None,
    optimize: bool = True,
    exact: bool = False,
    disabled_optimizers: Sequence[str] = (),
    providers: Sequence[str] = CPU,
    profile_dir: Path | None = None,
    optimized_model: Path | None = None,
    log_severity: int = 3,
) -> Any:
    """An ``InferenceSession`` on ``model`` (a path or serialized bytes).

    ``threads`` pins intra-op threads (and one inter-op thread); ``optimize=False`` keeps every node as the model
    names it (``ORT_DISABLE_ALL``: calibration reads intermediate tensors); ``exact=True`` applies only the basic
    rewrites (``ORT_ENABLE_BASIC``): Q/DQ nodes are not fused into int8 kernels, so an INT8 model computes exactly what
    its graph says on any CPU (on x86 without VNNI the fused kernels saturate, ``runtime.env.int8_saturates``);
    ``profile_dir`` turns ORT's profiler on
    (its trace lands there); ``optimized_model`` is where ORT writes the graph it really runs."""
    ort = import_sdk("onnxruntime", "onnxruntime")
    so = ort.SessionOptions()
    level = ort.GraphOptimizationLevel
    so.graph_optimization_level = (
        level.ORT_DISABLE_ALL if not optimize else level.ORT_ENABLE_BASIC if exact else level.ORT_ENABLE_ALL
    )
    so.log_severity_level = log_severity
    if threads:
        so.intra_op_num_threads, so.inter_op_num_threads = threads, 1
    if profile_dir is not None:
        so.enable_profiling = True
        so.profile_file_prefix = str(Path(profile_dir) / "ort")
    if optimized_model is not None:
        so.optimized_model_filepath = str(optimized_model)
    source = model if isinstance(model, bytes) else str(model)
    return ort.InferenceSession(
        source, sess_options=so, providers=list(providers), disabled_optimizers=list(disabled_optimizers)
    )
