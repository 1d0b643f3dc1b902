"""Preprocessing (edgecnn.runtime.preprocess): validation, exact crop geometry and normalisation, bad images.

Torch-free by design; these tests use numpy and Pillow only.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from edgecnn.errors import ConfigError, InputSpecError
from edgecnn.runtime import Preprocessing, preprocess_batch, preprocess_image
from edgecnn.runtime.preprocess import IMAGENET_MEAN, IMAGENET_STD, load_image

PLAIN = dict(mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0), scale=1.0)  # output = raw pixel values


def _gradient(h: int, w: int) -> np.ndarray:
    """R = column index, G = row index, B = constant 7 (uint8; needs h, w <= 256)."""
    img = np.zeros((h, w, 3), np.uint8)
    img[..., 0] = np.arange(w, dtype=np.uint8)[None, :]
    img[..., 1] = np.arange(h, dtype=np.uint8)[:, None]
    img[..., 2] = 7
    return img


# -- validation -------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (dict(color="RGBA"), "color"),
        (dict(color="rgb"), "color"),
        (dict(crop_mode="center"), "crop_mode"),
        (dict(interpolation="lanczos"), "interpolation"),
        (dict(layout="CHW"), "layout"),
        (dict(mean=(0.5, 0.5)), "mean/std"),
        (dict(std=(0.2, 0.2, 0.2, 0.2)), "mean/std"),
        (dict(std=(0.2, 0.0, 0.2)), "mean/std"),
        (dict(std=(0.2, -1.0, 0.2)), "mean/std"),
        (dict(color="L"), "mean/std"),  # grey needs one mean/std value
        (dict(resize_size=200), "resize_size"),  # smaller than the 224 crop
        (dict(resize_size=None), "resize_size"),
        (dict(crop_mode="crop_resize"), "crop_fraction"),  # crop_fraction missing
        (dict(crop_mode="crop_resize", crop_fraction=0.0), "crop_fraction"),
        (dict(crop_mode="crop_resize", crop_fraction=1.5), "crop_fraction"),
    ],
)
def test_validation_errors(kwargs: dict, match: str) -> None:
    with pytest.raises(ConfigError, match=match) as info:
        Preprocessing(**kwargs)
    assert "preprocessing." in str(info.value)  # names the field


def test_valid_variants() -> None:
    grey = Preprocessing(color="L", mean=(0.5,), std=(0.5,))
    assert grey.channels == 1
    assert Preprocessing().channels == 3
    assert Preprocessing(crop_mode="crop_resize", crop_fraction=1.0, resize_size=None).crop_fraction == 1.0
    assert Preprocessing(crop_mode="resize", resize_size=None).resize_size is None
    with pytest.raises(dataclasses.FrozenInstanceError):
        Preprocessing().input_size = 5  # type: ignore[misc]


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(input_size=0),
        dict(input_size=-3),
        dict(input_size=0, crop_mode="resize", resize_size=None),
        dict(scale=0.0),
    ],
)
def test_validation_of_sizes(kwargs: dict) -> None:
    with pytest.raises(ConfigError):
        Preprocessing(**kwargs)


def test_at_resolution() -> None:
    pre = Preprocessing(input_size=224, resize_size=256)
    other = pre.at_resolution(112)
    assert (other.input_size, other.resize_size) == (112, 128)
    assert other.mean == pre.mean and other.interpolation == pre.interpolation
    tf = Preprocessing(crop_mode="crop_resize", crop_fraction=0.875, resize_size=None).at_resolution(300)
    assert (tf.input_size, tf.resize_size, tf.crop_fraction) == (300, None, 0.875)


# -- dict round-trip --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "pre",
    [
        Preprocessing(),
        Preprocessing(
            input_size=300,
            color="BGR",
            crop_mode="crop_resize",
            resize_size=None,
            crop_fraction=300 / 332,
            interpolation="bicubic",
            scale=1.0,
            mean=(127.0, 127.0, 127.0),
            std=(128.0, 128.0, 128.0),
            layout="NHWC",
        ),
        Preprocessing(
            color="L", mean=(0.5,), std=(0.25,), crop_mode="resize", resize_size=None, interpolation="nearest"
        ),
    ],
)
def test_dict_roundtrip(pre: Preprocessing) -> None:
    d = pre.to_dict()
    assert isinstance(d["mean"], list) and isinstance(d["std"], list)  # JSON-friendly
    assert set(d) == {f.name for f in dataclasses.fields(Preprocessing)}
    back = Preprocessing.from_dict(d)
    assert back == pre
    assert isinstance(back.mean, tuple) and isinstance(back.std, tuple)
    assert Preprocessing.from_dict({}) == Preprocessing()
    assert Preprocessing.from_dict({"input_size": 96, "resize_size": 110}).input_size == 96


def test_from_dict_rejects_unknown_keys() -> None:
    with pytest.raises(ConfigError, match=r"unknown key\(s\) \['crop_pct', 'size'\]") as info:
        Preprocessing.from_dict({"input_size": 224, "crop_pct": 0.875, "size": 3})
    assert "input_size" in str(info.value)  # the hint lists the known keys


def test_from_dict_validates_values() -> None:
    with pytest.raises(ConfigError, match="color"):
        Preprocessing.from_dict({"color": "CMYK"})


@pytest.mark.parametrize("data", [{"mean": ["a", "b", "c"]}, {"mean": 1.0}, {"input_size": "224"}])
def test_from_dict_bad_types(data: dict) -> None:
    with pytest.raises(ConfigError):
        Preprocessing.from_dict(data)


# -- exact values -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["resize_crop", "crop_resize", "resize"])
@pytest.mark.parametrize("interpolation", ["nearest", "bilinear", "bicubic"])
def test_constant_image_gives_constant_normalised_value(mode: str, interpolation: str) -> None:
    pre = Preprocessing(
        input_size=32,
        crop_mode=mode,
        resize_size=40 if mode == "resize_crop" else None,
        crop_fraction=0.8 if mode == "crop_resize" else None,
        interpolation=interpolation,
    )
    img = np.empty((50, 70, 3), np.uint8)
    img[...] = (200, 100, 50)
    out = preprocess_image(img, pre)
    assert out.shape == (3, 32, 32) and out.dtype == np.float32 and out.flags.c_contiguous
    expected = (np.array([200, 100, 50]) / 255.0 - np.array(IMAGENET_MEAN)) / np.array(IMAGENET_STD)
    np.testing.assert_allclose(out, np.broadcast_to(expected[:, None, None], out.shape), rtol=1e-5, atol=1e-5)


def test_resize_crop_centre_crop_exact() -> None:
    # 200×100 (w×h): the shorter side is already resize_size, so no resampling; the 100×100 crop starts at x=50.
    img = _gradient(100, 200)
    pre = Preprocessing(input_size=100, resize_size=100, **PLAIN)
    out = preprocess_image(img, pre)
    assert out.shape == (3, 100, 100)
    np.testing.assert_array_equal(out[0], np.broadcast_to(np.arange(50, 150, dtype=np.float32), (100, 100)))
    np.testing.assert_array_equal(out[1], np.broadcast_to(np.arange(100, dtype=np.float32)[:, None], (100, 100)))
    np.testing.assert_array_equal(out[2], 7.0)


def test_resize_crop_portrait_and_square() -> None:
    img = _gradient(256, 224)  # portrait: width is the shorter side
    out = preprocess_image(img, Preprocessing(input_size=224, resize_size=224, **PLAIN))
    np.testing.assert_array_equal(out[1, :, 0], np.arange(16, 240, dtype=np.float32))  # rows 16..239
    np.testing.assert_array_equal(out[0, 0], np.arange(224, dtype=np.float32))
    square = preprocess_image(_gradient(256, 256), Preprocessing(input_size=224, resize_size=256, **PLAIN))
    np.testing.assert_array_equal(square[0, 0], np.arange(16, 240, dtype=np.float32))


def test_resize_crop_resizes_shorter_side() -> None:
    img = np.zeros((120, 240, 3), np.uint8)
    img[:, 120:] = 255  # right half white
    out = preprocess_image(img, Preprocessing(input_size=60, resize_size=60, interpolation="nearest", **PLAIN))
    # 240×120 → 120×60, centre crop x in [30, 90): left half black, right half white
    np.testing.assert_array_equal(out[:, :, :30], 0.0)
    np.testing.assert_array_equal(out[:, :, 30:], 255.0)


def test_crop_resize_tf_centre_crop_exact() -> None:
    # TF: side = int(fraction · shorter), offset = ((size − side) + 1) // 2
    img = _gradient(200, 256)
    pre = Preprocessing(input_size=175, crop_mode="crop_resize", crop_fraction=0.875, resize_size=None, **PLAIN)
    out = preprocess_image(img, pre)  # side 175, left (256 − 175 + 1)//2 = 41, top (200 − 175 + 1)//2 = 13
    assert out.shape == (3, 175, 175)
    np.testing.assert_array_equal(out[0, 0], np.arange(41, 216, dtype=np.float32))
    np.testing.assert_array_equal(out[1, :, 0], np.arange(13, 188, dtype=np.float32))


def test_crop_resize_then_resizes() -> None:
    img = _gradient(100, 100)
    pre = Preprocessing(input_size=25, crop_mode="crop_resize", crop_fraction=0.5, resize_size=None, **PLAIN)
    out = preprocess_image(img, pre)
    assert out.shape == (3, 25, 25)
    # crop [25, 75) then downsample 2×: values increase along x and stay within the crop
    row = out[0, 12]
    assert np.all(np.diff(row) > 0) and row.min() >= 25 and row.max() <= 75


def test_resize_squashes() -> None:
    img = _gradient(30, 90)
    out = preprocess_image(img, Preprocessing(input_size=30, crop_mode="resize", resize_size=None, **PLAIN))
    assert out.shape == (3, 30, 30)
    assert out[0, 0, 0] < 5 and out[0, 0, -1] > 84  # the full width is kept, squeezed


def test_normalisation_formula() -> None:
    img = _gradient(8, 8)
    pre = Preprocessing(input_size=8, resize_size=8, mean=(0.1, 0.2, 0.3), std=(0.5, 0.25, 2.0))
    out = preprocess_image(img, pre)
    raw = img.astype(np.float64).transpose(2, 0, 1)
    expected = (raw / 255.0 - np.array([0.1, 0.2, 0.3])[:, None, None]) / np.array([0.5, 0.25, 2.0])[:, None, None]
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-6)


def test_bgr_swaps_channels() -> None:
    img = _gradient(16, 16)
    rgb = preprocess_image(img, Preprocessing(input_size=16, resize_size=16, **PLAIN))
    bgr = preprocess_image(img, Preprocessing(input_size=16, resize_size=16, color="BGR", **PLAIN))
    np.testing.assert_array_equal(bgr, rgb[::-1])
    # mean/std apply in the network's (BGR) order
    pre = Preprocessing(input_size=16, resize_size=16, color="BGR", scale=1.0, mean=(7.0, 0.0, 0.0), std=(1, 1, 1))
    np.testing.assert_array_equal(preprocess_image(img, pre)[0], 0.0)  # B = 7 everywhere


def test_nhwc_layout() -> None:
    img = _gradient(20, 20)
    nchw = preprocess_image(img, Preprocessing(input_size=16, resize_size=18))
    nhwc = preprocess_image(img, Preprocessing(input_size=16, resize_size=18, layout="NHWC"))
    assert nhwc.shape == (16, 16, 3) and nhwc.flags.c_contiguous
    np.testing.assert_array_equal(nhwc, nchw.transpose(1, 2, 0))


def test_grey_output() -> None:
    img = np.full((20, 30), 128, np.uint8)
    out = preprocess_image(img, Preprocessing(input_size=16, resize_size=16, color="L", mean=(0.5,), std=(0.5,)))
    assert out.shape == (1, 16, 16)
    np.testing.assert_allclose(out, (128 / 255 - 0.5) / 0.5, atol=1e-6)
    colour = preprocess_image(np.full((20, 30, 3), 128, np.uint8), Preprocessing(color="L", mean=(0.5,), std=(0.5,)))
    assert colour.shape == (1, 224, 224)


@pytest.mark.parametrize(
    "img",
    [
        np.full((40, 40), 90, np.uint8),
        np.full((40, 40, 1), 90, np.uint8),
        np.full((40, 40, 4), 90, np.uint8),
        Image.new("RGB", (40, 40), (90, 90, 90)),
        Image.new("L", (40, 40), 90),
        Image.new("RGBA", (40, 40), (90, 90, 90, 255)),
        Image.new("P", (40, 40), 0),
    ],
    ids=["HW", "HW1", "HW4", "PIL-RGB", "PIL-L", "PIL-RGBA", "PIL-P"],
)
def test_accepted_image_kinds(img) -> None:
    out = preprocess_image(img, Preprocessing(input_size=32, resize_size=36))
    assert out.shape == (3, 32, 32)
    assert np.isfinite(out).all()


def test_image_from_path(tmp_path: Path) -> None:
    img = _gradient(64, 80)
    Image.fromarray(img).save(tmp_path / "g.png")
    pre = Preprocessing(input_size=48, resize_size=56)
    from_path = preprocess_image(tmp_path / "g.png", pre)
    np.testing.assert_array_equal(from_path, preprocess_image(img, pre))
    np.testing.assert_array_equal(preprocess_image(str(tmp_path / "g.png"), pre), from_path)


def test_preprocess_batch() -> None:
    imgs = [_gradient(30, 40), np.zeros((50, 50, 3), np.uint8)]
    pre = Preprocessing(input_size=24, resize_size=28)
    batch = preprocess_batch(imgs, pre)
    assert batch.shape == (2, 3, 24, 24) and batch.dtype == np.float32
    np.testing.assert_array_equal(batch[1], preprocess_image(imgs[1], pre))


def test_input_is_not_modified() -> None:
    img = _gradient(30, 30)
    before = img.copy()
    preprocess_image(img, Preprocessing(input_size=16, resize_size=20, color="BGR"))
    np.testing.assert_array_equal(img, before)


# -- bad images -------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "img",
    [
        np.zeros((10, 10, 3), np.float32),
        np.zeros((10, 10, 3), np.uint16),
        np.zeros((10,), np.uint8),
        np.zeros((1, 10, 10, 3), np.uint8),
        np.zeros((10, 10, 2), np.uint8),
        np.zeros((3, 10, 10), np.uint8),  # CHW by mistake
    ],
    ids=["float32", "uint16", "1d", "4d", "2ch", "chw"],
)
def test_bad_arrays(img: np.ndarray) -> None:
    with pytest.raises(InputSpecError, match="uint8") as info:
        preprocess_image(img, Preprocessing())
    assert str(img.dtype) in str(info.value)


@pytest.mark.parametrize("obj", [None, 3, [[0, 1], [2, 3]], b"bytes"], ids=["none", "int", "list", "bytes"])
def test_unsupported_types(obj) -> None:
    with pytest.raises(InputSpecError, match="unsupported image type"):
        preprocess_image(obj, Preprocessing())


def test_missing_and_undecodable_files(tmp_path: Path) -> None:
    with pytest.raises(InputSpecError, match="does not exist"):
        preprocess_image(tmp_path / "nope.jpg", Preprocessing())
    with pytest.raises(InputSpecError, match="does not exist or is not a file"):
        load_image(tmp_path)
    (tmp_path / "fake.jpg").write_bytes(b"not an image at all")
    with pytest.raises(InputSpecError, match="cannot be decoded"):
        preprocess_image(tmp_path / "fake.jpg", Preprocessing())
    Image.fromarray(_gradient(64, 64)).save(tmp_path / "real.jpg")
    data = (tmp_path / "real.jpg").read_bytes()
    (tmp_path / "cut.jpg").write_bytes(data[: len(data) // 3])
    with pytest.raises(InputSpecError, match="cannot be decoded"):
        preprocess_image(tmp_path / "cut.jpg", Preprocessing())
