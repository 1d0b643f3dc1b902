"""Read-only and unreadable directories answer with one line and leave nothing behind.

Root ignores permission bits, and CI runs as root: there each command runs with CAP_DAC_OVERRIDE and
CAP_DAC_READ_SEARCH dropped from its bounding set (``setpriv``), so a root-owned 0o555 directory is really read-only
and a 0o000 one really unreadable. As another user the bits apply as they are.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.xdist_group("permissions")


def _prefix() -> list[str]:
    if os.geteuid() != 0:
        return []
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("running as root without setpriv (util-linux): permission bits cannot be enforced")
    return [setpriv, "--bounding-set", "-dac_override,-dac_read_search"]


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    import torch

    import edgecnn
    from edgecnn.models.weights import save_weights

    d = tmp_path_factory.mktemp("perm")
    torch.manual_seed(0)
    save_weights(
        edgecnn.create_model("mobilenet_v3_small", num_classes=4, width_mult=0.25).eval(), d / "tiny.safetensors"
    )
    np.savez(d / "cal.npz", x=np.random.default_rng(0).standard_normal((8, 3, 32, 32)).astype(np.float32))
    for name, mode in (("ro", 0o555), ("rw", 0o755), ("unread", 0o000)):
        (d / name).mkdir()
        if name == "ro":
            (d / name / "keep.txt").write_text("a user's file")
        (d / name).chmod(mode)
    probe = subprocess.run([*_prefix(), "touch", str(d / "ro" / "probe")], capture_output=True)
    if probe.returncode == 0:
        pytest.skip("this file system does not enforce permission bits here")
    yield d
    for name in ("ro", "unread"):
        (d / name).chmod(0o755)


def _run(work: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*_prefix(), sys.executable, "-m", "edgecnn", *args],
        cwd=work,
        capture_output=True,
        text=True,
        timeout=600,
    )


def _tree(d: Path) -> dict[str, bytes]:
    return {str(p.relative_to(d)): p.read_bytes() for p in sorted(d.rglob("*")) if p.is_file()}


CASES = {
    "export into a read-only directory": ["export", "tiny.safetensors", "-t", "onnx", "-r", "32", "--out", "ro/b"],
    "quantize with a read-only --report-dir": [
        "quantize",
        "tiny.safetensors",
        "-t",
        "onnx",
        "-r",
        "32",
        "--calib-data",
        "cal.npz",
        "--samples",
        "8",
        "--no-latency",
        "--out",
        "rw/q",
        "--report-dir",
        "ro/report",
    ],  # fmt: skip
    "quantize from an unreadable calibration folder": [
        "quantize",
        "tiny.safetensors",
        "-t",
        "onnx",
        "-r",
        "32",
        "--calib-data",
        "unread",
        "--samples",
        "8",
        "--no-latency",
        "--out",
        "rw/q2",
    ],  # fmt: skip
    "train into a read-only directory": ["train", "mnist_embedded", "--epochs", "1", "--out", "ro/run"],
    "augment preview into a read-only directory": [
        "augment",
        "preview",
        "mnist_embedded",
        "-n",
        "1",
        "--rows",
        "1",
        "--out",
        "ro/p.png",
    ],  # fmt: skip
}


@pytest.mark.parametrize("case", list(CASES))
def test_unwritable_or_unreadable_paths_get_one_line_and_change_nothing(work: Path, case: str) -> None:
    before = {name: _tree(work / name) for name in ("ro", "rw")}
    r = _run(work, *CASES[case])
    assert r.returncode != 0, r.stdout
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    errors = [ln for ln in lines if ln.startswith("error:")]
    assert len(errors) == 1 and "Traceback" not in r.stderr, r.stderr
    assert any(w in errors[0] for w in ("not writable", "permission denied", "Permission denied")), errors[0]
    assert {name: _tree(work / name) for name in ("ro", "rw")} == before  # no bundle, no report, no temp file
    assert not any(p.name.startswith(".") for p in (work / "rw").iterdir())
