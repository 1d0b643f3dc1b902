"""Calibration / evaluation sources: every source goes through the evaluation transform, is hashed, and bad input
gets a typed one-line error."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from edgecnn.errors import ConfigError, InputSpecError
from edgecnn.exporters import ExportOptions, Precision
from edgecnn.quant.config import QuantConfig
from edgecnn.quant.samples import DEFAULT_SAMPLES, from_arrays, from_embedded, from_folder, from_npz, load_samples
from edgecnn.runtime.preprocess import Preprocessing, preprocess_image

PRE = Preprocessing(input_size=16, crop_mode="resize", resize_size=None, mean=(0.5,) * 3, std=(0.25,) * 3)


def _arrays(n: int = 8, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, 3, 16, 16)).astype(np.float32)


def test_arrays_hash_is_stable_and_small_sets_warn():
    a, b = from_arrays(_arrays()), from_arrays(_arrays())
    assert a.sha256 == b.sha256 != from_arrays(_arrays(seed=1)).sha256
    rec = a.record()
    assert rec["samples"] == 8 and rec["shape"] == [3, 16, 16] and len(rec["sha256"]) == 64
    assert str(DEFAULT_SAMPLES) in rec["warnings"][0]
    assert from_arrays(np.zeros((DEFAULT_SAMPLES, 1, 2, 2), np.float32)).warnings == ()


@pytest.mark.parametrize(
    ("x", "match"),
    [
        (np.zeros((4, 3, 16, 16), np.float64), "float32"),
        (np.zeros((3, 16, 16), np.float32), "N×C×H×W"),
        (np.zeros((0, 3, 16, 16), np.float32), "no samples"),
        (np.full((2, 3, 4, 4), np.nan, np.float32), "NaN"),
        ([[1.0]], "numpy array"),
    ],
)
def test_bad_arrays(x, match):
    with pytest.raises(InputSpecError, match=match):
        from_arrays(x)


def test_folder_goes_through_the_evaluation_transform(tmp_path):
    rng = np.random.default_rng(0)
    for cls in ("a", "b"):
        (tmp_path / cls).mkdir()
        for i in range(3):
            Image.fromarray(rng.integers(0, 255, (20 + i, 24, 3), dtype=np.uint8)).save(tmp_path / cls / f"{i}.png")
    s = from_folder(tmp_path, PRE, samples=4, seed=0)
    assert s.data.shape == (4, 3, 16, 16) and s.classes == ("a", "b") and set(s.labels) <= {0, 1}
    # each sample is exactly preprocess_image(file, PRE): the runtime's evaluation transform, no augmentation
    files = sorted(tmp_path.rglob("*.png"))
    expect = {preprocess_image(f, PRE).tobytes() for f in files}
    assert all(x.tobytes() in expect for x in s.data)
    assert load_samples(str(tmp_path), PRE, samples=4).sha256 == s.sha256


def test_a_flat_folder_of_photos_calibrates_unlabelled(tmp_path):
    """`--calib-data photos/` with the photos side by side (no class sub-folders) was refused, though calibration
    needs no labels (issue 20: the dozen photos a new user has)."""
    rng = np.random.default_rng(1)
    for i in range(5):
        Image.fromarray(rng.integers(0, 255, (18 + i, 22, 3), dtype=np.uint8)).save(tmp_path / f"p{i}.jpg")
    (tmp_path / "notes.txt").write_text("not an image")
    s = load_samples(str(tmp_path), PRE, samples=3, seed=0)
    assert s.data.shape == (3, 3, 16, 16) and s.labels is None and "flat" in s.source
    expect = {preprocess_image(f, PRE).tobytes() for f in sorted(tmp_path.glob("*.jpg"))}
    assert all(x.tobytes() in expect for x in s.data)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ConfigError, match="no images and no class sub-folders"):
        from_folder(empty, PRE)


def test_training_transforms_are_refused(tmp_path):
    from edgecnn.quant.samples import from_images

    with pytest.raises(ConfigError, match="evaluation Preprocessing"):
        from_images(object(), {"input_size": 16}, samples=2)  # type: ignore[arg-type]


def test_npz_source_and_its_errors(tmp_path):
    x = _arrays(6)
    np.savez(tmp_path / "ok.npz", x=x, y=np.arange(6))
    s = from_npz(tmp_path / "ok.npz", samples=4)
    assert s.data.shape == (4, 3, 16, 16) and s.labels is not None and len(s.labels) == 4
    np.savez(tmp_path / "ints.npz", x=(x * 10).astype(np.int32))
    with pytest.raises(InputSpecError, match="float32"):
        from_npz(tmp_path / "ints.npz")
    np.savez(tmp_path / "two.npz", a=x, b=x)
    with pytest.raises(ConfigError, match="'x'"):
        from_npz(tmp_path / "two.npz")
    (tmp_path / "bad.npz").write_bytes(b"not a zip")
    with pytest.raises(ConfigError, match="readable"):
        from_npz(tmp_path / "bad.npz")
    with pytest.raises(ConfigError, match="does not exist"):
        from_npz(tmp_path / "missing.npz")


def test_bad_specs():
    with pytest.raises(ConfigError, match="not 'embedded'"):
        load_samples("nowhere", PRE)
    with pytest.raises(ConfigError, match="no evaluation preprocessing"):
        load_samples("embedded", None)
    with pytest.raises(ConfigError, match="--samples"):
        load_samples("embedded", PRE, samples=0)


def test_embedded_digits_calibrate_on_train_and_evaluate_on_test():
    cal = from_embedded(PRE, samples=20, split="train")
    ev = from_embedded(PRE, samples=20, split="test")
    assert cal.data.shape == (20, 3, 16, 16) and cal.source == "embedded:train" and ev.source == "embedded:test"
    assert cal.sha256 != ev.sha256


def test_config_rules():
    cal = from_arrays(_arrays())
    with pytest.raises(ConfigError, match="labelled evaluation"):
        QuantConfig(calibration=cal, max_drop=0.5)
    with pytest.raises(ConfigError, match=r"\[0, 100\)"):
        QuantConfig(calibration=cal, max_drop=-1, evaluation=from_arrays(_arrays(), labels=np.zeros(8)))
    with pytest.raises(ConfigError, match="need int8"):
        from edgecnn.exporters import TARGETS

        TARGETS.get("onnx").validate(
            ExportOptions(target="onnx", precision=Precision.FP32, quant=QuantConfig(calibration=cal))
        )


def test_evaluation_folder_classes_matched_to_model_labels_by_name():
    """A folder whose class names are none of the model's labels is refused (it reported top-1 0.00 → 0.00 %); one
    whose names are the model's in another order is relabelled by name."""
    import dataclasses

    import edgecnn
    from edgecnn.quant.config import make_config
    from edgecnn.quant.samples import SampleSet

    net = edgecnn.create_model("mobilenet_v3_small", num_classes=3).eval()
    net.classes = ("cat", "dog", "fox")
    x = np.random.default_rng(0).standard_normal((4, 3, 32, 32)).astype(np.float32)
    calib = from_arrays(x)
    foreign = SampleSet(data=x, source="folder:x", labels=np.array([0, 1, 0, 1]), classes=("car", "bus"))
    with pytest.raises(ConfigError, match="none of its class folders"):
        make_config(net, calib, eval_data=foreign, resolution=32)
    swapped = dataclasses.replace(foreign, classes=("fox", "cat"))
    cfg = make_config(net, calib, eval_data=swapped, resolution=32)
    assert cfg.evaluation.labels.tolist() == [2, 0, 2, 0]
