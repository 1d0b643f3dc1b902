"""Structured (channel) pruning: coupled groups from torch-pruning's DepGraph, importance criteria, uniform / global /
NetAdapt-style greedy allocation against a channel, MACs or latency budget, and recovery by distillation.

The result is a dense model; its checkpoint records the channel counts (:mod:`edgecnn.models.channels`) and loads
with no pruning library installed.
"""

from edgecnn.prune.config import Allocation, Criterion, PruneConfig
from edgecnn.prune.prune import PruneResult, layer_macs, prune_model

__all__ = ["Allocation", "Criterion", "PruneConfig", "PruneResult", "layer_macs", "prune_model"]
