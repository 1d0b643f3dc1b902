"""Lazy import of an optional vendor SDK: a missing one is a :class:`MissingDependencyError` naming the pip extra
that brings it (nothing is ever installed at run time)."""

from __future__ import annotations

import importlib
from typing import Any

from edgecnn.errors import MissingDependencyError


def import_sdk(module: str, extra: str) -> Any:
    """Import ``module`` or say which ``pip install "edgecnn[extra]"`` provides it."""
    try:
        return importlib.import_module(module)
    except ImportError as e:
        raise MissingDependencyError(
            f"the {module} SDK is not installed ({e})", hint=f'pip install "edgecnn[{extra}]"'
        ) from None
