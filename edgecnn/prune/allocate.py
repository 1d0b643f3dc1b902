"""How many channels each group keeps: uniform, global threshold, or NetAdapt-style greedy against a cost.

The cost model (:class:`CostModel`) is per layer: a conv or linear layer's cost (its MACs, a measured time, or an
estimator's time) scales with the fraction of its input and output channels kept — a depthwise conv's with its
channels only. What the layers do not explain (pooling, the runtime's own overhead) stays constant. Measured
per-layer times differ from MACs exactly where it matters: a depthwise conv is memory-bound and costs far more per
MAC than a 1×1 conv, so the greedy allocation under a latency budget prunes differently from one under MACs
(NetAdapt, Yang et al., ECCV 2018: up to 1.7× faster MobileNets at equal accuracy than MAC-driven pruning).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from edgecnn.errors import PruningError
from edgecnn.prune.groups import ChannelGroup


def round_keep(x: float, size: int, multiple: int, floor: int) -> int:
    """Channels kept: ``x`` rounded to the nearest ``multiple`` (at least one multiple, at least ``floor``, at most
    ``size``). A group no larger than the multiple is left whole."""
    if size <= multiple:
        return size
    k = max(multiple, int(round(x / multiple)) * multiple, floor)
    return min(size, k)


def floor_keep(g: ChannelGroup, max_ratio: float, multiple: int) -> int:
    """The fewest channels a group may keep under ``max_ratio``, rounded up to the multiple."""
    least = math.ceil(g.size * (1 - max_ratio))
    return g.size if g.size <= multiple else min(g.size, max(multiple, math.ceil(least / multiple) * multiple))


@dataclass(frozen=True, kw_only=True)
class CostModel:
    """``constant + Σ cost[layer] · kept_in(layer) · kept_out(layer)`` over the groups' keep fractions."""

    layers: dict[str, float]
    constant: float
    out_group: dict[str, str]  # layer → root of the group that removes its output channels
    in_group: dict[str, str]

    @classmethod
    def build(cls, groups: list[ChannelGroup], layer_costs: dict[str, float], total: float) -> CostModel:
        out_group = {layer: g.root for g in groups for layer in g.outs}
        in_group = {layer: g.root for g in groups for layer in g.ins}
        return cls(
            layers=dict(layer_costs),
            constant=max(0.0, total - sum(layer_costs.values())),
            out_group=out_group,
            in_group=in_group,
        )

    def __call__(self, fraction: dict[str, float]) -> float:
        total = self.constant
        for layer, c in self.layers.items():
            fo = fraction.get(self.out_group.get(layer, ""), 1.0)
            fi = fraction.get(self.in_group.get(layer, ""), 1.0)
            total += c * fo * fi
        return total

    def of_keep(self, groups: list[ChannelGroup], keep: dict[str, int]) -> float:
        return self({g.root: keep[g.root] / g.size for g in groups})


def uniform(groups: list[ChannelGroup], ratio: float, *, multiple: int, max_ratio: float) -> dict[str, int]:
    """Every group loses ``ratio`` of its channels (capped at ``max_ratio``), rounded to the multiple."""
    r = min(ratio, max_ratio)
    return {g.root: round_keep(g.size * (1 - r), g.size, multiple, floor_keep(g, max_ratio, multiple)) for g in groups}


def global_threshold(groups: list[ChannelGroup], ratio: float, *, multiple: int, max_ratio: float) -> dict[str, int]:
    """One threshold on the (per-group normalized) importances removes ``ratio`` of all channels; each group keeps
    the channels above it, rounded to the multiple and never below its ``max_ratio`` floor."""
    pooled = torch.cat([g.importance for g in groups])
    if ratio <= 0 or not len(pooled):
        return {g.root: g.size for g in groups}
    threshold = torch.quantile(pooled, min(ratio, 1.0))
    return {
        g.root: round_keep(
            float((g.importance > threshold).sum()), g.size, multiple, floor_keep(g, max_ratio, multiple)
        )
        for g in groups
    }


def greedy(
    groups: list[ChannelGroup], cost: CostModel, target: float, *, multiple: int, max_ratio: float, unit: str
) -> dict[str, int]:
    """NetAdapt-style: repeatedly take one channel multiple from the group whose least important remaining channels
    carry the least importance per unit of cost saved, until the predicted cost meets ``target``."""
    keep = {g.root: g.size for g in groups}
    floors = {g.root: floor_keep(g, max_ratio, multiple) for g in groups}
    cheapest = cost.of_keep(groups, floors)
    if cheapest > target:
        raise PruningError(
            f"a {unit} budget of {target:.4g} is below what this model can reach: the best reachable is "
            f"{cheapest:.4g} (every layer at max ratio {max_ratio:g}, channels in multiples of {multiple})",
            hint=f"ask for at least {cheapest:.4g}, or raise max_ratio",
        )
    sorted_imp = {g.root: torch.sort(g.importance).values for g in groups}
    touches: dict[str, list[str]] = {g.root: [] for g in groups}  # group → the layers whose cost it scales
    for layer in cost.layers:
        for side in (cost.out_group, cost.in_group):
            if layer in side and side[layer] in touches:
                touches[side[layer]].append(layer)
    layer_cost = dict(cost.layers)  # each layer's current cost (all channels kept)
    current = cost.of_keep(groups, keep)
    while current > target:
        best, best_score = None, math.inf
        for g in groups:
            k = keep[g.root]
            step = multiple if g.size > multiple else 0
            if not step or k - step < floors[g.root]:
                continue
            saved = sum(layer_cost[layer] for layer in touches[g.root]) * step / k
            if saved <= 0:
                continue
            # the next `step` weakest channels as a fraction of what the group still holds: each cut of a group
            # costs more than the last (a narrow group is not cheap to cut just because each cut saves a lot)
            left = sorted_imp[g.root][g.size - k :]
            removed = float(left[:step].sum() / left.sum().clamp_min(1e-12))
            score = removed / saved
            if score < best_score:
                best, best_score = g, score
        if best is None:  # nothing left to take (cannot happen above the floors' cost, kept as a guard)
            break
        k = keep[best.root]
        for layer in touches[best.root]:
            layer_cost[layer] *= (k - multiple) / k
        keep[best.root] = k - multiple
        current = cost.constant + sum(layer_cost.values())
    return keep


def ratio_for(
    groups: list[ChannelGroup],
    cost: CostModel,
    target: float,
    *,
    multiple: int,
    max_ratio: float,
    scope: str,
    unit: str,
) -> tuple[float, dict[str, int]]:
    """The smallest uniform (or global) ratio, on a 0.005 grid, whose plan meets ``target``; the error gives the best
    reachable cost when none does."""
    plan = uniform if scope == "uniform" else global_threshold
    best = None
    r = 0.0
    while r <= max_ratio + 1e-9:
        keep = plan(groups, r, multiple=multiple, max_ratio=max_ratio)
        c = cost.of_keep(groups, keep)
        if c <= target:
            return r, keep
        best = c if best is None else min(best, c)
        r = round(r + 0.005, 4)
    raise PruningError(
        f"a {unit} budget of {target:.4g} is below what {scope} pruning can reach: the best reachable is "
        f"{best:.4g} (ratio {max_ratio:g} in every layer)",
        hint=f"ask for at least {best:.4g}, or use --allocation greedy",
    )
