"""Calibration and evaluation samples: always pixels through the model's *evaluation* transform.

Sources: a class-per-folder directory, the embedded MNIST digits (:mod:`edgecnn.data.sources`), an ``.npz`` of
already-preprocessed arrays, or arrays in memory. Training augmentation never reaches a calibration set: every
image source goes through :func:`edgecnn.runtime.preprocess.preprocess_batch` with a
:class:`~edgecnn.runtime.preprocess.Preprocessing` (the evaluation transform type — it has no random parts).

The default size, 300 samples, follows ONNX Runtime's and NNCF's guidance (NNCF ``subset_size`` defaults to 300);
fewer samples give noisier activation ranges, so a smaller set is accepted with a warning that is also recorded.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgecnn.errors import ConfigError, InputSpecError
from edgecnn.runtime.preprocess import Preprocessing, preprocess_batch

log = logging.getLogger(__name__)
DEFAULT_SAMPLES = 300
EMBEDDED = "embedded"


@dataclass(frozen=True, kw_only=True)
class SampleSet:
    """Preprocessed model inputs (N×C×H×W float32), optional integer labels, where they came from and a hash."""

    data: np.ndarray
    source: str
    labels: np.ndarray | None = None
    classes: tuple[str, ...] | None = None
    warnings: tuple[str, ...] = field(default=())

    def __post_init__(self) -> None:
        if not isinstance(self.data, np.ndarray) or self.data.dtype != np.float32 or self.data.ndim != 4:
            got = f"{self.data.dtype} {self.data.shape}" if isinstance(self.data, np.ndarray) else type(self.data)
            raise InputSpecError(f"samples must be a float32 N×C×H×W array, got {got}")
        if len(self.data) == 0:
            raise InputSpecError(f"sample source {self.source!r} holds no samples")
        if not np.isfinite(self.data).all():
            raise InputSpecError(f"sample source {self.source!r} holds NaN or infinite values")
        if self.labels is not None and self.labels.shape != (len(self.data),):
            raise InputSpecError(f"labels must have shape ({len(self.data)},), got {self.labels.shape}")

    def __len__(self) -> int:
        return len(self.data)

    @property
    def sha256(self) -> str:
        """Hash of shape + bytes: the same calibration set gives the same hash on any machine."""
        h = hashlib.sha256(str(self.data.shape).encode())
        h.update(np.ascontiguousarray(self.data).tobytes())
        return h.hexdigest()

    def record(self) -> dict[str, Any]:
        """What the manifest's ``quantization.calibration`` records."""
        return {
            "source": self.source,
            "samples": len(self),
            "sha256": self.sha256,
            "shape": list(self.data.shape[1:]),
            "warnings": list(self.warnings),
        }

    def check_shape(self, shape: tuple[int, ...], what: str) -> None:
        if tuple(self.data.shape[1:]) != tuple(shape):
            raise InputSpecError(
                f"{what} samples are {list(self.data.shape[1:])} but the model takes {list(shape)}",
                hint="preprocess with the model's evaluation transform at the export resolution",
            )


def _count_warnings(n: int, source: str) -> tuple[str, ...]:
    if n >= DEFAULT_SAMPLES:
        return ()
    msg = (
        f"calibration set {source!r} has {n} samples (< {DEFAULT_SAMPLES}): activation ranges may be noisy; "
        f"use {DEFAULT_SAMPLES}+ representative images"
    )
    log.warning(msg)
    return (msg,)


def _pick(n: int, samples: int, seed: int) -> np.ndarray:
    if samples < 1:
        raise ConfigError(f"--samples must be >= 1, got {samples}")
    return np.sort(np.random.default_rng(seed).permutation(n)[: min(samples, n)])


def from_images(
    images: Any, pre: Preprocessing, *, samples: int = DEFAULT_SAMPLES, seed: int = 0, source: str = "images"
) -> SampleSet:
    """A seeded subset of a labelled image collection (``edgecnn.data`` protocol), through ``pre``."""
    if not isinstance(pre, Preprocessing):
        raise ConfigError(
            f"calibration needs the model's evaluation Preprocessing, got {type(pre).__name__}",
            hint="pass model.preprocessing (training augmentation must never feed calibration)",
        )
    idx = _pick(len(images), samples, seed)
    data = preprocess_batch([images.image(int(i)) for i in idx], pre)
    labels = np.asarray([images.label(int(i)) for i in idx], np.int64)
    return SampleSet(
        data=data,
        labels=labels,
        classes=tuple(images.classes),
        source=source,
        warnings=_count_warnings(len(idx), source),
    )


def from_folder(root: str | Path, pre: Preprocessing, *, samples: int = DEFAULT_SAMPLES, seed: int = 0) -> SampleSet:
    """A class-per-folder directory (``root/<class>/<image>``), or a flat folder of photos (no class sub-folders):
    what most users have for calibration, which needs no labels. A flat folder gives an unlabelled set (fp32
    agreement only when used for evaluation)."""
    from edgecnn.data.images import IMAGE_SUFFIXES, FolderImages

    root = Path(root)
    has_class_dirs = root.is_dir() and any(p.is_dir() and not p.name.startswith(".") for p in root.iterdir())
    if has_class_dirs or not root.is_dir():
        return from_images(FolderImages.scan(root), pre, samples=samples, seed=seed, source=f"folder:{root}")
    files = sorted(p for p in root.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise ConfigError(
            f"folder {str(root)!r} holds no images and no class sub-folders",
            hint=f"put photos ({', '.join(IMAGE_SUFFIXES[:4])}, ...) in it, flat or as root/<class>/<file>",
        )
    if not isinstance(pre, Preprocessing):
        raise ConfigError(f"calibration needs the model's evaluation Preprocessing, got {type(pre).__name__}")
    idx = _pick(len(files), samples, seed)
    source = f"folder:{root} (flat, unlabelled)"
    data = preprocess_batch([files[int(i)] for i in idx], pre)
    return SampleSet(data=data, labels=None, source=source, warnings=_count_warnings(len(idx), source))


def from_embedded(
    pre: Preprocessing, *, samples: int = DEFAULT_SAMPLES, seed: int = 0, split: str = "train"
) -> SampleSet:
    """The embedded MNIST digits (5,000 real images, :func:`edgecnn.data.sources.embedded_digit_splits`): the
    ``train`` part for calibration, ``test`` for evaluation (the same seeded cut the trainer uses)."""
    from edgecnn.data.sources import embedded_digit_splits

    if split not in ("train", "val", "test"):
        raise ConfigError(f"embedded split must be train, val or test, got {split!r}")
    part = getattr(embedded_digit_splits(), split)
    return from_images(part, pre, samples=samples, seed=seed, source=f"{EMBEDDED}:{split}")


def from_npz(path: str | Path, *, samples: int = DEFAULT_SAMPLES, seed: int = 0) -> SampleSet:
    """An ``.npz`` of preprocessed float32 N×C×H×W inputs under ``x`` (or its only array), labels under ``y``."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"calibration file {str(p)!r} does not exist")
    try:
        with np.load(p, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except (OSError, ValueError) as e:
        raise ConfigError(f"{str(p)!r} is not a readable .npz: {e}") from None
    if "x" in arrays:
        x = arrays["x"]
    elif len(arrays) == 1:
        x = next(iter(arrays.values()))
    else:
        raise ConfigError(f"{str(p)!r} holds {sorted(arrays)}: name the inputs 'x' (and labels 'y')")
    if x.dtype != np.float32:
        raise InputSpecError(
            f"{str(p)!r}: inputs must be float32 (preprocessed), got {x.dtype}",
            hint="store preprocess_batch(images, model.preprocessing) output, not raw pixels",
        )
    y = arrays.get("y")
    idx = _pick(len(x), samples, seed) if x.ndim == 4 else np.arange(0)
    return from_arrays(
        x[idx] if x.ndim == 4 else x, labels=None if y is None else np.asarray(y)[idx], source=f"npz:{p.name}"
    )


def from_arrays(x: np.ndarray, *, labels: np.ndarray | None = None, source: str = "arrays") -> SampleSet:
    """Preprocessed inputs already in memory."""
    if not isinstance(x, np.ndarray):
        raise InputSpecError(f"samples must be a numpy array, got {type(x).__name__}")
    lab = None if labels is None else np.asarray(labels, np.int64)
    return SampleSet(data=x, labels=lab, source=source, warnings=_count_warnings(len(x), source))


def load_samples(
    spec: str, pre: Preprocessing | None, *, samples: int = DEFAULT_SAMPLES, seed: int = 0, split: str = "train"
) -> SampleSet:
    """What ``--calib-data`` / ``--eval-data`` name: ``embedded``, a ``.npz`` file or a class-per-folder directory."""
    if spec.endswith(".npz"):
        return from_npz(spec, samples=samples, seed=seed)
    if pre is None:
        raise ConfigError(
            "the model carries no evaluation preprocessing, so images cannot be turned into inputs",
            hint="load weights that record it (an edgecnn checkpoint) or pass a preprocessed .npz",
        )
    if spec == EMBEDDED:
        return from_embedded(pre, samples=samples, seed=seed, split=split)
    if Path(spec).is_dir():
        return from_folder(spec, pre, samples=samples, seed=seed)
    raise ConfigError(
        f"calibration data {spec!r} is not 'embedded', a .npz file or a directory",
        hint="pass a class-per-folder directory, a .npz of preprocessed inputs, or 'embedded'",
    )
