"""Recovery: fine-tune a pruned model by distillation from the unpruned one, through the one trainer.

The pruned network is the student and the network it was cut from is the teacher (Hinton et al. 2015, as
``[distill]`` sets it), on the data the original was trained on (the checkpoint's own recipe unless another is
given): the teacher's soft targets carry what the removed channels knew. ``prune_and_recover`` spreads the budget
over ``steps`` rounds — prune a step, recover, repeat — each round always distilling from the original teacher.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from edgecnn.errors import PruningError
from edgecnn.models.resolve import resolve_model
from edgecnn.prune.config import PruneConfig
from edgecnn.prune.prune import LayerCosts, Measure, PruneResult, prune_model
from edgecnn.train.datasets import TrainData, load_data
from edgecnn.train.recipe import Recipe
from edgecnn.train.trainer import TrainResult, evaluate, fit

Report = Callable[[str], None]


@dataclass(frozen=True, kw_only=True)
class Round:
    """One prune → recover round."""

    pruned: PruneResult
    trained: TrainResult | None
    model: nn.Module  # the round's result: the fine-tuned checkpoint reloaded (its EMA weights), else the pruned model


def finetune_recipe(recipe: Recipe, *, epochs: int, lr_scale: float = 0.3, alpha: float = 0.7) -> Recipe:
    """The original recipe, shortened to ``epochs`` (a quarter-epoch warm-up at most) at ``lr_scale`` of its rate, with
    distillation weighted ``alpha`` — fine-tuning starts from trained weights, so it needs neither the full
    schedule nor the full rate."""
    if epochs < 1:
        raise PruningError(f"fine-tuning needs at least 1 epoch, got {epochs}", hint="pass --epochs N (N >= 1)")
    optim = dataclasses.replace(
        recipe.optim, epochs=epochs, warmup_epochs=min(recipe.optim.warmup_epochs, 0.25), lr=recipe.optim.lr * lr_scale
    )
    distill = dataclasses.replace(recipe.distill, teacher=None, alpha=alpha)
    model = dataclasses.replace(recipe.model, weights=None, head_init_scale=None)
    return recipe.replace(optim=optim, distill=distill, model=model)


def recover(
    pruned: nn.Module,
    teacher: nn.Module,
    recipe: Recipe,
    out_dir: str | Path,
    *,
    data: TrainData | None = None,
    report: Report | None = None,
) -> TrainResult:
    """Fine-tune ``pruned`` (in place) under ``recipe`` with ``teacher``'s soft targets; checkpoints in ``out_dir``
    carry the channel record and the lineage (this step appended: data, epochs, distillation)."""
    teacher = copy.deepcopy(teacher).eval()
    for p in teacher.parameters():
        p.requires_grad_(False)
    src = getattr(teacher, "weights_info", None)
    step = {
        "step": "finetune",
        "data": {"source": recipe.data.source, "path": recipe.data.path, "input_size": recipe.data.input_size},
        "epochs": recipe.optim.epochs,
        "lr": recipe.optim.lr,
        "distill": {
            "teacher_sha256": src.sha256 if src is not None else None,
            "alpha": recipe.distill.alpha,
            "temperature": recipe.distill.temperature,
        },
    }
    name = getattr(pruned, "edgecnn_name", None)
    if name and name != recipe.model.name:  # the checkpoint's sidecar names the architecture trained
        recipe = recipe.replace(model=dataclasses.replace(recipe.model, name=name))
    pruned.lineage = [*(getattr(pruned, "lineage", None) or []), step]
    pruned.channels_pruned = True
    data = data if data is not None else load_data(recipe.data)
    heads = [m for m in pruned.modules() if isinstance(m, nn.Linear)]
    if heads and heads[-1].out_features != len(data.classes):
        raise PruningError(
            f"the model has {heads[-1].out_features} outputs but the fine-tune data ({recipe.data.source}) has "
            f"{len(data.classes)} classes",
            hint="prune a checkpoint trained on that data, or fine-tune with its own recipe",
        )
    result = fit(recipe, out_dir, data=data, model=pruned, teacher=teacher, report=report or (lambda _m: None))
    step["test_top1"] = result.test_top1
    return result


def prune_and_recover(
    model: nn.Module,
    cfg: PruneConfig,
    recipe: Recipe | None,
    out_dir: str | Path,
    *,
    steps: int = 1,
    data: TrainData | None = None,
    taylor_batches: Iterable[tuple[torch.Tensor, torch.Tensor]] | None = None,
    layer_costs: LayerCosts | None = None,
    measure: Measure | None = None,
    latency_source: str | None = None,
    report: Report | None = None,
) -> list[Round]:
    """``steps`` rounds of prune → recover (recover skipped when ``recipe`` is None). Each round's budget is the
    geometric share of the whole: after round *i* of *n* the model keeps ``budget^(i/n)`` of the original's
    channels / MACs / latency; the last round lands on the budget itself."""
    if steps < 1:
        raise PruningError(f"--steps must be >= 1, got {steps}")
    say = report or (lambda _m: None)
    out = Path(out_dir)
    data = data if data is not None or recipe is None else load_data(recipe.data)
    teacher, current = model.eval(), model
    macs0 = base_ms = None
    if steps > 1 and cfg.target_latency_ms is not None and layer_costs is not None:
        base_ms = layer_costs(model)[1]  # each round's latency target is a geometric share of this
    rounds: list[Round] = []
    for i in range(1, steps + 1):
        step_cfg = cfg
        if steps > 1:
            step_cfg = _round_config(cfg, current, i, steps, macs0, base_ms)
        pruned = prune_model(
            current, step_cfg, data=taylor_batches, layer_costs=layer_costs, measure=measure,
            latency_source=latency_source,
        )  # fmt: skip
        macs0 = macs0 or pruned.macs_before
        say(
            f"round {i}/{steps}: MACs {pruned.macs_before:,} → {pruned.macs_after:,} "
            f"({100 * pruned.macs_after / macs0:.1f} % of the original)"
        )
        trained, current = None, pruned.model
        if recipe is not None:
            trained = recover(pruned.model, teacher, recipe, out / f"round{i}", data=data, report=say)
            say(f"round {i}/{steps}: fine-tuned, test top-1 {100 * (trained.test_top1 or 0):.2f} %")
            current, _ = resolve_model(str(trained.checkpoint))
        rounds.append(Round(pruned=pruned, trained=trained, model=current))
    return rounds


def _round_config(
    cfg: PruneConfig, current: nn.Module, i: int, n: int, macs0: int | None, base_ms: float | None
) -> PruneConfig:
    """Round ``i``'s budget, relative to the model it starts from."""
    share = i / n
    if cfg.ratio is not None:  # channels kept overall (1 − r)^(i/n); per round (1 − r)^(1/n) of what is left
        return dataclasses.replace(cfg, ratio=1 - (1 - cfg.ratio) ** (1 / n))
    if cfg.target_macs is not None:
        from edgecnn.prune.prune import layer_macs

        now = layer_macs(current, cfg.resolution)[1]
        first = macs0 or now
        want = first * cfg.target_macs**share
        return dataclasses.replace(cfg, target_macs=min(0.999, want / now))
    if base_ms is None:
        raise PruningError("an iterative latency budget needs the baseline latency", hint="pass layer costs")
    return dataclasses.replace(cfg, target_latency_ms=base_ms * (cfg.target_latency_ms / base_ms) ** share)


def accuracy(model: nn.Module, data: TrainData) -> dict[str, Any]:
    """Top-1/top-5 on the test split through the shared evaluation transform (what the deployed form sees)."""
    if data.test is None:
        raise PruningError("the data has no test split to measure the accuracy cost on")
    return evaluate(model, data.test, data.preprocessing)
