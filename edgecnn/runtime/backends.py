"""Backend sessions: the one place each vendor SDK is imported (lazily), each a small class with ``run``.

Every backend must be safe to call from many threads at once: ONNX Runtime's ``InferenceSession.run`` is; for
OpenVINO and TensorRT each thread gets its own infer request / execution context.
"""

from __future__ import annotations

import importlib
import logging
import threading
from typing import Any, Protocol

import numpy as np

from edgecnn.errors import BackendError, MissingDependencyError
from edgecnn.runtime.bundle import Bundle

log = logging.getLogger(__name__)

# target → the backend that runs its files by default
DEFAULT_BACKEND = {"onnx": "onnxruntime", "openvino": "openvino", "tensorrt": "tensorrt"}
# backend → targets whose entry file it can read
READS = {"onnxruntime": ("onnx", "tensorrt"), "openvino": ("openvino", "onnx"), "tensorrt": ("tensorrt",)}
EXTRA = {"onnxruntime": "onnxruntime", "openvino": "openvino", "tensorrt": "tensorrt"}


def import_sdk(module: str, extra: str) -> Any:
    try:
        return importlib.import_module(module)
    except ImportError as e:
        raise MissingDependencyError(
            f"the {module} SDK is not installed ({e})", hint=f'pip install "edgecnn[{extra}]"'
        ) from None


class BackendSession(Protocol):
    name: str
    device: str

    def run(self, feeds: dict[str, np.ndarray]) -> list[np.ndarray]: ...


class OrtBackend:
    """ONNX Runtime: CPU, or the CUDA / TensorRT execution providers when the device asks and they exist."""

    name = "onnxruntime"

    def __init__(self, bundle: Bundle, device: str | None, threads: int | None) -> None:
        ort = import_sdk("onnxruntime", "onnxruntime")
        device = (device or "cpu").lower()
        available = ort.get_available_providers()
        wanted = {
            "cpu": ["CPUExecutionProvider"],
            "cuda": ["CUDAExecutionProvider", "CPUExecutionProvider"],
            "tensorrt": ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"],
        }
        if device not in wanted:
            raise BackendError(f"onnxruntime device {device!r} is not supported", hint="use cpu, cuda or tensorrt")
        providers = [p for p in wanted[device] if p in available]
        if wanted[device][0] not in available:
            raise BackendError(
                f"onnxruntime has no {wanted[device][0]} here (available: {', '.join(available)})",
                hint="install onnxruntime-gpu on a CUDA machine, or use --device cpu",
            )
        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if threads:
            opts.intra_op_num_threads = threads
            opts.inter_op_num_threads = 1
        # optimizers the bundle must run without (an INT8 QDQ bundle: edgecnn.quant.ort_ptq.ORT_DISABLED_OPTIMIZERS)
        disabled = [str(o) for o in bundle.manifest.backend_options.get("onnxruntime_disabled_optimizers", [])]
        try:
            self._sess = ort.InferenceSession(
                str(bundle.model_path), sess_options=opts, providers=providers, disabled_optimizers=disabled
            )
        except Exception as e:  # ORT raises its own exception types
            raise BackendError(f"onnxruntime cannot load {bundle.manifest.entry!r}: {str(e).splitlines()[0]}") from None
        self.device = device
        self.raw = self._sess

    def run(self, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        return self._sess.run(None, feeds)


class OpenVINOBackend:
    """OpenVINO on CPU / GPU / NPU; the precision hint comes from the manifest (f32 for true fp32 parity)."""

    name = "openvino"

    def __init__(self, bundle: Bundle, device: str | None, threads: int | None) -> None:
        ov = import_sdk("openvino", "openvino")
        core = ov.Core()
        device = (device or "CPU").upper()
        if device not in core.available_devices and device.split(".")[0] not in ("AUTO", "MULTI", "HETERO"):
            raise BackendError(
                f"OpenVINO device {device!r} is not available here (available: {', '.join(core.available_devices)})",
                hint="use --device CPU",
            )
        config: dict[str, Any] = {}
        # OpenVINO silently runs f32 models in bf16 on CPUs with AVX-512 BF16 unless told otherwise: give it the
        # bundle's precision explicitly (the recorded hint, else f32 for anything but a bf16 bundle).
        hint = bundle.manifest.backend_options.get("openvino_inference_precision") or (
            "bf16" if bundle.manifest.precision == "bf16" else "f32"
        )
        if device.startswith("CPU"):
            config["INFERENCE_PRECISION_HINT"] = hint
        if threads and device.startswith("CPU"):
            config["INFERENCE_NUM_THREADS"] = threads
        try:
            self.raw = core.compile_model(str(bundle.model_path), device, config)
        except Exception as e:
            raise BackendError(f"OpenVINO cannot compile {bundle.manifest.entry!r}: {str(e).splitlines()[0]}") from None
        self.device = device
        self._local = threading.local()
        self._outputs = list(self.raw.outputs)

    def run(self, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        req = getattr(self._local, "req", None)
        if req is None:
            req = self._local.req = self.raw.create_infer_request()
        res = req.infer(feeds)
        return [np.array(res[o], copy=True) for o in self._outputs]


def make_backend(name: str, bundle: Bundle, device: str | None, threads: int | None) -> BackendSession:
    target = bundle.manifest.target
    if name not in READS:
        raise BackendError(f"unknown backend {name!r}", hint=f"one of {', '.join(READS)}")
    if target not in READS[name]:
        raise BackendError(f"backend {name!r} cannot run a {target!r} bundle", hint=f"use {DEFAULT_BACKEND[target]!r}")
    if name == "onnxruntime":
        if target == "tensorrt":
            log.info("running the TensorRT-ready ONNX in ONNX Runtime (numerics check, not a TensorRT engine)")
        return OrtBackend(bundle, device, threads)
    if name == "openvino":
        return OpenVINOBackend(bundle, device, threads)
    from edgecnn.runtime.trt_engine import TensorRTBackend

    return TensorRTBackend(bundle, device, threads)
