"""What a training run is built from: the device, the model, the in-memory training set, AMP and the teacher.

Split from :mod:`edgecnn.train.trainer` so the trainer reads as the run's steps; each piece is a plain function of
the recipe, with no state of its own.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import Dataset

from edgecnn.data.images import ArrayImages
from edgecnn.data.tensors import PreprocessedImages, materialize
from edgecnn.errors import ConfigError
from edgecnn.runtime.preprocess import Preprocessing
from edgecnn.train.datasets import TrainData
from edgecnn.train.recipe import Recipe


class TargetSet(Dataset):
    """Training pixels + soft targets; in-memory arrays are preprocessed once, other sources per item."""

    def __init__(self, data: TrainData, pre: Preprocessing) -> None:
        k = len(data.classes)
        labels = torch.as_tensor([data.train.label(i) for i in range(len(data.train))], dtype=torch.int64)
        self.targets = (
            torch.as_tensor(data.train_targets, dtype=torch.float32)
            if data.train_targets is not None
            else F.one_hot(labels, k).float()
        )
        self.cached = isinstance(data.train, ArrayImages)
        self.pixels = materialize(data.train, pre)[0] if self.cached else None
        self.lazy = None if self.cached else PreprocessedImages(data.train, pre)

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.pixels[i] if self.pixels is not None else self.lazy[i][0]  # type: ignore[index]
        return x, self.targets[i]


def resolve_device(name: str) -> torch.device:
    """``train.device`` as a torch device; ``auto`` picks CUDA when there is one. Asking for a missing GPU fails."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(name)
    except RuntimeError:
        raise ConfigError(f"train.device {name!r} is not a device", hint="auto, cpu, cuda or cuda:N") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError("train.device asks for CUDA but no CUDA device is available", hint="use train.device='cpu'")
    return dev


def autocast_for(amp: str, device: torch.device) -> tuple[Callable[[], Any], torch.amp.GradScaler | None]:
    """bf16 (or fp16 with loss scaling) autocast where the device supports it; ``auto`` is off on CPU."""
    if amp == "off" or (amp == "auto" and device.type != "cuda"):
        return contextlib.nullcontext, None
    if amp == "auto":
        amp = "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    dtype = torch.bfloat16 if amp == "bf16" else torch.float16
    scaler = torch.amp.GradScaler(device.type) if dtype == torch.float16 else None
    return (lambda: torch.autocast(device.type, dtype=dtype)), scaler


def build_model(recipe: Recipe, num_classes: int, pre: Preprocessing) -> nn.Module:
    """The recipe's model with ``num_classes`` outputs, carrying the data's preprocessing."""
    from edgecnn.models.weights import load_weights
    from edgecnn.models.zoo import create_model

    m = recipe.model
    model = create_model(
        m.name,
        num_classes=num_classes,
        in_chans=pre.channels,
        width_mult=m.width_mult,
        depth_mult=m.depth_mult,
        dropout=m.dropout,
        drop_path_rate=m.drop_path_rate,
    )
    if m.head_init_scale is not None and isinstance(getattr(model, "classifier", None), nn.Linear):
        with torch.no_grad():  # timm's head_init_scale: small heads start near uniform predictions
            model.classifier.weight.mul_(m.head_init_scale)
            model.classifier.bias.mul_(m.head_init_scale)
    if m.weights:
        load_weights(model, m.weights)
    model.preprocessing = pre
    if recipe.train.bn_momentum is not None:
        for mod in model.modules():
            if isinstance(mod, nn.modules.batchnorm._BatchNorm):
                mod.momentum = recipe.train.bn_momentum
    return model


def load_teacher(recipe: Recipe, device: torch.device) -> nn.Module | None:
    """The ``[distill]`` teacher checkpoint in eval mode on ``device``, or None without one."""
    if not recipe.distill.teacher:
        return None
    from edgecnn.models.resolve import resolve_model

    teacher, _ = resolve_model(recipe.distill.teacher)
    return teacher.to(device).eval()
