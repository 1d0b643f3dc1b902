"""Where a feature-map cell looks in the input: the theoretical receptive field of a layer, and CAM upsampling that
puts each cell's value at the centre of its field.

Upsampling a CAM as an image (bilinear, half-pixel centres) assumes cell i of a stride-s map is centred on input
pixel s·i + (s−1)/2. A conv stack centres it elsewhere: symmetric padding (torchvision MobileNets) on s·i, TF "SAME"
padding (the EfficientNet-Lite release) on s·i + s − 1 — at stride 32 that is 15.5 px either side of where a plain
resize draws it, half a cell. ``place_maps`` interpolates at the true centres instead.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn


@dataclass(frozen=True, kw_only=True)
class ReceptiveField:
    """Along one axis, output position i of a layer sees input pixels centred on ``start + i·stride`` over ``size``
    pixels (square kernels assumed, as in the zoo; the two axes differ only through asymmetric padding)."""

    size: int
    stride: int
    start: float

    def centre(self, i: float) -> float:
        return self.start + i * self.stride

    def box(self, y: int, x: int, h: int, w: int) -> tuple[int, int, int, int]:
        """(y0, x0, y1, x1), end-exclusive, of position (y, x)'s field, clipped to an h×w input."""
        half = self.size / 2
        cy, cx = self.centre(y), self.centre(x)
        y0, x0 = max(0, math.floor(cy - half + 0.5)), max(0, math.floor(cx - half + 0.5))
        y1, x1 = min(h, math.floor(cy + half + 0.5)), min(w, math.floor(cx + half + 0.5))
        return y0, x0, max(y1, y0 + 1), max(x1, x0 + 1)


class _Stop(Exception):
    """Raised by a hook once the wanted layer has run: nothing after it is computed."""


def _pair(v: int | tuple[int, ...], axis: int = 0) -> int:
    return int(v[axis]) if isinstance(v, tuple) else int(v)


def _conv_pad(mod: nn.Conv2d, axis: int) -> int:
    """Padding before the input along ``axis`` (0 = rows); PyTorch's ``padding='same'`` puts the extra pixel after."""
    if isinstance(mod.padding, str):
        k, d = _pair(mod.kernel_size, axis), _pair(mod.dilation, axis)
        return (d * (k - 1)) // 2 if mod.padding == "same" else 0
    return _pair(mod.padding, axis)


@contextlib.contextmanager
def _probing(model: nn.Module) -> Iterator[None]:
    was = model.training
    model.eval()
    try:
        with torch.no_grad():
            yield
    finally:
        model.train(was)


def _in_chans(model: nn.Module) -> int:
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            return m.in_channels
    return 3


def receptive_fields(model: nn.Module, module: nn.Module, h: int, w: int) -> tuple[ReceptiveField, ReceptiveField]:
    """The theoretical receptive field (rows, columns) of ``module``'s output on an h×w input, composed (Araujo et
    al., Distill 2019) over the convolutions, pools and explicit paddings that run before it, in execution order:
    r ← r + (k−1)·d·j, start ← start + ((k−1)·d/2 − p)·j, j ← j·s. Layers working on a 1×1 map (squeeze-excite
    gates) are skipped and 1×1 stride-1 convs change nothing; a parallel strided shortcut conv (absent from the zoo's
    MobileNets / EfficientNets) would be counted as if in series."""
    from edgecnn.layers.conv_bn_act import PadSame
    from edgecnn.layers.geometry import same_padding

    steps: list[tuple[int, int, int, int, int, int]] = []  # (k, s, d, pad_top, pad_left, is_pad)

    def hook(mod: nn.Module, inp: tuple, _out: object) -> None:
        x = inp[0]
        if not isinstance(x, torch.Tensor) or x.ndim != 4 or x.shape[2] * x.shape[3] == 1:
            return
        if isinstance(mod, PadSame):
            top = same_padding(int(x.shape[-2]), mod.kernel_size, mod.stride, mod.dilation)[0]
            left = same_padding(int(x.shape[-1]), mod.kernel_size, mod.stride, mod.dilation)[0]
            steps.append((1, 1, 1, top, left, 1))
        elif isinstance(mod, nn.ConstantPad2d | nn.ZeroPad2d | nn.ReflectionPad2d | nn.ReplicationPad2d):
            pad = mod.padding if isinstance(mod.padding, tuple) else (mod.padding,) * 4
            steps.append((1, 1, 1, int(pad[2]), int(pad[0]), 1))
        elif isinstance(mod, nn.Conv2d):
            k, s, d = _pair(mod.kernel_size), _pair(mod.stride), _pair(mod.dilation)
            steps.append((k, s, d, _conv_pad(mod, 0), _conv_pad(mod, 1), 0))
        elif isinstance(mod, nn.MaxPool2d | nn.AvgPool2d):
            k, s, p = _pair(mod.kernel_size), _pair(mod.stride or mod.kernel_size), _pair(mod.padding)
            steps.append((k, s, _pair(getattr(mod, "dilation", 1)), p, p, 0))

    def stop(_m: nn.Module, _i: object, _o: object) -> None:
        raise _Stop

    kinds = (nn.Conv2d, nn.MaxPool2d, nn.AvgPool2d, nn.ConstantPad2d, nn.ReflectionPad2d, nn.ReplicationPad2d, PadSame)
    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, kinds)]
    handles.append(module.register_forward_hook(stop))
    try:
        with _probing(model):
            model(torch.zeros(1, _in_chans(model), h, w))
    except _Stop:
        pass
    finally:
        for handle in handles:
            handle.remove()
    fields = []
    for axis in (0, 1):
        r, j, start = 1.0, 1.0, 0.0
        for k, s, d, pt, pl, is_pad in steps:
            p = pt if axis == 0 else pl
            if is_pad:
                start -= p * j
                continue
            r += (k - 1) * d * j
            start += ((k - 1) * d / 2 - p) * j
            j *= s
        fields.append(ReceptiveField(size=int(r), stride=int(j), start=start))
    return fields[0], fields[1]


def _placement_matrix(n_in: int, n_out: int, rf: ReceptiveField) -> np.ndarray:
    """(n_out, n_in) linear-interpolation weights that read input pixel p at cell (p − start) / stride, edges
    clamped: the value of a cell lands on the centre of its receptive field."""
    pos = np.clip((np.arange(n_out) - rf.start) / max(rf.stride, 1), 0, n_in - 1)
    lo = np.floor(pos).astype(int)
    hi = np.minimum(lo + 1, n_in - 1)
    frac = pos - lo
    m = np.zeros((n_out, n_in), dtype=np.float64)
    m[np.arange(n_out), lo] += 1 - frac
    m[np.arange(n_out), hi] += frac
    return m


def place_maps(raw: np.ndarray, size: tuple[int, int], fields: tuple[ReceptiveField, ReceptiveField]) -> np.ndarray:
    """An (N, h, w) stack of cell values → (N, H, W) input-resolution maps, each cell's value at its field's centre,
    linear in between, constant beyond the outermost centres."""
    raw = np.asarray(raw, dtype=np.float64)
    my = _placement_matrix(raw.shape[1], size[0], fields[0])
    mx = _placement_matrix(raw.shape[2], size[1], fields[1])
    return np.einsum("yh,nhw,xw->nyx", my, raw, mx).astype(np.float32)
