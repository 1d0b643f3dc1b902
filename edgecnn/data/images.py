"""Labelled image collections: in memory (arrays) or on disk (class-per-folder), with their class names.

Both kinds answer the same three questions — how many, which pixels, which label — so every later stage (training,
calibration, preview) works on either. Class names travel with the data into checkpoints and bundles as labels.
Torch-free: numpy and Pillow only.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from edgecnn.errors import ConfigError, InputSpecError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm")


class LabelledImages(Protocol):
    """What every dataset offers: its size, class names, one image (path, PIL image or uint8 array) and label."""

    classes: tuple[str, ...]

    def __len__(self) -> int: ...

    def image(self, index: int) -> Any: ...

    def label(self, index: int) -> int: ...


@dataclass(frozen=True, kw_only=True)
class ArrayImages:
    """Images held as one uint8 array (N×H×W or N×H×W×C) with integer labels."""

    images: np.ndarray
    labels: np.ndarray
    classes: tuple[str, ...]

    def __post_init__(self) -> None:
        if self.images.dtype != np.uint8 or self.images.ndim not in (3, 4):
            raise InputSpecError(f"images must be uint8 N×H×W[×C], got {self.images.dtype} {self.images.shape}")
        if self.labels.shape != (len(self.images),):
            raise InputSpecError(f"labels must have shape ({len(self.images)},), got {self.labels.shape}")
        if len(self.labels) and (self.labels.min() < 0 or self.labels.max() >= len(self.classes)):
            raise InputSpecError(f"labels must lie in [0, {len(self.classes)}) for {len(self.classes)} classes")

    def __len__(self) -> int:
        return len(self.labels)

    def image(self, index: int) -> np.ndarray:
        return self.images[index]

    def label(self, index: int) -> int:
        return int(self.labels[index])

    def subset(self, indices: Sequence[int] | np.ndarray) -> ArrayImages:
        idx = np.asarray(indices, dtype=np.int64)
        return ArrayImages(images=self.images[idx], labels=self.labels[idx], classes=self.classes)


@dataclass(frozen=True, kw_only=True)
class FolderImages:
    """A class-per-folder tree (``root/<class>/<image>``), the layout most people's own data already has.

    Classes are the sub-folder names in sorted order (as torchvision's ImageFolder), files are sorted within a class.
    """

    root: Path
    paths: tuple[Path, ...]
    labels: np.ndarray
    classes: tuple[str, ...]

    @classmethod
    def scan(cls, root: str | Path) -> FolderImages:
        root = Path(root)
        if not root.is_dir():
            raise ConfigError(f"dataset folder {str(root)!r} does not exist", hint="pass a class-per-folder directory")
        class_dirs = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
        if not class_dirs:
            raise ConfigError(
                f"dataset folder {str(root)!r} has no class sub-folders", hint="lay images out as root/<class>/<file>"
            )
        paths: list[Path] = []
        labels: list[int] = []
        for k, d in enumerate(class_dirs):
            files = sorted(p for p in d.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
            paths += files
            labels += [k] * len(files)
        if not paths:
            raise ConfigError(f"dataset folder {str(root)!r} holds no images", hint=f"accepted: {IMAGE_SUFFIXES}")
        return cls(
            root=root,
            paths=tuple(paths),
            labels=np.asarray(labels, np.int64),
            classes=tuple(d.name for d in class_dirs),
        )

    def __len__(self) -> int:
        return len(self.paths)

    def image(self, index: int) -> Path:
        return self.paths[index]

    def label(self, index: int) -> int:
        return int(self.labels[index])

    def subset(self, indices: Sequence[int] | np.ndarray) -> FolderImages:
        idx = np.asarray(indices, dtype=np.int64)
        return FolderImages(
            root=self.root, paths=tuple(self.paths[i] for i in idx), labels=self.labels[idx], classes=self.classes
        )


@dataclass(frozen=True, kw_only=True)
class Splits:
    """Train / validation / test parts of one dataset (validation picks hyper-parameters; test is reported)."""

    train: Any
    val: Any
    test: Any

    @property
    def classes(self) -> tuple[str, ...]:
        return tuple(self.train.classes)


def split_indices(n: int, *, val_fraction: float, test_fraction: float, seed: int) -> tuple[np.ndarray, ...]:
    """A seeded shuffle of ``range(n)`` cut into train/val/test — the shuffle matters for class-sorted sources."""
    if not (0 <= val_fraction < 1 and 0 <= test_fraction < 1 and val_fraction + test_fraction < 1):
        raise ConfigError(
            f"val_fraction + test_fraction must be in [0, 1), got {val_fraction} + {test_fraction}",
            hint="e.g. val_fraction = 0.1, test_fraction = 0.1",
        )
    perm = np.random.default_rng(seed).permutation(n)
    n_test, n_val = int(round(n * test_fraction)), int(round(n * val_fraction))
    return perm[n_test + n_val :], perm[n_test : n_test + n_val], perm[:n_test]


def split(data: Any, *, val_fraction: float, test_fraction: float, seed: int) -> Splits:
    """Split any dataset with a ``subset`` method deterministically."""
    tr, va, te = split_indices(len(data), val_fraction=val_fraction, test_fraction=test_fraction, seed=seed)
    return Splits(train=data.subset(tr), val=data.subset(va), test=data.subset(te))
