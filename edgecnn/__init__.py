"""edgecnn — edge deployment and compression toolchain for CNNs.

``import edgecnn`` is cheap: torch and every runtime SDK load only when a function that needs them is called.
"""

from __future__ import annotations

from typing import Any

from edgecnn._version import __version__

_LAZY = {
    "create_model": "edgecnn.models.zoo",
    "list_models": "edgecnn.models.zoo",
    "load_weights": "edgecnn.models.weights",
    "save_weights": "edgecnn.models.weights",
    "analyze": "edgecnn.analysis",
}

__all__ = ["__version__", *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'edgecnn' has no attribute {name!r}")
