"""Dense training through the shared step loop: recipes validate, a segmentation run learns a folder dataset, an SR
run beats nothing-learned, and the CLI routes dense models to the dense trainer."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from edgecnn.cli.main import cli
from edgecnn.errors import ConfigError
from edgecnn.train.dense import fit_dense
from edgecnn.train.recipe import load_recipe, recipe_from_dict
from edgecnn.train.trainer import fit


def _seg_folder(root, n: int = 48, size: int = 32) -> None:
    """Bright squares (class 1) and dark discs (class 2) on grey: learnable in a few dozen steps."""
    rng = np.random.default_rng(0)
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    (root / "classes.txt").write_text("background\nsquare\ndisc\n")
    yy, xx = np.mgrid[0:size, 0:size]
    for i in range(n):
        img = np.full((size, size, 3), 128, np.uint8)
        mask = np.zeros((size, size), np.uint8)
        r, c = rng.integers(4, size - 12, 2)
        img[r : r + 8, c : c + 8] = 250
        mask[r : r + 8, c : c + 8] = 1
        cy, cx = rng.integers(6, size - 6, 2)
        disc = (yy - cy) ** 2 + (xx - cx) ** 2 <= 16
        img[disc] = 10
        mask[disc] = 2
        Image.fromarray(img).save(root / "images" / f"{i:03d}.png")
        Image.fromarray(mask).save(root / "masks" / f"{i:03d}.png")


def test_shipped_dense_recipes_validate() -> None:
    seg = load_recipe("seg_canvases")
    assert seg.model.name.startswith("unet_") and seg.data.source == "canvases" and seg.dense.loss == "ce_dice"
    sr = load_recipe("sr_photos")
    assert sr.data.source == "photos" and sr.dense.loss == "l1"
    with pytest.raises(ConfigError, match="dense.loss"):
        recipe_from_dict({"dense": {"loss": "focal"}})
    with pytest.raises(ConfigError, match="fit_dense"):
        fit(seg, "/nonexistent-never-written")


def test_segmentation_training_learns(tmp_path) -> None:
    _seg_folder(tmp_path / "data")
    rec = recipe_from_dict(
        {
            "model": {"name": "unet_mobilenet_v3_small", "width_mult": 0.5},
            "data": {
                "source": "seg_folder",
                "path": str(tmp_path / "data"),
                "input_size": 32,
                "batch_size": 8,
                "val_fraction": 0.15,
                "test_fraction": 0.15,
            },
            "dense": {"loss": "ce_dice", "rotate_degrees": 0.0, "scale_range": [1.0, 1.0], "translate": 0.0},
            "optim": {"lr": 0.01, "epochs": 12, "warmup_epochs": 0, "weight_decay": 0.0},
            "train": {"threads": 1, "channels_last": False},
        }
    )
    res = fit_dense(rec, tmp_path / "run")
    first, last = res.history[0], res.history[-1]
    assert last["train_loss"] < 0.6 * first["train_loss"]
    assert res.test["pixel_accuracy"] > 0.9 and res.test["miou"] > 0.5
    meta = json.loads((tmp_path / "run" / "model.json").read_text())
    assert meta["task"] == "segmentation" and meta["classes"] == ["background", "square", "disc"]
    with pytest.raises(ConfigError, match="does not fit a segmentation"):
        fit_dense(rec.replace(dense=rec.dense.__class__(loss="l1")), tmp_path / "bad")


def test_cli_trains_super_resolution(tmp_path) -> None:
    r = CliRunner().invoke(
        cli,
        [
            "train",
            "run",
            "sr_photos",
            "--out",
            str(tmp_path / "sr"),
            "--model",
            "espcn_x2",
            "--epochs",
            "1",
            "-s",
            "dense.train_samples=64",
            "-s",
            "data.batch_size=16",
            "-s",
            "train.threads=1",
            "--json",
        ],
    )
    assert r.exit_code == 0, r.output
    summary = json.loads(r.stdout[r.stdout.index("{") :])  # epoch lines may come first
    assert summary["epochs"] == 1 and {"psnr", "bicubic_psnr", "ssim", "gain_db"} <= set(summary["test"])
    assert (tmp_path / "sr" / "model.safetensors").is_file()


@pytest.mark.slow
def test_demo_dense_stage(tmp_path) -> None:
    from edgecnn.demo import dense_stage

    out = dense_stage(tmp_path, seg_steps=2, sr_steps=4)
    assert set(out) == {"seg", "sr"} and 0 <= out["seg"]["miou"] <= 1
    for name in ("seg-overlay.png", "sr-x3.png", "sr-input.png"):
        assert (tmp_path / name).is_file()
    assert Image.open(tmp_path / "sr-x3.png").size == (450, 300)  # chelsea 451×300 → LR 150×100 → ×3
