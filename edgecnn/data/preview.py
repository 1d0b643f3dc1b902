"""A PNG grid of augmented samples (Pillow only; written atomically)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from edgecnn.data.augment import AugmentConfig, BatchAugment
from edgecnn.data.tensors import pixel_preprocessing
from edgecnn.runtime.preprocess import Preprocessing, preprocess_image


def preview_grid(
    data: Any,
    pre: Preprocessing,
    cfg: AugmentConfig,
    out_path: str | Path,
    *,
    samples: int = 8,
    rows: int = 4,
    seed: int = 0,
    scale: int = 4,
    train_load_size: int | None = None,
) -> Path:
    """Row 0: the first ``samples`` images as loaded; rows 1…: independent augmentations of the same images."""
    from PIL import Image

    n = min(samples, len(data))
    pix = pixel_preprocessing(pre, input_size=train_load_size)
    x = torch.from_numpy(np.stack([preprocess_image(data.image(i), pix) for i in range(n)]))
    y = F.one_hot(torch.as_tensor([data.label(i) for i in range(n)]), len(data.classes)).float()
    g = torch.Generator().manual_seed(seed)
    plain = BatchAugment(AugmentConfig(), output_size=pre.input_size)(x, y, g)[0]
    aug = BatchAugment(cfg, output_size=pre.input_size)
    grid = [plain] + [aug(x, y, g)[0] for _ in range(rows - 1)]
    pad = 2
    size = pre.input_size
    canvas = np.full((rows * (size + pad) + pad, n * (size + pad) + pad, 3), 255, np.uint8)
    for r, batch in enumerate(grid):
        arr = batch.numpy() / pre.scale  # back to 0…255 pixel values
        for c in range(n):
            img = np.clip(np.rint(arr[c].transpose(1, 2, 0)), 0, 255).astype(np.uint8)
            if img.shape[2] == 1:
                img = np.repeat(img, 3, 2)
            if pre.color == "BGR":
                img = img[:, :, ::-1]
            top, left = pad + r * (size + pad), pad + c * (size + pad)
            canvas[top : top + size, left : left + size] = img
    out = Path(out_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    image = Image.fromarray(canvas).resize((canvas.shape[1] * scale, canvas.shape[0] * scale), Image.NEAREST)
    fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".png", dir=out.parent)
    os.close(fd)
    try:
        image.save(tmp, format="PNG")
        os.replace(tmp, out)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return out
