"""Per-layer quantization error of an INT8 model against its float source, for both quantized formats:

* ONNX / TensorRT (QDQ ONNX): ONNX Runtime's own ``qdq_loss_debug`` tools collect the activations of both models;
* OpenVINO (NNCF IR with FakeQuantize): NNCF keeps the original op names and output tensor names, so the same
  tensors of the fp32 IR and the INT8 IR are made outputs (``Model.add_outputs``) and run on the same samples.

Both end in :func:`rank_layers`, keyed by the tensor names of the float ONNX model both formats come from: for each
float node the *loss* is how many dB of SQNR its output has lost relative to its worst input — the error that node
adds (accumulated error alone would blame every layer after the culprit) — and ``layer`` is the PyTorch module the
node came from (the dynamo exporter's name scopes, :mod:`edgecnn.onnx_graph.scopes`). That ranking picks the
layers returned to float when an accuracy budget is missed.
"""

from __future__ import annotations

import math
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgecnn.quant.metrics import sqnr_db
from edgecnn.quant.ort_ptq import BatchReader

COMPUTE_OPS = frozenset({"Conv", "Gemm", "MatMul", "ConvTranspose"})
INPUT_SQNR_DB = 60.0  # a float input counts as 60 dB clean (8-bit quantization of a tensor is ~40-50 dB)
FUSED_ACTIVATIONS = frozenset({"Relu", "Clip", "LeakyRelu", "HardSwish", "HardSigmoid", "Sigmoid"})
OV_SKIP = frozenset({"Constant", "Parameter", "Result", "FakeQuantize", "FakeConvert", "Convert"})


@dataclass(frozen=True, kw_only=True)
class LayerError:
    node: str
    op_type: str
    tensor: str
    sqnr_db: float  # float model vs quantized model at this node's output (accumulated)
    loss_db: float  # SQNR lost at this node (its worst input's SQNR minus its output's)
    owner: str  # the compute node (Conv/Gemm/MatMul) this error is charged to: itself or its fused producer
    layer: str = ""  # the PyTorch module path the node was exported from ("" when the ONNX has no name scopes)

    def to_dict(self) -> dict[str, object]:
        return {
            "node": self.node,
            "layer": self.layer,
            "op_type": self.op_type,
            "tensor": self.tensor,
            "sqnr_db": round(self.sqnr_db, 2),
            "loss_db": round(self.loss_db, 2),
        }


def rank_layers(float_model: Path, sqnr: dict[str, float], layers: dict[str, str] | None = None) -> list[LayerError]:
    """Per-node errors, worst (lowest SQNR) first, from the SQNR measured at tensors of the float ONNX model.
    ``layers`` (node → module path) defaults to the float model's own name scopes."""
    import onnx

    from edgecnn.onnx_graph.scopes import onnx_scopes

    nodes = list(onnx.load(str(float_model)).graph.node)
    scope = layers if layers is not None else onnx_scopes(float_model)[0]
    producer = {t: n for n in nodes for t in n.output}
    memo: dict[str, float] = {}

    def measured(tensor: str, depth: int = 0) -> float:
        """SQNR of ``tensor``, or of the nearest measured tensors upstream (fused ops are not measured)."""
        if tensor in sqnr:
            return sqnr[tensor]
        if tensor in memo or tensor not in producer or depth > 50:
            return memo.get(tensor, math.inf)
        ins = [measured(t, depth + 1) for t in producer[tensor].input if t]
        memo[tensor] = min(ins, default=math.inf)
        return memo[tensor]

    out: list[LayerError] = []
    for node in nodes:
        outs = [t for t in node.output if t in sqnr]
        if not outs:
            continue
        worst_in = min((measured(t) for t in node.input if t), default=math.inf)
        s = sqnr[outs[0]]
        loss = max(0.0, (worst_in if math.isfinite(worst_in) else INPUT_SQNR_DB) - s)
        owner = node.name
        src = producer.get(node.input[0]) if node.input else None
        if node.op_type in FUSED_ACTIVATIONS and src is not None and src.op_type in COMPUTE_OPS:
            owner = src.name  # ORT fuses Conv+Relu/Clip: the conv's output is only quantized after the activation
        layer = scope.get(node.name, "")
        out.append(
            LayerError(
                node=node.name,
                op_type=node.op_type,
                tensor=outs[0],
                sqnr_db=s,
                loss_db=loss,
                owner=owner,
                layer="" if layer == node.name else layer,
            )
        )
    out.sort(key=lambda e: e.sqnr_db)
    return out


def layer_errors(
    float_model: Path, qdq_model: Path, data: np.ndarray, *, batch: int, layers: dict[str, str] | None = None
) -> list[LayerError]:
    """Every float node whose output the QDQ model quantizes, worst (lowest SQNR) first."""
    from onnxruntime.quantization.qdq_loss_debug import (
        collect_activations,
        compute_activation_error,
        create_activation_matching,
        modify_model_output_intermediate_tensors,
    )

    with tempfile.TemporaryDirectory(prefix="edgecnn-layers-") as tmp:
        aug_f, aug_q = Path(tmp) / "f.onnx", Path(tmp) / "q.onnx"
        modify_model_output_intermediate_tensors(str(float_model), str(aug_f))
        modify_model_output_intermediate_tensors(str(qdq_model), str(aug_q))
        f_acts = collect_activations(str(aug_f), BatchReader(data, batch))
        q_acts = collect_activations(str(aug_q), BatchReader(data, batch))
    errors = compute_activation_error(create_activation_matching(q_acts, f_acts))
    return rank_layers(float_model, {t: e["xmodel_err"] for t, e in errors.items() if "xmodel_err" in e}, layers)


def _ov_outputs(model: Any, wanted: set[str]) -> dict[str, Any]:
    """Output ports of ``model`` carrying one of the ``wanted`` tensor names (NNCF's inserted ops carry none)."""
    ports: dict[str, Any] = {}
    for op in model.get_ordered_ops():
        if op.get_type_name() in OV_SKIP:
            continue
        for port in op.outputs():
            for name in port.get_names() & wanted:
                ports[name] = port
    return ports


def _ov_collect(model: Any, names: list[str], data: np.ndarray, batch: int) -> dict[str, np.ndarray]:
    import openvino as ov

    m = model.clone()  # add_outputs changes the model: never the one that is saved
    ports = _ov_outputs(m, set(names))
    m.add_outputs([ports[n] for n in names])
    compiled = ov.Core().compile_model(m, "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    outs = {n: compiled.output(n) for n in names}
    got: dict[str, list[np.ndarray]] = {n: [] for n in names}
    for i in range(0, len(data) - len(data) % batch, batch):
        r = compiled(data[i : i + batch])
        for n, o in outs.items():
            got[n].append(r[o])
    return {n: np.concatenate(v) for n, v in got.items()}


def openvino_layer_errors(
    float_model: Any, int8_model: Any, onnx_model: Path, data: np.ndarray, *, batch: int
) -> list[LayerError]:
    """Every op output the fp32 IR and the NNCF INT8 IR share (matched by tensor name), worst first.

    ``onnx_model`` is the float ONNX both IRs were converted from: its tensor names are the IRs' and its name
    scopes give the module paths. Both IRs run in true f32 (FakeQuantize simulates the int8 rounding exactly)."""
    import onnx

    tensors = {t for n in onnx.load(str(onnx_model)).graph.node for t in n.output}
    names = sorted(set(_ov_outputs(float_model, tensors)) & set(_ov_outputs(int8_model, tensors)))
    if not names:
        return []
    ref = _ov_collect(float_model, names, data, batch)
    test = _ov_collect(int8_model, names, data, batch)
    return rank_layers(onnx_model, {n: sqnr_db(ref[n], test[n]) for n in names})


def rank_sensitive(errors: list[LayerError], candidates: list[str]) -> list[str]:
    """Candidate node names, the ones adding the most error first (a fused activation's loss counts for its conv)."""
    loss: dict[str, float] = {}
    for e in errors:
        loss[e.owner] = max(loss.get(e.owner, -math.inf), e.loss_db)
    return sorted(candidates, key=lambda n: -loss.get(n, -math.inf))
