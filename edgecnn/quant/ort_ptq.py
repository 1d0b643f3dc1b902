"""INT8 QDQ ONNX with ONNX Runtime's quantizer, for the ``onnx`` and ``tensorrt`` targets.

* ``onnx`` (x86/ARM CPUs in ONNX Runtime): ``quant_pre_process`` first, QDQ format, **u8 activations / s8
  per-channel weights** — the fast path measured on x86 (0.96 ms vs 2.1 ms fp32 for MobileNetV2; s8/s8
  leaves 15 of 52 convs in fp32 and is no faster).
* ``tensorrt``: explicit Q/DQ as TensorRT wants it (TensorRT developer guide, "Explicit Quantization"): signed
  int8 with zero-point 0 (``ActivationSymmetric`` / ``WeightSymmetric``), weights per output channel, Q/DQ only
  around the compute ops TensorRT runs in int8 (Conv, Gemm, MatMul), float bias (TensorRT folds it itself).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgecnn.errors import ExportError
from edgecnn.onnx_graph.edit import rewrite_file
from edgecnn.onnx_graph.names import restore_node_metadata
from edgecnn.onnx_graph.rewrites import space_to_depth_stem
from edgecnn.quant.config import CalibMethod, QuantConfig
from edgecnn.runtime.ort_session import QDQ_DISABLED_OPTIMIZERS, ort_session

log = logging.getLogger(__name__)
FALLBACK_OPS = frozenset({"Conv", "Gemm", "MatMul", "ConvTranspose", "Mul", "Sigmoid", "HardSigmoid", "HardSwish"})


@dataclass(frozen=True, kw_only=True)
class QdqScheme:
    """How a QDQ model is laid out for the runtime that will read it (see the module docstring)."""

    signed_activations: bool  # int8 with zero point 0 (symmetric) instead of uint8 asymmetric
    op_types: tuple[str, ...] | None  # the ops to quantize (None: every op ONNX Runtime's quantizer supports)
    drop_zero_points: bool  # drop all-zero weight/bias zero points (TensorRT's parser wants them explicit)
    space_to_depth_stem: bool  # rewrite the stem before quantizing (ONNX Runtime's slowest int8 conv)

    @property
    def activations(self) -> str:
        return "int8 symmetric" if self.signed_activations else "uint8 asymmetric"

    def prepare(self, fp32: Path) -> int:
        """The exact rewrites the fp32 ONNX file gets before it is quantized (bundles and profile fitting alike):
        for ONNX Runtime, the space-to-depth stem — its int8 convolution is slowest on a 3-channel input
        (:func:`edgecnn.onnx_graph.rewrites.space_to_depth_stem`). TensorRT builds its own kernels."""
        return rewrite_file(fp32, space_to_depth_stem) if self.space_to_depth_stem else 0


ORT_CPU = QdqScheme(signed_activations=False, op_types=None, drop_zero_points=True, space_to_depth_stem=True)
TENSORRT = QdqScheme(
    signed_activations=True, op_types=("Conv", "Gemm", "MatMul"), drop_zero_points=False, space_to_depth_stem=False
)


class BatchReader:
    """ONNX Runtime ``CalibrationDataReader`` over preprocessed samples, in slices of the model's batch.

    ``set_range`` lets the calibrator walk the data in strides (``CalibStridedMinMax``), so activations of at most
    ``CALIB_STRIDE`` batches are held at once instead of all of them (a 300-image MobileNetV2-224 run would hold
    ~10 GB). ``CalibMaxIntermediateOutputs`` is not used: in onnxruntime 1.32 it drops the data without using it.
    """

    def __init__(self, data: np.ndarray, batch: int, input_name: str = "input") -> None:
        self._data, self._batch, self._name = data, batch, input_name
        self._n = len(data) // batch
        self._start, self._end = 0, self._n
        self._it: Iterator[dict[str, np.ndarray]] = self._make()

    def _make(self) -> Iterator[dict[str, np.ndarray]]:
        b = self._batch
        return iter({self._name: self._data[i * b : (i + 1) * b]} for i in range(self._start, self._end))

    def __len__(self) -> int:
        return self._n

    def set_range(self, start_index: int, end_index: int) -> None:
        self._start, self._end = start_index, min(end_index, self._n)
        self._it = self._make()

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self._it, None)

    def rewind(self) -> None:
        self._start, self._end = 0, self._n
        self._it = self._make()

    def __iter__(self) -> Iterator[dict[str, np.ndarray]]:
        self.rewind()
        return self._make()


def calib_stride(n: int, most: int = 16) -> int:
    """The largest divisor of ``n`` that is at most ``most`` (ONNX Runtime requires the stride to divide n)."""
    return max(d for d in range(1, min(n, most) + 1) if n % d == 0)


def preprocess_for_quant(fp32: Path, out: Path) -> Path:
    """ONNX Runtime's ``quant_pre_process`` (shape inference + graph optimisation) — its documented first step —
    then the exporter's node metadata (PyTorch name scopes) copied back onto the nodes it rewrote."""
    from onnxruntime.quantization.shape_inference import quant_pre_process

    quant_pre_process(str(fp32), str(out), skip_symbolic_shape=True)
    restore_node_metadata(out, fp32)
    return out


def quantize_qdq(
    pre_model: Path,
    out: Path,
    cfg: QuantConfig,
    *,
    batch: int,
    scheme: QdqScheme,
    exclude: Sequence[str] = (),
    ranges: dict[str, tuple[float, float]] | None = None,
) -> None:
    """Write the QDQ model for ``scheme`` with ``exclude`` node names left in float.

    ``--method mse`` calibrates with MinMax and then overrides every activation's range with its MSE-optimal one
    (:mod:`edgecnn.quant.ranges`; ``ranges`` if given — e.g. computed once for all trials of a budget search)."""
    from edgecnn.sdk import import_sdk

    oq = import_sdk("onnxruntime.quantization", "onnxruntime")  # missing → MissingDependencyError with the extra
    CalibrationMethod, QuantFormat, QuantType = oq.CalibrationMethod, oq.QuantFormat, oq.QuantType  # noqa: N806

    method = {
        CalibMethod.MINMAX: CalibrationMethod.MinMax,
        CalibMethod.ENTROPY: CalibrationMethod.Entropy,
        CalibMethod.PERCENTILE: CalibrationMethod.Percentile,
        CalibMethod.MSE: CalibrationMethod.MinMax,  # its ranges are then overridden
    }[cfg.method]
    reader = BatchReader(cfg.calibration.data, batch)
    if len(reader) == 0:
        raise ExportError(f"calibration needs at least {batch} samples (one batch), got {len(cfg.calibration)}")
    extra: dict[str, Any] = {"CalibStridedMinMax": calib_stride(len(reader))}
    if scheme.signed_activations:
        act = QuantType.QInt8
        extra.update(ActivationSymmetric=True, WeightSymmetric=True, QuantizeBias=False)
    else:
        act = QuantType.QUInt8
    ops = list(scheme.op_types) if scheme.op_types is not None else None

    if cfg.method is CalibMethod.PERCENTILE:
        extra["CalibPercentile"] = 99.999
    if cfg.method is CalibMethod.MSE:
        from edgecnn.quant.ranges import activation_ranges, quant_overrides

        if ranges is None:
            ranges = activation_ranges(
                pre_model, cfg.calibration.data, batch=batch, symmetric=scheme.signed_activations
            )
        extra["TensorQuantOverrides"] = quant_overrides(ranges)
    try:
        oq.quantize_static(
            str(pre_model),
            str(out),
            reader,
            quant_format=QuantFormat.QDQ,
            op_types_to_quantize=ops,
            per_channel=cfg.per_channel,
            activation_type=act,
            weight_type=QuantType.QInt8,
            nodes_to_exclude=list(exclude),
            calibrate_method=method,
            extra_options=extra,
        )
    except Exception as e:  # ORT's quantizer raises bare exceptions
        raise ExportError(f"ONNX Runtime quantization failed: {str(e).splitlines()[0][:300]}") from e
    if scheme.drop_zero_points:  # TensorRT keeps the explicit zero points its parser checks (and no int32 biases)
        drop_zero_points(out)


def drop_zero_points(path: Path) -> int:
    """Remove the all-zero zero points of DequantizeLinear nodes over constant int8 weights and int32 biases.

    Symmetric weights and biases have zero point 0 by construction, and a DequantizeLinear without one means
    exactly that (ONNX spec: optional, default 0, type from the quantized input). ONNX Runtime's quantizer still
    writes one per output channel — 1 byte per channel for weights and 4 for biases, ~2 % of an INT8 MobileNet —
    and its QLinearConv fusion accepts both forms (its QGemm fusion does not: Gemm keeps them). Activation zero
    points are left alone. Returns the bytes saved."""
    import onnx
    from onnx import numpy_helper

    proto = onnx.load(str(path))
    inits = {t.name: t for t in proto.graph.initializer}
    consumers: dict[str, set[str]] = {}
    for node in proto.graph.node:
        for i in node.input:
            consumers.setdefault(i, set()).add(node.op_type)
    dropped: set[str] = set()
    for node in proto.graph.node:
        if node.op_type != "DequantizeLinear" or len(node.input) < 3 or node.input[0] not in inits:
            continue
        if consumers.get(node.output[0]) != {"Conv"}:  # onnxruntime 1.32 fuses QGemm only with explicit zero points
            continue
        zp = inits.get(node.input[2])
        if zp is None or zp.data_type not in (onnx.TensorProto.INT8, onnx.TensorProto.INT32):
            continue
        if numpy_helper.to_array(zp).any():
            continue
        dropped.add(node.input[2])
        del node.input[2]
    used = {i for n in proto.graph.node for i in n.input}
    saved = 0
    for name in dropped - used:
        saved += numpy_helper.to_array(inits[name]).nbytes
        proto.graph.initializer.remove(inits[name])
    if dropped:
        onnx.save(proto, str(path))
    return saved


def ort_backend_options(record: dict[str, Any] | None) -> dict[str, Any]:
    """What a QDQ bundle's manifest tells the ONNX Runtime backend (see ``QDQ_DISABLED_OPTIMIZERS``)."""
    return {"onnxruntime_disabled_optimizers": list(QDQ_DISABLED_OPTIMIZERS)} if record is not None else {}


def ort_logits(path: Path, data: np.ndarray, batch: int, *, exact: bool = False) -> np.ndarray:
    """The model's outputs through ONNX Runtime as bundles run it (``exact``: Q/DQ unfused, the graph's own
    arithmetic, independent of this CPU's int8 kernels)."""
    from edgecnn.quant.metrics import run_batched

    sess = ort_session(path, exact=exact, disabled_optimizers=QDQ_DISABLED_OPTIMIZERS, log_severity=2)
    name = sess.get_inputs()[0].name
    return run_batched(lambda x: sess.run(None, {name: x})[0], data, batch)


def quantizable_nodes(model_path: Path) -> list[str]:
    """Nodes the budget may return to float: compute ops with weights, plus the gate multiplies and sigmoids that
    are the sensitive ops of SiLU / squeeze-excite nets (``benchmarks/results/quant_fragile.md``)."""
    import onnx

    proto = onnx.load(str(model_path))
    return [n.name for n in proto.graph.node if n.op_type in FALLBACK_OPS]
