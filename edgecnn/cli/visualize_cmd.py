"""``edgecnn visualize features|filters|exemplars MODEL|CHECKPOINT ...``: what a model's units detect (activation
maximization, the first conv's filters, the images and receptive-field crops that excite a channel most)."""

from __future__ import annotations

from typing import Any

import click

from edgecnn.cli.base import RESOLUTION, cli, echo_json, print_table


def _model(source: str, weights: str | None) -> tuple[Any, list[str] | None]:
    from edgecnn.explain.files import _labels_of, is_bundle
    from edgecnn.models.resolve import resolve_model

    if is_bundle(source):
        from edgecnn.errors import ConfigError

        raise ConfigError(
            f"{source!r} is a bundle; visualizing units needs the PyTorch model's layers",
            hint="pass the zoo model (with --weights) or the checkpoint it was exported from",
        )
    model, info = resolve_model(source, weights=weights)
    return model, _labels_of(model, info.format if info else None)


def _layer(model: Any, layer: str) -> str:
    from edgecnn.explain.attribution import resolve_layer

    return resolve_layer(model, layer)[0]


_weights = click.option("--weights", type=click.Path(dir_okay=False), help="Weights for a zoo MODEL.")
_out = click.option("--out", "-o", type=click.Path(file_okay=False), default="visualize-out", show_default=True)
_json = click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")


@cli.group("visualize")
def visualize_group() -> None:
    """What a model's units detect: `features` (activation maximization), `filters` (first conv), `exemplars`.

    MODEL is a zoo model name (with --weights) or an edgecnn checkpoint; LAYER is a module path such as
    `blocks.3` (list them with `edgecnn analyze MODEL --layers`)."""


@visualize_group.command("features")
@click.argument("source", metavar="MODEL|CHECKPOINT")
@click.option("--layer", help="Module path of the layer whose channels to maximize.")
@click.option("--channel", "channels", type=click.IntRange(min=0), multiple=True, help="Channel(s) of --layer.")
@click.option("--class", "classes", multiple=True, help="Class index or label to maximize (the logit).")
@click.option("--size", type=RESOLUTION, help="Image side in pixels (default: the model's input size).")
@click.option("--steps", type=click.IntRange(1, 10_000), default=256, show_default=True)
@click.option("--lr", type=click.FloatRange(min=0, min_open=True, max=10), default=0.05, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--no-transforms", is_flag=True, help="No jitter / scale / rotation (sharper, less robust).")
@_weights
@_out
@_json
def visualize_features(
    source: str,
    layer: str | None,
    channels: tuple[int, ...],
    classes: tuple[str, ...],
    size: int | None,
    steps: int,
    lr: float,
    seed: int,
    no_transforms: bool,
    weights: str | None,
    out: str,
    as_json: bool,
) -> None:
    """Optimize an image per channel (--layer L --channel C ...) or per class (--class K ...); PNG + JSON."""
    from edgecnn.errors import ConfigError
    from edgecnn.explain.feature_files import features_files
    from edgecnn.explain.files import parse_target

    if bool(channels) == bool(classes):
        raise ConfigError("give --channel (with --layer) or --class", hint="e.g. --layer blocks.3 --channel 5")
    if channels and not layer:
        raise ConfigError("--channel needs --layer", hint="a module path such as blocks.3")
    model, labels = _model(source, weights)
    cls = [parse_target(c, labels) for c in classes] if classes else None
    doc = features_files(
        model,
        out,
        layer=_layer(model, layer) if layer else None,
        channels=list(channels) or None,
        classes=cls,  # type: ignore[arg-type]
        labels=labels,
        size=size,
        steps=steps,
        lr=lr,
        seed=seed,
        transforms=not no_transforms,
    )
    if as_json:
        echo_json(doc)
        return
    rows = [[str(u["unit"]), u.get("label", ""), f"{u['activation']:.3g}", u["png"]] for u in doc["units"]]
    what = f"layer {doc['layer']}" if doc["layer"] else "classes"
    print_table(f"edgecnn visualize features ({what}, {steps} steps) → {out}", ["unit", "", "activation", "png"], rows)


@visualize_group.command("filters")
@click.argument("source", metavar="MODEL|CHECKPOINT")
@click.option("--zoom", type=click.IntRange(1, 64), default=8, show_default=True, help="Pixels per weight.")
@_weights
@_out
@_json
def visualize_filters(source: str, zoom: int, weights: str | None, out: str, as_json: bool) -> None:
    """The first convolution's kernels as one picture (filters.png + filters.json)."""
    from edgecnn.explain.feature_files import filters_files

    model, _ = _model(source, weights)
    doc = filters_files(model, out, zoom=zoom)
    if as_json:
        echo_json(doc)
        return
    click.echo(f"{doc['layer']}: {doc['weight_shape'][0]} filters of {doc['weight_shape'][1:]} → {out}/filters.png")


@visualize_group.command("exemplars")
@click.argument("source", metavar="MODEL|CHECKPOINT")
@click.argument("images", nargs=-1, type=click.Path())
@click.option("--layer", required=True, help="Module path of the layer.")
@click.option("--channel", required=True, type=click.IntRange(min=0), help="Channel of --layer.")
@click.option("--digits", type=click.IntRange(1, 5000), help="Use N of the embedded MNIST digits as the image set.")
@click.option("--top", type=click.IntRange(1, 100), default=9, show_default=True)
@click.option("--size", type=RESOLUTION, help="Input side in pixels (default: the model's input size).")
@_weights
@_out
@_json
def visualize_exemplars(
    source: str,
    images: tuple[str, ...],
    layer: str,
    channel: int,
    digits: int | None,
    top: int,
    size: int | None,
    weights: str | None,
    out: str,
    as_json: bool,
) -> None:
    """The IMAGES (files or folders) or --digits that activate a channel most, with receptive-field crops."""
    from edgecnn.errors import ConfigError
    from edgecnn.explain.feature_files import exemplars_files, image_paths

    if bool(images) == bool(digits):
        raise ConfigError("give IMAGES (files or folders) or --digits N", hint="e.g. --digits 500")
    model, _ = _model(source, weights)
    name = _layer(model, layer)
    if digits:
        import numpy as np

        from edgecnn.data.sources import embedded_digits

        data = embedded_digits()
        idx = np.random.default_rng(0).permutation(len(data.images))[:digits]
        pics: list[Any] = [np.asarray(data.images[i]) for i in idx]
        names = [f"digit{int(i)}(label {int(data.labels[i])})" for i in idx]
    else:
        paths = image_paths(images)
        pics, names = [str(p) for p in paths], [str(p) for p in paths]
    doc = exemplars_files(model, pics, names, out, layer=name, channel=channel, top=top, size=size)
    if as_json:
        echo_json(doc)
        return
    rows = [[str(i + 1), r["image"], f"{r['score']:.3g}", str(tuple(r["box_yxyx"]))] for i, r in enumerate(doc["top"])]
    rf = doc["receptive_field"]
    print_table(
        f"{name} channel {channel}: top {len(rows)} of {doc['images']} (receptive field {rf['size']} px, "
        f"stride {rf['stride']}) → {out}",
        ["#", "image", "max activation", "box (y0, x0, y1, x1)"],
        rows,
    )
