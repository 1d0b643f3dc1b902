"""Packaging (setup.cfg): every package is listed explicitly, mapped ones go through package_dir, nothing extra ships.

setup.cfg: ``packages = find:`` would drop the mapped ``edgecnn.exporters`` / ``edgecnn.profiles``.
"""

from __future__ import annotations

import configparser
import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

from tests.tv_reference import REPO_ROOT

MAPPED = {"edgecnn.exporters": "exporters", "edgecnn.profiles": "profiles"}


@pytest.fixture(scope="module")
def options() -> configparser.SectionProxy:
    cfg = configparser.ConfigParser()
    cfg.read(REPO_ROOT / "setup.cfg")
    return cfg["options"]


def _lines(value: str) -> list[str]:
    return [line.strip() for line in value.splitlines() if line.strip() and not line.strip().startswith("#")]


@pytest.fixture(scope="module")
def packages(options: configparser.SectionProxy) -> list[str]:
    return _lines(options["packages"])


@pytest.fixture(scope="module")
def package_dir(options: configparser.SectionProxy) -> dict[str, str]:
    return {k.strip(): v.strip() for k, _, v in (line.partition("=") for line in _lines(options["package_dir"]))}


def _package_dirs(root: Path, name: str) -> dict[str, Path]:
    """Dotted package name → directory, for ``root`` and every sub-directory with an __init__.py."""
    found = {}
    for init in sorted(root.rglob("__init__.py")):
        if "__pycache__" in init.parts:
            continue
        rel = init.parent.relative_to(root)
        found[".".join([name, *rel.parts])] = init.parent
    return found


def test_packages_are_explicit(options: configparser.SectionProxy) -> None:
    assert "find" not in options["packages"]


def test_every_edgecnn_package_is_listed(packages: list[str]) -> None:
    on_disk = _package_dirs(REPO_ROOT / "edgecnn", "edgecnn")
    missing = sorted(set(on_disk) - set(packages))
    assert not missing, f"packages with an __init__.py that setup.cfg does not ship: {missing}"


def test_mapped_packages(packages: list[str], package_dir: dict[str, str]) -> None:
    for pkg, folder in MAPPED.items():
        assert package_dir.get(pkg) == folder
        assert (REPO_ROOT / folder / "__init__.py").is_file()
        on_disk = _package_dirs(REPO_ROOT / folder, pkg)
        missing = sorted(set(on_disk) - set(packages))
        assert not missing, f"mapped sub-packages not listed: {missing}"
    assert package_dir.get("edgecnn") in ("edgecnn", None)


def _source_dir(pkg: str, package_dir: dict[str, str]) -> Path:
    """Where setuptools looks for ``pkg``: the longest package_dir prefix, then the remaining dotted parts."""
    parts = pkg.split(".")
    for n in range(len(parts), 0, -1):
        base = ".".join(parts[:n])
        if base in package_dir:
            return REPO_ROOT / package_dir[base] / Path(*parts[n:])
    return REPO_ROOT / Path(*parts)


def test_every_listed_package_exists(packages: list[str], package_dir: dict[str, str]) -> None:
    assert len(packages) == len(set(packages))
    for pkg in packages:
        folder = _source_dir(pkg, package_dir)
        assert (folder / "__init__.py").is_file(), f"{pkg} → {folder} has no __init__.py"
    assert _source_dir("edgecnn.exporters", package_dir) == REPO_ROOT / "exporters"
    assert _source_dir("edgecnn.layers", package_dir) == REPO_ROOT / "edgecnn" / "layers"


def test_tests_and_benchmarks_not_packaged(packages: list[str], package_dir: dict[str, str]) -> None:
    for pkg in packages:
        assert pkg == "edgecnn" or pkg.startswith("edgecnn."), pkg  # the only import root
    assert not {"tests", "benchmarks", "exporters", "profiles"} & set(packages)
    assert not {"tests", "benchmarks"} & set(package_dir.values())


def test_package_data(repo_root: Path) -> None:
    cfg = configparser.ConfigParser()
    cfg.read(repo_root / "setup.cfg")
    data = cfg["options.package_data"]
    assert "*.txt" in data["edgecnn.resources"] and "*.toml" in data["edgecnn.profiles"]
    labels = (repo_root / "edgecnn" / "resources" / "imagenet_classes.txt").read_text().splitlines()
    assert len(labels) == 1000 and labels[0] == "tench" and labels[967] == "espresso"


def test_console_script(options: configparser.SectionProxy, repo_root: Path) -> None:
    cfg = configparser.ConfigParser()
    cfg.read(repo_root / "setup.cfg")
    assert _lines(cfg["options.entry_points"]["console_scripts"]) == ["edgecnn = edgecnn.cli.main:main"]
    assert "torch" not in options["install_requires"]  # the device-side core stays torch-free


def test_mapped_packages_import_under_edgecnn() -> None:
    for pkg, folder in MAPPED.items():
        spec = importlib.util.find_spec(pkg)
        assert spec is not None and spec.submodule_search_locations, pkg
        names = {Path(p).name for p in spec.submodule_search_locations}
        assert names & {folder, pkg.rpartition(".")[2]}, spec.submodule_search_locations


def test_no_top_level_exporters_module(tmp_path: Path) -> None:
    """``exporters`` is only reachable as ``edgecnn.exporters`` (a top-level one would collide with a PyPI package)."""
    code = "import importlib.util; print(importlib.util.find_spec('exporters') is None)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, timeout=60)
    assert out.stdout.strip() == "True", out.stderr
