"""Target ``onnx``: a single-file ONNX model for ONNX Runtime (fp32, fp16 weights with fp32 I/O, or INT8 QDQ with
u8 activations / s8 per-channel weights from ONNX Runtime's quantizer — quantizer ``onnxruntime-qdq``)."""

from __future__ import annotations

from edgecnn.exporters.target import BuildContext, Built, Target, register_target
from edgecnn.exporters.to_onnx import onnx_model
from edgecnn.onnx_graph.edit import set_metadata, to_fp16
from edgecnn.precision import Precision
from edgecnn.quant.ort_ptq import ort_backend_options


def build(ctx: BuildContext) -> Built:
    import onnx
    import onnxruntime

    path, record = onnx_model(ctx)
    if ctx.opts.precision is Precision.FP16:  # fp16 weights and compute, float32 inputs/outputs
        to_fp16(path)
    set_metadata(path, ctx.facts)
    return Built(
        entry="model.onnx",
        files=["model.onnx"],
        backend_options=ort_backend_options(record),
        producer={"onnx": onnx.__version__, "onnxruntime": onnxruntime.__version__},
        quantization=record,
    )


ONNX = register_target(
    Target(
        name="onnx",
        description="ONNX (single file) for ONNX Runtime and any ONNX consumer",
        precisions=(Precision.FP32, Precision.FP16, Precision.INT8),
        opsets=(18, 23),
        bundle_files=("model.onnx",),
        runtime_backend="onnxruntime",
        parity_backend="onnxruntime",
        quantizer="onnxruntime-qdq",
        qat_quantizer="nncf-qat-qdq",
        build=build,
    )
)
