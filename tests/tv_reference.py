"""The torchvision reference fixtures, as plain helpers (imported by conftest.py and the test modules).

The files under ``tests/fixtures/torchvision`` were produced by ``tests/fixtures/make_torchvision_fixtures.py``
against real torchvision (which does not import in this venv): key lists, param/MAC counts, BN settings and the
outputs of seeded weights. ``seeded_state`` regenerates bit-identical weights from a key list, so a torchvision-format
checkpoint can be rebuilt here without torchvision.
"""

from __future__ import annotations

import importlib.util
import json
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import torch

TESTS_DIR = Path(__file__).resolve().parent
REPO_ROOT = TESTS_DIR.parent
FIXTURES = TESTS_DIR / "fixtures"
TV_DIR = FIXTURES / "torchvision"


def _load_seeded_weights():
    spec = importlib.util.spec_from_file_location("_edgecnn_test_seeded_weights", FIXTURES / "seeded_weights.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_seeded = _load_seeded_weights()
seeded_state = _seeded.seeded_state
seeded_input = _seeded.seeded_input

# Every torchvision model with a reference JSON, and those with an input/output pair.
TV_MODELS = sorted(p.stem for p in TV_DIR.glob("*.json"))
TV_IO_MODELS = sorted(p.name.removesuffix("_io.npz") for p in TV_DIR.glob("*_io.npz"))


@cache
def tv_fixture(name: str) -> dict[str, Any]:
    """The torchvision reference JSON of ``name`` (cached; treat as read-only)."""
    return json.loads((TV_DIR / f"{name}.json").read_text())


def tv_io(name: str) -> tuple[np.ndarray, np.ndarray]:
    """(input, output) of torchvision's ``name`` with ``seeded_state(seed=0)`` weights, 2×3×64×64 input."""
    with np.load(TV_DIR / f"{name}_io.npz") as z:
        return z["input"], z["output"]


def tv_state(name: str, seed: int = 0) -> dict[str, torch.Tensor]:
    """A torchvision-layout state dict for ``name`` filled by ``seeded_state`` (the fixtures' weights at seed 0)."""
    keys = [(k, shape) for k, shape, _dtype in tv_fixture(name)["keys"]]
    return {k: torch.from_numpy(v) for k, v in seeded_state(keys, seed=seed).items()}


def write_tv_checkpoint(name: str, path: Path, seed: int = 0) -> Path:
    """``torch.save`` a torchvision-format state dict of ``name`` to ``path`` (as torchvision's .pth files are)."""
    torch.save(tv_state(name, seed), path)
    return path
