"""What a unit detects: feature visualization by activation maximization, the first conv layer's filters, and
dataset exemplars with their receptive-field crops (the three views of Olah et al., "Feature Visualization",
Distill 2017).

- ``visualize``: optimize an image to maximize one channel of a layer (mean over positions) or one class logit.
  The image is parameterized as in Lucid (Olah et al. 2017, "Preconditioning and parameterization"): a Fourier
  spectrum scaled by 1/frequency (so every frequency learns at the same rate, which removes the high-frequency
  patterns plain pixel ascent produces), colours decorrelated with the square root of ImageNet's colour covariance,
  and a sigmoid to keep pixels in [0, 1]. Each step sees a randomly padded, jittered, scaled and rotated copy
  (transformation robustness), so what survives is a feature, not an adversarial pattern. Seeded.
- ``filters_grid``: the first convolution's kernels as a picture (one tile per output channel).
- ``exemplars``: the images of a given set that activate a channel most, where in each the channel peaks, and the
  receptive-field crop around that peak (``receptive_field``: composed from the kernels, strides, dilations and
  paddings of the convolutions and pools in front of the layer).

Images come in as arrays (``edgecnn.explain`` sits below the data layer): the CLI loads folders or the embedded
digits and passes them in.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from edgecnn.errors import ConfigError
from edgecnn.explain.attribution import _explaining, _in_chans, resolve_layer
from edgecnn.explain.geometry import ReceptiveField, _Stop, receptive_fields
from edgecnn.explain.maps import check_batch
from edgecnn.runtime.preprocess import Preprocessing

log = logging.getLogger(__name__)

COLOR_CORRELATION_SVD_SQRT = np.array([[0.26, 0.09, 0.02], [0.27, 0.00, -0.05], [0.27, -0.09, 0.03]], dtype=np.float32)
"""Square root of ImageNet's RGB colour covariance (Lucid, ``lucid/optvis/param/color.py``)."""

PAD, JITTER, JITTER_FINE = 12, 8, 4  # pixels at Lucid's usual 128-px canvas; scaled with the canvas here
SCALES = tuple(1 + (i - 5) / 50 for i in range(11))  # 0.9 .. 1.1
ANGLES = tuple(range(-10, 11)) + (0,) * 5  # degrees; Lucid's standard_transforms


# ---------------------------------------------------------------------------------------------------------- layers


def _check_channel(model: nn.Module, layer: str, channel: int, size: int) -> int:
    """The number of channels at ``layer``; a channel outside 0..C-1 raises."""
    chans = _layer_output(model, layer, torch.zeros(1, _in_chans(model), size, size)).shape[1]
    if not 0 <= channel < chans:
        raise ConfigError(
            f"channel {channel} is out of range: layer {layer!r} has {chans} channels", hint=f"use 0..{chans - 1}"
        )
    return chans


def _layer_output(model: nn.Module, layer: str, x: torch.Tensor) -> torch.Tensor:
    """The output of module ``layer`` for ``x`` (the forward pass stops there)."""
    _, module = resolve_layer(model, layer)
    got: list[torch.Tensor] = []

    def hook(_m: nn.Module, _i: object, out: object) -> None:
        got.append(out)  # type: ignore[arg-type]
        raise _Stop

    handle = module.register_forward_hook(hook)
    try:
        model(x)
    except _Stop:
        pass
    finally:
        handle.remove()
    if not got or not isinstance(got[0], torch.Tensor) or got[0].ndim != 4:
        raise ConfigError(f"layer {layer!r} does not output a 4-D feature map", hint="pick a conv layer or block")
    return got[0]


# --------------------------------------------------------------------------------------- image parameterization


def _spectrum_scale(h: int, w: int, decay_power: float = 1.0) -> torch.Tensor:
    """1/frequency^decay for the rfft2 grid of an h×w image (Lucid's ``fft_image``), times √(h·w)."""
    fy = np.fft.fftfreq(h)[:, None]
    fx = np.fft.rfftfreq(w)[None, :]
    freqs = np.sqrt(fx * fx + fy * fy)
    scale = 1.0 / np.maximum(freqs, 1.0 / max(h, w)) ** decay_power
    return torch.from_numpy((scale * math.sqrt(h * w)).astype(np.float32))


class FourierImage(nn.Module):
    """A batch of images in [0, 1] parameterized by a scaled Fourier spectrum and decorrelated colours."""

    def __init__(self, n: int, channels: int, h: int, w: int, *, generator: torch.Generator, std: float = 0.01):
        super().__init__()
        self.h, self.w, self.channels = h, w, channels
        shape = (n, channels, h, w // 2 + 1, 2)
        self.spectrum = nn.Parameter(torch.randn(shape, generator=generator) * std)
        self.register_buffer("scale", _spectrum_scale(h, w))
        c = COLOR_CORRELATION_SVD_SQRT / np.max(np.linalg.norm(COLOR_CORRELATION_SVD_SQRT, axis=0))
        self.register_buffer("color", torch.from_numpy(c.astype(np.float32)))

    def forward(self) -> torch.Tensor:
        spec = torch.view_as_complex(self.spectrum) * self.scale
        img = torch.fft.irfft2(spec, s=(self.h, self.w)) / 4.0  # 1/(h·w) normalization, as TF's irfft2d in Lucid
        if self.channels == 3:  # decorrelated → RGB: x_rgb = C · x_decorrelated per pixel
            img = torch.einsum("ij,njhw->nihw", self.color, img)
        return torch.sigmoid(img)


def to_model_input(rgb: torch.Tensor, pre: Preprocessing) -> torch.Tensor:
    """[0, 1] images (N, C, H, W; RGB or grey) → the model's input: its pixel scale, channel order, mean and std."""
    x = rgb * 255.0 * pre.scale
    if pre.color == "BGR":
        x = x.flip(1)
    mean = torch.tensor(pre.mean, dtype=x.dtype)[:, None, None]
    std = torch.tensor(pre.std, dtype=x.dtype)[:, None, None]
    return (x - mean) / std


def _choice(options: Sequence[float], n: int, gen: torch.Generator) -> torch.Tensor:
    return torch.tensor(options, dtype=torch.float32)[torch.randint(len(options), (n,), generator=gen)]


def _jitter(x: torch.Tensor, d: int, gen: torch.Generator) -> torch.Tensor:
    """A random (H−d)×(W−d) crop (Lucid's ``jitter``), one offset for the batch."""
    oy, ox = (int(v) for v in torch.randint(0, d + 1, (2,), generator=gen))
    return x[:, :, oy : oy + x.shape[2] - d, ox : ox + x.shape[3] - d]


def robust_transform(img: torch.Tensor, size: int, gen: torch.Generator) -> torch.Tensor:
    """Lucid's ``standard_transforms``: pad 12 (grey), jitter 8, scale 0.9–1.1, rotate ±10°, jitter 4 — the pixel
    amounts for a 128-px canvas, scaled to this one — then back to ``size``×``size`` for the model. Differentiable;
    every image of the batch gets its own scale and angle."""
    n, side = img.shape[0], img.shape[2]
    pad, jit, fine = (max(1, round(v * side / 128)) for v in (PAD, JITTER, JITTER_FINE))
    x = F.pad(img, (pad, pad, pad, pad), value=0.5)
    x = _jitter(x, jit, gen)
    s = _choice(SCALES, n, gen)
    a = _choice(ANGLES, n, gen) * math.pi / 180
    cos, sin = torch.cos(a) / s, torch.sin(a) / s
    theta = torch.stack([torch.stack([cos, -sin, torch.zeros(n)], 1), torch.stack([sin, cos, torch.zeros(n)], 1)], 1)
    grid = F.affine_grid(theta.to(x), list(x.shape), align_corners=False)
    x = F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)
    x = _jitter(x, fine, gen)
    return F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)


# ------------------------------------------------------------------------------------ activation maximization


@dataclass(frozen=True, kw_only=True)
class FeatureVis:
    """Optimized images (N, H, W, C) in [0, 1], what they maximize, and the objective on the final, untransformed
    images (``activation``: mean channel activation or class logit) with its trace over the steps."""

    images: np.ndarray
    objective: str
    layer: str | None
    units: tuple[int, ...]
    activation: tuple[float, ...]
    history: tuple[tuple[float, ...], ...]
    steps: int
    seed: int
    extra: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {
            "objective": self.objective,
            "layer": self.layer,
            "units": list(self.units),
            "activation": list(self.activation),
            "steps": self.steps,
            "seed": self.seed,
            **self.extra,
        }


def objective_values(
    model: nn.Module, x: torch.Tensor, *, layer: str | None, units: Sequence[int], unit_per_image: bool = True
) -> torch.Tensor:
    """Per image: the mean activation of its channel at ``layer`` or, with ``layer=None``, its class logit.
    ``unit_per_image``: image i scores unit i; else every image scores ``units[0]``."""
    out = _layer_output(model, layer, x) if layer is not None else model(x)
    idx = torch.as_tensor(list(units) if unit_per_image else [units[0]] * len(x), dtype=torch.long)
    vals = out[torch.arange(len(x)), idx]
    return vals.flatten(1).mean(1) if vals.ndim > 1 else vals


def visualize(
    model: nn.Module,
    *,
    layer: str | None = None,
    channels: int | Sequence[int] | None = None,
    target_class: int | Sequence[int] | None = None,
    size: int | None = None,
    steps: int = 256,
    lr: float = 0.05,
    seed: int = 0,
    transforms: bool = True,
    preprocessing: Preprocessing | None = None,
) -> FeatureVis:
    """Activation maximization (Olah et al. 2017): one image per channel of ``layer`` (``channels``) or per class
    (``target_class``, the logit), optimized with Adam from a seeded, nearly grey Fourier image under random
    transformations (``transforms``). ``size`` defaults to the model's input size."""
    if (channels is None) == (target_class is None):
        raise ConfigError("pass channels (with a layer) or target_class, not both", hint="--channel or --class")
    pre = preprocessing or getattr(model, "preprocessing", None) or Preprocessing()
    size = size or pre.input_size
    if steps < 1 or size < 8:
        raise ConfigError(f"feature visualization needs steps ≥ 1 and size ≥ 8 (got {steps}, {size})")
    raw_units = channels if channels is not None else target_class
    units = [int(raw_units)] if isinstance(raw_units, (int, np.integer)) else [int(u) for u in raw_units]  # type: ignore[union-attr]
    if not units:
        raise ConfigError("no channel or class to visualize")
    with _explaining(model):
        if channels is not None:
            if layer is None:
                raise ConfigError("a channel needs its layer", hint="pass --layer (a module path)")
            layer, _ = resolve_layer(model, layer)
            for u in units:
                _check_channel(model, layer, u, size)
        else:
            if layer is not None:
                raise ConfigError("--layer applies to channels; a class is the model's output")
            with torch.no_grad():
                n_cls = model(torch.zeros(1, _in_chans(model), size, size)).shape[1]
            bad = [u for u in units if not 0 <= u < n_cls]
            if bad:
                raise ConfigError(f"class {bad[0]} is outside the model's {n_cls} classes", hint=f"use 0..{n_cls - 1}")
        gen = torch.Generator().manual_seed(seed)
        param = FourierImage(len(units), pre.channels, size, size, generator=gen)
        opt = torch.optim.Adam(param.parameters(), lr=lr)
        history = []
        for _ in range(steps):
            img = param()
            if transforms:
                img = robust_transform(img, size, gen)
            vals = objective_values(model, to_model_input(img, pre), layer=layer, units=units)
            (grad,) = torch.autograd.grad(-vals.sum(), param.spectrum)  # the model's own .grad stay untouched
            param.spectrum.grad = grad
            opt.step()
            history.append(tuple(float(v) for v in vals.detach()))
        with torch.no_grad():
            final = param()
            act = objective_values(model, to_model_input(final, pre), layer=layer, units=units)
    images = final.permute(0, 2, 3, 1).numpy().astype(np.float32)
    return FeatureVis(
        images=images,
        objective="channel" if channels is not None else "class",
        layer=layer,
        units=tuple(units),
        activation=tuple(float(v) for v in act),
        history=tuple(zip(*history, strict=True)) if history else (),
        steps=steps,
        seed=seed,
        extra={"size": size, "lr": lr, "transforms": transforms, "parameterization": "fourier+decorrelated"},
    )


# --------------------------------------------------------------------------------------------------- filters


def first_conv(model: nn.Module) -> tuple[str, nn.Conv2d]:
    """The first ``Conv2d`` the input meets (module order, which the zoo's builders keep)."""
    for name, m in model.named_modules():
        if isinstance(m, nn.Conv2d):
            return name, m
    raise ConfigError(f"{type(model).__name__} has no Conv2d layer")


@dataclass(frozen=True, kw_only=True)
class FilterGrid:
    """The first conv's kernels as a picture: ``image`` (H, W, 3) uint8, ``rows``×``cols`` tiles of
    ``tile``×``tile`` pixels; ``weight_shape`` = (out, in, kh, kw)."""

    image: np.ndarray
    layer: str
    weight_shape: tuple[int, int, int, int]
    rows: int
    cols: int
    tile: int

    def to_dict(self) -> dict:
        return {
            "layer": self.layer,
            "weight_shape": list(self.weight_shape),
            "rows": self.rows,
            "cols": self.cols,
            "tile_px": self.tile,
            "image_shape": list(self.image.shape),
        }


def filters_grid(
    model: nn.Module, *, zoom: int = 8, gap: int = 2, preprocessing: Preprocessing | None = None
) -> FilterGrid:
    """One tile per output channel of the first conv, each kernel scaled to [0, 1] around grey (0 → 0.5) by its own
    largest |weight|, magnified ``zoom``× (nearest); 3 input channels are shown as colour (in RGB order, whatever
    the model's channel order), others as the mean over inputs in grey."""
    pre = preprocessing or getattr(model, "preprocessing", None)
    name, conv = first_conv(model)
    w = conv.weight.detach().float().cpu().numpy()
    out_c, in_c, kh, kw = w.shape
    if in_c == 3 and pre is not None and pre.color == "BGR":
        w = w[:, ::-1]
    tiles = w if in_c == 3 else np.repeat(w.mean(1, keepdims=True), 3, axis=1)
    peak = np.abs(tiles).reshape(out_c, -1).max(1)
    tiles = tiles / (2 * np.where(peak > 0, peak, 1.0))[:, None, None, None] + 0.5
    cols = math.ceil(math.sqrt(out_c))
    rows = math.ceil(out_c / cols)
    th, tw = kh * zoom, kw * zoom
    img = np.full((rows * (th + gap) - gap, cols * (tw + gap) - gap, 3), 1.0, dtype=np.float32)
    for i in range(out_c):
        r, c = divmod(i, cols)
        t = np.kron(tiles[i].transpose(1, 2, 0), np.ones((zoom, zoom, 1)))
        img[r * (th + gap) : r * (th + gap) + th, c * (tw + gap) : c * (tw + gap) + tw] = t
    return FilterGrid(
        image=(np.clip(img, 0, 1) * 255).round().astype(np.uint8),
        layer=name,
        weight_shape=(out_c, in_c, kh, kw),
        rows=rows,
        cols=cols,
        tile=th,
    )


# ------------------------------------------------------------------------------------ receptive field, exemplars


def receptive_field(model: nn.Module, layer: str, size: int = 224) -> ReceptiveField:
    """The theoretical receptive field of ``layer`` (a module path) on a ``size``×``size`` input
    (:func:`edgecnn.explain.geometry.receptive_fields`)."""
    _, module = resolve_layer(model, layer)
    return receptive_fields(model, module, size, size)[0]


@dataclass(frozen=True, kw_only=True)
class Exemplars:
    """The ``top`` images that activate ``channel`` of ``layer`` most, best first: their indices into the given
    set, their scores (the channel's maximum over positions), the peak position in the feature map, and the
    receptive-field box of that peak in input pixels (y0, x0, y1, x1). ``mean_score`` is over all given images."""

    layer: str
    channel: int
    indices: tuple[int, ...]
    scores: tuple[float, ...]
    peaks: tuple[tuple[int, int], ...]
    boxes: tuple[tuple[int, int, int, int], ...]
    field: ReceptiveField
    mean_score: float
    all_scores: np.ndarray

    def to_dict(self) -> dict:
        return {
            "layer": self.layer,
            "channel": self.channel,
            "receptive_field": {"size": self.field.size, "stride": self.field.stride, "start": self.field.start},
            "mean_score": self.mean_score,
            "top": [
                {"index": i, "score": s, "peak_yx": list(p), "box_yxyx": list(b)}
                for i, s, p, b in zip(self.indices, self.scores, self.peaks, self.boxes, strict=True)
            ],
        }


def exemplars(model: nn.Module, x: np.ndarray, *, layer: str, channel: int, top: int = 9, batch: int = 64) -> Exemplars:
    """Dataset exemplars (Olah et al. 2017): score each preprocessed image of ``x`` (N, C, H, W) by the maximum of
    ``channel`` at ``layer`` over positions, keep the ``top`` best (ties: lower index first), and give each the
    receptive-field box of its peak position."""
    x = check_batch(x)
    if top < 1:
        raise ConfigError(f"top must be ≥ 1, got {top}")
    name, _ = resolve_layer(model, layer)
    h, w = x.shape[2], x.shape[3]
    scores, peaks = [], []
    with _explaining(model), torch.no_grad():
        _check_channel(model, name, channel, h)
        for i in range(0, len(x), batch):
            fmap = _layer_output(model, name, torch.from_numpy(x[i : i + batch]))[:, channel]
            flat = fmap.flatten(1)
            best, pos = flat.max(1)
            scores.append(best.numpy())
            peaks += [divmod(int(p), fmap.shape[2]) for p in pos]
    all_scores = np.concatenate(scores).astype(np.float64)
    order = np.argsort(-all_scores, kind="stable")[: min(top, len(x))]
    field = receptive_field(model, name, h)
    return Exemplars(
        layer=name,
        channel=channel,
        indices=tuple(int(i) for i in order),
        scores=tuple(float(all_scores[i]) for i in order),
        peaks=tuple(peaks[i] for i in order),
        boxes=tuple(field.box(*peaks[i], h, w) for i in order),
        field=field,
        mean_score=float(all_scores.mean()),
        all_scores=all_scores,
    )
