"""Target ``tensorrt``: a TensorRT-ready ONNX (static shapes or explicit min/opt/max profiles, only parser-native
ops) plus its engine build settings. Where ``tensorrt`` imports, the engine is also built here; elsewhere (every
project machine: TensorRT installs only from NVIDIA's index) it is built and cached on the device on first load or by
``edgecnn build-engine BUNDLE``, keyed by TensorRT version and GPU compute capability. INT8 is explicit symmetric
Q/DQ (implicit calibrators are deprecated since TensorRT 10.1), placed by ONNX Runtime's quantizer
(quantizer ``tensorrt-qdq``) and checked numerically in ONNX Runtime here."""

from __future__ import annotations

import importlib.util

from edgecnn.errors import ExportError
from edgecnn.exporters.target import BuildContext, Built, Target, register_target
from edgecnn.exporters.to_onnx import onnx_model
from edgecnn.exporters.trt_ops import TRT_SUPPORTED_OPS
from edgecnn.onnx_graph.edit import op_types, set_metadata
from edgecnn.onnx_graph.torch_export import INPUT
from edgecnn.precision import Precision
from edgecnn.quant.ort_ptq import ort_backend_options


def tensorrt_available() -> bool:
    return importlib.util.find_spec("tensorrt") is not None


def build(ctx: BuildContext) -> Built:
    import onnx

    path, record = onnx_model(ctx)
    unsupported = sorted(op_types(path) - TRT_SUPPORTED_OPS)
    if unsupported:
        raise ExportError(
            f"the ONNX graph uses ops TensorRT's parser does not support: {unsupported}",
            hint="export with another target, or replace those layers",
        )
    set_metadata(path, ctx.facts)
    shape = list(ctx.example.shape)
    settings: dict = {
        "workspace_mb": int(ctx.target_options["workspace_mb"]),
        "flags": {Precision.FP16: ["FP16"], Precision.INT8: ["INT8", "FP16"]}.get(ctx.opts.precision, []),
        "profiles": {},
    }
    db = ctx.opts.dynamic_batch
    if db is not None:
        settings["profiles"][INPUT] = [[db.min, *shape[1:]], [db.opt, *shape[1:]], [db.max, *shape[1:]]]
    files, notes, prebuilt = ["model.onnx"], [], None
    if ctx.target_options["build_engine"] and tensorrt_available():
        import tensorrt

        from edgecnn.runtime.bundle import sha256_file
        from edgecnn.runtime.trt_engine import build_engine, compute_capability, engine_key

        (ctx.workdir / "model.engine").write_bytes(build_engine(path, settings))
        files.append("model.engine")
        key = engine_key(sha256_file(path), tensorrt.__version__, compute_capability(), settings)
        prebuilt = {"file": "model.engine", "key": key}
        notes.append("TensorRT engine built at export for this GPU; other GPUs rebuild it on first load")
    else:
        notes.append(
            "TensorRT is not installed here: the engine was NOT built. The bundle carries the "
            "TensorRT-ready ONNX (checked in ONNX Runtime) and its build settings; the device builds "
            "and caches the engine on first load or with `edgecnn build-engine BUNDLE`."
        )
    backend = {"tensorrt": settings} if prebuilt is None else {"tensorrt": settings, "tensorrt_engine": prebuilt}
    if record is not None:  # the ONNX Runtime check run of the Q/DQ model (edgecnn.quant.ort_ptq)
        backend.update(ort_backend_options(record))
    return Built(
        entry="model.onnx",
        files=files,
        backend_options=backend,
        producer={"onnx": onnx.__version__},
        notes=notes,
        quantization=record,
    )


TENSORRT = register_target(
    Target(
        name="tensorrt",
        description="TensorRT-ready ONNX + engine build settings (NVIDIA GPUs, Jetson)",
        precisions=(Precision.FP32, Precision.FP16, Precision.INT8),
        opsets=(18, 20),
        options={"workspace_mb": 1024, "build_engine": True},
        bundle_files=("model.onnx",),
        runtime_backend="tensorrt",
        parity_backend="onnxruntime",  # no TensorRT here: the TensorRT-ready ONNX is checked in ONNX Runtime
        quantizer="tensorrt-qdq",
        qat_quantizer="nncf-qat-tensorrt",
        build=build,
    )
)
