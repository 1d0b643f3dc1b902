"""Runtime backends: a registry of the SDKs that run bundles, each a small class with ``run``, imported lazily.

A backend says which model files it reads (the bundle entry's suffix) and, where a file alone is not enough, which
``backend_options`` key a bundle must carry for it (TensorRT needs its engine build settings). The backend a bundle
runs on by default is recorded in its manifest (``backend_options.runtime_backend``, from the export target's
descriptor), so a new export target needs no edit here.

Every backend must be safe to call from many threads at once: ONNX Runtime's ``InferenceSession.run`` is; for
OpenVINO and TensorRT each thread gets its own infer request / execution context.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from edgecnn.errors import BackendError, UnknownNameError
from edgecnn.registry import Registry
from edgecnn.runtime.bundle import Bundle
from edgecnn.runtime.ort_session import ort_session
from edgecnn.sdk import import_sdk

log = logging.getLogger(__name__)

# Bundles written before manifests recorded their runtime backend: the backend of each built-in target.
LEGACY_DEFAULT_BACKEND = {"onnx": "onnxruntime", "openvino": "openvino", "tensorrt": "tensorrt"}


class BackendSession(Protocol):
    name: str
    device: str

    def run(self, feeds: dict[str, np.ndarray]) -> list[np.ndarray]: ...


@dataclass(frozen=True, kw_only=True)
class RuntimeBackend:
    """A registered backend: its name, what it reads, and how to open a session on a bundle."""

    name: str
    extra: str  # the pip extra that installs its SDK
    reads: tuple[str, ...]  # model file suffixes it runs
    requires_option: str | None = None  # a backend_options key the bundle must carry for it
    open: Callable[[Bundle, str | None, int | None], BackendSession]

    def can_run(self, bundle: Bundle) -> bool:
        entry = bundle.manifest.entry
        needs = self.requires_option
        return entry.endswith(self.reads) and (needs is None or needs in bundle.manifest.backend_options)


BACKENDS: Registry[RuntimeBackend] = Registry("runtime backend")


def register_backend(backend: RuntimeBackend) -> RuntimeBackend:
    return BACKENDS.register(backend.name, backend)


def default_backend(bundle: Bundle) -> str:
    """The backend the bundle was made for: recorded in its manifest, else its built-in target's."""
    opts, target = bundle.manifest.backend_options, bundle.manifest.target
    name = opts.get("runtime_backend") or LEGACY_DEFAULT_BACKEND.get(target)
    if not isinstance(name, str):
        raise BackendError(
            f"the bundle names no runtime backend for target {target!r}", hint="pass --backend NAME explicitly"
        )
    return name


class OrtBackend:
    """ONNX Runtime: CPU, or the CUDA / TensorRT execution providers when the device asks and they exist."""

    name = "onnxruntime"
    PROVIDERS = {
        "cpu": ("CPUExecutionProvider",),
        "cuda": ("CUDAExecutionProvider", "CPUExecutionProvider"),
        "tensorrt": ("TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"),
    }

    def __init__(self, bundle: Bundle, device: str | None, threads: int | None) -> None:
        ort = import_sdk("onnxruntime", "onnxruntime")
        device = (device or "cpu").lower()
        if device not in self.PROVIDERS:
            raise BackendError(f"onnxruntime device {device!r} is not supported", hint="use cpu, cuda or tensorrt")
        wanted, available = self.PROVIDERS[device], ort.get_available_providers()
        if wanted[0] not in available:
            raise BackendError(
                f"onnxruntime has no {wanted[0]} here (available: {', '.join(available)})",
                hint="install onnxruntime-gpu on a CUDA machine, or use --device cpu",
            )
        # optimizers the bundle must run without (an INT8 QDQ bundle: ort_session.QDQ_DISABLED_OPTIMIZERS)
        disabled = [str(o) for o in bundle.manifest.backend_options.get("onnxruntime_disabled_optimizers", [])]
        try:
            self._sess = ort_session(
                bundle.model_path,
                threads=threads,
                providers=[p for p in wanted if p in available],
                disabled_optimizers=disabled,
                log_severity=2,
            )
        except Exception as e:  # ORT raises its own exception types
            raise BackendError(f"onnxruntime cannot load {bundle.manifest.entry!r}: {_one_line(e)}") from None
        if wanted[0] not in self._sess.get_providers():  # ORT falls back to the CPU silently (e.g. no CUDA libraries)
            raise BackendError(
                f"onnxruntime could not start {wanted[0]} (session runs on {', '.join(self._sess.get_providers())})",
                hint="check the CUDA / cuDNN libraries onnxruntime-gpu needs (pip install onnxruntime-gpu[cuda,cudnn])",
            )
        self.device = device
        self.raw = self._sess
        self.input_names = [i.name for i in self._sess.get_inputs()]
        self.output_names = [o.name for o in self._sess.get_outputs()]

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
            raise BackendError(f"OpenVINO cannot compile {bundle.manifest.entry!r}: {_one_line(e)}") from None
        self.device = device
        self._local = threading.local()
        self._outputs = list(self.raw.outputs)
        self.input_names = [i.get_any_name() for i in self.raw.inputs]
        self.output_names = [o.get_any_name() for o in self.raw.outputs]

    def run(self, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        req = getattr(self._local, "req", None)
        if req is None:
            req = self._local.req = self.raw.create_infer_request()
        res = req.infer(feeds)
        return [np.array(res[o], copy=True) for o in self._outputs]


def _one_line(e: BaseException, limit: int = 600) -> str:
    """An SDK's multi-line message on one line: its first line often only says where (OpenVINO's "Exception from
    src/..."), the reason comes after."""
    text = " ".join(part.strip() for part in str(e).splitlines() if part.strip())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _open_ort(bundle: Bundle, device: str | None, threads: int | None) -> BackendSession:
    if "tensorrt" in bundle.manifest.backend_options:
        log.info("running the TensorRT-ready ONNX in ONNX Runtime (numerics check, not a TensorRT engine)")
    return OrtBackend(bundle, device, threads)


def _open_tensorrt(bundle: Bundle, device: str | None, threads: int | None) -> BackendSession:
    from edgecnn.runtime.trt_engine import TensorRTBackend

    return TensorRTBackend(bundle, device, threads)


register_backend(RuntimeBackend(name="onnxruntime", extra="onnxruntime", reads=(".onnx",), open=_open_ort))
register_backend(RuntimeBackend(name="openvino", extra="openvino", reads=(".xml", ".onnx"), open=OpenVINOBackend))
register_backend(
    RuntimeBackend(name="tensorrt", extra="tensorrt", reads=(".onnx",), requires_option="tensorrt", open=_open_tensorrt)
)


def make_backend(name: str, bundle: Bundle, device: str | None, threads: int | None) -> BackendSession:
    """Open ``bundle`` on the backend called ``name`` (after checking it reads the bundle's files)."""
    try:
        backend = BACKENDS.get(name)
    except UnknownNameError as e:
        raise BackendError(f"unknown backend {name!r}", hint=e.hint) from None
    if not backend.can_run(bundle):
        raise BackendError(
            f"backend {name!r} cannot run a {bundle.manifest.target!r} bundle",
            hint=f"use {default_backend(bundle)!r}",
        )
    return backend.open(bundle, device, threads)
