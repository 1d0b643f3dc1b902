"""What a pruning run is asked to do: the importance criterion, the budget (a channel ratio, a MACs fraction or a
latency) and how the budget is spread over the layers."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from edgecnn.errors import PruningError
from edgecnn.registry import did_you_mean


class Criterion(StrEnum):
    """How a channel's importance is scored (the lowest go first)."""

    L1 = "l1"  # mean |w| over the coupled group (Li et al., ICLR 2017)
    L2 = "l2"  # mean w² over the coupled group
    BN_SCALE = "bn-scale"  # |γ| of the BatchNorms in the group (Liu et al., "Network Slimming", ICCV 2017)
    TAYLOR = "taylor"  # |w · ∂L/∂w| on data, first-order Taylor (Molchanov et al., CVPR 2019)


class Allocation(StrEnum):
    """How many channels each coupled group loses."""

    UNIFORM = "uniform"  # the same ratio in every group
    GLOBAL = "global"  # one importance threshold over all groups (importances normalized per group)
    GREEDY = "greedy"  # NetAdapt-style: remove the channels with the least importance per unit of cost saved


@dataclass(frozen=True, kw_only=True)
class PruneConfig:
    """Exactly one budget: ``ratio`` (fraction of each group's channels removed, or of all channels for the global
    allocation), ``target_macs`` (fraction of the MACs kept) or ``target_latency_ms`` (cost from an injected
    per-layer latency source). ``round_to`` is the channel multiple kept counts round to; ``max_ratio`` caps what
    any one group loses; ``layer_ratios`` overrides the ratio of the groups rooted at the named layers."""

    criterion: Criterion = Criterion.L1
    allocation: Allocation = Allocation.UNIFORM
    ratio: float | None = None
    target_macs: float | None = None
    target_latency_ms: float | None = None
    round_to: int = 8
    max_ratio: float = 0.9
    resolution: int = 224
    ignore: tuple[str, ...] = ()
    layer_ratios: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name, enum in (("criterion", Criterion), ("allocation", Allocation)):
            value = getattr(self, name)
            if value not in set(enum):
                choices = [str(e) for e in enum]
                raise PruningError(f"{name} {value!r} is unknown", hint=did_you_mean(str(value), choices))
            object.__setattr__(self, name, enum(value))
        budgets = [b for b in (self.ratio, self.target_macs, self.target_latency_ms) if b is not None]
        if len(budgets) != 1 and not (self.layer_ratios and not budgets):
            raise PruningError(
                "pruning needs exactly one budget", hint="give one of --ratio, --target-macs, --target-latency"
            )
        if not 0 < self.max_ratio < 1:
            raise PruningError(f"max_ratio must be in (0, 1), got {self.max_ratio}")
        for what, v in [("--ratio", self.ratio), *((f"layer ratio {k}", r) for k, r in self.layer_ratios.items())]:
            if v is not None and not 0 <= v < 1:
                raise PruningError(
                    f"{what} {v} removes every channel: a ratio must be in [0, 1)",
                    hint=f"the most any layer can lose is {self.max_ratio:g} (max_ratio)",
                )
        if self.target_macs is not None and not 0 < self.target_macs < 1:
            raise PruningError(
                f"--target-macs {self.target_macs} must be the fraction of MACs kept, in (0, 1)",
                hint="e.g. --target-macs 0.5 for half the MACs",
            )
        if self.target_latency_ms is not None and not self.target_latency_ms > 0:
            raise PruningError(f"--target-latency must be > 0 ms, got {self.target_latency_ms}")
        if not 1 <= self.round_to <= 256:
            raise PruningError(f"round_to must be in [1, 256], got {self.round_to}")
        if self.resolution < 8:
            raise PruningError(f"resolution must be >= 8, got {self.resolution}")
        if self.allocation is Allocation.GREEDY and self.ratio is not None:
            raise PruningError(
                "the greedy allocation spends a MACs or latency budget, not a channel ratio",
                hint="use --target-macs / --target-latency with --allocation greedy, or --allocation uniform|global",
            )

    def record(self) -> dict[str, Any]:
        """The settings as they go into a checkpoint's and a bundle's lineage."""
        return {
            "criterion": str(self.criterion),
            "allocation": str(self.allocation),
            "ratio": self.ratio,
            "target_macs": self.target_macs,
            "target_latency_ms": self.target_latency_ms,
            "round_to": self.round_to,
            "max_ratio": self.max_ratio,
            "resolution": self.resolution,
            "ignore": list(self.ignore),
            "layer_ratios": dict(self.layer_ratios),
        }
