"""Target ``onnx``: a single-file ONNX model for ONNX Runtime (fp32, or fp16 weights with fp32 I/O)."""

from __future__ import annotations

from edgecnn.exporters.options import Precision, TargetSpec
from edgecnn.exporters.target import TARGETS, BuildContext, Built
from edgecnn.exporters.to_onnx import export_onnx, set_metadata, to_fp16


class OnnxTarget:
    spec = TargetSpec(
        name="onnx",
        description="ONNX (single file) for ONNX Runtime and any ONNX consumer",
        precisions=(Precision.FP32, Precision.FP16),
        opsets=(18, 23),
    )

    def build(self, ctx: BuildContext) -> Built:
        import onnx
        import onnxruntime

        path = export_onnx(
            ctx.model,
            ctx.example,
            ctx.workdir / "model.onnx",
            opset=ctx.opts.opset,
            dynamic_batch=ctx.opts.dynamic_batch,
        )
        if ctx.opts.precision is Precision.FP16:
            to_fp16(path)
        set_metadata(path, ctx.facts)
        return Built(
            entry="model.onnx",
            files=["model.onnx"],
            producer={"onnx": onnx.__version__, "onnxruntime": onnxruntime.__version__},
        )


TARGETS.register("onnx", OnnxTarget())
