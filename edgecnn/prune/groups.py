"""The coupled channel groups of a network, from torch-pruning's dependency graph (DepGraph: Fang et al., CVPR 2023).

A group is a set of channels that must go together: a MobileNetV2 block's expanded channels run through the 1×1
expansion, its BatchNorm, the depthwise conv (groups = channels), the squeeze-excite gate multiply and the
projection's input; a stage's output channels are tied across every residual add; a conv's outputs that feed a
flatten fan out to ``H·W`` inputs of the next linear layer. DepGraph finds these couplings by tracing the model,
so every zoo family — and any model the zoo grows — is handled without per-architecture rules. The classifier's
outputs (the classes) are never a group.

torch-pruning is the ``prune`` extra and is imported only here; a pruned model is an ordinary dense ``nn.Module``
and its checkpoint reloads without it (:mod:`edgecnn.models.channels`).
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from edgecnn.errors import MissingDependencyError, PruningError
from edgecnn.prune.config import Criterion

Batches = Iterable[tuple[torch.Tensor, torch.Tensor]]


def torch_pruning() -> Any:
    """The torch-pruning module, or a :class:`MissingDependencyError` naming the pip extra."""
    try:
        import torch_pruning as tp
    except ImportError:
        raise MissingDependencyError(
            "pruning needs torch-pruning (DepGraph), which is not installed",
            hint="pip install 'edgecnn[prune]'  (a pruned checkpoint loads without it)",
        ) from None
    return tp


@dataclass(frozen=True, kw_only=True)
class ChannelGroup:
    """One coupled set of channels: its root layer (the name a user gives to set its ratio), how many channels it
    has, each channel's importance (normalized to mean 1 within the group, so groups compare), and the layers whose
    output / input channels it removes (for the cost model)."""

    root: str
    size: int
    importance: torch.Tensor
    outs: tuple[str, ...]
    ins: tuple[str, ...]

    def order(self) -> torch.Tensor:
        """Channel indices, least important first."""
        return torch.argsort(self.importance, stable=True)


def classifier_layers(model: nn.Module) -> list[nn.Module]:
    """The layers whose outputs are the class scores: the last Linear (or the last conv when there is none)."""
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    if linears:
        return [linears[-1]]
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    return convs[-1:]


def _importance(tp: Any, criterion: Criterion) -> Callable[[Any], torch.Tensor | None]:
    imp = tp.importance
    if criterion is Criterion.L1:
        return imp.GroupMagnitudeImportance(p=1, normalizer=None)
    if criterion is Criterion.L2:
        return imp.GroupMagnitudeImportance(p=2, normalizer=None)
    if criterion is Criterion.BN_SCALE:
        return imp.BNScaleImportance(normalizer=None)
    return imp.GroupTaylorImportance(normalizer=None)


def _taylor_gradients(model: nn.Module, data: Batches | None, batches: int) -> None:
    """Accumulate ∂L/∂w over ``batches`` labelled batches (cross-entropy), for the Taylor criterion."""
    if data is None:
        raise PruningError(
            "the taylor criterion scores channels on data, and none was given",
            hint="pass --data (or use --criterion l1 | l2 | bn-scale)",
        )
    model.eval()  # BN statistics stay fixed: the gradient is of the deployed function
    model.zero_grad(set_to_none=True)
    seen = 0
    for x, y in data:
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        seen += 1
        if seen >= batches:
            break
    if not seen:
        raise PruningError("the taylor criterion got an empty data set", hint="check --data")


def trace(model: nn.Module, example: torch.Tensor) -> Any:
    """torch-pruning's dependency graph of ``model`` (traced once on ``example``)."""
    tp = torch_pruning()
    return tp.DependencyGraph().build_dependency(model, example_inputs=example)


def channel_groups(
    model: nn.Module,
    example: torch.Tensor,
    *,
    criterion: Criterion,
    ignore: tuple[str, ...] = (),
    data: Batches | None = None,
    taylor_batches: int = 8,
) -> list[ChannelGroup]:
    """Every prunable group of ``model`` with its channel importances (``model`` itself is not changed)."""
    tp = torch_pruning()
    names = {m: n for n, m in model.named_modules()}
    ignored = classifier_layers(model) + [m for n, m in model.named_modules() if n in ignore]
    work = model
    if criterion is Criterion.TAYLOR:
        work = copy.deepcopy(model)
        names = {m: n for n, m in work.named_modules()}
        ignored = classifier_layers(work) + [m for n, m in work.named_modules() if n in ignore]
    graph = tp.DependencyGraph().build_dependency(work, example_inputs=example)
    if criterion is Criterion.TAYLOR:  # after tracing: building the graph leaves no gradients behind
        _taylor_gradients(work, data, taylor_batches)
    score, magnitude = _importance(tp, criterion), _importance(tp, Criterion.L1)
    groups: list[ChannelGroup] = []
    for group in graph.get_all_groups(ignored_layers=ignored, root_module_types=[nn.Conv2d, nn.Linear]):
        root = group[0].dep.target.module
        with torch.enable_grad() if criterion is Criterion.TAYLOR else torch.no_grad():
            imp = score(group)
        if imp is None:  # e.g. bn-scale on a group without BatchNorm (a squeeze-excite reduce, AlexNet's linears)
            imp = magnitude(group)
        if imp is None:
            continue
        imp = imp.detach().float().cpu()
        imp = imp / imp.mean().clamp_min(1e-12)
        outs, ins = [], []
        for dep, _ in group:
            m = dep.target.module
            if not isinstance(m, (nn.Conv2d, nn.Linear)):
                continue
            if graph.is_out_channel_pruning_fn(dep.handler):
                outs.append(names[m])
            elif isinstance(m, nn.Linear) or m.groups == 1:
                ins.append(names[m])
        groups.append(
            ChannelGroup(
                root=names[root], size=len(imp), importance=imp, outs=tuple(dict.fromkeys(outs)), ins=tuple(ins)
            )
        )
    if criterion is Criterion.TAYLOR:
        work.zero_grad(set_to_none=True)
    return groups


def apply_plan(model: nn.Module, example: torch.Tensor, groups: list[ChannelGroup], keep: dict[str, int]) -> nn.Module:
    """A pruned copy of ``model``: each group keeps its ``keep[root]`` most important channels. Dense, eval mode."""
    tp = torch_pruning()
    out = copy.deepcopy(model).eval()
    out.__dict__.pop("weights_info", None)  # these are no longer the weights of the file it was loaded from
    graph = tp.DependencyGraph().build_dependency(out, example_inputs=example)
    modules = dict(out.named_modules())
    for g in groups:
        k = keep.get(g.root, g.size)
        if k >= g.size:
            continue
        drop = sorted(int(i) for i in g.order()[: g.size - k])
        root = modules[g.root]
        fn = tp.prune_linear_out_channels if isinstance(root, nn.Linear) else tp.prune_conv_out_channels
        pg = graph.get_pruning_group(root, fn, idxs=drop)
        if not graph.check_pruning_group(pg):
            raise PruningError(f"layer {g.root!r} cannot lose {len(drop)} of its {g.size} channels")
        pg.prune()
    out.channels_pruned = True
    return out
