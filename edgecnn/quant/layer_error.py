"""Per-layer quantization error of a QDQ ONNX model against its float source, with ONNX Runtime's own
``qdq_loss_debug`` tools (activations of both models collected on the same samples, compared by SQNR).

For each float node the *loss* is how many dB of SQNR its output has lost relative to its worst input: the error
that node adds (accumulated error alone would blame every layer after the culprit). That ranking picks the layers
returned to float when an accuracy budget is missed.
"""

from __future__ import annotations

import math
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgecnn.quant.ort_ptq import BatchReader

COMPUTE_OPS = frozenset({"Conv", "Gemm", "MatMul", "ConvTranspose"})
INPUT_SQNR_DB = 60.0  # a float input counts as 60 dB clean (8-bit quantization of a tensor is ~40-50 dB)
FUSED_ACTIVATIONS = frozenset({"Relu", "Clip", "LeakyRelu", "HardSwish", "HardSigmoid", "Sigmoid"})


@dataclass(frozen=True, kw_only=True)
class LayerError:
    node: str
    op_type: str
    tensor: str
    sqnr_db: float  # float model vs quantized model at this node's output (accumulated)
    loss_db: float  # SQNR lost at this node (its worst input's SQNR minus its output's)
    owner: str  # the compute node (Conv/Gemm/MatMul) this error is charged to: itself or its fused producer

    def to_dict(self) -> dict[str, object]:
        return {
            "node": self.node,
            "op_type": self.op_type,
            "tensor": self.tensor,
            "sqnr_db": round(self.sqnr_db, 2),
            "loss_db": round(self.loss_db, 2),
        }


def layer_errors(float_model: Path, qdq_model: Path, data: np.ndarray, *, batch: int) -> list[LayerError]:
    """Every float node whose output the QDQ model quantizes, worst (lowest SQNR) first."""
    import onnx
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
    sqnr = {t: e["xmodel_err"] for t, e in errors.items() if "xmodel_err" in e}
    nodes = list(onnx.load(str(float_model)).graph.node)
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
        out.append(
            LayerError(node=node.name, op_type=node.op_type, tensor=outs[0], sqnr_db=s, loss_db=loss, owner=owner)
        )
    out.sort(key=lambda e: e.sqnr_db)
    return out


def rank_sensitive(errors: list[LayerError], candidates: list[str]) -> list[str]:
    """Candidate node names, the ones adding the most error first (a fused activation's loss counts for its conv)."""
    loss: dict[str, float] = {}
    for e in errors:
        loss[e.owner] = max(loss.get(e.owner, -math.inf), e.loss_db)
    return sorted(candidates, key=lambda n: -loss.get(n, -math.inf))
