"""Error-compensated weight rounding for INT8 PTQ: GPTQ (Frantar et al., ICLR 2023), the fast form of Optimal Brain
Quantization (Frantar & Alistarh, NeurIPS 2022, whose experiments are CNN PTQ: ResNets, MobileNets).

Round-to-nearest makes each weight's own error small; it does not make the layer's *output* error small. GPTQ
rounds one input column of a layer at a time and moves each column's rounding error onto the columns not yet
rounded, weighted by the inverse of the layer's input second moments ``H = Σ x xᵀ`` (collected on calibration
data), which minimises ``‖W x − Q x‖²`` on that data. Why edgecnn does it by default: EfficientNet-Lite0's first
depthwise conv has 3×3 edge kernels such as ``[-4.9 -0.7 5.4; -8.0 0.3 7.6; …]`` that cancel to ≈0 on flat image
regions; rounding each tap to the nearest of 255 levels breaks the cancellation, and that layer's weights alone take
the network's output SQNR from 43 to 18 dB. Compensated rounding recovers it (benchmarks/results/quant_lite0.md).

Contract with the backends: rounded weights are written back as float values *on the grid the backend will use*
(``s·q``, ``s = max|w| / 127`` per output channel — or per tensor —, ``q ∈ [-127, 127]``), with each row's largest
magnitude pinned at ``±127·s`` so the backend recomputes the same ``s``; its round-to-nearest then reproduces ``q``
exactly. That is ONNX Runtime's symmetric int8 weight grid and NNCF's narrow-range 8-bit weight grid; the tests
check the stored integers match. A layer kept in float gets its original weights and bias back (:func:`write_rounded`).

Bias correction (Nagel et al., "Data-Free Quantization", ICCV 2019, empirical form): GPTQ minimises the output error's
energy, not its mean, and what is left shifts every output channel by ``(W − Q)·E[x]`` — a bias the next layers
amplify. The mean input ``E[x]`` (per reduction column, padding included) comes with ``H`` on the same calibration
data, so the shift is removed exactly by adding it to the layer's float bias before the backends quantize it. On the
real Lite0 (float activations, 500 held-out views) it takes the weights' output SQNR from 29.4 to 32.5 dB; ``H``
on all 300 calibration views instead of 32 is worth 28.8 → 29.4 dB (benchmarks/results/quant_lite0.md).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from edgecnn.quant.config import QuantConfig

log = logging.getLogger(__name__)
QMAX = 127  # symmetric int8 weights: [-127, 127]
DAMP = 0.01  # GPTQ's dampening: 1 % of the mean diagonal of H
GPTQ_BLOCK = 128  # columns per lazy batch update (the paper's B)
HESSIAN_SAMPLES = 300  # calibration samples H (and E[x]) are collected on: the default calibration set
CHUNK = 8  # samples per Hessian update


def _weighted_nodes(proto: Any) -> list[Any]:
    """Conv / Gemm / MatMul nodes whose weight is a constant initializer (what the quantizers give int8 weights)."""
    inits = {t.name: t for t in proto.graph.initializer}
    out = []
    for n in proto.graph.node:
        weighted = n.op_type in ("Conv", "Gemm", "MatMul") and len(n.input) > 1 and n.input[1] in inits
        if weighted and len(inits[n.input[1]].dims) == (4 if n.op_type == "Conv" else 2):
            out.append(n)
    return out


def _attrs(node: Any) -> dict[str, Any]:
    import onnx

    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


def _rows(node: Any, w: np.ndarray) -> tuple[np.ndarray, int]:
    """The weight as (groups, rows per group, columns): a row per output channel, columns along the reduction."""
    if node.op_type == "Conv":
        g = int(_attrs(node).get("group", 1))
        return w.reshape(g, w.shape[0] // g, -1), g
    if node.op_type == "Gemm" and not _attrs(node).get("transB", 0):
        return w.T[None], 1
    if node.op_type == "MatMul":
        return w.T[None], 1
    return w[None], 1


def _unrows(node: Any, r: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    if node.op_type == "Conv":
        return r.reshape(shape)
    if (node.op_type == "Gemm" and not _attrs(node).get("transB", 0)) or node.op_type == "MatMul":
        return r[0].T
    return r[0]


def _hessian(node: Any, x: np.ndarray, wshape: tuple[int, ...]) -> tuple[Any, Any, int]:
    """Σ x xᵀ and Σ x over every position the weight is applied at — (groups, columns, columns) and (groups,
    columns), float64 — and the number of positions."""
    import torch

    t = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))  # float32 products, summed in float64 below
    if node.op_type != "Conv":
        t = t.reshape(-1, t.shape[-1])
        return (t.T @ t)[None].double(), t.sum(0, dtype=torch.float64)[None], t.shape[0]
    a = _attrs(node)
    kh, kw = wshape[2], wshape[3]
    g = int(a.get("group", 1))
    pads = list(a.get("pads", [0, 0, 0, 0]))
    if (kh, kw, g) == (1, 1, 1) and not any(pads) and list(a.get("strides", [1, 1])) == [1, 1]:
        t = t.permute(0, 2, 3, 1).reshape(-1, t.shape[1])  # pointwise: every pixel is one input vector
        return (t.T @ t)[None].double(), t.sum(0, dtype=torch.float64)[None], t.shape[0]
    t = torch.nn.functional.pad(t, (pads[1], pads[3], pads[0], pads[2]))
    cols = torch.nn.functional.unfold(
        t, (kh, kw), dilation=tuple(a.get("dilations", [1, 1])), stride=tuple(a.get("strides", [1, 1]))
    )  # (N, Cin·kh·kw, L), channel-major like the weight's (Cin/g, kh, kw) rows
    n, _, positions = cols.shape
    cols = cols.view(n, g, -1, positions).permute(1, 0, 3, 2).reshape(g, n * positions, -1)
    return (cols.transpose(1, 2) @ cols).double(), cols.sum(1, dtype=torch.float64), n * positions


def _gptq(w: np.ndarray, h: Any, per_channel: bool) -> np.ndarray:
    """Round ``w`` (groups, rows, cols) on its symmetric int8 grid with GPTQ; returns the values ``s·q``."""
    import torch

    W = torch.from_numpy(w).double().clone()  # noqa: N806 - the papers' notation
    g, r, d = W.shape
    absw = W.abs()
    if per_channel:
        amax = absw.amax(dim=2, keepdim=True)  # (g, r, 1)
        flat = absw.reshape(g * r, d).argmax(dim=1).reshape(g, r)
        pin = torch.zeros_like(W, dtype=torch.bool)
        pin.scatter_(2, flat[..., None], True)
    else:
        amax = absw.max().expand(g, r, 1)
        pin = (absw == absw.max()) & (torch.arange(W.numel()).view_as(W) == int(absw.argmax()))
    scale = torch.where(amax > 0, amax / QMAX, torch.ones_like(amax))
    sign = torch.sign(W)
    H = h.clone()  # noqa: N806
    diag = torch.diagonal(H, dim1=1, dim2=2)
    diag[diag == 0] = 1.0  # inputs that are always 0: nothing to compensate through them
    damp = DAMP * diag.mean(dim=1)
    for attempt in range(4):
        try:
            eye = torch.eye(d, dtype=H.dtype)
            L = torch.linalg.cholesky(H + (damp * 10**attempt)[:, None, None] * eye)  # noqa: N806
            U = torch.linalg.cholesky(torch.cholesky_inverse(L), upper=True)  # noqa: N806 - upper factor of H⁻¹
            break
        except RuntimeError:  # torch.linalg.LinAlgError subclasses it: not positive definite, damp more
            continue
    else:
        log.warning("compensated rounding: H is not positive definite; this layer is rounded to nearest")
        return (torch.clamp(torch.round(W / scale), -QMAX, QMAX) * scale).numpy()
    Q = torch.empty_like(W)  # noqa: N806
    s = scale[..., 0]
    # GPTQ's lazy batch updates: a column's error moves at once only onto the columns of its own block; the block's
    # errors reach the columns after it in one matrix product. Same result as moving every error onto all later
    # columns, without rewriting the whole remaining weight once per column (AlexNet's 9216-wide FC: minutes → s).
    for b0 in range(0, d, GPTQ_BLOCK):
        b1 = min(b0 + GPTQ_BLOCK, d)
        blk = W[:, :, b0:b1]  # a view: updates land in W
        errs = torch.empty_like(blk)
        for j in range(b1 - b0):
            i = b0 + j
            col = blk[:, :, j]
            q = torch.clamp(torch.round(col / s), -QMAX, QMAX)
            q = torch.where(pin[:, :, i], sign[:, :, i] * QMAX, q)  # the row's max stays at ±127·s: same scale
            Q[:, :, i] = q
            err = (col - q * s) / U[:, i, i][:, None]
            errs[:, :, j] = err
            blk[:, :, j + 1 :] -= err[..., None] * U[:, i, i + 1 : b1][:, None, :]
        if b1 < d:
            W[:, :, b1:] -= errs @ U[:, b0:b1, b1:]
    return (Q * scale).numpy()


def _bias(node: Any, proto: Any, rows: int) -> str | None:
    """The node's own float bias initializer with one value per output channel, or None (no bias, a broadcast or
    shared one: left alone)."""
    if len(node.input) < 3 or not node.input[2] or node.op_type not in ("Conv", "Gemm"):
        return None
    name = node.input[2]
    init = next((t for t in proto.graph.initializer if t.name == name), None)
    if init is None or list(init.dims) != [rows] or init.data_type != 1:  # FLOAT
        return None
    users = sum(name in n.input for n in proto.graph.node)
    return name if users == 1 else None


def rounding_for(onnx_path: Path, cfg: QuantConfig, batch: int) -> dict[str, np.ndarray]:
    """:func:`compensated_rounding` with ``cfg``'s settings; ``{}`` (weights left to the quantizer's own
    round-to-nearest) unless ``cfg.rounding`` is GPTQ."""
    from edgecnn.quant.config import Rounding

    if cfg.rounding is not Rounding.GPTQ:
        return {}
    return compensated_rounding(
        onnx_path,
        cfg.calibration.data,
        batch=batch,
        per_channel=cfg.per_channel,
        samples=cfg.rounding_samples,
        bias_correction=cfg.rounding_bias_correction,
    )


def compensated_rounding(
    onnx_path: Path,
    data: np.ndarray,
    *,
    batch: int,
    per_channel: bool = True,
    samples: int = HESSIAN_SAMPLES,
    bias_correction: bool = True,
) -> dict[str, np.ndarray]:
    """Initializer name → GPTQ-rounded weight (float, on the int8 grid) for every weighted node of ``onnx_path``,
    with ``H`` collected on the first ``samples`` rows of ``data`` (float model activations); with
    ``bias_correction`` also bias initializer name → float bias plus the rounding's mean output shift
    ``(W − Q)·E[x]``."""
    import onnx
    from onnx import numpy_helper

    from edgecnn.runtime.ort_session import ort_session

    proto = onnx.load(str(onnx_path))
    nodes = _weighted_nodes(proto)
    if not nodes:
        return {}
    weights = {t.name: numpy_helper.to_array(t) for t in proto.graph.initializer}
    graph_outputs = {o.name for o in proto.graph.output}
    feeds = sorted({n.input[0] for n in nodes})
    for t in feeds:
        if t not in graph_outputs:
            proto.graph.output.append(onnx.helper.make_tensor_value_info(t, onnx.TensorProto.FLOAT, None))
    sess = ort_session(proto.SerializeToString())
    name = sess.get_inputs()[0].name
    hs: dict[str, Any] = {}
    sums: dict[str, Any] = {}
    count: dict[str, int] = {}
    n = max(batch, min(len(data), samples) // batch * batch)
    step = batch * max(1, CHUNK // batch)  # a few samples per product: fewer, larger matrix multiplies
    for start in range(0, n, step):
        runs = [sess.run(feeds, {name: data[i : i + batch]}) for i in range(start, min(start + step, n), batch)]
        for node in nodes:
            x = np.concatenate([r[feeds.index(node.input[0])] for r in runs])
            h, m, k = _hessian(node, x, weights[node.input[1]].shape)
            hs[node.name] = h if node.name not in hs else hs[node.name] + h
            sums[node.name] = m if node.name not in sums else sums[node.name] + m
            count[node.name] = count.get(node.name, 0) + k
            del x
    out: dict[str, np.ndarray] = {}
    for node in nodes:
        w = weights[node.input[1]]
        rows, _ = _rows(node, w)
        rows = np.ascontiguousarray(rows, dtype=np.float64)
        rounded = _gptq(rows, hs[node.name], per_channel)
        out[node.input[1]] = np.ascontiguousarray(_unrows(node, rounded, w.shape), dtype=np.float32)
        bias = _bias(node, proto, rows.shape[0] * rows.shape[1]) if bias_correction else None
        if bias is not None:
            mean = (sums[node.name] / count[node.name]).numpy()  # (groups, columns): E[x] per reduction column
            shift = np.einsum("grc,gc->gr", rows - rounded, mean).reshape(-1)  # (W − Q)·E[x] per output channel
            out[bias] = (weights[bias].astype(np.float64) + shift).astype(np.float32)
    return out


def write_rounded(src: Path, dst: Path, rounded: dict[str, np.ndarray], *, keep: Iterable[str] = ()) -> Path:
    """``src`` with its weights (and corrected biases) replaced by ``rounded``, except those of the nodes named in
    ``keep`` (kept in float: they keep their original values)."""
    import onnx
    from onnx import numpy_helper

    proto = onnx.load(str(src))
    keep = set(keep)
    kept = {i for n in proto.graph.node if n.name in keep for i in n.input[1:3]}
    for t in proto.graph.initializer:
        if t.name in rounded and t.name not in kept:
            t.CopyFrom(numpy_helper.from_array(rounded[t.name], t.name))
    onnx.save(proto, str(dst))
    return dst
