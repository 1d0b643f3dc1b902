"""Each augmentation checked for what it does, exactly where the operation is exact."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from edgecnn.data.augment import (
    AugmentConfig,
    BatchAugment,
    affine_resample,
    box_mask,
    color_jitter,
    crop_boxes,
    cutmix,
    cutout,
    flip,
    mixup,
)
from edgecnn.errors import ConfigError


@pytest.fixture
def batch():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(6, 3, 12, 12, generator=g)
    y = F.one_hot(torch.arange(6) % 4, 4).float()
    return x, y


def test_flips_are_exact(batch):
    x, _ = batch
    mask = torch.tensor([True, False, True, False, False, True])
    h = flip(x, mask, dim=3)
    assert torch.equal(h[0], x[0].flip(-1)) and torch.equal(h[1], x[1])
    v = flip(x, mask, dim=2)
    assert torch.equal(v[2], x[2].flip(-2)) and torch.equal(v[3], x[3])
    assert torch.equal(flip(h, mask, dim=3), x)  # an involution


def test_batch_flip_probability_one_and_zero(batch):
    x, y = batch
    g = torch.Generator().manual_seed(1)
    out, y2 = BatchAugment(AugmentConfig(hflip_p=1.0))(x, y, g)
    assert torch.equal(out, x.flip(-1)) and torch.equal(y2, y)
    out, _ = BatchAugment(AugmentConfig(vflip_p=1.0))(x, y, g)
    assert torch.equal(out, x.flip(-2))
    out, _ = BatchAugment(AugmentConfig())(x, y, g)
    assert torch.equal(out, x)


def test_identity_crop_and_rotation_by_90(batch):
    x, _ = batch
    full = torch.tensor([[0.5, 0.5, 1.0, 1.0]]).repeat(6, 1)
    torch.testing.assert_close(affine_resample(x, full, torch.zeros(6), 12), x, atol=1e-6, rtol=0)
    rot = affine_resample(x, full, torch.full((6,), 90.0), 12)
    # a quarter turn of a square image maps pixel centres onto pixel centres: exact up to float rounding
    candidates = [x.rot90(1, (2, 3)), x.rot90(-1, (2, 3))]
    assert min((rot - c).abs().max().item() for c in candidates) < 1e-5


def test_random_resized_crop_box_matches_slice_and_resize():
    """Cropping the top-left quadrant and resizing it to full size equals F.interpolate of that slice."""
    x = torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(2))
    box = torch.tensor([[0.25, 0.25, 0.5, 0.5]]).repeat(2, 1)
    out = affine_resample(x, box, torch.zeros(2), 16)
    ref = F.interpolate(x[:, :, :8, :8], size=(16, 16), mode="bilinear", align_corners=False)
    # interior pixels (the border differs only in how each side pads beyond the quadrant)
    torch.testing.assert_close(out[..., 1:-1, 1:-1], ref[..., 1:-1, 1:-1], atol=1e-5, rtol=0)


def test_crop_boxes_respect_scale_ratio_and_bounds():
    b = crop_boxes(2000, (0.3, 0.6), (0.75, 1.333), torch.Generator().manual_seed(0))
    cx, cy, w, h = b.unbind(1)
    area = w * h
    assert area.min() >= 0.3 - 1e-5 and area.max() <= 0.6 + 1e-5
    assert (w / h).min() >= 0.75 - 1e-4 and (w / h).max() <= 1.333 + 1e-4
    assert (cx - w / 2).min() >= -1e-6 and (cx + w / 2).max() <= 1 + 1e-6
    assert (cy - h / 2).min() >= -1e-6 and (cy + h / 2).max() <= 1 + 1e-6


def test_rotation_keeps_output_size_and_centre():
    x = torch.zeros(1, 1, 9, 9)
    x[0, 0, 4, 4] = 1.0  # centre pixel stays put under any rotation about the centre
    full = torch.tensor([[0.5, 0.5, 1.0, 1.0]])
    out = affine_resample(x, full, torch.tensor([33.0]), 9)
    assert out.shape == x.shape and out[0, 0, 4, 4].item() == pytest.approx(1.0, abs=1e-5)


def test_color_jitter_formulas(batch):
    x, _ = batch
    ones = torch.ones(6)
    torch.testing.assert_close(color_jitter(x, ones, ones, ones), x)
    b = torch.full((6,), 0.5)
    torch.testing.assert_close(color_jitter(x, b, ones, ones), x * 0.5)
    zero_sat = color_jitter(x, ones, ones, torch.zeros(6))
    assert torch.allclose(zero_sat[:, 0], zero_sat[:, 1], atol=1e-6)  # grey: all channels equal
    grey = (x * torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)).sum(1, keepdim=True)
    torch.testing.assert_close(zero_sat, grey.expand_as(x))
    flat = color_jitter(x, ones, torch.zeros(6), ones)  # zero contrast: every pixel the mean grey
    assert torch.allclose(flat, grey.mean((2, 3), keepdim=True).expand_as(x), atol=1e-6)


def test_cutout_zeroes_exactly_the_patch(batch):
    x, _ = batch
    x = x + 0.1  # no pixel is zero before
    boxes = torch.tensor([[2, 3, 6, 9]] * 6)
    out = cutout(x, boxes)
    assert (out[:, :, 2:6, 3:9] == 0).all()
    mask = box_mask(boxes, 12, 12).expand_as(x)
    assert torch.equal(out[~mask], x[~mask])
    assert int((out == 0).sum()) == 6 * 3 * 4 * 6


def test_cutout_via_batch_augment_patch_size():
    x = torch.rand(4, 3, 10, 10) + 0.1
    y = torch.eye(4)
    out, _ = BatchAugment(AugmentConfig(cutout_p=1.0, cutout_fraction=0.4))(x, y, torch.Generator().manual_seed(5))
    zeros = (out == 0).all(1)  # per-pixel, all channels
    for i in range(4):
        n = int(zeros[i].sum())
        assert 0 < n <= 16  # a 4×4 patch, clipped at the border
        assert torch.equal(out[i][:, ~zeros[i]], x[i][:, ~zeros[i]])


def test_mixup_mixes_images_and_labels_by_lambda(batch):
    x, y = batch
    perm = torch.tensor([1, 0, 3, 2, 5, 4])
    xm, ym = mixup(x, y, 0.3, perm)
    torch.testing.assert_close(xm, 0.3 * x + 0.7 * x[perm])
    torch.testing.assert_close(ym, 0.3 * y + 0.7 * y[perm])
    torch.testing.assert_close(ym.sum(1), torch.ones(6))


def test_cutmix_label_mix_equals_pasted_area(batch):
    x, y = batch
    perm = torch.tensor([5, 4, 3, 2, 1, 0])
    out, ym, lam = cutmix(x, y, (1, 2, 7, 10), perm)
    pasted = (out != x).any(1)[0]  # x differs from x[perm] almost everywhere
    assert int(pasted.sum()) == 6 * 8
    assert lam == pytest.approx(1 - 48 / 144)
    torch.testing.assert_close(ym, lam * y + (1 - lam) * y[perm])
    assert torch.equal(out[:, :, 1:7, 2:10], x[perm][:, :, 1:7, 2:10])


def test_batch_cutmix_area_ratio_matches_targets():
    x = torch.rand(8, 3, 16, 16, generator=torch.Generator().manual_seed(3))
    y = torch.eye(8)
    out, ym = BatchAugment(AugmentConfig(cutmix_p=1.0))(x, y, torch.Generator().manual_seed(9))
    kept = ym.max(1).values  # own-label weight (each image is one-hot with a distinct class)
    changed = (out != x).any(1).float().mean((1, 2))
    for i in range(8):
        if changed[i] > 0:
            assert kept[i].item() == pytest.approx(1 - changed[i].item(), abs=1e-6)


def test_batch_mixup_targets_are_distributions():
    x, y = torch.rand(8, 3, 8, 8), torch.eye(8)
    out, ym = BatchAugment(AugmentConfig(mixup_p=1.0, mixup_alpha=0.4))(x, y, torch.Generator().manual_seed(0))
    torch.testing.assert_close(ym.sum(1), torch.ones(8))
    lam = ym.max(1).values[0].item()
    j = int(ym[0].argsort()[-2]) if lam < 1 else 0
    torch.testing.assert_close(out[0], lam * x[0] + (1 - lam) * x[j], atol=1e-6, rtol=0)


def test_augment_is_seeded():
    cfg = AugmentConfig(
        hflip_p=0.5,
        crop_p=1.0,
        rotate_p=1.0,
        rotate_degrees=20,
        jitter_p=1.0,
        brightness=0.3,
        cutout_p=0.5,
        mixup_p=0.5,
        cutmix_p=0.5,
    )
    x, y = torch.rand(4, 3, 12, 12), torch.eye(4)
    a = BatchAugment(cfg)(x, y, torch.Generator().manual_seed(7))
    b = BatchAugment(cfg)(x, y, torch.Generator().manual_seed(7))
    c = BatchAugment(cfg)(x, y, torch.Generator().manual_seed(8))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) and not torch.equal(a[0], c[0])


def test_config_validation():
    with pytest.raises(ConfigError, match="hflip_p"):
        AugmentConfig(hflip_p=1.5)
    with pytest.raises(ConfigError, match="mixup_p"):
        AugmentConfig(mixup_p=0.7, cutmix_p=0.7)
    assert not AugmentConfig().enabled and AugmentConfig(cutout_p=0.1).enabled
    assert math.isclose(AugmentConfig().crop_ratio[0], 0.75)


def test_preview_png(tmp_path):
    from PIL import Image

    from edgecnn.data.preview import preview_grid
    from edgecnn.data.sources import digits_preprocessing, procedural_shapes

    out = preview_grid(
        procedural_shapes(10, size=16),
        digits_preprocessing(16),
        AugmentConfig(crop_p=1.0, rotate_p=1.0, rotate_degrees=30),
        tmp_path / "grid.png",
        samples=5,
        rows=3,
        scale=2,
    )
    img = Image.open(out)
    assert img.format == "PNG" and img.size == ((5 * 18 + 2) * 2, (3 * 18 + 2) * 2)
