"""Dense-prediction zoo models: LR-ASPP equals torchvision's, U-Net decoders on zoo backbones, FSRCNN / ESPCN."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch import nn

from edgecnn.analysis import analyze, analyze_named
from edgecnn.models import create_model, get_model_entry, list_models
from edgecnn.models.weights import load_weights
from tests.tv_reference import FIXTURES, seeded_state

SEG_DIR = FIXTURES / "torchvision_seg"
LRASPP = "lraspp_mobilenet_v3_large"
SEG = list_models("segmentation")
SR = list_models("super_resolution")


def _tv_lraspp() -> dict:
    return json.loads((SEG_DIR / f"{LRASPP}.json").read_text())


def test_task_lists() -> None:
    assert LRASPP in SEG and {"unet_mobilenet_v3_small", "unet_mobilenet_v2"} <= set(SEG)
    assert set(SR) == {f"{n}_x{s}" for n in ("fsrcnn", "espcn") for s in (2, 3, 4)}
    assert "mobilenet_v2" in list_models("classification") and "mobilenet_v2" not in SEG
    assert set(list_models()) == set(list_models("classification")) | set(SEG) | set(SR)


def test_lraspp_params_macs_equal_torchvision() -> None:
    ref = _tv_lraspp()
    stats = analyze_named(LRASPP)
    assert stats.params == ref["params"] == 3_221_538
    assert stats.macs == ref["macs"]  # conv MACs at 520×520, torchvision's GFLOPS convention (2.09 G)
    assert stats.resize_macs > 0  # the two bilinear resizes are listed and counted apart
    assert {r.type for r in stats.layers} >= {"Resize", "Conv2d", "Sigmoid"}


def test_lraspp_state_dict_shapes_match_torchvision() -> None:
    model = create_model(LRASPP)
    ours = sorted(tuple(v.shape) for v in model.state_dict().values())
    theirs = sorted(tuple(shape) for _k, shape, _d in _tv_lraspp()["keys"])
    assert ours == theirs


def test_lraspp_torchvision_checkpoint_identical_outputs(tmp_path) -> None:
    keys = [(k, shape) for k, shape, _d in _tv_lraspp()["keys"]]
    path = tmp_path / "lraspp.pth"
    torch.save({k: torch.from_numpy(v) for k, v in seeded_state(keys, seed=0).items()}, path)
    model = create_model(LRASPP).eval()
    info = load_weights(model, path)
    assert info.format == "torchvision"
    with np.load(SEG_DIR / f"{LRASPP}_io.npz") as z:
        x, y_ref = z["input"], z["output"]
    with torch.no_grad():
        y = model(torch.from_numpy(x)).numpy()
    assert y.shape == y_ref.shape == (1, 21, 48, 64)
    assert np.abs(y - y_ref).max() <= 1e-4 * np.abs(y_ref).max()


@pytest.mark.parametrize("name", SEG)
def test_segmentation_forward_backward(name: str) -> None:
    model = create_model(name, num_classes=5)
    assert model.task == "segmentation" and get_model_entry(name).num_classes == 21
    x = torch.randn(2, 3, 64, 96)
    model.train()
    y = model(x)
    assert y.shape == (2, 5, 64, 96)
    y.square().mean().backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None]
    assert not missing, missing[:5]


def test_unet_uses_transposed_convs_and_skips() -> None:
    model = create_model("unet_mobilenet_v3_small", num_classes=3)
    deconvs = [m for m in model.modules() if isinstance(m, nn.ConvTranspose2d)]
    assert len(deconvs) == 5  # four decoder steps + the last one to stride 1
    stats = analyze(model, 64)
    rows = {r.name: r for r in stats.layers}
    up = rows["ups.0.up"]  # stride 32 → 16 at 64 px: 2×2 → 4×4
    assert up.type == "ConvTranspose2d" and up.output_shape[2:] == (4, 4)
    m = model.ups[0].up
    assert up.macs == 2 * 2 * m.in_channels * m.out_channels * 4 * 4  # each input pixel scatters k×k×C_out
    assert rows["fuses.0.conv"].output_shape[1] == model.fuses[0].conv.out_channels


@pytest.mark.parametrize("name", SR)
def test_super_resolution_shapes(name: str) -> None:
    model = create_model(name).eval()
    scale = int(name[-1])
    assert model.task == "super_resolution" and model.preprocessing.color == "L"
    with torch.no_grad():
        y = model(torch.rand(1, 1, 17, 23))
    assert y.shape == (1, 1, 17 * scale, 23 * scale)


def test_sr_analysis_counts_deconv_and_pixel_shuffle() -> None:
    f = analyze(create_model("fsrcnn_x3"), 32)
    deconv = next(r for r in f.layers if r.type == "ConvTranspose2d")
    assert deconv.output_shape == (1, 1, 96, 96)
    assert deconv.macs == 32 * 32 * 56 * 1 * 9 * 9
    assert f.params == 12_809  # 12,464 weights of the paper's Table 1 + biases + PReLU slopes
    e = analyze(create_model("espcn_x3"), 32)
    shuffle = next(r for r in e.layers if r.type == "PixelShuffle")
    assert shuffle.output_shape == (1, 1, 96, 96) and shuffle.macs == 0
    assert e.macs == 32 * 32 * (1 * 64 * 25 + 64 * 32 * 9 + 32 * 9 * 9)


def test_estimator_ops_know_decoder_ops() -> None:
    from edgecnn.bench.roofline import model_ops

    with torch.device("meta"):
        lraspp, fsrcnn, espcn = (create_model(n) for n in (LRASPP, "fsrcnn_x3", "espcn_x3"))
    resizes = [op for op in model_ops(lraspp, 64) if op.type == "Resize"]
    assert len(resizes) == 2 and resizes[-1].out_elems == 21 * 64 * 64 and resizes[-1].elements == 4 * 21 * 64 * 64
    deconv = [op for op in model_ops(fsrcnn, 32) if op.type == "ConvTranspose2d"]
    assert len(deconv) == 1 and deconv[0].kind == "dense" and deconv[0].macs == 32 * 32 * 56 * 81
    shuffle = [op for op in model_ops(espcn, 32) if op.type == "DepthToSpace"]
    assert len(shuffle) == 1 and shuffle[0].elements == 0 and shuffle[0].out_elems == 96 * 96


def test_cli_bench_and_profile_on_dense_models() -> None:
    from click.testing import CliRunner

    from edgecnn.cli.main import cli

    r = CliRunner().invoke(cli, ["profile", "espcn_x3", "-p", "cortex-a76-rpi5", "-r", "32", "--json"])
    assert r.exit_code == 0, r.output
    data = json.loads(r.stdout)
    assert data["total_ms"] > 0 and data["by_kind_ms"]["dense"] > 0
    r = CliRunner().invoke(
        cli, ["bench", "run", "espcn_x3:eager", "-r", "16", "--warmup", "1", "--iters", "3", "--json"]
    )
    assert r.exit_code == 0, r.output
    r = CliRunner().invoke(cli, ["analyze", LRASPP, "--json"])
    assert r.exit_code == 0 and json.loads(r.stdout)["params"] == 3_221_538
