"""``edgecnn prune``: structured channel pruning, optional recovery by distillation, optional INT8 bundle."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from edgecnn.cli.base import RESOLUTION, THREADS, cli, echo_json, human

_CRITERIA = ["l1", "l2", "bn-scale", "taylor"]
_ALLOCATIONS = ["uniform", "global", "greedy"]


def _layer_ratios(items: tuple[str, ...]) -> dict[str, float]:
    from edgecnn.errors import PruningError

    out: dict[str, float] = {}
    for item in items:
        name, sep, value = item.partition("=")
        try:
            out[name.strip()] = float(value)
        except ValueError:
            sep = ""
        if not sep or not name.strip():
            raise PruningError(f"--layer-ratio {item!r} is not NAME=RATIO", hint="e.g. --layer-ratio head.conv=0.5")
    return out


@cli.command("prune")
@click.argument("model")
@click.option("--ratio", type=float, help="Fraction of each group's channels removed (global: of all channels).")
@click.option("--target-macs", type=float, help="Fraction of the MACs to keep, e.g. 0.5.")
@click.option("--target-latency", "target_latency", type=float, metavar="MS", help="Latency budget in ms.")
@click.option("--profile", help="Latency on this hardware profile (estimator), not measured here.")
@click.option("--precision", help="Precision the profile's latency is predicted at (default: its first).")
@click.option("--threads", type=THREADS, default=2, show_default=True, help="Threads for latency measured here.")
@click.option("--criterion", type=click.Choice(_CRITERIA), default="l1", show_default=True, help="Channel importance.")
@click.option("--allocation", type=click.Choice(_ALLOCATIONS), help="uniform | global | greedy (NetAdapt-style).")
@click.option("--round-to", type=click.IntRange(1, 256), help="Channel multiple (default: the profile's, else 8).")
@click.option("--max-ratio", type=float, default=0.9, show_default=True, help="Most any one group may lose.")
@click.option("--layer-ratio", "layer_ratio", multiple=True, metavar="NAME=R", help="Per-layer ratio (repeatable).")
@click.option("--ignore", multiple=True, metavar="NAME", help="Layer whose output channels are kept (repeatable).")
@click.option("--resolution", "-r", type=RESOLUTION, help="Input size (default: the weights' preprocessing).")
@click.option("--weights", type=click.Path(dir_okay=False), help="Weights for a zoo MODEL.")
@click.option("--epochs", type=click.IntRange(min=0), default=0, show_default=True, help="Fine-tune epochs per step.")
@click.option("--steps", type=click.IntRange(min=1), default=1, show_default=True, help="Prune → recover rounds.")
@click.option("--recipe", help="Fine-tune recipe (default: the checkpoint's own); name or TOML file.")
@click.option("--set", "-s", "sets", multiple=True, metavar="KEY=VALUE", help="Fine-tune recipe override.")
@click.option("--target", "-t", help="Also quantize the result to an INT8 bundle for this target.")
@click.option("--calib-data", help="INT8 calibration data (DIR, FILE.npz or 'embedded').")
@click.option("--eval-data", help="INT8 evaluation data (labelled; 'embedded' = the test split).")
@click.option("--out", "-o", type=click.Path(file_okay=False), help="Output directory (default MODEL-pruned).")
@click.option("--overwrite", is_flag=True, help="Replace an existing output directory's files.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def prune_cmd(
    model: str,
    ratio: float | None,
    target_macs: float | None,
    target_latency: float | None,
    profile: str | None,
    precision: str | None,
    threads: int,
    criterion: str,
    allocation: str | None,
    round_to: int | None,
    max_ratio: float,
    layer_ratio: tuple[str, ...],
    ignore: tuple[str, ...],
    resolution: int | None,
    weights: str | None,
    epochs: int,
    steps: int,
    recipe: str | None,
    sets: tuple[str, ...],
    target: str | None,
    calib_data: str | None,
    eval_data: str | None,
    out: str | None,
    overwrite: bool,
    as_json: bool,
) -> None:
    """Prune MODEL (a zoo name or an edgecnn checkpoint) to a smaller dense model: the pipeline is prune
    [→ fine-tune by distillation from MODEL] [→ INT8 bundle], and every artifact records that lineage.

    Writes OUT/model.safetensors (+ model.json) — a checkpoint every edgecnn command loads without a pruning
    library — OUT/finetune/ (runs), and with --target OUT/bundle-TARGET-int8."""
    from edgecnn.errors import ConfigError

    say = (lambda m: None) if as_json else (lambda m: click.echo(f"· {m}", err=True))
    dest = Path(out) if out else Path(f"{Path(model).stem if model.endswith('.safetensors') else model}-pruned")
    if (dest / "model.safetensors").exists() and not overwrite:
        raise ConfigError(f"{str(dest / 'model.safetensors')!r} exists", hint="pass --overwrite or another --out")
    if target and not calib_data:
        raise ConfigError("an INT8 bundle needs calibration data", hint="add --calib-data DIR|FILE.npz|embedded")
    if (calib_data or eval_data) and not target:
        raise ConfigError("--calib-data / --eval-data are for the INT8 bundle", hint="add --target onnx|openvino|…")
    if profile and target_latency is None:
        raise ConfigError("--profile prices a latency budget", hint="add --target-latency MS")
    if target:  # an unknown target fails now, not after minutes of fine-tuning
        from edgecnn.exporters.target import TARGETS

        TARGETS.get(target)

    from edgecnn.models.resolve import resolve_model
    from edgecnn.prune import PruneConfig
    from edgecnn.prune.groups import torch_pruning

    torch_pruning()  # the extra is missing → one line naming it, before any work
    net, info = resolve_model(model, weights=weights)
    pre = getattr(net, "preprocessing", None)
    res = resolution or (pre.input_size if pre else getattr(net, "default_resolution", 224))
    prof = None
    if profile:
        from edgecnn.profiles import get_profile

        prof = get_profile(profile)
    if round_to is None:
        from edgecnn.bench.layer_costs import channel_multiple

        round_to = channel_multiple(prof) if prof is not None else 8
    if allocation is None:
        allocation = "greedy" if target_latency is not None else "uniform"
    cfg = PruneConfig(
        criterion=criterion,
        allocation=allocation,
        ratio=ratio,
        target_macs=target_macs,
        target_latency_ms=target_latency,
        round_to=round_to,
        max_ratio=max_ratio,
        resolution=res,
        ignore=tuple(ignore),
        layer_ratios=_layer_ratios(layer_ratio),
    )
    train_recipe = _recipe(recipe, sets, info, epochs, as_json) if epochs or criterion == "taylor" else None
    costs = measure = source = None
    if target_latency is not None:
        from edgecnn.bench import layer_costs

        if prof is not None:
            prec = precision or prof.precisions[0]
            costs, source = layer_costs.on_profile(prof, precision=prec, resolution=res), f"profile {prof.name} {prec}"
        else:
            costs, measure = layer_costs.measured(res, threads=threads)
            source = f"measured here: onnxruntime fp32, {threads} thread(s), {res}x{res}, batch 1"
        say(f"latency from {source}")
    elif precision:
        raise ConfigError("--precision prices a latency budget on a profile", hint="add --profile and --target-latency")

    taylor = _taylor_batches(train_recipe) if criterion == "taylor" else None
    from edgecnn.prune.recover import prune_and_recover

    say(f"pruning {getattr(net, 'edgecnn_name', model)} at {res}x{res} ({cfg.allocation}, {cfg.criterion})")
    rounds = prune_and_recover(
        net,
        cfg,
        train_recipe if epochs else None,
        dest / "finetune",
        steps=steps,
        taylor_batches=taylor,
        layer_costs=costs,
        measure=measure,
        latency_source=source,
        report=say,
    )
    final, last = rounds[-1].model, rounds[-1].pruned
    from edgecnn.models.weights import save_weights
    from edgecnn.train.checkpoint import atomic_write_json

    ckpt = save_weights(final, dest / "model.safetensors")
    summary: dict[str, Any] = {
        "checkpoint": str(ckpt),
        "macs": [rounds[0].pruned.macs_before, last.macs_after],
        "params": [rounds[0].pruned.params_before, last.params_after],
        "latency_ms": {"baseline": last.baseline_ms, "predicted": last.predicted_ms, "measured": last.measured_ms},
        "test_top1": rounds[-1].trained.test_top1 if rounds[-1].trained else None,
        "lineage": final.lineage,
    }
    if target:
        from edgecnn.exporters.int8 import quantize

        say(f"INT8 for {target}")
        q = quantize(
            str(ckpt),
            target=target,
            calib_data=calib_data,
            eval_data=eval_data,
            out=dest / f"bundle-{target}-int8",
            resolution=res,
            overwrite=overwrite,
            progress=say,
        )
        summary["bundle"] = str(q.bundle)
        summary["int8"] = (q.manifest or {}).get("quantization", {}).get("fp32_vs_int8")
    atomic_write_json(dest / "prune.json", summary)
    if as_json:
        echo_json(summary)
        return
    m0, m1 = summary["macs"]
    line = f"pruned {ckpt}  (MACs {human(m0)} → {human(m1)}, {100 * m1 / m0:.1f} %"
    p0, p1 = summary["params"]
    line += f"; params {human(p0)} → {human(p1)}"
    lat = summary["latency_ms"]
    if lat["measured"] is not None or lat["predicted"] is not None:
        got = lat["measured"] if lat["measured"] is not None else lat["predicted"]
        line += f"; latency {lat['baseline']:.3f} → {got:.3f} ms"
    if summary["test_top1"] is not None:
        line += f"; fine-tuned test top-1 {100 * summary['test_top1']:.2f} %"
    click.echo(line + ")")
    if "bundle" in summary:
        click.echo(f"bundle {summary['bundle']}")


def _recipe(spec: str | None, sets: tuple[str, ...], info: Any, epochs: int, quiet: bool) -> Any:
    """The fine-tune recipe: --recipe, else the one the checkpoint was trained with; shortened to ``epochs``."""
    from edgecnn.errors import ConfigError
    from edgecnn.prune.recover import finetune_recipe
    from edgecnn.train.recipe import apply_overrides, load_recipe, recipe_from_dict

    overrides = [*sets, *(["train.progress=false"] if quiet else [])]
    if spec:
        base = load_recipe(spec, overrides)
    else:
        raw = (info.metadata or {}).get("recipe") if info is not None else None
        if not raw:
            raise ConfigError(
                "fine-tuning needs the data the model was trained on, and MODEL carries no recipe",
                hint="pass --recipe NAME|FILE (e.g. mnist_embedded)",
            )
        data = json.loads(raw) if isinstance(raw, str) else raw
        base = recipe_from_dict(apply_overrides(data, overrides), source=f"{info.path} (its recipe)")
    return finetune_recipe(base, epochs=max(epochs, 1))


def _taylor_batches(recipe: Any) -> Any:
    """A few labelled, normalized training batches for the Taylor criterion."""
    from edgecnn.errors import PruningError

    if recipe is None:
        raise PruningError("the taylor criterion needs data", hint="pass --recipe (or use --criterion l1)")
    from torch.utils.data import DataLoader

    from edgecnn.data.tensors import PreprocessedImages
    from edgecnn.train.datasets import load_data

    data = load_data(recipe.data)
    return DataLoader(PreprocessedImages(data.train, data.preprocessing), batch_size=32, shuffle=False)
