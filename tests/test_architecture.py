"""The layer rule of docs/architecture.md, enforced: every first-party import — at module level and inside
functions alike — points to the importer's own layer or one below it.

The layer table is read from the document itself, so the picture a reader sees and the rule the tests apply are
one declaration."""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
# source folder → the import name it is installed as (setup.cfg package_dir)
SOURCES = {"edgecnn": "edgecnn", "exporters": "edgecnn.exporters", "profiles": "edgecnn.profiles"}


@dataclass(frozen=True)
class Layer:
    rank: int
    name: str
    modules: tuple[str, ...]


def declared_layers(doc: Path = REPO / "docs" / "architecture.md") -> list[Layer]:
    """The rows of the table under "## Layers": ``| rank | layer | modules |`` (modules as `code`, comma-separated)."""
    text = doc.read_text(encoding="utf-8")
    section = text.split("## Layers", 1)[1].split("\n## ", 1)[0]
    layers = []
    for row in re.findall(r"^\|\s*(\d+)\s*\|\s*([^|]+?)\s*\|\s*([^|]+?)\s*\|\s*$", section, flags=re.M):
        rank, name, mods = row
        layers.append(Layer(int(rank), name, tuple(re.findall(r"`([\w.]+)`", mods))))
    return layers


def module_names(root: Path) -> dict[str, Path]:
    """Every first-party module under ``root`` (a checkout) by its import name."""
    out = {}
    for folder, pkg in SOURCES.items():
        base = root / folder
        for path in base.rglob("*.py"):
            parts = list(path.relative_to(base).with_suffix("").parts)
            if folder == "edgecnn" and parts[0] in ("exporters", "profiles"):
                continue
            if parts[-1] == "__init__":
                parts = parts[:-1]
            out[".".join([pkg, *parts])] = path
    return out


def layer_of(module: str, layers: list[Layer]) -> Layer:
    """The layer whose most specific module prefix covers ``module``."""
    best: tuple[int, Layer] | None = None
    for layer in layers:
        for prefix in layer.modules:
            if (module == prefix or module.startswith(prefix + ".")) and (best is None or len(prefix) > best[0]):
                best = (len(prefix), layer)
    if best is None:
        raise LookupError(f"{module} is in no layer of docs/architecture.md")
    return best[1]


def imports_of(module: str, path: Path, known: set[str]) -> list[tuple[int, str]]:
    """(line, first-party module) of every import in the file, resolved to the longest known module name."""
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            names = [mod] + [f"{mod}.{a.name}" for a in node.names if f"{mod}.{a.name}" in known]
        for name in names:
            while name and name not in known:
                name = name.rpartition(".")[0]
            if name.startswith("edgecnn"):
                found.append((node.lineno, name))
    return found


def upward_imports(root: Path, layers: list[Layer]) -> list[str]:
    """Every import in the checkout at ``root`` that points to a higher layer, as 'file:line a (layer) → b (layer)'."""
    mods = module_names(root)
    known = set(mods)
    bad = []
    for module, path in sorted(mods.items()):
        mine = layer_of(module, layers)
        for line, target in imports_of(module, path, known):
            theirs = layer_of(target, layers)
            if theirs.rank > mine.rank:
                where = path.relative_to(root)
                bad.append(f"{where}:{line} {module} ({mine.name}) → {target} ({theirs.name})")
    return bad


def test_the_document_declares_ordered_layers():
    layers = declared_layers()
    assert [x.rank for x in layers] == list(range(len(layers))) and len(layers) >= 6
    names = [m for x in layers for m in x.modules]
    assert len(names) == len(set(names)), "a module prefix is declared in two layers"


def test_every_module_belongs_to_a_layer():
    layers = declared_layers()
    for module in module_names(REPO):
        layer_of(module, layers)  # raises for a module the picture forgot


def test_no_import_points_up():
    bad = upward_imports(REPO, declared_layers())
    assert not bad, "imports that point up a layer:\n" + "\n".join(bad)


def test_the_runtime_imports_only_core():
    """The device runtime (numpy + one SDK) must stay installable without the model side: it may import only the
    core layer, whatever the table's ranks allow."""
    layers = declared_layers()
    mods = module_names(REPO)
    runtime = [m for m in mods if layer_of(m, layers).name == "runtime"]
    assert runtime
    for module in runtime:
        for line, target in imports_of(module, mods[module], set(mods)):
            assert layer_of(target, layers).rank <= layer_of(module, layers).rank, f"{module}:{line} → {target}"


def test_the_rule_catches_an_upward_import(tmp_path):
    """The check is not vacuous: a quant module importing the exporters (the old cycle) is reported."""
    for folder in SOURCES:
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "__init__.py").write_text("")
    (tmp_path / "edgecnn" / "quant").mkdir()
    (tmp_path / "edgecnn" / "quant" / "__init__.py").write_text("")
    (tmp_path / "edgecnn" / "quant" / "api.py").write_text(
        "def f():\n    from edgecnn.exporters import driver\n    return driver\n"
    )
    (tmp_path / "exporters" / "driver.py").write_text("import edgecnn.quant.api\n")
    bad = upward_imports(tmp_path, declared_layers())
    assert bad == [
        "edgecnn/quant/api.py:2 edgecnn.quant.api (compression) → edgecnn.exporters (export)",
        "edgecnn/quant/api.py:2 edgecnn.quant.api (compression) → edgecnn.exporters.driver (export)",
    ]


@pytest.mark.parametrize("pattern", [r"DESIGN(\.md| principle)", r"REFERENCE\.md"])
def test_sources_cite_only_files_in_this_repository(pattern):
    """Docstrings and comments point readers to files that exist here (the design notes live in docs/)."""
    hits = [
        f"{p.relative_to(REPO)}:{i}"
        for folder in (*SOURCES, "benchmarks", "tests")
        for p in (REPO / folder).rglob("*.py")
        if p.name != "test_architecture.py"
        for i, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1)
        if re.search(pattern, line)
    ]
    assert not hits, f"{pattern} is not in this repository: " + ", ".join(hits[:20])
