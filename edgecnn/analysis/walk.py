"""The one walk of a torch model's layers: a single forward pass with hooks on the modules a caller selects, which
records each call's input and output shapes. Static analysis (:mod:`edgecnn.analysis.static`) and the latency
estimator's op list (:func:`edgecnn.bench.roofline.model_ops`) both read a model through it, so they see the same
layers in the same order. Run it on a model built on the *meta* device: shapes propagate, nothing is allocated or
computed.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn


@dataclass(frozen=True, kw_only=True)
class LayerCall:
    """One call of a selected module: its qualified name, the module, its first input's and its output's shape.
    Forward hooks fire when a module returns, so calls come children first, in execution order."""

    name: str
    module: nn.Module
    in_shape: tuple[int, ...]
    out_shape: tuple[int, ...]

    @property
    def in_elems(self) -> int:
        return math.prod(self.in_shape)

    @property
    def out_elems(self) -> int:
        return math.prod(self.out_shape)

    def macs(self) -> int:
        """Multiply-accumulates of a Conv2d / ConvTranspose2d / Linear call (0 for anything else), counted as
        torchvision's "GFLOPS" column counts them."""
        m = self.module
        if isinstance(m, nn.Conv2d):
            kh, kw = m.kernel_size
            return self.out_elems * (m.in_channels // m.groups) * kh * kw
        if isinstance(m, nn.ConvTranspose2d):
            # every input pixel scatters a k×k×(C_out/groups) patch
            kh, kw = m.kernel_size
            n_in = self.out_shape[0] * m.in_channels * math.prod(self.in_shape[2:])
            return n_in * (m.out_channels // m.groups) * kh * kw
        if isinstance(m, nn.Linear):
            return self.out_elems // self.out_shape[-1] * m.in_features * m.out_features
        return 0


def input_channels(model: nn.Module) -> int:
    """Image channels ``model`` expects: the first conv's input channels; 3 when it starts with (or has only) a
    fully connected layer, or has neither."""
    first = next((m for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))), None)
    return first.in_channels if isinstance(first, nn.Conv2d) else 3


def walk_layers(model: nn.Module, input_shape: tuple[int, ...], select: Callable[[nn.Module], bool]) -> list[LayerCall]:
    """Run ``model`` once (eval mode, no grad) on zeros of ``input_shape``, on the device of its parameters, and
    return every call of a module ``select`` accepts. The model's training flag is restored; a model that rejects
    the input raises its own RuntimeError (callers word it for their users)."""
    param = next(model.parameters(), None)
    device = param.device if param is not None else torch.device("cpu")
    calls: list[LayerCall] = []

    def record(name: str) -> Callable[[nn.Module, tuple, torch.Tensor], None]:
        def hook(m: nn.Module, inputs: tuple, out: torch.Tensor) -> None:
            x = inputs[0] if inputs else None  # a module called with keyword arguments only has no input shape
            in_shape = tuple(x.shape) if isinstance(x, torch.Tensor) else ()
            calls.append(LayerCall(name=name, module=m, in_shape=in_shape, out_shape=tuple(out.shape)))

        return hook

    handles = [m.register_forward_hook(record(name)) for name, m in model.named_modules() if select(m)]
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(torch.zeros(*input_shape, device=device))
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    return calls
