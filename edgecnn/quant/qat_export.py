"""Export of a QAT model (:mod:`edgecnn.quant.qat`) with the scales it learned: nothing is calibrated again.

NNCF's quantizers switch to their ONNX Quantize/Dequantize export mode and the module goes through the TorchScript
ONNX exporter (NNCF hooks that tracer; torch.onnx's dynamo exporter would need ``torchao`` for fake quantizers). The
Q(weight) nodes are then folded into int8 initializers, so the file stores int8 weights feeding DequantizeLinear —
the QDQ form ONNX Runtime's own quantizer writes, and what TensorRT's explicit quantization reads. OpenVINO converts
that QDQ ONNX into FakeQuantize (activations) and int8 weight constants. The QAT quantizer backends
(:mod:`edgecnn.quant.quantizers`) call these when ``QuantConfig.qat`` is set.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from edgecnn.errors import ConfigError, ExportError
from edgecnn.onnx_graph.torch_export import torch_to_onnx
from edgecnn.quant.backend import QuantJob
from edgecnn.quant.qat import QatModel, logits, quantizers, quiet_nncf

log = logging.getLogger(__name__)


@contextmanager
def _qdq_export_mode(module: nn.Module) -> Iterator[None]:
    from nncf.torch.quantization.layers import QuantizerExportMode

    qs = [q for _, q in quantizers(module)]
    for q in qs:
        q.set_export_mode(QuantizerExportMode.ONNX_QUANTIZE_DEQUANTIZE_PAIRS)
    try:
        yield
    finally:
        for q in qs:
            q.set_export_mode(QuantizerExportMode.FAKE_QUANTIZE)


def _constants(graph: Any) -> dict[str, np.ndarray]:
    from onnx import numpy_helper

    vals = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    for n in graph.node:
        if n.op_type == "Constant" and len(n.attribute) == 1 and n.attribute[0].name == "value":
            vals[n.output[0]] = numpy_helper.to_array(n.attribute[0].t)
    return vals


def fold_weight_quantizers(proto: Any) -> int:
    """Replace ``QuantizeLinear(constant weight)`` by its int8 result (ONNX's own rule: round half to even, add the
    zero point, saturate), so the file stores int8 weights feeding DequantizeLinear — the QDQ form ONNX Runtime's
    quantizer writes. Returns how many were folded; unused constants are dropped."""
    from onnx import helper, numpy_helper

    g = proto.graph
    consts = _constants(g)
    kept, folded = [], 0
    for n in g.node:
        if n.op_type == "QuantizeLinear" and len(n.input) == 3 and all(i in consts for i in n.input):
            w, s, zp = (consts[i] for i in n.input)
            axis = next((helper.get_attribute_value(a) for a in n.attribute if a.name == "axis"), 1)
            if s.size > 1:
                shape = [1] * w.ndim
                shape[axis] = -1
                s, zp = s.reshape(shape), zp.reshape(shape)
            info = np.iinfo(zp.dtype)
            q = np.clip(np.rint(w.astype(np.float32) / s) + zp.astype(np.int32), info.min, info.max).astype(zp.dtype)
            g.initializer.append(numpy_helper.from_array(q, n.output[0]))
            folded += 1
        else:
            kept.append(n)
    used = {i for n in kept for i in n.input} | {o.name for o in g.output}
    kept = [n for n in kept if n.op_type != "Constant" or any(o in used for o in n.output)]
    live = [t for t in g.initializer if t.name in used]
    del g.node[:]
    g.node.extend(kept)
    del g.initializer[:]
    g.initializer.extend(live)
    return folded


@quiet_nncf
def export_qat_onnx(qat: QatModel, example: torch.Tensor, path: Path, *, opset: int, dynamic_batch: Any) -> Path:
    """The QAT module as a QDQ ONNX file carrying its learned scales (see the module docstring)."""
    import onnx

    module = qat.module.eval()
    with _qdq_export_mode(module):
        torch_to_onnx(
            module,
            example,
            path,
            opset=opset,
            dynamic_batch=dynamic_batch,
            tracer=True,
            what="ONNX export of the QAT model",
        )
    proto = onnx.load(str(path))
    if fold_weight_quantizers(proto) != qat.scheme["weight_quantizers"]:
        raise ExportError("the QAT export did not produce one weight Q/DQ pair per NNCF weight quantizer")
    onnx.checker.check_model(proto, full_check=True)
    proto = onnx.shape_inference.infer_shapes(proto, strict_mode=True)
    onnx.save(proto, str(path))
    return path


def check_scheme(qat: QatModel, *, signed_required: bool) -> None:
    """TensorRT's explicit quantization takes only signed int8 Q/DQ with zero point 0."""
    if signed_required and not (qat.scheme["signed_activations"] and qat.scheme["symmetric"]):
        raise ConfigError(
            "this QAT model has unsigned or asymmetric activation quantizers; TensorRT takes only signed, "
            "symmetric int8 Q/DQ",
            hint="train QAT for the tensorrt target (train_qat(..., signed_activations=True))",
        )


def evaluate(job: QuantJob, run: Callable[[np.ndarray, int], np.ndarray]) -> dict[str, Any]:
    """fp32 (the float PyTorch model) vs the exported QAT model on the evaluation (else calibration) set."""
    from edgecnn.quant.metrics import compare

    cfg = job.cfg
    ev = cfg.evaluation if cfg.evaluation is not None else cfg.calibration
    got = run(ev.data, job.batch)
    ref = logits(job.model, ev.data[: len(got)])
    labels = None if ev.labels is None else ev.labels[: len(got)]
    return {**compare(ref, got, labels), "on": "evaluation" if cfg.evaluation is not None else "calibration"}


def qat_record(job: QuantJob, *, fmt: str, metrics: dict[str, Any]) -> dict[str, Any]:
    """The manifest's quantization record of a QAT export."""
    import nncf

    qat = job.cfg.qat
    return {
        "backend": f"nncf {nncf.__version__} QAT (torch)",
        "format": fmt,
        "activations": qat.scheme["activations"],
        "weights": qat.scheme["weights"],
        **job.cfg.record(),
        "method": "qat",
        "rounding": "nearest, of the weights QAT learned",
        "per_channel": qat.scheme["per_channel"],
        "bias_correction": None,  # folded into what QAT learned
        "kept_float": [],
        "fallback_trials": [],
        "fp32_vs_int8": metrics,
        "layer_errors": [],  # per-layer error vs float needs the same weights; QAT changed them
        "qat": qat.record,
    }
