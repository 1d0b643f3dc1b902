"""Shared test set-up: deterministic seeds, one thread per xdist worker, and the torchvision reference fixtures."""

from __future__ import annotations

import random
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.tv_reference import FIXTURES, REPO_ROOT, TV_DIR, write_tv_checkpoint

# Two xdist workers on two cores: more intra-op threads per worker would only oversubscribe them.
torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _seed_everything() -> None:
    """Every test starts from the same RNG state, whatever ran before it on this worker."""
    random.seed(0)
    np.random.seed(0)
    torch.manual_seed(0)


@pytest.fixture(scope="session")
def fixtures_dir() -> Path:
    return FIXTURES


@pytest.fixture(scope="session")
def tv_dir() -> Path:
    return TV_DIR


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO_ROOT


@pytest.fixture
def make_tv_checkpoint(tmp_path: Path) -> Callable[..., Path]:
    """``make_tv_checkpoint(name, seed=0)`` writes a torchvision-format ``.pth`` of ``name`` and returns its path."""

    def make(name: str, seed: int = 0) -> Path:
        return write_tv_checkpoint(name, tmp_path / f"{name}_seed{seed}.pth", seed)

    return make
