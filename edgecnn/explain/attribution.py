"""Attribution for PyTorch models: class activation maps at a layer and gradients on the input, batched.

- Grad-CAM (Selvaraju et al., ICCV 2017): channel weights = spatial mean of the class gradient.
- Grad-CAM++ (Chattopadhay et al., WACV 2018): weights from positive gradients with per-pixel α (closed form with
  the exponential score, as in the paper), better for several instances of a class.
- LayerCAM (Jiang et al., IEEE TIP 2021): per-pixel weights = positive gradient, so it also works at shallow layers.
- XGrad-CAM (Fu et al., BMVC 2020): weights = Σ gradient·activation / Σ activation (sensitivity + conservation).
- Integrated Gradients (Sundararajan et al., ICML 2017): path integral of input gradients from a baseline; the
  completeness gap (Σ attribution vs. f(x) − f(baseline)) is returned so a user can check the step count.
- SmoothGrad (Smilkov et al. 2017): input gradients averaged over noisy copies.

Implemented on torch autograd rather than pytorch-grad-cam (which pulls torchvision and OpenCV) or Captum (no
Grad-CAM++ / LayerCAM / XGrad-CAM): each CAM is a two-line formula on the activations and gradients of one
forward/backward pass. What trips hook-based tools on MobileNets is handled here: in-place ReLU / ReLU6 /
hard-swish would overwrite the captured activation, so ``inplace`` is switched off for the duration of an
explanation (and restored); the gradient is taken with ``torch.autograd.grad`` on the captured output, so SE blocks
(which multiply the map by a gate computed from it) and residual adds are differentiated through like any op; the
model is put in eval mode (BatchNorm, dropout) and restored.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator, Sequence

import numpy as np
import torch
from torch import nn

from edgecnn.errors import ConfigError, UnknownNameError
from edgecnn.explain.geometry import place_maps, receptive_fields
from edgecnn.explain.maps import Attribution, check_batch, normalize_maps, target_classes
from edgecnn.registry import suggest

log = logging.getLogger(__name__)

CAM_METHODS = ("gradcam", "gradcam++", "layercam", "xgradcam")
INPUT_METHODS = ("integrated_gradients", "smoothgrad")
GRADIENT_METHODS = CAM_METHODS + INPUT_METHODS

_POOLS = (nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d, nn.AvgPool2d)


def default_layer(model: nn.Module, resolution: int | None = None) -> str:
    """The last spatial feature map: the model's own ``feature_info`` (the zoo's BlockNets: ``head`` or the last
    block), else the last module (not a global pool) whose output is a 4-D map with more than one pixel, found by
    one probe forward pass at ``resolution`` (default: the model's own input size)."""
    info = getattr(model, "feature_info", None)
    if info:
        return str(info[-1].module)
    pre = getattr(model, "preprocessing", None)
    resolution = resolution or getattr(pre, "input_size", 224)
    names = {id(m): n for n, m in model.named_modules() if n}
    seen: list[str] = []

    def hook(mod: nn.Module, _inp: object, out: object) -> None:
        spatial = isinstance(out, torch.Tensor) and out.ndim == 4 and out.shape[2] * out.shape[3] > 1
        if spatial and not isinstance(mod, _POOLS) and id(mod) in names:
            seen.append(names[id(mod)])

    handles = [m.register_forward_hook(hook) for m in model.modules() if id(m) in names]
    try:
        with torch.no_grad(), _explaining(model):
            model(torch.zeros(1, _in_chans(model), resolution, resolution))
    finally:
        for h in handles:
            h.remove()
    if not seen:
        raise ConfigError(f"{type(model).__name__} has no spatial feature map to take a CAM at", hint="pass --layer")
    return seen[-1]


def _in_chans(model: nn.Module) -> int:
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            return m.in_channels
    return 3


def resolve_layer(model: nn.Module, layer: str | None = None) -> tuple[str, nn.Module]:
    """``layer`` (a module path such as ``blocks.5.0``) or the default; an unknown path raises with did-you-mean."""
    name = layer or default_layer(model)
    modules = dict(model.named_modules())
    if name not in modules or not name:
        close = suggest(name, [n for n in modules if n])
        raise UnknownNameError(
            f"model has no layer {name!r}",
            hint=f"did you mean {close!r}?" if close else "list them with `edgecnn analyze MODEL --layers`",
        )
    return name, modules[name]


@contextlib.contextmanager
def _explaining(model: nn.Module) -> Iterator[None]:
    """Eval mode and no in-place activations while explaining; both restored afterwards."""
    was_training = model.training
    flipped = [m for m in model.modules() if getattr(m, "inplace", False) is True]
    for m in flipped:
        m.inplace = False
    model.eval()
    try:
        yield
    finally:
        for m in flipped:
            m.inplace = True
        model.train(was_training)


def _to_tensor(x: np.ndarray | torch.Tensor, model: nn.Module) -> torch.Tensor:
    if isinstance(x, torch.Tensor):
        if x.ndim != 4:
            check_batch(x.detach().cpu().numpy())
        t = x.detach()
    else:
        t = torch.from_numpy(check_batch(x))
    p = next(model.parameters(), None)
    return t.to(dtype=torch.float32, device=p.device if p is not None else "cpu")


def _chunks(n: int, size: int) -> Iterator[slice]:
    for i in range(0, n, size):
        yield slice(i, min(i + size, n))


def _cam_weights(method: str, acts: torch.Tensor, grads: torch.Tensor) -> torch.Tensor:
    """(N, C, h, w) activations and gradients → the (N, h, w) map before the final ReLU."""
    if method == "gradcam":
        return (grads.mean(dim=(2, 3), keepdim=True) * acts).sum(1)
    if method == "layercam":
        return (grads.clamp(min=0) * acts).sum(1)
    if method == "xgradcam":
        w = (grads * acts).sum(dim=(2, 3), keepdim=True) / (acts.sum(dim=(2, 3), keepdim=True) + 1e-7)
        return (w * acts).sum(1)
    # Grad-CAM++ with Y = exp(S) (paper eq. 19): α's higher derivatives reduce to powers of g, and the factor
    # exp(S) in relu(∂Y/∂A) is one positive constant per image, which the final [0, 1] scaling removes.
    g2, g3 = grads.pow(2), grads.pow(3)
    denom = 2 * g2 + acts.sum(dim=(2, 3), keepdim=True) * g3
    alpha = g2 / torch.where(denom != 0, denom, torch.ones_like(denom))
    w = (alpha * torch.relu(grads)).sum(dim=(2, 3), keepdim=True)
    return (w * acts).sum(1)


def cam(
    model: nn.Module,
    x: np.ndarray | torch.Tensor,
    *,
    method: str = "gradcam",
    target: int | Sequence[int] | None = None,
    layer: str | None = None,
    batch: int = 16,
) -> Attribution:
    """A class activation map per image of the preprocessed batch ``x`` at ``layer`` (default: the last spatial
    feature map), brought to the input resolution and scaled to [0, 1]. ``target``: None = the predicted class.

    Each cell's value is placed at the centre of its receptive field (``edgecnn.explain.geometry.place_maps``), not
    where a plain image resize would draw it — half a cell away at the last layer of a MobileNet or EfficientNet."""
    if method not in CAM_METHODS:
        raise UnknownNameError(f"unknown CAM method {method!r}", hint=f"use one of {', '.join(CAM_METHODS)}")
    xt = _to_tensor(x, model)
    name, module = resolve_layer(model, layer)
    fields = receptive_fields(model, module, int(xt.shape[2]), int(xt.shape[3]))
    captured: list[torch.Tensor] = []
    handle = module.register_forward_hook(lambda _m, _i, out: captured.append(out))
    maps, classes, scores = [], [], []
    grid: tuple[int, ...] = ()
    try:
        with _explaining(model), torch.enable_grad():
            for sl in _chunks(len(xt), batch):
                captured.clear()
                inp = xt[sl].clone().requires_grad_(True)
                logits = model(inp)
                if not captured or not isinstance(captured[0], torch.Tensor) or captured[0].ndim != 4:
                    raise ConfigError(f"layer {name!r} does not output a 4-D feature map", hint="pick a conv layer")
                acts = captured[-1]
                cls = torch.from_numpy(
                    target_classes(_slice_target(target, sl), logits.argmax(1).cpu().numpy(), logits.shape[1])
                ).to(logits.device)
                score = logits.gather(1, cls[:, None])[:, 0]
                (grads,) = torch.autograd.grad(score.sum(), acts)
                with torch.no_grad():
                    raw = torch.relu(_cam_weights(method, acts.detach(), grads)).cpu().numpy()
                grid = raw.shape[1:]
                maps.append(place_maps(raw, (int(xt.shape[2]), int(xt.shape[3])), fields))
                classes += cls.tolist()
                scores += score.detach().cpu().tolist()
    finally:
        handle.remove()
    return Attribution(
        maps=normalize_maps(np.concatenate(maps)),
        classes=tuple(classes),
        scores=tuple(scores),
        method=method,
        layer=name,
        extra={"grid": list(grid), "receptive_field_px": fields[0].size, "stride": fields[0].stride},
    )


def _slice_target(target: int | Sequence[int] | None, sl: slice) -> int | Sequence[int] | None:
    if target is None or isinstance(target, (int, np.integer)):
        return target
    return list(target)[sl]


def _input_grads(model: nn.Module, inp: torch.Tensor, cls: torch.Tensor) -> torch.Tensor:
    inp = inp.clone().requires_grad_(True)
    score = model(inp).gather(1, cls[:, None]).sum()
    (g,) = torch.autograd.grad(score, inp)
    return g


def integrated_gradients(
    model: nn.Module,
    x: np.ndarray | torch.Tensor,
    *,
    target: int | Sequence[int] | None = None,
    steps: int = 32,
    baseline: float = 0.0,
    batch: int = 16,
) -> Attribution:
    """Integrated Gradients (Sundararajan et al. 2017) from a constant ``baseline`` (0 = the mean colour after
    normalization), trapezoid rule over ``steps``; the map is |Σ_channels attribution|. ``extra['completeness_gap']``
    is |Σ attribution − (f(x) − f(baseline))| / |f(x) − f(baseline)| per image (the axiom; small when steps
    suffice)."""
    xt = _to_tensor(x, model)
    alphas = torch.linspace(0, 1, steps + 1)
    wts = torch.full((steps + 1,), 1.0 / steps)
    wts[0] = wts[-1] = 0.5 / steps
    maps, classes, scores, gaps = [], [], [], []
    with _explaining(model), torch.enable_grad():
        for img, cls in _per_image_class(model, xt, target):
            base = torch.full_like(img, baseline)
            total = torch.zeros_like(img)
            for sl in _chunks(len(alphas), batch):
                path = base[None] + alphas[sl, None, None, None].to(img) * (img - base)[None]
                g = _input_grads(model, path, torch.full((len(path),), cls, device=img.device))
                total += (g * wts[sl, None, None, None].to(img)).sum(0)
            attr = (img - base) * total
            with torch.no_grad():
                f = model(torch.stack([img, base]))[:, cls]
            diff = float(f[0] - f[1])
            gaps.append(abs(float(attr.sum()) - diff) / max(abs(diff), 1e-12))
            maps.append(attr.sum(0).abs().cpu().numpy())
            classes.append(cls)
            scores.append(float(f[0]))
    return Attribution(
        maps=normalize_maps(np.stack(maps)),
        classes=tuple(classes),
        scores=tuple(scores),
        method="integrated_gradients",
        extra={"steps": steps, "baseline": baseline, "completeness_gap": gaps},
    )


def smoothgrad(
    model: nn.Module,
    x: np.ndarray | torch.Tensor,
    *,
    target: int | Sequence[int] | None = None,
    samples: int = 16,
    noise: float = 0.15,
    seed: int = 0,
    batch: int = 16,
) -> Attribution:
    """SmoothGrad (Smilkov et al. 2017): mean |input gradient| over ``samples`` copies with Gaussian noise of
    σ = ``noise``·(max − min) of each image, seeded; the map is the channel mean."""
    xt = _to_tensor(x, model)
    gen = torch.Generator().manual_seed(seed)
    maps, classes, scores = [], [], []
    with _explaining(model), torch.enable_grad():
        for img, cls in _per_image_class(model, xt, target):
            sigma = noise * float(img.max() - img.min())
            noisy = img[None] + sigma * torch.randn((samples, *img.shape), generator=gen).to(img)
            acc = torch.zeros_like(img)
            for sl in _chunks(samples, batch):
                acc += _input_grads(model, noisy[sl], torch.full((sl.stop - sl.start,), cls)).abs().sum(0)
            with torch.no_grad():
                scores.append(float(model(img[None])[0, cls]))
            maps.append((acc / samples).mean(0).cpu().numpy())
            classes.append(cls)
    return Attribution(
        maps=normalize_maps(np.stack(maps)),
        classes=tuple(classes),
        scores=tuple(scores),
        method="smoothgrad",
        extra={"samples": samples, "noise": noise, "seed": seed},
    )


def _per_image_class(
    model: nn.Module, xt: torch.Tensor, target: int | Sequence[int] | None
) -> Iterator[tuple[torch.Tensor, int]]:
    with torch.no_grad():
        logits = torch.cat([model(xt[sl]) for sl in _chunks(len(xt), 16)])
    cls = target_classes(target, logits.argmax(1).cpu().numpy(), logits.shape[1])
    yield from zip(xt, (int(c) for c in cls), strict=True)


def explain(
    model: nn.Module,
    x: np.ndarray | torch.Tensor,
    *,
    method: str = "gradcam",
    target: int | Sequence[int] | None = None,
    layer: str | None = None,
    **options: object,
) -> Attribution:
    """One entry point for every method on a PyTorch model: the gradient methods above, and the gradient-free ones
    (``rise``, ``occlusion``) run on the model's forward pass so they can be compared with a bundle's."""
    from edgecnn.explain.perturb import PERTURBATION_METHODS

    if method in CAM_METHODS:
        return cam(model, x, method=method, target=target, layer=layer, **options)  # type: ignore[arg-type]
    if layer is not None:
        raise ConfigError(f"--layer applies to the CAM methods, not {method!r}")
    if method == "integrated_gradients":
        return integrated_gradients(model, x, target=target, **options)  # type: ignore[arg-type]
    if method == "smoothgrad":
        return smoothgrad(model, x, target=target, **options)  # type: ignore[arg-type]
    if method in PERTURBATION_METHODS:
        return PERTURBATION_METHODS[method](torch_predictor(model), _numpy(x), target=target, **options)
    known = list(GRADIENT_METHODS) + list(PERTURBATION_METHODS)
    close = suggest(method, known)
    raise UnknownNameError(
        f"unknown explanation method {method!r}", hint=f"did you mean {close!r}?" if close else f"use {known}"
    )


def _numpy(x: np.ndarray | torch.Tensor) -> np.ndarray:
    return x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else x


def torch_predictor(model: nn.Module, *, batch: int = 32) -> Callable[[np.ndarray], np.ndarray]:
    """The PyTorch model as a numpy predictor (eval mode, no grad), for the gradient-free methods and metrics."""

    def predict(x: np.ndarray) -> np.ndarray:
        was = model.training
        model.eval()
        try:
            with torch.no_grad():
                p = next(model.parameters(), None)
                dev = p.device if p is not None else "cpu"
                outs = [model(torch.from_numpy(np.ascontiguousarray(x[sl])).to(dev)) for sl in _chunks(len(x), batch)]
        finally:
            model.train(was)
        return torch.cat(outs).float().cpu().numpy()

    predict.batch_size = batch  # type: ignore[attr-defined]
    return predict
