"""Target ``openvino``: OpenVINO IR (.xml + .bin) converted from the exported ONNX (keeps ONNX names, avoids
tracing). Weight compression is explicit: fp32 IR keeps fp32 weights (``ov.save_model`` would silently compress
to fp16), fp16 compresses them. The CPU execution hint is recorded for the runtime: ``f32`` for fp32/fp16 (true
fp32 math — OpenVINO otherwise runs bf16 on AVX-512-BF16 CPUs), ``bf16`` for the bf16 precision. INT8 is NNCF's
``quantize`` on the OpenVINO model (quantizer ``nncf-openvino``); its float remainder runs with the f32 hint."""

from __future__ import annotations

from edgecnn.exporters.target import BuildContext, Built, Target, register_target
from edgecnn.onnx_graph.torch_export import export_onnx
from edgecnn.precision import Precision


def build(ctx: BuildContext) -> Built:
    import openvino as ov

    record = None
    if ctx.opts.precision is Precision.INT8:
        quantized = ctx.quantize(ctx.workdir / "model.onnx")
        model, record, scratch = quantized.model, quantized.record, quantized.scratch
    else:
        onnx_path = export_onnx(
            ctx.model,
            ctx.example,
            ctx.workdir / "intermediate.onnx",
            opset=ctx.opts.opset,
            dynamic_batch=ctx.opts.dynamic_batch,
        )
        model, scratch = ov.convert_model(str(onnx_path)), (onnx_path,)
    for k, v in ctx.facts.items():
        model.set_rt_info(v if isinstance(v, str) else str(v), ["edgecnn", k])
    compress = ctx.opts.precision is Precision.FP16
    ov.save_model(model, str(ctx.workdir / "model.xml"), compress_to_fp16=compress)
    for path in scratch:
        path.unlink(missing_ok=True)
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


OPENVINO = register_target(
    Target(
        name="openvino",
        description="OpenVINO IR for Intel CPUs, GPUs and NPUs",
        precisions=(Precision.FP32, Precision.FP16, Precision.BF16, Precision.INT8),
        opsets=(18, 23),
        bundle_files=("model.xml", "model.bin"),
        runtime_backend="openvino",
        parity_backend="openvino",
        quantizer="nncf-openvino",
        qat_quantizer="nncf-qat-openvino",
        build=build,
    )
)
