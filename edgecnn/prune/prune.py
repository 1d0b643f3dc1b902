"""``prune_model``: score the coupled channel groups, spend the budget over them, and return a smaller dense model.

Latency is the one budget edgecnn cannot compute by itself at this layer: the caller injects it — ``layer_costs``
(per-layer milliseconds of a model, keyed by module name, and its end-to-end time) and optionally ``measure`` (the
end-to-end time of a candidate). ``edgecnn prune`` passes measured ONNX Runtime layer times on this machine or the
estimator's per-layer times on a hardware profile (:mod:`edgecnn.bench.layer_costs`). With ``measure`` the plan is
checked NetAdapt-style: build it, measure it, and tighten the predicted budget until the measured time meets it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from edgecnn.errors import PruningError
from edgecnn.prune.allocate import CostModel, global_threshold, greedy, ratio_for, uniform
from edgecnn.prune.config import Allocation, PruneConfig
from edgecnn.prune.groups import Batches, ChannelGroup, apply_plan, channel_groups
from edgecnn.registry import did_you_mean

log = logging.getLogger(__name__)

LayerCosts = Callable[[nn.Module], tuple[dict[str, float], float]]  # model → ({layer: ms}, end-to-end ms)
Measure = Callable[[nn.Module], float]  # model → end-to-end ms
LATENCY_TOLERANCE = 0.03  # a measured candidate within 3 % over the target is accepted (timing noise)
MAX_LATENCY_ROUNDS = 4


@dataclass(frozen=True, kw_only=True)
class PruneResult:
    """The pruned dense model and what was done: channels kept per group, MACs/params before and after, the
    predicted and (when measured) measured latency, and the lineage record that checkpoints and bundles carry."""

    model: nn.Module
    keep: dict[str, int]
    sizes: dict[str, int]
    macs_before: int
    macs_after: int
    params_before: int
    params_after: int
    predicted_ms: float | None = None
    measured_ms: float | None = None
    baseline_ms: float | None = None
    record: dict[str, Any] = field(default_factory=dict)

    @property
    def macs_fraction(self) -> float:
        return self.macs_after / self.macs_before


def layer_macs(model: nn.Module, resolution: int) -> tuple[dict[str, float], float]:
    """Per conv/linear layer MACs at ``resolution`` (and their sum): the cost a MACs budget spends."""
    from edgecnn.analysis.walk import input_channels, walk_layers

    calls = walk_layers(
        model, (1, input_channels(model), resolution, resolution), lambda m: isinstance(m, (nn.Conv2d, nn.Linear))
    )
    costs = {c.name: float(c.macs()) for c in calls}
    return costs, sum(costs.values())


def _to_layer_names(costs: dict[str, float], layers: set[str]) -> dict[str, float]:
    """Attribute costs keyed by a block (``blocks.3.0.conv_dw``, as runtimes fuse conv+BN+act) to its conv."""
    out: dict[str, float] = {}
    for k, v in costs.items():
        name = k if k in layers else f"{k}.conv" if f"{k}.conv" in layers else None
        if name is not None:
            out[name] = out.get(name, 0.0) + v
    return out


def _check_names(cfg: PruneConfig, model: nn.Module, groups: list[ChannelGroup]) -> None:
    names = [n for n, _ in model.named_modules() if n]
    roots = [g.root for g in groups]
    for n in (*cfg.ignore, *cfg.layer_ratios):
        if n not in names:
            where = getattr(model, "edgecnn_name", "the model")
            raise PruningError(f"no layer named {n!r} in {where}", hint=did_you_mean(n, names))
    prunable = {layer for g in groups for layer in g.outs}
    for n in cfg.layer_ratios:
        if n not in prunable:
            why = (
                "it is ignored" if n in cfg.ignore else "its outputs are fixed (the class scores, or not a conv/linear)"
            )
            raise PruningError(
                f"layer {n!r} cannot be pruned: {why}",
                hint=f"prunable layers include: {', '.join(roots[:4])} …",
            )


def _count(model: nn.Module, resolution: int) -> tuple[int, int]:
    _, macs = layer_macs(model, resolution)
    return int(macs), sum(p.numel() for p in model.parameters())


def prune_model(
    model: nn.Module,
    cfg: PruneConfig,
    *,
    data: Batches | None = None,
    layer_costs: LayerCosts | None = None,
    measure: Measure | None = None,
    latency_source: str | None = None,
) -> PruneResult:
    """Prune ``model`` (left unchanged) under ``cfg``; returns a dense pruned copy in eval mode.

    ``data`` (labelled batches) feeds the Taylor criterion; ``layer_costs`` is required for a latency budget.
    """
    model = model.eval()
    in_chans = getattr(getattr(model, "edgecnn_options", None), "in_chans", 3)
    example = torch.randn(1, in_chans, cfg.resolution, cfg.resolution, generator=torch.Generator().manual_seed(0))
    groups = channel_groups(model, example, criterion=cfg.criterion, ignore=cfg.ignore, data=data)
    if not groups:
        raise PruningError("this model has no prunable channel groups", hint="check --ignore")
    _check_names(cfg, model, groups)
    macs_before, params_before = _count(model, cfg.resolution)
    layers = {n for n, m in model.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear))}
    mult, maxr = cfg.round_to, cfg.max_ratio
    predicted = measured = baseline = None

    if cfg.target_latency_ms is not None:
        if layer_costs is None:
            raise PruningError("a latency budget needs per-layer latencies", hint="pass --profile or measure here")
        raw, total = layer_costs(model)
        cost = CostModel.build(groups, _to_layer_names(raw, layers), total)
        baseline, target = total, cfg.target_latency_ms
        keep = _plan_to(cfg, groups, cost, target, unit="ms")
        pruned = apply_plan(model, example, groups, _override(cfg, groups, keep))
        predicted = cost.of_keep(groups, keep)
        if measure is not None:  # NetAdapt's loop: measure the candidate, tighten the predicted budget, retry
            for _ in range(MAX_LATENCY_ROUNDS):
                measured = measure(pruned)
                log.info("latency plan: predicted %.3f ms, measured %.3f ms (target %.3f)", predicted, measured, target)
                if measured <= cfg.target_latency_ms * (1 + LATENCY_TOLERANCE):
                    break
                target *= cfg.target_latency_ms / measured
                keep = _plan_to(cfg, groups, cost, target, unit="ms")
                pruned = apply_plan(model, example, groups, _override(cfg, groups, keep))
                predicted = cost.of_keep(groups, keep)
    elif cfg.target_macs is not None:
        raw, total = layer_macs(model, cfg.resolution)
        cost = CostModel.build(groups, raw, total)
        keep = _plan_to(cfg, groups, cost, cfg.target_macs * total, unit="MACs")
        pruned = apply_plan(model, example, groups, _override(cfg, groups, keep))
    else:
        ratio = cfg.ratio or 0.0
        plan = global_threshold if cfg.allocation is Allocation.GLOBAL else uniform
        keep = plan(groups, ratio, multiple=mult, max_ratio=maxr)
        pruned = apply_plan(model, example, groups, _override(cfg, groups, keep))

    keep = _override(cfg, groups, keep)
    if all(keep[g.root] >= g.size for g in groups):
        raise PruningError(
            "these settings remove no channel (every group is at or below the channel multiple, or the ratio rounds "
            f"to zero at multiples of {mult})",
            hint="raise --ratio or lower --round-to",
        )
    macs_after, params_after = _count(pruned, cfg.resolution)
    src = getattr(model, "weights_info", None)
    record = {
        "step": "prune",
        "source": {"path": src.path, "sha256": src.sha256} if src is not None else {"kind": "random-init"},
        "settings": cfg.record(),
        "latency_source": latency_source,
        "macs": [macs_before, macs_after],
        "params": [params_before, params_after],
        "channels_kept": {g.root: [keep[g.root], g.size] for g in groups if keep[g.root] < g.size},
    }
    pruned.lineage = [*(getattr(model, "lineage", None) or []), record]
    pruned.channels_pruned = True
    return PruneResult(
        model=pruned,
        keep=keep,
        sizes={g.root: g.size for g in groups},
        macs_before=macs_before,
        macs_after=macs_after,
        params_before=params_before,
        params_after=params_after,
        predicted_ms=predicted,
        measured_ms=measured,
        baseline_ms=baseline,
        record=record,
    )


def _plan_to(
    cfg: PruneConfig, groups: list[ChannelGroup], cost: CostModel, target: float, *, unit: str
) -> dict[str, int]:
    if cfg.allocation is Allocation.GREEDY:
        return greedy(groups, cost, target, multiple=cfg.round_to, max_ratio=cfg.max_ratio, unit=unit)
    _, keep = ratio_for(
        groups, cost, target, multiple=cfg.round_to, max_ratio=cfg.max_ratio, scope=str(cfg.allocation), unit=unit
    )
    return keep


def _override(cfg: PruneConfig, groups: list[ChannelGroup], keep: dict[str, int]) -> dict[str, int]:
    """Per-layer ratios given by name replace the allocation's choice for their groups."""
    if not cfg.layer_ratios:
        return keep
    out = dict(keep)
    for g in groups:
        named = [cfg.layer_ratios[n] for n in g.outs if n in cfg.layer_ratios]  # any layer the group narrows
        if named:
            out.update(uniform([g], max(named), multiple=cfg.round_to, max_ratio=cfg.max_ratio))
    return out
