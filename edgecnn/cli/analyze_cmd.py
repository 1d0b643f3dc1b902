"""``edgecnn analyze MODEL``: exact params, MACs, activation and weight memory, per layer on request."""

from __future__ import annotations

import click

from edgecnn.cli.base import RESOLUTION, cli, echo_json, human, print_table


@cli.command("analyze")
@click.argument("model")
@click.option("--resolution", "-r", type=RESOLUTION, help="Input size (default: the model's own).")
@click.option("--batch", type=click.IntRange(min=1), default=1, show_default=True)
@click.option(
    "--num-classes",
    type=click.IntRange(min=0),
    help="Classifier size (default: the model's own, 1000 for the classifiers).",
)
@click.option("--width-mult", type=click.FloatRange(min=0, min_open=True), help="Override the width multiplier.")
@click.option("--depth-mult", type=click.FloatRange(min=0, min_open=True), help="Override the depth multiplier.")
@click.option("--weights", type=click.Path(dir_okay=False), help="Weights to load first (any supported format).")
@click.option("--per-layer", is_flag=True, help="Include every layer.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output (integers, stable keys).")
def analyze_cmd(
    model: str,
    resolution: int | None,
    batch: int,
    num_classes: int | None,
    width_mult: float | None,
    depth_mult: float | None,
    weights: str | None,
    per_layer: bool,
    as_json: bool,
) -> None:
    """Exact params, MACs and memory of MODEL (a zoo name or an edgecnn checkpoint)."""
    import torch

    from edgecnn.analysis import analyze
    from edgecnn.models.resolve import is_checkpoint, resolve_model

    if weights is None and not is_checkpoint(model):
        with torch.device("meta"):  # shapes only: no memory, no compute
            net, _ = resolve_model(model, num_classes=num_classes, width_mult=width_mult, depth_mult=depth_mult)
    else:
        net, _ = resolve_model(
            model, weights=weights, num_classes=num_classes, width_mult=width_mult, depth_mult=depth_mult
        )
    res = resolution or net.default_resolution
    stats = analyze(net, res, batch=batch)
    if as_json:
        echo_json({"resolution": res, "batch": batch, **stats.to_dict(per_layer=per_layer)})
        return
    if per_layer:
        print_table(
            f"{stats.model} @ {res}×{res}, batch {batch} — per layer",
            ["layer", "type", "output", "params", "MACs", "act. mem"],
            [
                [
                    r.name,
                    r.type,
                    "×".join(map(str, r.output_shape)),
                    f"{r.params:,}",
                    f"{r.macs:,}",
                    human(r.activation_bytes, "B"),
                ]
                for r in stats.layers
            ],
        )
    print_table(
        f"{stats.model} @ {res}×{res}, batch {batch}",
        ["quantity", "value"],
        [
            ["params", f"{stats.params:,} ({human(stats.params)})"],
            ["MACs", f"{stats.macs:,} ({human(stats.macs)})"],
            ["activations (sum, fp32)", human(stats.activation_bytes, "B")],
            ["largest activation (fp32)", human(stats.peak_activation_bytes, "B")],
            [
                "weights fp32 / fp16 / int8",
                " / ".join(
                    human(b, "B") for b in (stats.weight_bytes_fp32, stats.weight_bytes_fp16, stats.weight_bytes_int8)
                ),
            ],
        ],
    )
