"""Hostile bundles for the property tests (tests/test_bundle_fuzz.py) and the standing harness
(benchmarks/reliability.py): generated manifests and bundle trees, and the one rule they must obey — loading one
gives a typed :class:`edgecnn.errors.EdgeCNNError` or a valid session, never anything else (issue 15)."""

from __future__ import annotations

import contextlib
import copy
import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np
from hypothesis import strategies as st

from edgecnn import runtime
from edgecnn.errors import EdgeCNNError

# Any JSON value: what an attacker can put anywhere in a manifest.
JSON_LEAF = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.integers(-3, 300),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=30),
    st.sampled_from(["", "onnx", "openvino", "tensorrt", "onnxruntime", "fp32", "int8", "../x", "/etc/passwd"]),
)
JSON_VALUE = st.recursive(
    JSON_LEAF,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=8,
)


def json_paths(obj: Any, prefix: tuple = ()) -> list[tuple]:
    """Every path (dict keys / list indices) into ``obj``, the root included."""
    out = [prefix]
    if isinstance(obj, dict):
        for k, v in obj.items():
            out += json_paths(v, (*prefix, k))
    elif isinstance(obj, list):
        for i, v in enumerate(obj[:8]):
            out += json_paths(v, (*prefix, i))
    return out


def _near(value: Any, draw: Any) -> Any:
    """A plausible neighbour of ``value``: numbers scaled or negated, strings cut or extended, containers emptied."""
    if isinstance(value, bool):
        return not value
    if isinstance(value, (int, float)):
        return draw(st.sampled_from([0, -1, value + 1, value * 10, -value, value * 1e9, float(value), str(value)]))
    if isinstance(value, str):
        return draw(st.sampled_from(["", value[:-1], value + "x", value.upper(), value * 40, value + "\x00", 5]))
    if isinstance(value, list):
        return draw(st.sampled_from([[], value[:1], value * 2, {}]))
    if isinstance(value, dict):
        return draw(st.sampled_from([{}, [], None]))
    return draw(JSON_LEAF)


@st.composite
def manifest_edits(draw: Any, base: dict[str, Any]) -> dict[str, Any]:
    """``base`` with 1–3 random edits: a value replaced (by a neighbour or any JSON), a key deleted or added."""
    data = copy.deepcopy(base)
    for _ in range(draw(st.integers(1, 3))):
        path = draw(st.sampled_from(json_paths(data)[1:]))
        parent = data
        for key in path[:-1]:
            parent = parent[key]
        op = draw(st.sampled_from(["near", "near", "any", "delete", "add"]))
        key = path[-1]
        if op == "near":
            parent[key] = _near(parent[key], draw)
        elif op == "any":
            parent[key] = draw(JSON_VALUE)
        elif op == "delete":
            parent.pop(key) if isinstance(parent, dict) else parent.pop(key)
        elif isinstance(parent, dict):
            parent[draw(st.text(max_size=12))] = draw(JSON_VALUE)
        else:
            parent.append(draw(JSON_VALUE))
    return data


TREE_OPS = ("add_file", "symlink_out", "symlink_loop", "hardlink_out", "delete", "truncate", "flip", "mkdir", "rehash")


@st.composite
def tree_edits(draw: Any, files: list[str]) -> list[tuple]:
    """1–3 file-system edits of a bundle tree, each a tuple the harness applies with :func:`apply_tree_edit`."""
    ops = []
    for _ in range(draw(st.integers(1, 3))):
        op = draw(st.sampled_from(TREE_OPS))
        target = draw(st.sampled_from([*files, "manifest.json"]))
        name = draw(st.sampled_from(["extra.bin", "model.onnx.data", "model.bin", "sub/x", ".hidden", "manifest.json"]))
        ops.append((op, target, name, draw(st.integers(0, 1 << 24)), draw(st.integers(1, 255))))
    return ops


def rehash_all(root: Path) -> None:
    """Record every listed file's current size and sha256: an attacker who edits files can edit the manifest too."""
    path = root / "manifest.json"
    data = json.loads(path.read_text())
    for name in list(data.get("files", {})):
        f = root / name
        if f.is_file() and not f.is_symlink():
            raw = f.read_bytes()
            data["files"][name] = {"size": len(raw), "sha256": hashlib.sha256(raw).hexdigest()}
    path.unlink()
    path.write_text(json.dumps(data))


def apply_tree_edit(root: Path, outside: Path, edit: tuple) -> None:
    """Apply one edit; one the file system itself refuses (mkdir over a file, a file under a file) is skipped."""
    with contextlib.suppress(OSError):
        _apply(root, outside, edit)


def _apply(root: Path, outside: Path, edit: tuple) -> None:
    op, target, name, offset, xor = edit
    t = root / target
    if op == "add_file":
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        if not (root / name).exists():
            (root / name).write_bytes(b"\0" * (offset % 4096))
    elif op in ("symlink_out", "symlink_loop") and t.exists() and not t.is_symlink():
        dst = outside / f"moved-{offset}"
        shutil.move(t, dst)
        os.symlink(dst if op == "symlink_out" else t.name, t)
    elif op == "hardlink_out" and t.is_file() and not t.is_symlink():
        link = outside / f"link-{offset}"
        if not link.exists():
            os.link(t, link)
    elif op == "delete" and t.is_file():
        t.unlink()
    elif op == "truncate" and t.is_file() and not t.is_symlink():
        raw = t.read_bytes()
        _rewrite(t, raw[: offset % max(len(raw), 1)])
    elif op == "flip" and t.is_file() and not t.is_symlink():
        raw = bytearray(t.read_bytes())
        if raw:
            raw[offset % len(raw)] ^= xor
            _rewrite(t, bytes(raw))
    elif op == "mkdir":
        (root / name).mkdir(parents=True, exist_ok=True)
    elif op == "rehash" and (root / "manifest.json").is_file() and not (root / "manifest.json").is_symlink():
        with contextlib.suppress(ValueError, OSError, AttributeError, TypeError):  # a flipped, non-JSON manifest
            rehash_all(root)


def _rewrite(path: Path, raw: bytes) -> None:
    """Replace ``path``'s content without writing through a hard link to a file outside the bundle."""
    path.unlink()
    path.write_bytes(raw)


def outcome(root: Path, *, image: np.ndarray | None = None) -> str:
    """``edgecnn inspect`` of ``root`` (one clean line or a table), then load it and use the session (self-test, one
    image): the typed error's class name, or ``"valid"``. Any other exception propagates — that is the bug the
    harness looks for."""
    from click.testing import CliRunner

    from edgecnn.cli.main import cli

    res = CliRunner().invoke(cli, ["inspect", str(root)])
    if res.exception is not None and not isinstance(res.exception, SystemExit):
        raise res.exception
    if res.exit_code not in (0, 1) or (res.exit_code == 1 and not res.stderr.startswith("error: ")):
        raise AssertionError(f"inspect exited {res.exit_code}: {res.output[:300]}")
    try:
        sess = runtime.load(root)
        sess.selftest()
        if sess.preprocessing is not None:
            sess.predict_image(image if image is not None else np.zeros((40, 40, 3), np.uint8), top_k=3)
    except EdgeCNNError as e:
        return type(e).__name__
    return "valid"


def write_manifest(root: Path, data: Any) -> None:
    path = root / "manifest.json"
    if path.is_symlink() or path.exists():
        path.unlink()
    path.write_text(json.dumps(data))
