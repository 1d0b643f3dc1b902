"""Opening a bundle safely: every file is checked for containment, LFS pointers, size and sha256 before any
model parser sees it (a device must never feed a damaged or substituted file to a vendor SDK)."""

from __future__ import annotations

import hashlib
import os
import stat
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgecnn import limits as L
from edgecnn.errors import BundleIntegrityError, ManifestError
from edgecnn.runtime.manifest import MANIFEST, Manifest

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
    try:
        real = path.resolve()
    except (OSError, RuntimeError) as e:  # a symlink loop (RuntimeError before Python 3.13), ENAMETOOLONG, ...
        raise BundleIntegrityError(f"bundle file {name[:80]!r} cannot be resolved: {e}") from None
    if real != real_root and real_root not in real.parents:
        raise BundleIntegrityError(
            f"bundle file {name[:80]!r} resolves outside the bundle (to {str(real)[:200]!r})",
            hint="a link in the bundle points elsewhere; re-export the bundle",
        )
    return path


UNLISTED_HINT = "a bundle holds only the files its manifest lists; re-export it, or remove what was added"


def _walk(root: Path) -> dict[str, os.stat_result]:
    """Every entry of the bundle tree by relative POSIX name, with ``lstat`` (links are never followed)."""
    found: dict[str, os.stat_result] = {}
    stack = [(root, "")]
    while stack:
        d, prefix = stack.pop()
        try:
            entries = list(os.scandir(d))
        except OSError as e:
            raise BundleIntegrityError(f"bundle directory {prefix or '.'!r} cannot be read: {e.strerror}") from None
        for entry in entries:
            rel = f"{prefix}{entry.name}"
            if len(found) >= 4 * L.MAX_FILES:
                raise BundleIntegrityError(f"bundle holds more than {4 * L.MAX_FILES} entries", hint=UNLISTED_HINT)
            st = entry.stat(follow_symlinks=False)
            found[rel] = st
            if stat.S_ISDIR(st.st_mode):
                stack.append((Path(entry.path), rel + "/"))
    return found


def check_tree(root: Path, manifest: Manifest) -> None:
    """No symbolic or hard links anywhere in the bundle, and no file the manifest does not list: an SDK reads files
    beside the model (an ONNX model's external data, an OpenVINO ``.bin``), and each of those must be one the
    manifest lists and hashes, never a substitute."""
    listed = set(manifest.files) | {MANIFEST}
    dirs = {str(p) for n in listed for p in Path(n).parents if str(p) != "."}
    for rel, st in sorted(_walk(root).items()):
        if stat.S_ISLNK(st.st_mode):
            raise BundleIntegrityError(
                f"bundle entry {rel[:80]!r} is a symbolic link", hint="copy the bundle with links resolved (cp -rL)"
            )
        if stat.S_ISDIR(st.st_mode):
            if rel not in dirs:
                raise BundleIntegrityError(f"bundle directory {rel[:80]!r} is not in the manifest", hint=UNLISTED_HINT)
            continue
        if not stat.S_ISREG(st.st_mode):
            raise BundleIntegrityError(f"bundle entry {rel[:80]!r} is not a regular file", hint=UNLISTED_HINT)
        if rel not in listed:
            raise BundleIntegrityError(f"bundle file {rel[:80]!r} is not listed in the manifest", hint=UNLISTED_HINT)
        if st.st_nlink > 1:
            raise BundleIntegrityError(
                f"bundle file {rel[:80]!r} is a hard link ({st.st_nlink} names)",
                hint="a linked file can be changed from outside the bundle; copy the bundle (cp -r)",
            )


def verify_files(root: Path, manifest: Manifest, *, hashes: bool = True) -> None:
    """Check the tree holds exactly the listed files (no links), each inside the bundle, not an LFS pointer, and
    with its recorded size and sha256."""
    check_tree(root, manifest)
    for name, meta in manifest.files.items():
        path = _contained(root, name)
        try:
            st = os.lstat(path)
            with open(path, "rb") as f:
                head = f.read(len(LFS_MAGIC))
        except FileNotFoundError:
            raise BundleIntegrityError(
                f"bundle file {name!r} is missing", hint="copy the whole bundle directory"
            ) from None
        except OSError as e:
            raise BundleIntegrityError(f"bundle file {name!r} cannot be read: {e.strerror}") from None
        if not stat.S_ISREG(st.st_mode):
            raise BundleIntegrityError(f"bundle file {name!r} is missing", hint="copy the whole bundle directory")
        size = st.st_size
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
        return (*read_golden(self.root, self.manifest), self.manifest.golden["tolerance"])


def read_golden(root: Path, manifest: Manifest) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """``golden.npz`` as untrusted input: a zip of ``count`` input/output pairs, no pickles, numeric arrays whose
    shapes fit the manifest's first input and output; anything else is a :class:`BundleIntegrityError`."""
    g = manifest.golden
    name = g["file"]
    inputs, outputs = [], []
    try:
        with np.load(root / name, allow_pickle=False) as z:
            keys = set(z.files)
            want = {f"{kind}_{i}" for kind in ("input", "output") for i in range(g["count"])}
            if want - keys:
                raise BundleIntegrityError(
                    f"bundle file {name!r} lacks golden arrays {sorted(want - keys)[:4]}", hint="re-export the bundle"
                )
            for i in range(g["count"]):
                inputs.append(z[f"input_{i}"])
                outputs.append(z[f"output_{i}"])
    except BundleIntegrityError:
        raise
    except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile, NotImplementedError) as e:
        raise BundleIntegrityError(
            f"bundle file {name!r} is not a golden archive numpy reads without pickles: {str(e)[:200]}",
            hint="re-export the bundle",
        ) from None
    spec_in, spec_out = manifest.inputs[0], manifest.outputs[0]
    for i, (x, y) in enumerate(zip(inputs, outputs, strict=True)):
        for arr, spec, what in ((x, spec_in, "input"), (y, spec_out, "output")):
            ok_dtype = arr.dtype.kind in "fiu" and arr.dtype.itemsize <= 8
            ok_shape = arr.ndim == len(spec.shape) and all(
                spec.dim_range(a)[0] <= d <= spec.dim_range(a)[1] for a, d in enumerate(arr.shape)
            )
            if not ok_dtype or not ok_shape:
                raise BundleIntegrityError(
                    f"bundle file {name!r}: {what}_{i} is {arr.dtype} {list(arr.shape)}, the manifest's {spec.name!r} "
                    f"is {spec.dtype} {list(spec.shape)}",
                    hint="re-export the bundle",
                )
        if x.dtype != np.dtype(spec_in.dtype):
            raise BundleIntegrityError(f"bundle file {name!r}: input_{i} is {x.dtype}, not {spec_in.dtype}")
        if not np.isfinite(y.astype(np.float64)).all():
            raise BundleIntegrityError(f"bundle file {name!r}: output_{i} holds NaN or infinity")
    return inputs, outputs


def open_bundle(path: str | os.PathLike, *, verify_hashes: bool = True) -> Bundle:
    """Validate the manifest schema, the tree and every file, then the golden archive; raise ManifestError /
    BundleIntegrityError with one clear line — all before any model parser reads a byte."""
    root = Path(path)
    try:
        is_dir, exists = root.is_dir(), root.exists()
    except (OSError, ValueError) as e:  # NUL in the path, ENAMETOOLONG, ...
        raise ManifestError(f"bundle path {str(root)[:200]!r} is not usable: {e}") from None
    if not exists:
        raise ManifestError(f"bundle {str(root)[:200]!r} does not exist")
    if not is_dir:
        raise ManifestError(f"bundle {str(root)[:200]!r} is not a directory", hint="pass the bundle directory")
    manifest = Manifest.read(root)
    verify_files(root, manifest, hashes=verify_hashes)
    read_golden(root, manifest)
    return Bundle(root, manifest)
