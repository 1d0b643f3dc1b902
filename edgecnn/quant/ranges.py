"""MSE-optimal activation ranges for ONNX Runtime's quantizer (``--method mse``, the default for onnx / tensorrt).

MinMax gives each activation tensor the full range it ever took on the calibration data. On the linear projection
convs and residual sums of MobileNetV2 / EfficientNet-Lite that range is set by rare outliers (Lite0's
``blocks.0.0.conv_pwl`` spans ±53 while nearly all of its values are within a few units), so every ordinary value
is rounded on a step of 0.4. The range that minimises the tensor's expected quantization error — rounding noise
``s²/12`` for every value inside, the exact clipping error for the few outside — is found per tensor on a histogram
of the calibration data (the same criterion as NNCF's ``HISTOGRAM`` range estimator and the MSE calibrators of
TensorRT-era toolchains). Exact zeros (ReLU outputs, padding) quantize without error and do not count as noise.
The ranges reach ``quantize_static`` as ``TensorQuantOverrides`` (rmin/rmax); everything else — QDQ placement,
zero points, the QLinearConv fusion — is ONNX Runtime's as with MinMax.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from edgecnn.runtime.ort_session import ort_session

BINS = 8192  # histogram resolution: 1/8192 of the min..max span
CANDIDATES = 128  # range ends tried per side
LEVELS = 255  # uint8 / int8 steps


def mse_range(hist: np.ndarray, lo: float, hi: float, *, symmetric: bool = False) -> tuple[float, float]:
    """The (rmin, rmax) that minimise the expected quantization MSE of values with histogram ``hist`` over
    ``[lo, hi]`` (``symmetric``: rmin = −rmax, zero point 0). The range always contains 0, as the quantizers'."""
    n = len(hist)
    if not hi > lo or not hist.any():
        return min(lo, 0.0), max(hi, 0.0)
    edges = np.linspace(lo, hi, n + 1)
    x = (edges[:-1] + edges[1:]) / 2
    c = hist.astype(np.float64)
    noisy = c.copy()
    if lo <= 0.0 <= hi:  # the bin holding 0: ReLU's exact zeros cost nothing (a few near-zeros are ignored too)
        noisy[min(n - 1, int(-lo / (hi - lo) * n))] = 0.0

    def cum(v: np.ndarray) -> np.ndarray:
        return np.concatenate([[0.0], np.cumsum(v)])

    C, CX, CX2, CN = cum(c), cum(c * x), cum(c * x * x), cum(noisy)  # noqa: N806

    def error(i: np.ndarray, j: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """Expected squared error with values below bin ``i`` clipped to ``a`` and from bin ``j`` on to ``b``."""
        s = (b - a) / LEVELS
        inside = (CN[j] - CN[i]) * s * s / 12.0
        above = (CX2[n] - CX2[j]) - 2 * b * (CX[n] - CX[j]) + b * b * (C[n] - C[j])
        below = CX2[i] - 2 * a * CX[i] + a * a * C[i]
        return inside + above + below

    if symmetric:
        t = np.linspace(max(abs(lo), abs(hi)) / 16, max(abs(lo), abs(hi)), CANDIDATES)
        i = np.clip(np.searchsorted(edges, -t), 0, n)
        j = np.clip(np.searchsorted(edges, t), 0, n)
        e = error(i, j, -t, t)
        k = int(np.argmin(e))
        return -float(t[k]), float(t[k])
    js = np.unique(np.linspace(n // 16, n, CANDIDATES).astype(int))
    zero = int(np.clip(np.searchsorted(edges, 0.0), 0, n))
    is_ = np.unique(np.linspace(0, zero, CANDIDATES).astype(int)) if lo < 0 else np.array([0])
    best = (np.inf, min(lo, 0.0), max(hi, 0.0))
    for i in is_:
        a = min(float(edges[i]) if lo < 0 else lo, 0.0)
        j = js[js > i]
        if not len(j):
            continue
        b = np.maximum(edges[j], 0.0)
        e = error(np.full(len(j), i), j, np.full(len(j), a), b)
        k = int(np.argmin(e))
        if e[k] < best[0]:
            best = (float(e[k]), a, float(b[k]))
    return best[1], best[2]


def _session(proto: Any) -> Any:
    return ort_session(proto.SerializeToString(), optimize=False)  # every tensor as the model names it


def activation_ranges(
    model_path: Path, data: np.ndarray, *, batch: int, symmetric: bool = False
) -> dict[str, tuple[float, float]]:
    """Tensor name → MSE-optimal (rmin, rmax) for the graph input and every float tensor a node of
    ``model_path`` produces, from two passes over ``data`` (min/max, then a ``BINS``-bin histogram)."""
    import onnx

    proto = onnx.shape_inference.infer_shapes(onnx.load(str(model_path)))
    g = proto.graph
    inits = {t.name for t in g.initializer}
    elem = {v.name: v.type.tensor_type.elem_type for v in [*g.input, *g.value_info, *g.output]}
    feed = next(i.name for i in g.input if i.name not in inits)
    names = [feed, *(o for n in g.node if n.op_type != "Constant" for o in n.output if o)]
    names = [n for n in dict.fromkeys(names) if elem.get(n) == onnx.TensorProto.FLOAT]
    known = {o.name for o in g.output}
    for name in names:
        if name not in known:
            g.output.append(onnx.helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None))
    sess = _session(proto)
    chunks = [data[i : i + batch] for i in range(0, len(data) - len(data) % batch, batch)]
    lo: dict[str, float] = {}
    hi: dict[str, float] = {}
    for x in chunks:
        for name, a in zip(names, sess.run(names, {feed: x}), strict=True):
            if a.size == 0:
                continue
            lo[name] = min(lo.get(name, np.inf), float(a.min()))
            hi[name] = max(hi.get(name, -np.inf), float(a.max()))
    hist = {name: np.zeros(BINS) for name in lo}
    # a tensor that is (nearly) constant — a saturated hard-sigmoid gate is all 1.0 — has no finite-sized bins:
    # its histogram stays empty and its range is min/max (with 0), as ``mse_range`` gives an empty histogram
    # (the edges are computed in the activations' float32)
    binned = {n for n in lo if (hi[n] - lo[n]) / BINS > 4 * np.spacing(np.float32(max(abs(lo[n]), abs(hi[n]))))}
    for x in chunks:
        for name, a in zip(names, sess.run(names, {feed: x}), strict=True):
            if name in binned:
                hist[name] += np.histogram(a, BINS, (lo[name], hi[name]))[0]
    return {name: mse_range(hist[name], lo[name], hi[name], symmetric=symmetric) for name in hist}


def quant_overrides(ranges: dict[str, tuple[float, float]]) -> dict[str, list[dict[str, Any]]]:
    """``ranges`` as ONNX Runtime's ``TensorQuantOverrides`` extra option (float32 rmin/rmax, per tensor)."""
    return {k: [{"rmin": np.float32(a), "rmax": np.float32(b)}] for k, (a, b) in ranges.items()}
