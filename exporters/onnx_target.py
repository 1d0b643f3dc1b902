"""Target ``onnx``: a single-file ONNX model for ONNX Runtime (fp32, fp16 weights with fp32 I/O, or INT8 QDQ with
u8 activations / s8 per-channel weights from ONNX Runtime's quantizer — :mod:`edgecnn.quant.onnx_flow`)."""

from __future__ import annotations

from edgecnn.exporters.options import Precision, TargetSpec
from edgecnn.exporters.target import TARGETS, BuildContext, Built
from edgecnn.exporters.to_onnx import export_target_onnx, set_metadata, to_fp16


class OnnxTarget:
    spec = TargetSpec(
        name="onnx",
        description="ONNX (single file) for ONNX Runtime and any ONNX consumer",
        precisions=(Precision.FP32, Precision.FP16, Precision.INT8),
        opsets=(18, 23),
    )

    def build(self, ctx: BuildContext) -> Built:
        import onnx
        import onnxruntime

        path, record = export_target_onnx(ctx, flavour="onnx")
        if ctx.opts.precision is Precision.FP16:
            to_fp16(path)
        set_metadata(path, ctx.facts)
        from edgecnn.quant.ort_ptq import ort_backend_options

        return Built(
            entry="model.onnx",
            files=["model.onnx"],
            backend_options=ort_backend_options(record),
            producer={"onnx": onnx.__version__, "onnxruntime": onnxruntime.__version__},
            quantization=record,
        )


TARGETS.register("onnx", OnnxTarget())
