"""The trainer: one epoch loop that single-process, DDP, distillation and Noisy Student all share.

What a run does, in order: build the model from ``[model]``, the data from ``[data]`` (or the given
:class:`TrainData`), the optimizer and the step-wise cosine schedule from ``[optim]``; then, per epoch, shard the
data (DistributedSampler), augment on pixels (``[augment]``), normalize with the shipped preprocessing, step,
update the EMA, evaluate top-1/top-5 on the validation set with the shared torch-free evaluation transform, append
the JSONL log, redraw the curves and write a resumable checkpoint.

Determinism: every random draw in epoch *e* comes from generators seeded by (seed, e, rank) and the step counter
lives in the checkpoint, so an interrupted run resumed from its last checkpoint ends with bit-identical weights.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from edgecnn.data.augment import BatchAugment
from edgecnn.data.images import ArrayImages
from edgecnn.data.tensors import PreprocessedImages, materialize, normalize, pixel_preprocessing
from edgecnn.errors import ConfigError
from edgecnn.runtime.preprocess import Preprocessing
from edgecnn.train.checkpoint import load_train_state, save_checkpoint
from edgecnn.train.datasets import TrainData, load_data
from edgecnn.train.distill import distillation_loss, soft_cross_entropy
from edgecnn.train.distributed import DistEnv, barrier, init_distributed, shutdown
from edgecnn.train.ema import ModelEma
from edgecnn.train.evaluate import evaluate, predict_proba  # noqa: F401  (re-exported)
from edgecnn.train.logs import EpochLog, plot_curves
from edgecnn.train.optim import build_optimizer, lr_at, set_lr
from edgecnn.train.recipe import Recipe

logger = logging.getLogger(__name__)
Report = Callable[[str], None]
PLOT_EVERY_S = 20.0  # redraw curves.png at most this often (and after the last epoch); log.jsonl gets every epoch


@dataclass(frozen=True, kw_only=True)
class TrainResult:
    """What a finished (or stopped) run produced."""

    checkpoint: Path  # evaluation weights (EMA weights when EMA is on)
    epochs: int  # epochs completed
    val_top1: float | None
    test_top1: float | None
    test_top5: float | None
    wall_time_s: float
    images_per_s: float  # training throughput (all processes)
    history: list[dict[str, Any]] = field(default_factory=list)


class _TargetSet(Dataset):
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
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(name)
    except RuntimeError:
        raise ConfigError(f"train.device {name!r} is not a device", hint="auto, cpu, cuda or cuda:N") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError("train.device asks for CUDA but no CUDA device is available", hint="use train.device='cpu'")
    return dev


def _autocast(amp: str, device: torch.device) -> tuple[Callable[[], Any], Any]:
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


def _seed_for(seed: int, epoch: int, rank: int) -> int:
    return (seed * 1_000_003 + epoch * 7919 + rank * 104_729) % (2**63 - 1)


def fit(
    recipe: Recipe,
    out_dir: str | Path,
    *,
    data: TrainData | None = None,
    resume: bool = False,
    stop_after_epoch: int | None = None,
    report: Report | None = None,
    model: nn.Module | None = None,
    teacher: nn.Module | None = None,
) -> TrainResult:
    """Train ``recipe`` into ``out_dir`` (checkpoints, ``log.jsonl``, ``curves.png``) and evaluate on the test set.

    ``resume`` continues from ``out_dir/last.*``; ``stop_after_epoch`` ends the run early (as an interruption
    would) after writing that epoch's checkpoint. Under ``torchrun`` the run is data-parallel over all processes.
    """
    t_start = time.perf_counter()
    cfg = recipe.train
    report = report or logger.info
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"run directory {str(out)!r} is a file", hint="pass a directory for --out")
    device = resolve_device(cfg.device)
    owns_group = not (dist.is_available() and dist.is_initialized())
    env = init_distributed(device)
    if env.enabled and device.type == "cuda":
        device = torch.device("cuda", env.local_rank)
    saved = (
        torch.get_num_threads(),
        torch.are_deterministic_algorithms_enabled(),
        torch.is_deterministic_algorithms_warn_only_enabled(),
    )
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    if cfg.deterministic:
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark = False
    try:
        return _fit(
            recipe,
            out,
            env,
            device,
            owns_group,
            data=data,
            resume=resume,
            stop_after_epoch=stop_after_epoch,
            report=report,
            model=model,
            teacher=teacher,
            t_start=t_start,
        )
    finally:  # fit() leaves the process's torch settings as it found them
        torch.set_num_threads(saved[0])
        torch.use_deterministic_algorithms(saved[1], warn_only=saved[2])


def _fit(
    recipe: Recipe,
    out: Path,
    env: DistEnv,
    device: torch.device,
    owns_group: bool,
    *,
    data: TrainData | None,
    resume: bool,
    stop_after_epoch: int | None,
    report: Report,
    model: nn.Module | None,
    teacher: nn.Module | None,
    t_start: float,
) -> TrainResult:
    cfg = recipe.train
    if recipe.data.batch_size % env.world_size:
        raise ConfigError(
            f"data.batch_size {recipe.data.batch_size} is not divisible by the {env.world_size} processes",
            hint="data.batch_size is the global batch; make it a multiple of the process count",
        )

    data = data or load_data(recipe.data)
    pre = data.preprocessing
    torch.manual_seed(cfg.seed)
    net = model if model is not None else build_model(recipe, len(data.classes), pre)
    net.preprocessing = pre
    net = net.to(device)
    if cfg.channels_last:
        net = net.to(memory_format=torch.channels_last)
    optimizer = build_optimizer(net, recipe.optim)
    ema = ModelEma(net, cfg.ema_decay) if cfg.ema_decay > 0 else None

    train_set = _TargetSet(data, pixel_preprocessing(pre, input_size=recipe.data.train_load_size))
    per_rank = recipe.data.batch_size // env.world_size
    if len(train_set) // env.world_size < per_rank:
        raise ConfigError(
            f"only {len(train_set)} training images for a global batch of {recipe.data.batch_size}",
            hint="lower data.batch_size",
        )
    sampler = DistributedSampler(
        train_set, num_replicas=env.world_size, rank=env.rank, shuffle=True, seed=cfg.seed, drop_last=False
    )
    loader = DataLoader(
        train_set, batch_size=per_rank, sampler=sampler, drop_last=True, num_workers=recipe.data.workers
    )
    steps_per_epoch = len(loader)
    total_steps = steps_per_epoch * recipe.optim.epochs
    warmup_steps = round(recipe.optim.warmup_epochs * steps_per_epoch)

    start_epoch, step = 0, 0
    if resume and (out / "last.json").exists():
        state = load_train_state(out / "last.state.safetensors")
        net.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        if ema is not None and state["ema"] is not None:
            ema.load_state_dict(state["ema"], state["progress"]["ema_updates"])
        start_epoch, step = state["progress"]["epoch"], state["progress"]["step"]
        if env.is_main:
            report(f"resumed from {out / 'last.json'} at epoch {start_epoch} (step {step})")

    train_net: nn.Module = net
    if env.enabled:
        if cfg.sync_bn and device.type == "cuda":
            train_net = nn.SyncBatchNorm.convert_sync_batchnorm(net)
        train_net = nn.parallel.DistributedDataParallel(
            train_net, device_ids=[env.local_rank] if device.type == "cuda" else None
        )
    autocast, scaler = _autocast(cfg.amp, device)
    augment = BatchAugment(recipe.augment, output_size=pre.input_size)
    teacher = teacher if teacher is not None else _load_teacher(recipe, device)
    log = EpochLog(out / "log.jsonl", resume_epoch=start_epoch) if env.is_main else None
    history = list(log.rows) if log else []
    seen, train_time = 0, 0.0
    classes = list(data.classes)
    last_epoch = recipe.optim.epochs if stop_after_epoch is None else min(stop_after_epoch, recipe.optim.epochs)
    val_metrics: dict[str, float] | None = None
    weights = out / "last.safetensors"

    last_plot = time.perf_counter()
    for epoch in range(start_epoch, last_epoch):
        t0 = time.perf_counter()
        sampler.set_epoch(epoch)
        torch.manual_seed(_seed_for(cfg.seed, epoch, env.rank))
        gen = torch.Generator().manual_seed(_seed_for(cfg.seed + 1, epoch, env.rank))
        train_net.train()
        if cfg.freeze_bn:
            for mod in net.modules():
                if isinstance(mod, nn.modules.batchnorm._BatchNorm):
                    mod.eval()
        loss_sum, n_batches = 0.0, 0
        batches = _progress(loader, enabled=cfg.progress and env.is_main, desc=f"epoch {epoch + 1}")
        for x, y in batches:
            x, y = augment(x, y, gen)
            x = normalize(x, pre).to(device, non_blocking=True)
            y = y.to(device, non_blocking=True)
            if cfg.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            set_lr(
                optimizer,
                lr_at(
                    step, total_steps=total_steps, warmup_steps=warmup_steps, base_lr=recipe.optim.lr, cfg=recipe.optim
                ),
            )
            with autocast():
                logits = train_net(x)
                if teacher is not None:
                    with torch.no_grad():
                        t_logits = teacher(x)
                    loss = distillation_loss(
                        logits,
                        t_logits,
                        y,
                        temperature=recipe.distill.temperature,
                        alpha=recipe.distill.alpha,
                        label_smoothing=cfg.label_smoothing,
                    )
                else:
                    loss = soft_cross_entropy(logits, y, label_smoothing=cfg.label_smoothing)
            optimizer.zero_grad(set_to_none=True)
            if scaler is not None:
                scaler.scale(loss).backward()
                scaler.unscale_(optimizer)
            else:
                loss.backward()
            if cfg.grad_clip > 0:
                nn.utils.clip_grad_norm_(net.parameters(), cfg.grad_clip)
            if scaler is not None:
                scaler.step(optimizer)
                scaler.update()
            else:
                optimizer.step()
            if ema is not None:
                ema.update(net)
            if not math.isfinite(loss.item()):
                raise ConfigError(
                    f"training diverged at epoch {epoch + 1}, step {step} (loss {loss.item()})",
                    hint="lower optim.lr or enable train.grad_clip",
                )
            loss_sum += loss.item()
            n_batches += 1
            step += 1
            seen += len(x) * env.world_size
        epoch_train_s = time.perf_counter() - t0
        train_time += epoch_train_s
        eval_net = ema.module if ema is not None else net
        row: dict[str, Any] = {
            "epoch": epoch + 1,
            "step": step,
            "lr": optimizer.param_groups[0]["lr"],
            "train_loss": loss_sum / max(n_batches, 1),
        }
        if env.is_main:
            if data.val is not None:
                val_metrics = evaluate(
                    eval_net,
                    data.val,
                    pre,
                    batch_size=recipe.data.eval_batch_size,
                    device=device,
                    channels_last=cfg.channels_last,
                )
                row.update(val_loss=val_metrics["loss"], val_top1=val_metrics["top1"], val_top5=val_metrics["top5"])
            row["epoch_time_s"] = round(time.perf_counter() - t0, 3)
            row["train_images_per_s"] = round(n_batches * recipe.data.batch_size / max(1e-9, epoch_train_s), 1)
            history.append(row)
            assert log is not None
            log.append(row)
            if epoch + 1 == last_epoch or time.perf_counter() - last_plot > PLOT_EVERY_S:  # matplotlib is slow
                plot_curves(history, out / "curves.png", title=f"{recipe.model.name} — {out.name}")
                last_plot = time.perf_counter()
            report(_epoch_line(row, recipe.optim.epochs))
            if (epoch + 1) % cfg.checkpoint_every == 0 or epoch + 1 == last_epoch:
                weights = _write(out, "last", recipe, net, eval_net, optimizer, ema, classes, pre, row, step)
        barrier(env)

    wall = time.perf_counter() - t_start
    test = None
    if env.is_main:
        eval_net = ema.module if ema is not None else net
        if last_epoch == recipe.optim.epochs and data.test is not None:
            test = evaluate(
                eval_net,
                data.test,
                pre,
                batch_size=recipe.data.eval_batch_size,
                device=device,
                channels_last=cfg.channels_last,
            )
            report(f"test: top-1 {100 * test['top1']:.2f}%  top-5 {100 * test['top5']:.2f}%  ({test['n']} images)")
        if last_epoch == recipe.optim.epochs:
            metrics = {
                **(history[-1] if history else {}),
                **({"test_top1": test["top1"], "test_top5": test["top5"], "test_n": test["n"]} if test else {}),
            }
            weights = _write(out, "model", recipe, net, eval_net, None, None, classes, pre, metrics, step)
    barrier(env)
    if owns_group:
        shutdown(env)
    return TrainResult(
        checkpoint=weights,
        epochs=last_epoch,
        val_top1=history[-1].get("val_top1") if history else None,
        test_top1=test["top1"] if test else None,
        test_top5=test["top5"] if test else None,
        wall_time_s=wall,
        images_per_s=seen / train_time if train_time else 0.0,
        history=history,
    )


def _write(
    out: Path,
    name: str,
    recipe: Recipe,
    net: nn.Module,
    eval_net: nn.Module,
    optimizer: torch.optim.Optimizer | None,
    ema: ModelEma | None,
    classes: list[str],
    pre: Preprocessing,
    metrics: dict[str, Any],
    step: int,
) -> Path:
    """One checkpoint (see :mod:`edgecnn.train.checkpoint`); with ``optimizer`` it is resumable."""
    epoch = int(metrics.get("epoch", 0))
    sidecar = {
        "arch": {"name": recipe.model.name, "options": dataclasses.asdict(net.edgecnn_options)}
        if hasattr(net, "edgecnn_options")
        else {"name": recipe.model.name},
        "epoch": epoch,
        "step": step,
        "recipe": recipe.to_dict(),
        "classes": classes,
        "preprocessing": pre.to_dict(),
        "metrics": metrics,
    }
    state = None
    if optimizer is not None:
        state = {
            "model": net.state_dict(),
            "ema": ema.state_dict() if ema is not None else None,
            "optimizer": optimizer.state_dict(),
            "progress": {"epoch": epoch, "step": step, "ema_updates": ema.updates if ema is not None else 0},
        }
    eval_net.preprocessing = pre
    for attr in ("edgecnn_name", "edgecnn_options", "default_resolution"):
        if hasattr(net, attr):
            setattr(eval_net, attr, getattr(net, attr))
    return save_checkpoint(out, name, eval_model=eval_net, classes=classes, sidecar=sidecar, train_state=state)


def _load_teacher(recipe: Recipe, device: torch.device) -> nn.Module | None:
    if not recipe.distill.teacher:
        return None
    from edgecnn.models.resolve import resolve_model

    teacher, _ = resolve_model(recipe.distill.teacher)
    return teacher.to(device).eval()


def _progress(it: Any, *, enabled: bool, desc: str) -> Any:
    if not enabled:
        return it
    try:
        from tqdm.auto import tqdm
    except ImportError:  # pragma: no cover
        return it
    return tqdm(it, desc=desc, leave=False, dynamic_ncols=True)


def _epoch_line(row: dict[str, Any], epochs: int) -> str:
    parts = [f"epoch {row['epoch']}/{epochs}", f"loss {row['train_loss']:.4f}"]
    if "val_top1" in row:
        parts.append(f"val top-1 {100 * row['val_top1']:.2f}%")
    parts.append(f"{row['epoch_time_s']:.1f}s")
    return "  ".join(parts)
