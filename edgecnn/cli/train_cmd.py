"""``edgecnn train RECIPE``: train from a recipe (file or shipped name), flags overriding recipe keys;
``edgecnn train noisy-student RECIPE``: Noisy Student on a low-label split; ``edgecnn train recipes``: list them.

Under ``torchrun --nproc_per_node=N $(which edgecnn) train RECIPE`` the run is data-parallel (DDP).
"""

from __future__ import annotations

import os
from typing import Any

import click

from edgecnn.cli.base import cli, echo_json, print_table


class _DefaultRunGroup(click.Group):
    """``edgecnn train X.toml`` means ``edgecnn train run X.toml``: a recipe is the common case."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and not args[0].startswith("-"):
            args = ["run", *args]
        return super().parse_args(ctx, args)


_OVERRIDE_HELP = "Override a recipe key, e.g. --set optim.lr=0.01 (repeatable; the value is read as TOML)."


def _overrides(
    sets: tuple[str, ...], *, epochs: int | None, seed: int | None, model: str | None, lr: float | None
) -> list[str]:
    out = list(sets)
    for key, value in (("optim.epochs", epochs), ("train.seed", seed), ("optim.lr", lr)):
        if value is not None:
            out.append(f"{key}={value}")
    if model is not None:
        out.append(f'model.name="{model}"')
    return out


_RUN_FILES = ("last.json", "model.json", "log.jsonl")


def _check_run_dir(out_dir: str, *, resume: bool, overwrite: bool) -> None:
    """A directory that holds an earlier run is continued (--resume) or replaced (--overwrite), never silently
    mixed with a new run's checkpoints and log."""
    from pathlib import Path

    from edgecnn.errors import ConfigError

    out = Path(out_dir)
    if resume or overwrite or not out.is_dir():
        return
    found = sorted(  # a run's own files, or a Noisy Student round's one level down
        str(p.relative_to(out)) for name in _RUN_FILES for pat in (name, f"*/{name}") for p in out.glob(pat)
    )
    if found:
        raise ConfigError(
            f"--out {out_dir!r} already holds a training run ({', '.join(found[:3])})",
            hint="pass --resume to continue it, --overwrite to replace it, or another --out",
        )


def _echo(msg: str) -> None:
    click.echo(msg, err=True)


@cli.group("train", cls=_DefaultRunGroup, invoke_without_command=False)
def train_group() -> None:
    """Train a model from a recipe (TOML). `edgecnn train RECIPE` = `edgecnn train run RECIPE`."""


@train_group.command("run")
@click.argument("recipe")
@click.option("--out", "-o", "out_dir", default="runs/train", show_default=True, help="Run directory.")
@click.option("--set", "-s", "sets", multiple=True, metavar="KEY=VALUE", help=_OVERRIDE_HELP)
@click.option("--epochs", type=click.IntRange(min=1), help="Shortcut for --set optim.epochs=N.")
@click.option("--lr", type=click.FloatRange(min=0, min_open=True), help="Shortcut for --set optim.lr=X.")
@click.option("--seed", type=int, help="Shortcut for --set train.seed=N.")
@click.option("--model", help="Shortcut for --set model.name=NAME.")
@click.option("--resume", is_flag=True, help="Continue from OUT/last.* (bit-identical to an uninterrupted run).")
@click.option("--overwrite", is_flag=True, help="Replace the run that OUT already holds.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def run_cmd(
    recipe: str,
    out_dir: str,
    sets: tuple[str, ...],
    epochs: int | None,
    lr: float | None,
    seed: int | None,
    model: str | None,
    resume: bool,
    overwrite: bool,
    as_json: bool,
) -> None:
    """Train RECIPE (a .toml file or a shipped recipe name) into OUT."""
    from edgecnn.train.recipe import load_recipe
    from edgecnn.train.trainer import fit

    _check_run_dir(out_dir, resume=resume, overwrite=overwrite)
    rec = load_recipe(recipe, _overrides(sets, epochs=epochs, seed=seed, model=model, lr=lr))
    if _task(rec.model.name) != "classification":
        _run_dense(rec, out_dir, resume=resume, as_json=as_json)
        return
    result = fit(rec, out_dir, resume=resume, report=_echo)
    if int(os.environ.get("RANK", "0")) != 0:  # under torchrun only rank 0 reports
        return
    summary: dict[str, Any] = {
        "checkpoint": str(result.checkpoint),
        "epochs": result.epochs,
        "val_top1": result.val_top1,
        "test_top1": result.test_top1,
        "test_top5": result.test_top5,
        "wall_time_s": round(result.wall_time_s, 2),
        "train_images_per_s": round(result.images_per_s, 1),
    }
    if as_json:
        echo_json(summary)
    else:
        pct = lambda v: "–" if v is None else f"{100 * v:.2f}%"  # noqa: E731
        print_table(
            f"trained {rec.model.name}",
            ["quantity", "value"],
            [
                ["checkpoint", summary["checkpoint"]],
                ["val top-1", pct(result.val_top1)],
                ["test top-1 / top-5", f"{pct(result.test_top1)} / {pct(result.test_top5)}"],
                ["wall time", f"{result.wall_time_s:.1f} s"],
                ["train images/s", f"{result.images_per_s:.0f}"],
            ],
        )


def _task(name: str) -> str:
    from edgecnn.models.zoo import get_model_entry

    return get_model_entry(name).task


def _run_dense(rec, out_dir: str, *, resume: bool, as_json: bool) -> None:  # noqa: ANN001  (a Recipe)
    """Segmentation / super-resolution: the dense trainer (same recipe, optimizer, schedule and step loop)."""
    from edgecnn.errors import ConfigError
    from edgecnn.train.dense import fit_dense

    if resume:
        raise ConfigError("--resume is not supported for segmentation / super-resolution runs yet")
    result = fit_dense(rec, out_dir, report=_echo)
    summary = {
        "checkpoint": str(result.checkpoint),
        "epochs": result.epochs,
        "wall_time_s": round(result.wall_time_s, 2),
        "test": {k: v for k, v in result.test.items() if isinstance(v, (int, float))},
    }
    if as_json:
        echo_json(summary)
        return
    print_table(
        f"trained {rec.model.name}",
        ["quantity", "value"],
        [
            ["checkpoint", summary["checkpoint"]],
            *([k, f"{v:.4f}"] for k, v in summary["test"].items()),
            ["wall time", f"{result.wall_time_s:.1f} s"],
        ],
    )


@train_group.command(
    "noisy-student", short_help="Noisy Student self-training on a low-label split (per-round accuracy)."
)
@click.argument("recipe")
@click.option("--out", "-o", "out_dir", default="runs/noisy_student", show_default=True, help="Run directory.")
@click.option("--set", "-s", "sets", multiple=True, metavar="KEY=VALUE", help=_OVERRIDE_HELP)
@click.option(
    "--labelled-fraction",
    type=click.FloatRange(0, 1, min_open=True, max_open=True),
    default=0.1,
    show_default=True,
    help="Fraction of the training split that keeps its labels.",
)
@click.option("--rounds", type=click.IntRange(min=1), default=1, show_default=True)
@click.option("--hard", is_flag=True, help="Hard (one-hot) pseudo-labels instead of soft probabilities.")
@click.option(
    "--threshold",
    type=click.FloatRange(0, 1, max_open=True),
    default=0.3,
    show_default=True,
    help="Minimum teacher confidence for a pseudo-label.",
)
@click.option("--no-balance", is_flag=True, help="Do not balance pseudo-labelled classes.")
@click.option(
    "--width-growth",
    type=click.FloatRange(min=1),
    default=1.0,
    show_default=True,
    help="Student width = teacher width × this, per round.",
)
@click.option("--overwrite", is_flag=True, help="Replace the runs that OUT already holds.")
@click.option("--json", "as_json", is_flag=True)
def noisy_student_cmd(
    recipe: str,
    out_dir: str,
    sets: tuple[str, ...],
    labelled_fraction: float,
    rounds: int,
    hard: bool,
    threshold: float,
    no_balance: bool,
    width_growth: float,
    overwrite: bool,
    as_json: bool,
) -> None:
    """Noisy Student (Xie et al. 2020) on RECIPE's data with only a fraction of the labels; reports each round."""
    import dataclasses

    from edgecnn.data.images import ArrayImages
    from edgecnn.errors import ConfigError
    from edgecnn.train.datasets import load_data
    from edgecnn.train.noisy_student import NoisyStudentConfig, low_label_split, noisy_student
    from edgecnn.train.recipe import load_recipe

    _check_run_dir(out_dir, resume=False, overwrite=overwrite)
    rec = load_recipe(recipe, list(sets))
    data = load_data(rec.data)
    if not isinstance(data.train, ArrayImages):
        raise ConfigError("noisy-student needs an in-memory source (data.source = embedded or shapes)")
    labelled, unlabelled = low_label_split(data.train, labelled_fraction, seed=rec.train.seed)
    cfg = NoisyStudentConfig(
        rounds=rounds, soft=not hard, threshold=threshold, balance=not no_balance, width_growth=width_growth
    )
    res = noisy_student(
        rec, labelled=labelled, unlabelled=unlabelled, data=data, out_dir=out_dir, cfg=cfg, report=_echo
    )
    if as_json:
        echo_json({"teacher_test_top1": res.teacher_test_top1, "rounds": [dataclasses.asdict(r) for r in res.rounds]})
        return
    print_table(
        f"Noisy Student, {len(labelled)} labelled / {len(unlabelled)} unlabelled",
        ["round", "teacher top-1", "student top-1", "pseudo-labelled", "pseudo-label acc."],
        [
            [
                str(r.round),
                f"{100 * r.teacher_test_top1:.2f}%",
                f"{100 * r.student_test_top1:.2f}%",
                str(r.pseudo_labelled),
                "–" if r.pseudo_label_accuracy is None else f"{100 * r.pseudo_label_accuracy:.1f}%",
            ]
            for r in res.rounds
        ],
    )


@train_group.command("recipes")
def recipes_cmd() -> None:
    """List the recipes that ship with edgecnn."""
    from edgecnn.train.recipe import shipped_recipes

    for name in shipped_recipes():
        click.echo(name)
