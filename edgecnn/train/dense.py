"""Training for dense tasks (segmentation, super-resolution): the recipe's model, optimizer, cosine schedule, EMA
and checkpoints, stepped by the shared :class:`~edgecnn.train.loop.StepLoop` — only the data, the loss and the
metrics differ from classification. :func:`edgecnn.train.trainer.fit` hands a recipe here when its model's task
is not classification.

Segmentation batches are augmented jointly (:class:`edgecnn.data.segmentation.JointAugment`) and scored with mIoU
/ pixel accuracy; super-resolution batches are fresh random patch pairs each epoch, scored by PSNR / SSIM on the
held-out photos' Y channel against bicubic upscaling.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from edgecnn.data.segmentation import JointAugment, SegArrays, embedded_canvas_splits, load_seg_folder
from edgecnn.data.sources import MNIST_MEAN, MNIST_STD
from edgecnn.errors import ConfigError
from edgecnn.runtime.preprocess import IMAGENET_MEAN, IMAGENET_STD, Preprocessing
from edgecnn.train.checkpoint import save_checkpoint
from edgecnn.train.dense_metrics import ConfusionMatrix, psnr, ssim
from edgecnn.train.ema import ModelEma
from edgecnn.train.logs import EpochLog
from edgecnn.train.loop import StepLoop
from edgecnn.train.losses import dense_loss
from edgecnn.train.optim import build_optimizer, schedule
from edgecnn.train.recipe import Recipe

logger = logging.getLogger(__name__)
SEG_LOSSES, SR_LOSSES = ("cross_entropy", "dice", "ce_dice"), ("l1", "l2")
SR_TILE = 128  # low-resolution tile of exported super-resolution bundles


@dataclass(frozen=True, kw_only=True)
class DenseData:
    """What a dense run trains and scores on. Segmentation: ``SegArrays``; super-resolution: ``train`` is the
    photo names patches are cut from, ``val``/``test`` lists of (name, LR Y, HR Y)."""

    task: str
    train: Any
    val: Any
    test: Any
    classes: tuple[str, ...]
    preprocessing: Preprocessing
    scale: int = 1


@dataclass(frozen=True, kw_only=True)
class DenseResult:
    checkpoint: Path
    epochs: int
    wall_time_s: float
    test: dict[str, Any]
    history: list[dict[str, Any]] = field(default_factory=list)


def load_dense_data(recipe: Recipe, task: str, scale: int = 1) -> DenseData:
    """The recipe's ``[data]`` for a segmentation or super-resolution model."""
    d, dn = recipe.data, recipe.dense
    if task == "segmentation":
        if d.source == "canvases":
            train, val, test = embedded_canvas_splits(
                train=dn.train_samples,
                val=dn.eval_samples,
                test=dn.eval_samples,
                size=dn.canvas_size,
                seed=d.split_seed,
            )
            mean, std = (MNIST_MEAN,) * 3, (MNIST_STD,) * 3
        elif d.source == "seg_folder":
            full = load_seg_folder(d.path, size=d.input_size)  # type: ignore[arg-type]
            order = np.random.default_rng(d.split_seed).permutation(len(full))
            n_val, n_test = int(round(d.val_fraction * len(full))), int(round(d.test_fraction * len(full)))
            val, test = full.subset(order[:n_val]), full.subset(order[n_val : n_val + n_test])
            train = full.subset(order[n_val + n_test :])
            mean, std = IMAGENET_MEAN, IMAGENET_STD
        else:
            raise ConfigError(f"a segmentation model needs data.source canvases or seg_folder, not {d.source!r}")
        size = train.images.shape[1]
        pre = Preprocessing(
            input_size=size, crop_mode="resize", resize_size=None, mean=d.mean or mean, std=d.std or std
        )
        return DenseData(task=task, train=train, val=val, test=test, classes=train.classes, preprocessing=pre)
    if task == "super_resolution":
        from edgecnn.data import superres as sr

        if d.source == "photos":
            train_names, held = sr.TRAIN_PHOTOS, sr.eval_pairs(scale)
        else:
            raise ConfigError(f"a super-resolution model needs data.source photos, not {d.source!r}")
        # input_size: the tile a static bundle runs (the runtime tiles larger images), not the training patch
        pre = Preprocessing(
            input_size=SR_TILE, color="L", crop_mode="resize", resize_size=None, mean=(0.0,), std=(1.0,)
        )
        return DenseData(task=task, train=train_names, val=held, test=held, classes=(), preprocessing=pre, scale=scale)
    raise ConfigError(f"task {task!r} has no dense trainer")


def evaluate_segmentation(
    predict: Callable[[np.ndarray], np.ndarray], data: SegArrays, num_classes: int, *, batch: int = 64
) -> dict[str, Any]:
    """Scores of ``predict`` (uint8 N×H×W×3 → N×H×W class indices) on ``data``."""
    cm = ConfusionMatrix(num_classes)
    for i in range(0, len(data), batch):
        cm.update(data.masks[i : i + batch], predict(data.images[i : i + batch]))
    return cm.scores()


def evaluate_sr(upscale: Callable[[np.ndarray], np.ndarray], pairs: list, scale: int) -> dict[str, Any]:
    """PSNR / SSIM (Y, ``scale`` px shaved) of ``upscale`` (LR H×W float → HR) and of bicubic on ``pairs``."""
    from edgecnn.data.superres import bicubic

    rows = []
    for name, lr, hr in pairs:
        out = np.clip(upscale(lr), 0, 1)
        bic = np.clip(bicubic(lr, hr.shape), 0, 1)
        rows.append(
            {
                "photo": name,
                "psnr": psnr(out, hr, border=scale),
                "ssim": ssim(out, hr, border=scale),
                "bicubic_psnr": psnr(bic, hr, border=scale),
                "bicubic_ssim": ssim(bic, hr, border=scale),
            }
        )
    mean = {k: float(np.mean([r[k] for r in rows])) for k in ("psnr", "ssim", "bicubic_psnr", "bicubic_ssim")}
    return {**mean, "gain_db": mean["psnr"] - mean["bicubic_psnr"], "photos": rows}


def torch_predictor(model: nn.Module, pre: Preprocessing) -> Callable[[np.ndarray], np.ndarray]:
    """uint8 N×H×W×3 → argmax class indices with the PyTorch model (eval mode, the shipped normalisation)."""
    mean = torch.tensor(pre.mean).view(1, -1, 1, 1)
    std = torch.tensor(pre.std).view(1, -1, 1, 1)

    def predict(images: np.ndarray) -> np.ndarray:
        x = (torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255 - mean) / std
        with torch.no_grad():
            return model.eval()(x).argmax(1).numpy()

    return predict


def torch_upscaler(model: nn.Module) -> Callable[[np.ndarray], np.ndarray]:
    def upscale(lr: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return model.eval()(torch.from_numpy(np.array(lr, np.float32))[None, None])[0, 0].numpy()

    return upscale


def fit_dense(
    recipe: Recipe,
    out_dir: str | Path,
    *,
    data: DenseData | None = None,
    report: Callable[[str], None] | None = None,
    model: nn.Module | None = None,
) -> DenseResult:
    """Train ``recipe`` (a segmentation or super-resolution model) into ``out_dir``; returns test scores."""
    from edgecnn.models.zoo import create_model, get_model_entry

    t_start = time.perf_counter()
    report = report or logger.info
    cfg, dn = recipe.train, recipe.dense
    entry = get_model_entry(recipe.model.name)
    task = entry.task
    scale = 1
    if task == "super_resolution":
        scale = int(recipe.model.name.rsplit("_x", 1)[1])
    losses = SEG_LOSSES if task == "segmentation" else SR_LOSSES
    if dn.loss not in losses:
        raise ConfigError(f"dense.loss {dn.loss!r} does not fit a {task} model", hint=f"use one of {', '.join(losses)}")
    saved_threads = torch.get_num_threads()
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    try:
        data = data or load_dense_data(recipe, task, scale)
        torch.manual_seed(cfg.seed)
        net = model or create_model(
            recipe.model.name,
            num_classes=len(data.classes) if task == "segmentation" else None,
            in_chans=data.preprocessing.channels,
            width_mult=recipe.model.width_mult,
            depth_mult=recipe.model.depth_mult,
            drop_path_rate=recipe.model.drop_path_rate,
        )
        if recipe.model.weights:
            from edgecnn.models.weights import load_weights

            load_weights(net, recipe.model.weights)
        if cfg.bn_momentum is not None:
            for mod in net.modules():
                if isinstance(mod, nn.modules.batchnorm._BatchNorm):
                    mod.momentum = cfg.bn_momentum
        net.preprocessing = data.preprocessing
        net.classes = data.classes
        return _run(recipe, Path(out_dir), data, net, report, t_start)
    finally:
        torch.set_num_threads(saved_threads)


def _batches(recipe: Recipe, data: DenseData, epoch: int, gen: torch.Generator):
    """This epoch's (x, y) batches: augmented, normalised canvases and masks, or fresh LR/HR patch pairs."""
    bs, dn = recipe.data.batch_size, recipe.dense
    if data.task == "segmentation":
        pre = data.preprocessing
        mean, std = torch.tensor(pre.mean).view(1, -1, 1, 1), torch.tensor(pre.std).view(1, -1, 1, 1)
        aug = JointAugment(
            hflip_p=dn.hflip_p,
            scale=dn.scale_range,
            rotate_degrees=dn.rotate_degrees,
            translate=dn.translate,
            brightness=dn.brightness,
            contrast=dn.contrast,
        )
        order = torch.randperm(len(data.train), generator=gen).numpy()
        for i in range(0, len(order) - bs + 1, bs):
            idx = np.sort(order[i : i + bs])
            x = torch.from_numpy(data.train.images[idx]).permute(0, 3, 1, 2).float() / 255
            y = torch.from_numpy(data.train.masks[idx].astype(np.int64))
            x, y = aug(x, y, gen)
            yield (x - mean) / std, y
        return
    from edgecnn.data.superres import sr_patches

    seed = int(torch.randint(0, 2**31 - 1, (1,), generator=gen))
    lr, hr = sr_patches(data.train, data.scale, n=dn.train_samples, lr_patch=dn.patch_size, seed=seed)
    for i in range(0, len(lr) - bs + 1, bs):
        yield torch.from_numpy(lr[i : i + bs]), torch.from_numpy(hr[i : i + bs])


def _score(net: nn.Module, data: DenseData, split: Any) -> dict[str, Any]:
    if data.task == "segmentation":
        return evaluate_segmentation(torch_predictor(net, data.preprocessing), split, len(data.classes))
    return evaluate_sr(torch_upscaler(net), split, data.scale)


def _headline(task: str, s: dict[str, Any]) -> str:
    if task == "segmentation":
        return f"mIoU {100 * s['miou']:.2f}%  pixel acc {100 * s['pixel_accuracy']:.2f}%"
    return f"PSNR(Y) {s['psnr']:.2f} dB (bicubic {s['bicubic_psnr']:.2f}, {s['gain_db']:+.2f})  SSIM {s['ssim']:.4f}"


def _run(recipe: Recipe, out: Path, data: DenseData, net: nn.Module, report, t_start: float) -> DenseResult:
    cfg, dn = recipe.train, recipe.dense
    bs = recipe.data.batch_size
    n_train = len(data.train) if data.task == "segmentation" else dn.train_samples
    steps_per_epoch = n_train // bs
    if steps_per_epoch < 1:
        raise ConfigError(f"only {n_train} training samples for data.batch_size {bs}", hint="lower data.batch_size")
    optimizer = build_optimizer(net, recipe.optim)
    ema = ModelEma(net, cfg.ema_decay) if cfg.ema_decay > 0 else None
    base = dense_loss(dn.loss, ignore_index=dn.ignore_index, dice_weight=dn.dice_weight)
    loop = StepLoop(
        optimizer=optimizer,
        loss_fn=lambda out_, _x, y: base(out_, y),
        lr_at=schedule(
            recipe.optim,
            total_steps=steps_per_epoch * recipe.optim.epochs,
            warmup_steps=round(recipe.optim.warmup_epochs * steps_per_epoch),
        ),
        grad_clip=cfg.grad_clip,
        after_step=(lambda: ema.update(net)) if ema is not None else None,
        freeze_bn=cfg.freeze_bn,
        name="training",
        hint="lower optim.lr or enable train.grad_clip",
    )
    log = EpochLog(out / "log.jsonl", resume_epoch=0)
    history: list[dict[str, Any]] = []
    step = 0
    eval_net = ema.module if ema is not None else net
    for epoch in range(recipe.optim.epochs):
        t0 = time.perf_counter()
        gen = torch.Generator().manual_seed(cfg.seed * 1_000_003 + epoch)
        stats = loop.run_epoch(net, _batches(recipe, data, epoch, gen), epoch=epoch, step=step)
        step = stats.step
        row: dict[str, Any] = {"epoch": epoch + 1, "step": step, "train_loss": stats.mean_loss}
        last = epoch == recipe.optim.epochs - 1
        if data.val is not None and (last or data.task == "segmentation"):
            val = _score(eval_net, data, data.val)
            row.update({f"val_{k}": v for k, v in val.items() if isinstance(v, float)})
            report(
                f"epoch {epoch + 1}/{recipe.optim.epochs}  loss {stats.mean_loss:.4f}  val {_headline(data.task, val)}"
            )
        else:
            report(f"epoch {epoch + 1}/{recipe.optim.epochs}  loss {stats.mean_loss:.4f}")
        row["epoch_time_s"] = round(time.perf_counter() - t0, 3)
        history.append(row)
        log.append(row)
    test = _score(eval_net, data, data.test)
    report(f"test: {_headline(data.task, test)}")
    for attr in ("edgecnn_name", "edgecnn_options", "default_resolution", "task", "preprocessing", "classes"):
        if hasattr(net, attr):
            setattr(eval_net, attr, getattr(net, attr))
    sidecar = {
        "arch": {"name": recipe.model.name},
        "task": data.task,
        "epoch": recipe.optim.epochs,
        "step": step,
        "recipe": recipe.to_dict(),
        "classes": list(data.classes),
        "preprocessing": data.preprocessing.to_dict(),
        "metrics": {k: v for k, v in test.items() if isinstance(v, float)},
    }
    weights = save_checkpoint(out, "model", eval_model=eval_net, classes=list(data.classes), sidecar=sidecar)
    return DenseResult(
        checkpoint=weights,
        epochs=recipe.optim.epochs,
        wall_time_s=time.perf_counter() - t_start,
        test=test,
        history=history,
    )
