"""Explaining CNNs and their deployed bundles: where a model looks (attribution), whether its INT8 bundle still
looks there (fp32-vs-bundle parity), and how faithful a map is (deletion / insertion).

- PyTorch models: ``cam`` (Grad-CAM, Grad-CAM++, LayerCAM, XGrad-CAM), ``integrated_gradients``, ``smoothgrad``,
  or ``explain(model, x, method=...)`` for all of them (``edgecnn.explain.attribution``).
- Any bundle, torch-free: ``rise`` and ``occlusion`` through ``session_predictor(runtime.load(bundle))``
  (``edgecnn.explain.perturb``).
- ``compare`` (fp32 vs bundle per image), ``deletion_insertion``, ``spearman``, ``top_iou``, ``pointing_hit``.
- What a unit detects (``edgecnn.explain.features``): ``visualize`` (activation maximization, Fourier +
  decorrelated parameterization, transformation robustness), ``filters_grid``, ``exemplars``, ``receptive_field``.

Names resolve lazily so ``import edgecnn.explain`` loads no torch.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "Attribution": "edgecnn.explain.maps",
    "normalize_maps": "edgecnn.explain.maps",
    "rise": "edgecnn.explain.perturb",
    "occlusion": "edgecnn.explain.perturb",
    "session_predictor": "edgecnn.explain.perturb",
    "spearman": "edgecnn.explain.metrics",
    "top_iou": "edgecnn.explain.metrics",
    "pointing_hit": "edgecnn.explain.metrics",
    "deletion_insertion": "edgecnn.explain.metrics",
    "Faithfulness": "edgecnn.explain.metrics",
    "cam": "edgecnn.explain.attribution",
    "explain": "edgecnn.explain.attribution",
    "integrated_gradients": "edgecnn.explain.attribution",
    "smoothgrad": "edgecnn.explain.attribution",
    "default_layer": "edgecnn.explain.attribution",
    "resolve_layer": "edgecnn.explain.attribution",
    "torch_predictor": "edgecnn.explain.attribution",
    "compare": "edgecnn.explain.compare",
    "ParityRow": "edgecnn.explain.compare",
    "demo_stage": "edgecnn.explain.demo",
    "visualize": "edgecnn.explain.features",
    "filters_grid": "edgecnn.explain.features",
    "exemplars": "edgecnn.explain.features",
    "receptive_field": "edgecnn.explain.features",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'edgecnn.explain' has no attribute {name!r}")
