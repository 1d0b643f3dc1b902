"""The property harness (issue 15): generated manifests and bundle trees give a typed error or a valid session,
never anything else. 500 examples here; ``-m slow`` runs 10,000 of each kind (as does
benchmarks/reliability.py, which records the counts)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.bundle_fuzz import apply_tree_edit, manifest_edits, outcome, tree_edits, write_manifest
from tests.export_helpers import export_cached

_SETTINGS = {"deadline": None, "derandomize": True, "suppress_health_check": list(HealthCheck), "database": None}


@pytest.fixture(scope="module")
def base(tmp_path_factory) -> Path:
    return export_cached(tmp_path_factory.mktemp("fuzz"), "mobilenet_v3_small", "onnx")


def _manifest_property(base: Path, work: Path, n: int) -> None:
    work.mkdir(exist_ok=True)
    for f in base.iterdir():
        if f.name != "manifest.json":
            shutil.copy2(f, work / f.name)
    original = json.loads((base / "manifest.json").read_text())

    @settings(max_examples=n, **_SETTINGS)
    @given(manifest_edits(original))
    def check(data: dict) -> None:
        write_manifest(work, data)
        outcome(work)  # raises if anything but a typed error escapes

    check()


def _tree_property(base: Path, work: Path, n: int) -> None:
    files = sorted(json.loads((base / "manifest.json").read_text())["files"])

    @settings(max_examples=n, **_SETTINGS)
    @given(tree_edits(files), st.integers(0, 2**31))
    def check(edits: list[tuple], seed: int) -> None:
        root, outside = work / f"b{seed}", work / f"o{seed}"
        shutil.rmtree(root, ignore_errors=True)
        shutil.rmtree(outside, ignore_errors=True)
        shutil.copytree(base, root)
        outside.mkdir()
        try:
            for edit in edits:
                apply_tree_edit(root, outside, edit)
            outcome(root)
        finally:
            shutil.rmtree(root, ignore_errors=True)
            shutil.rmtree(outside, ignore_errors=True)

    check()


def test_generated_manifests_typed_error_or_valid_session(base, tmp_path):
    _manifest_property(base, tmp_path / "m", 300)


def test_generated_bundle_trees_typed_error_or_valid_session(base, tmp_path):
    _tree_property(base, tmp_path, 200)


@pytest.mark.slow
def test_generated_manifests_10k(base, tmp_path):
    _manifest_property(base, tmp_path / "m", 10_000)


@pytest.mark.slow
def test_generated_bundle_trees_10k(base, tmp_path):
    _tree_property(base, tmp_path, 10_000)
