"""From labelled images to torch tensors, through the one shared evaluation transform.

Evaluation inputs are exactly ``preprocess_image(image, pre)`` — the function the device runtime runs. Training
inputs use the same spec with mean 0 / std 1 (pixels in [0, 1] after ``scale``), so augmentations act on real
pixel values; :func:`normalize` then applies the spec's mean/std. Without augmentation the two paths give the same
tensors (a test checks it), so training cannot drift from deployment.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from edgecnn.runtime.preprocess import Preprocessing, preprocess_image


def pixel_preprocessing(pre: Preprocessing, *, input_size: int | None = None) -> Preprocessing:
    """``pre`` without mean/std (and optionally at another size): what training augmentations operate on."""
    c = pre.channels
    changed = pre if input_size is None or input_size == pre.input_size else pre.at_resolution(input_size)
    return dataclasses.replace(changed, mean=(0.0,) * c, std=(1.0,) * c, layout="NCHW")


def normalize(x: torch.Tensor, pre: Preprocessing) -> torch.Tensor:
    """Apply the spec's mean/std to an N×C×H×W batch of pixels already multiplied by ``pre.scale``."""
    mean = torch.tensor(pre.mean, dtype=x.dtype, device=x.device).view(1, -1, 1, 1)
    std = torch.tensor(pre.std, dtype=x.dtype, device=x.device).view(1, -1, 1, 1)
    return (x - mean) / std


class PreprocessedImages(Dataset):
    """A torch Dataset over any :class:`~edgecnn.data.images.LabelledImages`, decoding lazily (DataLoader workers)."""

    def __init__(self, data: Any, pre: Preprocessing) -> None:
        self.data, self.pre = data, dataclasses.replace(pre, layout="NCHW")
        self.classes = tuple(data.classes)

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        return torch.from_numpy(preprocess_image(self.data.image(index), self.pre)), self.data.label(index)


def materialize(data: Any, pre: Preprocessing) -> tuple[torch.Tensor, torch.Tensor]:
    """Every image preprocessed into one N×C×H×W float32 tensor plus int64 labels (for small in-memory sets)."""
    pre = dataclasses.replace(pre, layout="NCHW")
    xs = np.stack([preprocess_image(data.image(i), pre) for i in range(len(data))]) if len(data) else None
    x = torch.from_numpy(xs) if xs is not None else torch.empty(0, pre.channels, pre.input_size, pre.input_size)
    y = torch.as_tensor([data.label(i) for i in range(len(data))], dtype=torch.int64)
    return x, y
