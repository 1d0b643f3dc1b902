"""Dense data, losses and metrics: digit canvases, the segmentation folder layout, joint augmentation, SR pairs."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from edgecnn.data.segmentation import (
    DIGIT_SEG_CLASSES,
    IGNORE_INDEX,
    JointAugment,
    default_palette,
    digit_canvases,
    load_seg_folder,
)
from edgecnn.errors import ConfigError, InputSpecError
from edgecnn.train.dense_metrics import ConfusionMatrix, psnr, ssim
from edgecnn.train.losses import dense_loss, soft_dice_loss


def _digits() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    d = np.zeros((10, 28, 28), np.uint8)
    for k in range(10):
        d[k, 6:22, 10:18] = 255  # a solid bar per "digit"
        d[k, 5, 10:18] = 60  # a faint rim row
    return d, rng.permutation(10)


def test_canvases_label_ink_and_ignore_rims() -> None:
    digits, labels = _digits()
    s = digit_canvases(digits, labels, 8, size=48, per_canvas=(1, 1), seed=3)
    assert s.images.shape == (8, 48, 48, 3) and s.masks.shape == (8, 48, 48) and s.classes == DIGIT_SEG_CLASSES
    for img, mask in zip(s.images, s.masks, strict=True):
        ink = img[..., 0] >= 128
        assert ink.any() and set(np.unique(mask[ink])) <= set(range(1, 11))  # bright pixels carry the digit class
        assert (mask[img[..., 0] == 0] == 0).all()  # no ink: background
        faint = (img[..., 0] > 0) & (img[..., 0] < 128)
        assert (mask[faint] == IGNORE_INDEX).all()
    again = digit_canvases(digits, labels, 8, size=48, per_canvas=(1, 1), seed=3)
    assert np.array_equal(again.masks, s.masks)  # seeded


def test_seg_folder_layout(tmp_path) -> None:
    (tmp_path / "images").mkdir()
    (tmp_path / "masks").mkdir()
    (tmp_path / "classes.txt").write_text("background\nthing\n")
    for i in range(3):
        Image.fromarray(np.full((20, 30, 3), 40 * i, np.uint8)).save(tmp_path / "images" / f"a{i}.png")
        m = np.zeros((20, 30), np.uint8)
        m[5:10, 5:10] = 1
        m[0, 0] = IGNORE_INDEX
        Image.fromarray(m).save(tmp_path / "masks" / f"a{i}.png")
    s = load_seg_folder(tmp_path)
    assert s.images.shape == (3, 20, 30, 3) and s.classes == ("background", "thing")
    assert s.masks[0, 7, 7] == 1 and s.masks[0, 0, 0] == IGNORE_INDEX
    assert load_seg_folder(tmp_path, size=16).masks.shape == (3, 16, 16)
    bad = np.zeros((20, 30), np.uint8)
    bad[1, 1] = 7
    Image.fromarray(bad).save(tmp_path / "masks" / "a1.png")
    with pytest.raises(InputSpecError, match="holds index 7"):
        load_seg_folder(tmp_path)
    (tmp_path / "masks" / "a1.png").unlink()
    with pytest.raises(ConfigError, match="has no mask"):
        load_seg_folder(tmp_path)


def test_joint_augment_moves_image_and_mask_together() -> None:
    # a mask equal to the image's class map: after augmentation every scored pixel still matches the image
    g = torch.Generator().manual_seed(0)
    mask = torch.zeros(4, 32, 32, dtype=torch.int64)
    mask[:, 8:20, 4:14] = 1
    img = mask.float().unsqueeze(1).repeat(1, 3, 1, 1)
    aug = JointAugment(hflip_p=0.5, scale=(0.7, 1.3), rotate_degrees=25, translate=0.2, brightness=0.0, contrast=0.0)
    x, m = aug(img, mask, g)
    assert x.shape == img.shape and m.shape == mask.shape
    assert not torch.equal(m, mask)  # geometry happened
    scored = (m != IGNORE_INDEX) & ((x[:, 0] < 0.05) | (x[:, 0] > 0.95))  # away from interpolated edges
    assert torch.equal(m[scored], (x[:, 0][scored] > 0.5).long())
    assert (m == IGNORE_INDEX).any()  # pixels from outside the source are ignored
    x2, m2 = JointAugment(brightness=0.3, contrast=0.3, rotate_degrees=0, scale=(1, 1), translate=0, hflip_p=0)(
        img, mask, torch.Generator().manual_seed(1)
    )
    assert torch.equal(m2, mask) and not torch.allclose(x2, img)  # colour: image only


def test_confusion_matrix_scores() -> None:
    cm = ConfusionMatrix(3)
    truth = np.array([[0, 0, 1, 1], [2, 2, 255, 0]])
    pred = np.array([[0, 1, 1, 1], [2, 0, 1, 0]])
    cm.update(truth, pred)
    s = cm.scores()
    # class 0: tp 2, gt 3, pred 3 → 2/4; class 1: tp 2, gt 2, pred 3 → 2/3; class 2: tp 1, gt 2, pred 1 → 1/2
    assert s["class_iou"] == pytest.approx([0.5, 2 / 3, 0.5])
    assert s["miou"] == pytest.approx((0.5 + 2 / 3 + 0.5) / 3)
    assert s["pixel_accuracy"] == pytest.approx(5 / 7)  # the ignored pixel is not scored
    assert s["class_accuracy"] == pytest.approx([2 / 3, 1.0, 0.5])


def test_psnr_ssim() -> None:
    rng = np.random.default_rng(0)
    a = rng.random((40, 40))
    assert psnr(a, a) == float("inf") and ssim(a, a) == pytest.approx(1.0)
    b = a + 0.01
    assert psnr(a, b) == pytest.approx(40.0, abs=1e-6)
    noisy = np.clip(a + rng.normal(0, 0.2, a.shape), 0, 1)
    assert ssim(a, noisy) < 0.9 and psnr(a, noisy, border=3) < 20


def test_losses() -> None:
    y = torch.tensor([[[0, 1], [2, 255]]])
    perfect = torch.full((1, 3, 2, 2), -20.0)
    for c, (i, j) in ((0, (0, 0)), (1, (0, 1)), (2, (1, 0))):
        perfect[0, c, i, j] = 20.0
    assert soft_dice_loss(perfect, y).item() < 1e-3
    assert dense_loss("ce_dice")(perfect, y).item() < 1e-3
    assert dense_loss("ce_dice")(torch.zeros(1, 3, 2, 2), y).item() > 1.0
    assert dense_loss("l1")(torch.zeros(2, 1, 4, 4), torch.ones(2, 1, 4, 4)).item() == 1.0


def test_palette_is_voc() -> None:
    p = default_palette(21)
    assert p[0].tolist() == [0, 0, 0] and p[1].tolist() == [128, 0, 0] and p[15].tolist() == [192, 128, 128]
