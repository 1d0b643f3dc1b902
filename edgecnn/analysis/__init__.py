"""Static per-layer analysis: params, MACs, activation memory, weight bytes per precision."""

from edgecnn.analysis.static import LayerStats, ModelStats, analyze, analyze_named

__all__ = ["LayerStats", "ModelStats", "analyze", "analyze_named"]
