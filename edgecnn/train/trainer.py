"""The trainer: the recipe's run, which single-process, DDP, distillation and Noisy Student all go through.

What a run does, in order: build the model from ``[model]``, the data from ``[data]`` (or the given
:class:`TrainData`), the optimizer and the step-wise cosine schedule from ``[optim]``; then, per epoch, shard the
data (DistributedSampler), augment on pixels (``[augment]``), normalize with the shipped preprocessing, step (the
shared :class:`~edgecnn.train.loop.StepLoop`, which QAT fine-tuning uses too), update the EMA, evaluate top-1/top-5
on the validation set with the shared torch-free evaluation transform, append the JSONL log, redraw the curves and
write a resumable checkpoint.

Determinism: every random draw in epoch *e* comes from generators seeded by (seed, e, rank) and the step counter
lives in the checkpoint, so an interrupted run resumed from its last checkpoint ends with bit-identical weights.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import DataLoader, DistributedSampler

from edgecnn.data.augment import BatchAugment
from edgecnn.data.tensors import normalize, pixel_preprocessing
from edgecnn.errors import ConfigError
from edgecnn.train.build import TargetSet, autocast_for, build_model, load_teacher, resolve_device
from edgecnn.train.checkpoint import load_train_state, save_checkpoint
from edgecnn.train.datasets import TrainData, load_data
from edgecnn.train.distill import objective
from edgecnn.train.distributed import DistEnv, barrier, init_distributed, shutdown
from edgecnn.train.ema import ModelEma
from edgecnn.train.evaluate import evaluate, predict_proba  # noqa: F401  (re-exported)
from edgecnn.train.logs import EpochLog, plot_curves
from edgecnn.train.loop import EpochStats, StepLoop
from edgecnn.train.optim import build_optimizer, schedule
from edgecnn.train.recipe import Recipe

__all__ = ["TrainResult", "build_model", "evaluate", "fit", "predict_proba", "resolve_device"]

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


@dataclass(kw_only=True)
class _Run:
    """The state the steps of one run share: what setup built, where the run stands, and what it has logged."""

    recipe: Recipe
    out: Path
    env: DistEnv
    device: torch.device
    report: Report
    data: TrainData
    net: nn.Module  # the model itself (checkpointed, EMA-tracked)
    train_net: nn.Module  # what steps run on: ``net``, or its DDP wrapper
    optimizer: torch.optim.Optimizer
    ema: ModelEma | None
    sampler: DistributedSampler
    loader: DataLoader
    augment: BatchAugment
    loop: StepLoop
    log: EpochLog | None  # rank 0 only
    start_epoch: int
    last_epoch: int  # the epoch the run stops after (``optim.epochs`` unless stopped early)
    step: int  # global optimizer step
    history: list[dict[str, Any]]
    weights: Path  # the latest checkpoint's evaluation weights
    seen: int = 0
    train_time: float = 0.0
    last_plot: float = 0.0

    @property
    def eval_net(self) -> nn.Module:
        """The weights that are evaluated and shipped: the EMA's when EMA is on."""
        return self.ema.module if self.ema is not None else self.net


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
    if model is None:
        from edgecnn.models.zoo import get_model_entry

        task = get_model_entry(recipe.model.name).task
        if task != "classification":
            raise ConfigError(
                f"{recipe.model.name} is a {task} model; fit() trains classifiers",
                hint="use edgecnn.train.dense.fit_dense (what `edgecnn train run` does for dense models)",
            )
    report = report or logger.info
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"run directory {str(out)!r} is a file", hint="pass a directory for --out")
    if resume and not (out / "last.json").is_file():
        raise ConfigError(
            f"--resume: {str(out)!r} holds no checkpoint to resume (no last.json)",
            hint="drop --resume to start a new run, or pass the run directory of an interrupted run",
        )
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
    """Set the run up, train its epochs (each evaluated, logged and checkpointed on rank 0), then finish it."""
    run = _setup(recipe, out, env, device, data=data, model=model, teacher=teacher, report=report, resume=resume)
    if stop_after_epoch is not None:
        run.last_epoch = min(stop_after_epoch, recipe.optim.epochs)
    run.last_plot = time.perf_counter()
    for epoch in range(run.start_epoch, run.last_epoch):
        t0 = time.perf_counter()
        stats = _train_epoch(run, epoch)
        train_s = time.perf_counter() - t0
        run.train_time += train_s
        if env.is_main:
            _record_epoch(run, _epoch_row(run, epoch, stats, t0=t0, train_s=train_s))
        barrier(env)
    wall = time.perf_counter() - t_start
    test = _finish(run) if env.is_main else None
    barrier(env)
    if owns_group:
        shutdown(env)
    return TrainResult(
        checkpoint=run.weights,
        epochs=run.last_epoch,
        val_top1=run.history[-1].get("val_top1") if run.history else None,
        test_top1=test["top1"] if test else None,
        test_top5=test["top5"] if test else None,
        wall_time_s=wall,
        images_per_s=run.seen / run.train_time if run.train_time else 0.0,
        history=run.history,
    )


def _setup(
    recipe: Recipe,
    out: Path,
    env: DistEnv,
    device: torch.device,
    *,
    data: TrainData | None,
    model: nn.Module | None,
    teacher: nn.Module | None,
    report: Report,
    resume: bool,
) -> _Run:
    """Everything the epochs need, in the order that fixes the seeded initialisation: the global-batch check, data,
    model, optimizer, EMA, loader, the resumed state, the DDP wrapper, the step loop and the log."""
    cfg = recipe.train
    if recipe.data.batch_size % env.world_size:
        raise ConfigError(
            f"data.batch_size {recipe.data.batch_size} is not divisible by the {env.world_size} processes",
            hint="data.batch_size is the global batch; make it a multiple of the process count",
        )
    data = data or load_data(recipe.data)
    net = _place_model(recipe, data, device, model)
    optimizer = build_optimizer(net, recipe.optim)
    ema = ModelEma(net, cfg.ema_decay) if cfg.ema_decay > 0 else None
    sampler, loader = _loader(recipe, data, env)
    start_epoch, step = 0, 0
    if resume and (out / "last.json").exists():
        start_epoch, step = _resume(out, net, optimizer, ema)
        if env.is_main:
            report(f"resumed from {out / 'last.json'} at epoch {start_epoch} (step {step})")
    train_net = _parallel(net, env, device, sync_bn=cfg.sync_bn)
    augment = BatchAugment(recipe.augment, output_size=data.preprocessing.input_size)
    loop = _step_loop(recipe, net, optimizer, ema, steps_per_epoch=len(loader), device=device, teacher=teacher)
    log = EpochLog(out / "log.jsonl", resume_epoch=start_epoch) if env.is_main else None
    return _Run(
        recipe=recipe,
        out=out,
        env=env,
        device=device,
        report=report,
        data=data,
        net=net,
        train_net=train_net,
        optimizer=optimizer,
        ema=ema,
        sampler=sampler,
        loader=loader,
        augment=augment,
        loop=loop,
        log=log,
        start_epoch=start_epoch,
        last_epoch=recipe.optim.epochs,
        step=step,
        history=list(log.rows) if log else [],
        weights=out / "last.safetensors",
    )


def _place_model(recipe: Recipe, data: TrainData, device: torch.device, model: nn.Module | None) -> nn.Module:
    """The given model or a freshly built one (initialised from ``train.seed``), on ``device``."""
    torch.manual_seed(recipe.train.seed)
    net = model if model is not None else build_model(recipe, len(data.classes), data.preprocessing)
    net.preprocessing = data.preprocessing
    net = net.to(device)
    if recipe.train.channels_last:
        net = net.to(memory_format=torch.channels_last)
    return net


def _loader(recipe: Recipe, data: TrainData, env: DistEnv) -> tuple[DistributedSampler, DataLoader]:
    """This rank's shard of the training set in per-rank batches (the global batch split over the processes)."""
    train_set = TargetSet(data, pixel_preprocessing(data.preprocessing, input_size=recipe.data.train_load_size))
    per_rank = recipe.data.batch_size // env.world_size
    if len(train_set) // env.world_size < per_rank:
        raise ConfigError(
            f"only {len(train_set)} training images for a global batch of {recipe.data.batch_size}",
            hint="lower data.batch_size",
        )
    sampler = DistributedSampler(
        train_set, num_replicas=env.world_size, rank=env.rank, shuffle=True, seed=recipe.train.seed, drop_last=False
    )
    loader = DataLoader(
        train_set, batch_size=per_rank, sampler=sampler, drop_last=True, num_workers=recipe.data.workers
    )
    return sampler, loader


def _resume(out: Path, net: nn.Module, optimizer: torch.optim.Optimizer, ema: ModelEma | None) -> tuple[int, int]:
    """Load ``last.state.safetensors`` into the model, optimizer and EMA; returns the (epoch, step) it reached."""
    state = load_train_state(out / "last.state.safetensors")
    net.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    if ema is not None and state["ema"] is not None:
        ema.load_state_dict(state["ema"], state["progress"]["ema_updates"])
    return state["progress"]["epoch"], state["progress"]["step"]


def _parallel(net: nn.Module, env: DistEnv, device: torch.device, *, sync_bn: bool) -> nn.Module:
    """What the steps run on: ``net`` itself, or under torchrun its DDP wrapper (SyncBatchNorm on GPUs if asked)."""
    if not env.enabled:
        return net
    train_net = nn.SyncBatchNorm.convert_sync_batchnorm(net) if sync_bn and device.type == "cuda" else net
    return nn.parallel.DistributedDataParallel(
        train_net, device_ids=[env.local_rank] if device.type == "cuda" else None
    )


def _step_loop(
    recipe: Recipe,
    net: nn.Module,
    optimizer: torch.optim.Optimizer,
    ema: ModelEma | None,
    *,
    steps_per_epoch: int,
    device: torch.device,
    teacher: nn.Module | None,
) -> StepLoop:
    """The shared step loop as the recipe sets it: cosine schedule, objective (with the ``[distill]`` teacher when
    none is given), AMP, gradient clipping, frozen BN and the EMA update after each step."""
    cfg = recipe.train
    autocast, scaler = autocast_for(cfg.amp, device)
    teacher = teacher if teacher is not None else load_teacher(recipe, device)
    return StepLoop(
        optimizer=optimizer,
        loss_fn=objective(
            teacher,
            alpha=recipe.distill.alpha,
            temperature=recipe.distill.temperature,
            label_smoothing=cfg.label_smoothing,
        ),
        lr_at=schedule(
            recipe.optim,
            total_steps=steps_per_epoch * recipe.optim.epochs,
            warmup_steps=round(recipe.optim.warmup_epochs * steps_per_epoch),
        ),
        autocast=autocast,
        scaler=scaler,
        grad_clip=cfg.grad_clip,
        after_step=(lambda: ema.update(net)) if ema is not None else None,
        freeze_bn=cfg.freeze_bn,
        name="training",
        hint="lower optim.lr or enable train.grad_clip",
    )


def _train_epoch(run: _Run, epoch: int) -> EpochStats:
    """One pass over this rank's shard. Every draw is reseeded from (seed, epoch, rank), so a resumed run draws what
    an uninterrupted one would."""
    cfg = run.recipe.train
    run.sampler.set_epoch(epoch)
    torch.manual_seed(_seed_for(cfg.seed, epoch, run.env.rank))
    gen = torch.Generator().manual_seed(_seed_for(cfg.seed + 1, epoch, run.env.rank))
    batches = _progress(run.loader, enabled=cfg.progress and run.env.is_main, desc=f"epoch {epoch + 1}")
    stats = run.loop.run_epoch(run.train_net, _prepared(run, batches, gen), epoch=epoch, step=run.step)
    run.step = stats.step
    run.seen += stats.samples * run.env.world_size
    return stats


def _prepared(run: _Run, batches: Iterable[Any], gen: torch.Generator) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Each batch augmented on pixels, normalized and on the device — lazily, so augmentation draws stay in step
    order."""
    pre, device = run.data.preprocessing, run.device
    for x, y in batches:
        x, y = run.augment(x, y, gen)
        x = normalize(x, pre).to(device, non_blocking=True)
        y = y.to(device, non_blocking=True)
        if run.recipe.train.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        yield x, y


def _epoch_row(run: _Run, epoch: int, stats: EpochStats, *, t0: float, train_s: float) -> dict[str, Any]:
    """The epoch's log row: loss and rate, validation metrics (on the evaluation weights), timings."""
    row: dict[str, Any] = {
        "epoch": epoch + 1,
        "step": run.step,
        "lr": run.optimizer.param_groups[0]["lr"],
        "train_loss": stats.mean_loss,
    }
    if run.data.val is not None:
        val = _evaluate_on(run, run.data.val)
        row.update(val_loss=val["loss"], val_top1=val["top1"], val_top5=val["top5"])
    row["epoch_time_s"] = round(time.perf_counter() - t0, 3)
    row["train_images_per_s"] = round(stats.batches * run.recipe.data.batch_size / max(1e-9, train_s), 1)
    return row


def _record_epoch(run: _Run, row: dict[str, Any]) -> None:
    """Append the row to the history and ``log.jsonl``, redraw the curves now and then, report, checkpoint."""
    epoch = row["epoch"]
    run.history.append(row)
    assert run.log is not None
    run.log.append(row)
    if epoch == run.last_epoch or time.perf_counter() - run.last_plot > PLOT_EVERY_S:  # matplotlib is slow
        plot_curves(run.history, run.out / "curves.png", title=f"{run.recipe.model.name} — {run.out.name}")
        run.last_plot = time.perf_counter()
    run.report(_epoch_line(row, run.recipe.optim.epochs))
    if epoch % run.recipe.train.checkpoint_every == 0 or epoch == run.last_epoch:
        run.weights = _write(run, "last", row, resumable=True)


def _finish(run: _Run) -> dict[str, Any] | None:
    """After the last epoch: the test-set metrics and the final ``model`` checkpoint (rank 0; not when stopped)."""
    if run.last_epoch != run.recipe.optim.epochs:
        return None
    test = None
    if run.data.test is not None:
        test = _evaluate_on(run, run.data.test)
        run.report(f"test: top-1 {100 * test['top1']:.2f}%  top-5 {100 * test['top5']:.2f}%  ({test['n']} images)")
    metrics = {
        **(run.history[-1] if run.history else {}),
        **({"test_top1": test["top1"], "test_top5": test["top5"], "test_n": test["n"]} if test else {}),
    }
    run.weights = _write(run, "model", metrics, resumable=False)
    return test


def _evaluate_on(run: _Run, images: Any) -> dict[str, Any]:
    """Top-1/top-5 and loss of the evaluation weights with the shipped evaluation transform."""
    return evaluate(
        run.eval_net,
        images,
        run.data.preprocessing,
        batch_size=run.recipe.data.eval_batch_size,
        device=run.device,
        channels_last=run.recipe.train.channels_last,
    )


def _write(run: _Run, name: str, metrics: dict[str, Any], *, resumable: bool) -> Path:
    """One checkpoint (see :mod:`edgecnn.train.checkpoint`); ``resumable`` adds the raw weights, EMA and optimizer."""
    net, eval_net, ema, pre = run.net, run.eval_net, run.ema, run.data.preprocessing
    epoch = int(metrics.get("epoch", 0))
    sidecar = {
        "arch": {"name": run.recipe.model.name, "options": dataclasses.asdict(net.edgecnn_options)}
        if hasattr(net, "edgecnn_options")
        else {"name": run.recipe.model.name},
        "epoch": epoch,
        "step": run.step,
        "recipe": run.recipe.to_dict(),
        "classes": list(run.data.classes),
        "preprocessing": pre.to_dict(),
        "metrics": metrics,
    }
    state = None
    if resumable:
        state = {
            "model": net.state_dict(),
            "ema": ema.state_dict() if ema is not None else None,
            "optimizer": run.optimizer.state_dict(),
            "progress": {"epoch": epoch, "step": run.step, "ema_updates": ema.updates if ema is not None else 0},
        }
    eval_net.preprocessing = pre
    for attr in ("edgecnn_name", "edgecnn_options", "default_resolution"):
        if hasattr(net, attr):
            setattr(eval_net, attr, getattr(net, attr))
    return save_checkpoint(
        run.out, name, eval_model=eval_net, classes=list(run.data.classes), sidecar=sidecar, train_state=state
    )


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
