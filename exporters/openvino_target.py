"""Target ``openvino``: OpenVINO IR (.xml + .bin) converted from the exported ONNX (keeps ONNX names, avoids
tracing). Weight compression is explicit: fp32 IR keeps fp32 weights (``ov.save_model`` would silently compress
to fp16), fp16 compresses them. The CPU execution hint is recorded for the runtime: ``f32`` for fp32/fp16 (true
fp32 math — OpenVINO otherwise runs bf16 on AVX-512-BF16 CPUs), ``bf16`` for the bf16 precision. INT8 is NNCF's
``quantize`` on the OpenVINO model (:mod:`edgecnn.quant.openvino_flow`); its float remainder runs with the f32 hint."""

from __future__ import annotations

from edgecnn.exporters.options import Precision, TargetSpec
from edgecnn.exporters.target import TARGETS, BuildContext, Built
from edgecnn.exporters.to_onnx import export_onnx


class OpenVINOTarget:
    spec = TargetSpec(
        name="openvino",
        description="OpenVINO IR for Intel CPUs, GPUs and NPUs",
        precisions=(Precision.FP32, Precision.FP16, Precision.BF16, Precision.INT8),
        opsets=(18, 23),
    )

    def build(self, ctx: BuildContext) -> Built:
        import openvino as ov

        qat = ctx.opts.quant.qat if ctx.opts.quant is not None else None
        if qat is not None:  # QAT: the scales it learned, as they are (edgecnn.quant.qat)
            from edgecnn.quant.qat_export import build_openvino

            model, record, onnx_path = build_openvino(ctx)
        else:
            onnx_path = export_onnx(
                ctx.model,
                ctx.example,
                ctx.workdir / "intermediate.onnx",
                opset=ctx.opts.opset,
                dynamic_batch=ctx.opts.dynamic_batch,
            )
            record = None
            if ctx.opts.precision is Precision.INT8:
                from edgecnn.quant.openvino_flow import quantize_openvino

                model, record = quantize_openvino(onnx_path, ctx.opts.quant, batch=ctx.example.shape[0])
            else:
                model = ov.convert_model(str(onnx_path))
        for k, v in ctx.facts.items():
            model.set_rt_info(v if isinstance(v, str) else str(v), ["edgecnn", k])
        compress = ctx.opts.precision is Precision.FP16
        ov.save_model(model, str(ctx.workdir / "model.xml"), compress_to_fp16=compress)
        onnx_path.unlink()
        hint = "bf16" if ctx.opts.precision is Precision.BF16 else "f32"
        return Built(
            entry="model.xml",
            files=["model.xml", "model.bin"],
            backend_options={
                "openvino_inference_precision": hint,
                "openvino_weight_compression": "fp16" if compress else "none",
            },
            producer={"openvino": ov.__version__},
            quantization=record,
        )


TARGETS.register("openvino", OpenVINOTarget())
