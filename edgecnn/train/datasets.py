"""Recipe ``[data]`` → the train/val/test images, their class names and the evaluation preprocessing."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import numpy as np

from edgecnn.data.images import FolderImages, split
from edgecnn.data.sources import digits_preprocessing, embedded_digits, procedural_shapes, shapes_preprocessing
from edgecnn.errors import ConfigError
from edgecnn.runtime.preprocess import IMAGENET_MEAN, IMAGENET_STD, Preprocessing
from edgecnn.train.recipe import DataConfig


@dataclass(frozen=True, kw_only=True)
class TrainData:
    """What :func:`edgecnn.train.trainer.fit` trains and evaluates on.

    ``train_targets`` (N×K, rows summing to 1) replaces the train labels when given: pseudo-labels (Noisy
    Student) or any soft targets. ``val``/``test`` may be None.
    """

    train: Any
    val: Any | None
    test: Any | None
    classes: tuple[str, ...]
    preprocessing: Preprocessing
    train_targets: np.ndarray | None = None

    def __post_init__(self) -> None:
        if self.train_targets is not None and self.train_targets.shape != (len(self.train), len(self.classes)):
            raise ConfigError(
                f"train_targets must be {len(self.train)}×{len(self.classes)}, got {self.train_targets.shape}"
            )


def preprocessing_for(cfg: DataConfig) -> Preprocessing:
    """The evaluation transform a recipe asks for (the source's defaults, overridden key by key)."""
    if cfg.source == "embedded":
        base = digits_preprocessing(cfg.input_size)
    elif cfg.source == "shapes":
        base = shapes_preprocessing(cfg.input_size)
    else:
        base = Preprocessing(
            input_size=cfg.input_size,
            crop_mode="resize_crop",
            resize_size=round(cfg.input_size / 0.875),
            mean=IMAGENET_MEAN,
            std=IMAGENET_STD,
        )
    changes: dict[str, Any] = {"interpolation": cfg.interpolation}
    if cfg.source == "folder" or cfg.crop_mode != "resize":
        changes["crop_mode"] = cfg.crop_mode
    if cfg.resize_size is not None:
        changes["resize_size"] = cfg.resize_size
    if cfg.crop_fraction is not None:
        changes["crop_fraction"] = cfg.crop_fraction
    if cfg.mean is not None:
        changes["mean"] = cfg.mean
    if cfg.std is not None:
        changes["std"] = cfg.std
    try:
        return dataclasses.replace(base, **changes)
    except ConfigError as e:
        raise ConfigError(f"data: {e.message}", hint=e.hint) from None


def load_data(cfg: DataConfig) -> TrainData:
    """Load and split the recipe's data deterministically (``split_seed``)."""
    pre = preprocessing_for(cfg)
    if cfg.source == "folder" and cfg.val_path:
        train = FolderImages.scan(cfg.path)  # type: ignore[arg-type]
        val = FolderImages.scan(cfg.val_path)
        test = FolderImages.scan(cfg.test_path) if cfg.test_path else None
        if val.classes != train.classes:
            raise ConfigError("data.val_path has other class folders than data.path", hint="use the same class names")
        return TrainData(train=train, val=val, test=test, classes=train.classes, preprocessing=pre)
    if cfg.source == "embedded":
        full: Any = embedded_digits()
    elif cfg.source == "shapes":
        full = procedural_shapes(cfg.samples or 600, size=max(16, cfg.input_size), seed=cfg.split_seed)
    else:
        full = FolderImages.scan(cfg.path)  # type: ignore[arg-type]
    if cfg.samples is not None and cfg.samples < len(full):
        full = full.subset(np.sort(np.random.default_rng(cfg.split_seed).permutation(len(full))[: cfg.samples]))
    s = split(full, val_fraction=cfg.val_fraction, test_fraction=cfg.test_fraction, seed=cfg.split_seed)
    return TrainData(
        train=s.train,
        val=s.val if len(s.val) else None,
        test=s.test if len(s.test) else None,
        classes=full.classes,
        preprocessing=pre,
    )
