"""Measured per-layer latency, mapped back to the PyTorch model's layers.

* ONNX Runtime: ``SessionOptions.enable_profiling`` writes a Chrome-trace JSON with one ``Node`` event per kernel
  (``<node>_kernel_time``, durations in µs) and one ``model_run`` event per inference (ORT docs, "Profiling
  tools"). The optimized graph (``optimized_model_filepath``) says which original tensors each fused/NCHWc node
  produces, so every kernel maps back to an exported node.
* OpenVINO: ``PERF_COUNT=YES`` and ``InferRequest.get_profiling_info()`` give ``real_time`` per executed node of the
  last inference (OpenVINO docs, "Performance counters"); fused nodes keep the friendly name of an original node.

The dynamo ONNX exporter records each node's PyTorch module path in the ``pkg.torch.onnx.name_scopes`` metadata;
a node is attributed to the module that owns it, and conv/BN/activation leaves are folded into their parent
(``blocks.3.0.conv_dw`` rather than ``…conv_dw.bn``) because the runtimes fuse them into one kernel.
"""

from __future__ import annotations

import json
import logging
import re
import statistics
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from edgecnn.errors import BackendError
from edgecnn.onnx_graph.scopes import onnx_scopes

if TYPE_CHECKING:
    from edgecnn.runtime.session import Session

log = logging.getLogger(__name__)

RUNTIME = "(runtime: layout/reorder)"
_TOKEN = re.compile(r"_token_\d+$")
_FUSION = re.compile(r"/[A-Za-z0-9]+Fusion/?$")  # ORT names a fused node "<first node>/<Pass>Fusion/" (QuickGelu …)
_QDQ = re.compile(r"_(?:Dequantize|Quantize)Linear$")  # ORT's quantizer names Q/DQ nodes "<tensor>_QuantizeLinear"


@dataclass(frozen=True, kw_only=True)
class LayerTime:
    layer: str
    ops: tuple[str, ...]
    ms: float
    share: float


@dataclass(frozen=True, kw_only=True)
class PerLayer:
    """Per-layer times (ms per inference, slowest first), their sum, and the end-to-end time of the same runs."""

    backend: str
    layers: tuple[LayerTime, ...]
    sum_ms: float
    end_to_end_ms: float
    runs: int

    @property
    def coverage(self) -> float:
        """sum of layer times / end-to-end (1.0 = the layers explain the whole inference)."""
        return self.sum_ms / self.end_to_end_ms if self.end_to_end_ms else 0.0

    def to_dict(self, top: int | None = None) -> dict[str, Any]:
        layers = self.layers[:top] if top else self.layers
        return {
            "backend": self.backend,
            "runs": self.runs,
            "sum_ms": self.sum_ms,
            "end_to_end_ms": self.end_to_end_ms,
            "coverage": self.coverage,
            "layers": [{"layer": x.layer, "ops": list(x.ops), "ms": x.ms, "share": x.share} for x in layers],
        }


def _assemble(backend: str, per_layer_us: dict[str, float], ops: dict[str, set[str]], runs: int, e2e_ms: float):
    total = sum(per_layer_us.values()) / runs / 1e3
    layers = sorted(
        (
            LayerTime(layer=k, ops=tuple(sorted(ops[k])), ms=v / runs / 1e3, share=(v / runs / 1e3) / total)
            for k, v in per_layer_us.items()
        ),
        key=lambda x: -x.ms,
    )
    return PerLayer(backend=backend, layers=tuple(layers), sum_ms=total, end_to_end_ms=e2e_ms, runs=runs)


def layer_times_onnxruntime(
    onnx_path: Path, feeds: dict[str, np.ndarray], *, threads: int | None, runs: int = 20, warmup: int = 5
) -> PerLayer:
    """Profile ``runs`` inferences with ORT's built-in profiler (after ``warmup`` unprofiled-by-us calls)."""
    from edgecnn.runtime.ort_session import ort_session

    by_node, by_tensor = onnx_scopes(onnx_path)
    with tempfile.TemporaryDirectory(prefix="edgecnn-ortprof-") as tmp:
        try:
            sess = ort_session(
                onnx_path, threads=threads, profile_dir=Path(tmp), optimized_model=Path(tmp) / "optimized.onnx"
            )
        except Exception as e:
            raise BackendError(f"onnxruntime cannot profile {onnx_path.name}: {str(e).splitlines()[0]}") from None
        for _ in range(warmup):
            sess.run(None, feeds)
        for _ in range(runs):
            sess.run(None, feeds)
        trace = json.loads(Path(sess.end_profiling()).read_text())
        opt_map = _optimized_node_layers(Path(tmp) / "optimized.onnx", by_node, by_tensor)
    run_events = sorted((e for e in trace if e.get("name") == "model_run"), key=lambda e: e["ts"])[-runs:]
    model_runs = [e["dur"] for e in run_events]
    first_ts = run_events[0]["ts"] if run_events else 0  # only the post-warm-up window counts
    per_layer: dict[str, float] = defaultdict(float)
    ops: dict[str, set[str]] = defaultdict(set)
    for e in trace:
        if e.get("cat") != "Node" or not e["name"].endswith("_kernel_time") or e["ts"] < first_ts:
            continue
        node = e["name"][: -len("_kernel_time")]
        layer = opt_map.get(node) or by_node.get(node) or by_tensor.get(re.sub(r"_nchwc$", "", node)) or RUNTIME
        per_layer[layer] += e["dur"]
        ops[layer].add(e.get("args", {}).get("op_name", "?"))
    if not model_runs:
        raise BackendError("onnxruntime's profile holds no model_run events")
    # means on both sides: the layer times are per-run means, so the end-to-end figure is the mean model_run
    return _assemble("onnxruntime", per_layer, ops, len(model_runs), statistics.fmean(model_runs) / 1e3)


def _optimized_node_layers(path: Path, by_node: dict[str, str], by_tensor: dict[str, str]) -> dict[str, str]:
    """Each node of ORT's optimized graph → the layer of the original tensor it produces (or feeds)."""
    import onnx

    if not path.is_file():
        return {}
    graph = onnx.load(str(path), load_external_data=False).graph
    consumers: dict[str, list[Any]] = defaultdict(list)
    for n in graph.node:
        for i in n.input:
            consumers[i].append(n)
    out: dict[str, str] = {}
    for n in graph.node:
        # QDQ fusion names the fused kernel after the original node + "_token_N" (QLinearConv from DQ→Conv→Q)
        base = _FUSION.sub("", _TOKEN.sub("", n.name))
        layer = (
            by_node.get(n.name)
            or by_node.get(base)
            or by_tensor.get(_QDQ.sub("", base))  # a Q/DQ pair's layer: that of the tensor it (de)quantizes
            or next((by_tensor[o] for o in n.output if o in by_tensor), None)
            or next((by_node[o] for o in n.output if o in by_node), None)
        )
        if layer is None and not n.op_type.startswith("Reorder"):
            # a node ORT created (e.g. an unfused activation): follow its output to the consumer's layer
            nxt = [c for o in n.output for c in consumers.get(o, [])]
            layer = next((by_node.get(c.name) or by_tensor.get(c.output[0]) for c in nxt if c.output), None)
        if layer:
            out[n.name] = layer
    return out


def layer_times_openvino(
    model_path: Path,
    onnx_names: tuple[dict[str, str], dict[str, str]] | None,
    feeds: dict[str, np.ndarray],
    *,
    threads: int | None,
    precision_hint: str = "f32",
    runs: int = 20,
    warmup: int = 5,
) -> PerLayer:
    """Compile with ``PERF_COUNT`` and sum each executed node's ``real_time`` per inference (median over runs)."""
    import openvino as ov

    cfg: dict[str, Any] = {"PERF_COUNT": True, "INFERENCE_PRECISION_HINT": precision_hint}
    if threads:
        cfg["INFERENCE_NUM_THREADS"] = threads
    try:
        req = ov.Core().compile_model(str(model_path), "CPU", cfg).create_infer_request()
    except Exception as e:
        raise BackendError(f"OpenVINO cannot profile {model_path.name}: {str(e).splitlines()[0]}") from None
    for _ in range(warmup):
        req.infer(feeds)
    by_node, by_tensor = onnx_names or ({}, {})
    per_run: list[dict[str, float]] = []
    walls: list[float] = []
    ops: dict[str, set[str]] = defaultdict(set)
    for _ in range(runs):
        t = time.perf_counter()
        req.infer(feeds)
        walls.append((time.perf_counter() - t) * 1e6)
        acc: dict[str, float] = defaultdict(float)
        for info in req.get_profiling_info():
            if info.status != info.Status.EXECUTED:
                continue
            layer = _ov_layer(info.node_name, by_node, by_tensor)
            acc[layer] += info.real_time.total_seconds() * 1e6
            ops[layer].add(info.node_type)
        per_run.append(acc)
    # counters describe the last inference only: take the run whose layer sum is the median, and the median wall
    # time of all runs as end-to-end (a single run's wall time carries that run's scheduling noise)
    sums = [sum(r.values()) for r in per_run]
    i = int(np.argsort(sums)[len(sums) // 2])
    return _assemble("openvino", dict(per_run[i]), ops, 1, float(np.median(walls)) / 1e3)


def _ov_layer(name: str, by_node: dict[str, str], by_tensor: dict[str, str]) -> str:
    if not by_node:
        return name
    base = name.split("/")[0]
    if base in by_node:
        return by_node[base]
    if base in by_tensor:
        return by_tensor[base]
    for key in by_node:  # OpenVINO's reorders are named "<tensor>_<fmt>_<fmt>_<consumer node>"
        if base.endswith("_" + key):
            return by_node[key]
    return RUNTIME


def scopes_for_bundle(session: Any) -> tuple[dict[str, str], dict[str, str]] | None:
    """Layer maps for a bundle: from its ONNX file, or — for an OpenVINO IR, which keeps ONNX node names but not
    the exporter's module scopes — by re-exporting the zoo model named in the manifest to ONNX in a temp dir (the
    dynamo exporter's node names are deterministic for the same model code and torch). None when neither works."""
    path = session.bundle.model_path
    if path.suffix == ".onnx":
        return onnx_scopes(path)
    model = session.manifest.data["model"]
    try:
        import torch

        from edgecnn.models import create_model
        from edgecnn.onnx_graph.torch_export import export_onnx
    except ImportError:
        log.info("no torch here: OpenVINO layers keep their IR names")
        return None
    from edgecnn.errors import EdgeCNNError

    opts = {k: v for k, v in (model.get("options") or {}).items() if v is not None and k != "features_only"}
    shape = session.input.concrete_shape(session.input.dim_range(0)[0])
    try:
        with tempfile.TemporaryDirectory(prefix="edgecnn-scopes-") as tmp:
            net = create_model(model["name"], **opts).eval()
            onnx_path = export_onnx(net, torch.zeros(*shape), Path(tmp) / "m.onnx", opset=18, dynamic_batch=None)
            return onnx_scopes(onnx_path)
    except (EdgeCNNError, TypeError, KeyError) as e:
        log.info("cannot rebuild layer names for %s: %s", model.get("name"), e)
        return None


def _bundle_layer_times_onnxruntime(session: Session, feeds: dict[str, np.ndarray], threads: int | None) -> PerLayer:
    return layer_times_onnxruntime(session.bundle.model_path, feeds, threads=threads)


def _bundle_layer_times_openvino(session: Session, feeds: dict[str, np.ndarray], threads: int | None) -> PerLayer:
    """The bundle's own inference precision (a bf16 bundle runs bf16), its layers named as in the PyTorch model."""
    manifest = session.manifest
    hint = manifest.backend_options.get("openvino_inference_precision") or (
        "bf16" if manifest.precision == "bf16" else "f32"
    )
    path = session.bundle.model_path
    return layer_times_openvino(path, scopes_for_bundle(session), feeds, threads=threads, precision_hint=hint)


# Runtime backend name (``Session.backend_name``) → the reader of its per-layer
# times on a loaded bundle. A backend not here has no per-layer view (TensorRT: no profiler wired in).
LAYER_TIME_READERS: dict[str, Callable[[Session, dict[str, np.ndarray], int | None], PerLayer]] = {
    "onnxruntime": _bundle_layer_times_onnxruntime,
    "openvino": _bundle_layer_times_openvino,
}
