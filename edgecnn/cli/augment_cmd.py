"""``edgecnn augment preview RECIPE``: a PNG grid of augmented training samples — look before you train."""

from __future__ import annotations

import click

from edgecnn.cli.base import cli


@cli.group("augment")
def augment_group() -> None:
    """Inspect a recipe's data augmentation."""


@augment_group.command("preview")
@click.argument("recipe")
@click.option("--out", "-o", "out_path", default="augment_preview.png", show_default=True, help="PNG to write.")
@click.option("--set", "-s", "sets", multiple=True, metavar="KEY=VALUE", help="Override a recipe key.")
@click.option("--samples", "-n", type=click.IntRange(1, 64), default=8, show_default=True, help="Images per row.")
@click.option(
    "--rows",
    type=click.IntRange(1, 16),
    default=4,
    show_default=True,
    help="Rows: the first shows the originals, the others independent augmentations.",
)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--scale", type=click.IntRange(1, 16), default=4, show_default=True, help="Pixel magnification.")
def preview_cmd(
    out_path: str, recipe: str, sets: tuple[str, ...], samples: int, rows: int, seed: int, scale: int
) -> None:
    """Write a grid: originals on top, then RECIPE's augmentations of the same images."""
    from edgecnn.data.preview import preview_grid
    from edgecnn.train.datasets import load_data
    from edgecnn.train.recipe import load_recipe

    rec = load_recipe(recipe, list(sets))
    data = load_data(rec.data)
    path = preview_grid(
        data.train,
        data.preprocessing,
        rec.augment,
        out_path,
        samples=samples,
        rows=rows,
        seed=seed,
        scale=scale,
        train_load_size=rec.data.train_load_size,
    )
    click.echo(f"wrote {path} ({rows} rows × {samples} samples)")
