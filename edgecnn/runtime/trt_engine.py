"""TensorRT: build an engine from a bundle's TensorRT-ready ONNX on the device, cache it, and run it.

Engines are specific to the GPU (compute capability) and the TensorRT version, so bundles carry the ONNX and its
build settings, and the engine is built on first load (or by ``edgecnn build-engine``) and cached under a key of
(ONNX sha256, TensorRT version, compute capability, settings). An engine from another GPU or version is never
loaded — its key differs, so it is rebuilt.

Written against the TensorRT 10 Python API (``trt.Builder``, ``trt.OnnxParser``, ``IBuilderConfig`` flags,
memory-pool limits, optimization profiles, timing cache, ``build_serialized_network``; execution with
``set_tensor_address`` + ``execute_async_v3``) and cuda-python for device memory. Not exercised on the project's
machines (TensorRT does not install there); tests marked ``tensorrt`` run it where it imports.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import subprocess
import tempfile
import threading
from pathlib import Path
from typing import Any

import numpy as np

from edgecnn.errors import BackendError
from edgecnn.runtime.bundle import Bundle
from edgecnn.sdk import import_sdk

log = logging.getLogger(__name__)


def engine_cache_dir() -> Path:
    return Path(os.environ.get("EDGECNN_ENGINE_CACHE", Path.home() / ".cache" / "edgecnn" / "engines"))


def compute_capability() -> str:
    """The first GPU's compute capability as 'sm_XY' (nvidia-smi; no CUDA Python needed)."""
    exe = shutil.which("nvidia-smi")
    if exe:
        try:
            out = subprocess.run(
                [exe, "--query-gpu=compute_cap", "--format=csv,noheader"],
                capture_output=True,
                text=True,
                timeout=20,
                check=True,
            ).stdout.split()
            if out:
                return "sm_" + out[0].replace(".", "")
        except (OSError, subprocess.SubprocessError):
            pass
    raise BackendError(
        "no NVIDIA GPU found (nvidia-smi is missing or reports none)",
        hint="TensorRT engines are built on the target GPU; use --backend onnxruntime to check numerics",
    )


def engine_key(onnx_sha256: str, trt_version: str, cc: str, settings: dict[str, Any]) -> str:
    """Cache key: same ONNX, same TensorRT, same GPU generation, same build settings → same engine."""
    blob = json.dumps({"onnx": onnx_sha256, "trt": trt_version, "cc": cc, "settings": settings}, sort_keys=True)
    return f"{onnx_sha256[:12]}-trt{trt_version}-{cc}-{hashlib.sha256(blob.encode()).hexdigest()[:12]}"


def build_engine(onnx_path: Path, settings: dict[str, Any], *, timing_cache: Path | None = None) -> bytes:
    """Parse the ONNX and build a serialized engine with the bundle's precision flags, pool limit and profiles."""
    trt = import_sdk("tensorrt", "tensorrt")
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(0)  # explicit batch is the only mode in TensorRT 10
    parser = trt.OnnxParser(network, logger)
    if not parser.parse(onnx_path.read_bytes()):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise BackendError(f"TensorRT cannot parse {onnx_path.name}: {errors}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(settings["workspace_mb"]) << 20)
    for flag in settings.get("flags", []):  # e.g. ["FP16"], ["INT8"] for explicit Q/DQ networks
        config.set_flag(getattr(trt.BuilderFlag, flag))
    for name, (mn, opt, mx) in settings.get("profiles", {}).items():
        profile = builder.create_optimization_profile()
        profile.set_shape(name, tuple(mn), tuple(opt), tuple(mx))
        config.add_optimization_profile(profile)
    cache = config.create_timing_cache(timing_cache.read_bytes() if timing_cache and timing_cache.exists() else b"")
    config.set_timing_cache(cache, ignore_mismatch=False)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise BackendError(f"TensorRT failed to build an engine from {onnx_path.name} (see the TensorRT log above)")
    if timing_cache is not None:
        timing_cache.write_bytes(memoryview(config.get_timing_cache().serialize()))
    return bytes(serialized)


def cached_engine(bundle: Bundle, *, rebuild: bool = False) -> Path:
    """Path of this bundle's engine for this GPU and TensorRT, building it when absent (atomic write)."""
    trt = import_sdk("tensorrt", "tensorrt")
    settings = bundle.manifest.backend_options["tensorrt"]
    key = engine_key(
        bundle.manifest.files[bundle.manifest.entry]["sha256"], trt.__version__, compute_capability(), settings
    )
    cache = engine_cache_dir()
    cache.mkdir(parents=True, exist_ok=True)
    prebuilt = bundle.manifest.backend_options.get("tensorrt_engine")
    if prebuilt and prebuilt["key"] == key and not rebuild:  # built at export on this very GPU generation
        return bundle.path(prebuilt["file"])
    path = cache / f"{key}.engine"
    if path.exists() and not rebuild:
        return path
    log.info("building TensorRT engine %s (first load on this GPU)", path.name)
    data = build_engine(bundle.model_path, settings, timing_cache=cache / f"timing-trt{trt.__version__}.cache")
    fd, tmp = tempfile.mkstemp(dir=cache, prefix=".engine.")
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.replace(tmp, path)
    return path


class TensorRTBackend:
    """Runs a cached engine; one execution context and device buffers per thread."""

    name = "tensorrt"

    def __init__(self, bundle: Bundle, device: str | None, threads: int | None) -> None:
        trt = import_sdk("tensorrt", "tensorrt")
        self._cudart = import_sdk("cuda.bindings.runtime", "tensorrt")
        self._trt = trt
        self.device = device or "cuda:0"
        runtime = trt.Runtime(trt.Logger(trt.Logger.WARNING))
        self.raw = runtime.deserialize_cuda_engine(cached_engine(bundle).read_bytes())
        if self.raw is None:
            raise BackendError(
                "TensorRT could not deserialize the cached engine", hint="edgecnn build-engine --rebuild"
            )
        self._outputs = [o.name for o in bundle.manifest.outputs]
        io = [self.raw.get_tensor_name(i) for i in range(self.raw.num_io_tensors)]
        is_input = {n: self.raw.get_tensor_mode(n) == trt.TensorIOMode.INPUT for n in io}
        # the engine's own tensor names: the session checks them against the manifest, as for ONNX and OpenVINO
        self.input_names = [n for n in io if is_input[n]]
        self.output_names = [n for n in io if not is_input[n]]
        self._local = threading.local()

    def _check(self, err: Any) -> None:
        code = err[0] if isinstance(err, tuple) else err
        if int(code) != 0:
            raise BackendError(f"CUDA error {code}")

    def run(self, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        cudart, trt = self._cudart, self._trt
        ctx = getattr(self._local, "ctx", None)
        if ctx is None:
            ctx = self._local.ctx = self.raw.create_execution_context()
            err, self._local.stream = cudart.cudaStreamCreate()
            self._check(err)
        stream, buffers = self._local.stream, []
        try:
            for name, arr in feeds.items():
                ctx.set_input_shape(name, arr.shape)
            host_out = {}
            for name in [*feeds, *self._outputs]:
                shape = tuple(ctx.get_tensor_shape(name))
                dtype = np.dtype(trt.nptype(self.raw.get_tensor_dtype(name)))
                host = np.ascontiguousarray(feeds[name]) if name in feeds else np.empty(shape, dtype)
                err, ptr = cudart.cudaMalloc(host.nbytes)
                self._check(err)
                buffers.append(ptr)
                ctx.set_tensor_address(name, ptr)
                if name in feeds:
                    self._check(
                        cudart.cudaMemcpyAsync(
                            ptr, host.ctypes.data, host.nbytes, cudart.cudaMemcpyKind.cudaMemcpyHostToDevice, stream
                        )
                    )
                else:
                    host_out[name] = (host, ptr)
            if not ctx.execute_async_v3(stream):
                raise BackendError("TensorRT execution failed")
            for host, ptr in host_out.values():
                self._check(
                    cudart.cudaMemcpyAsync(
                        host.ctypes.data, ptr, host.nbytes, cudart.cudaMemcpyKind.cudaMemcpyDeviceToHost, stream
                    )
                )
            self._check(cudart.cudaStreamSynchronize(stream))
            return [host_out[n][0] for n in self._outputs]
        finally:
            for ptr in buffers:
                cudart.cudaFree(ptr)
