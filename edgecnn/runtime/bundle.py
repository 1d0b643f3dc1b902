"""Opening a bundle safely: every file is checked for containment, LFS pointers, size and sha256 before any
model parser sees it (a device must never feed a damaged or substituted file to a vendor SDK)."""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgecnn.errors import BundleIntegrityError, ManifestError
from edgecnn.runtime.manifest import Manifest

LFS_MAGIC = b"version https://git-lfs.github.com/spec/"


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _contained(root: Path, name: str) -> Path:
    path = root / name
    real_root = root.resolve()
    real = path.resolve()
    if real != real_root and real_root not in real.parents:
        raise BundleIntegrityError(
            f"bundle file {name!r} resolves outside the bundle (to {str(real)!r})",
            hint="a link in the bundle points elsewhere; re-export the bundle",
        )
    return path


def verify_files(root: Path, manifest: Manifest, *, hashes: bool = True) -> None:
    """Check each listed file exists inside the bundle, is not an LFS pointer, and has its size and sha256."""
    for name, meta in manifest.files.items():
        path = _contained(root, name)
        if not path.is_file():
            raise BundleIntegrityError(f"bundle file {name!r} is missing", hint="copy the whole bundle directory")
        size = path.stat().st_size
        with open(path, "rb") as f:
            head = f.read(len(LFS_MAGIC))
        if head == LFS_MAGIC and size != meta["size"]:
            raise BundleIntegrityError(
                f"bundle file {name!r} is a Git LFS pointer, not the file itself",
                hint="run `git lfs pull` in the repository holding the bundle",
            )
        if size != meta["size"]:
            what = "truncated" if size < meta["size"] else "larger than recorded"
            raise BundleIntegrityError(
                f"bundle file {name!r} is {what}: {size} bytes, manifest says {meta['size']}",
                hint="the copy is incomplete or altered; copy or export the bundle again",
            )
        if hashes and sha256_file(path) != meta["sha256"]:
            raise BundleIntegrityError(
                f"bundle file {name!r} does not match its sha256 (tampered or corrupted)",
                hint="re-export the bundle; never edit bundle files by hand",
            )


@dataclass(frozen=True)
class Bundle:
    """A verified bundle directory and its manifest."""

    root: Path
    manifest: Manifest

    def path(self, name: str) -> Path:
        return self.root / name

    @property
    def model_path(self) -> Path:
        return self.root / self.manifest.entry

    def golden(self) -> tuple[list[np.ndarray], list[np.ndarray], dict]:
        """Golden inputs and expected outputs (no pickle) and the tolerance they must be met with."""
        g = self.manifest.golden
        with np.load(self.root / g["file"], allow_pickle=False) as z:
            inputs = [z[f"input_{i}"] for i in range(g["count"])]
            outputs = [z[f"output_{i}"] for i in range(g["count"])]
        return inputs, outputs, g["tolerance"]


def open_bundle(path: str | os.PathLike, *, verify_hashes: bool = True) -> Bundle:
    """Validate the manifest schema and every file; raise ManifestError / BundleIntegrityError with one clear line."""
    root = Path(path)
    if not root.exists():
        raise ManifestError(f"bundle {str(root)!r} does not exist")
    if not root.is_dir():
        raise ManifestError(f"bundle {str(root)!r} is not a directory", hint="pass the bundle directory")
    manifest = Manifest.read(root)
    verify_files(root, manifest, hashes=verify_hashes)
    return Bundle(root, manifest)
