"""``edgecnn explain SOURCE IMAGE...`` (where a model or bundle looks) and ``edgecnn explain compare FLOAT BUNDLE
IMAGE...`` (whether the deployed bundle still looks there)."""

from __future__ import annotations

from typing import Any

import click

from edgecnn.cli.base import cli, echo_json, print_table

_METHODS = (
    "gradcam",
    "gradcam++",
    "layercam",
    "xgradcam",
    "integrated_gradients",
    "smoothgrad",
    "rise",
    "occlusion",
)


class _DefaultSubcommand(click.Group):
    """``explain SOURCE IMAGE...`` runs the ``run`` subcommand; ``explain compare ...`` the comparison."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and args[0] not in ("-h", "--help"):
            args = ["run", *args]
        return super().parse_args(ctx, args)


@cli.group("explain", cls=_DefaultSubcommand)
def explain_group() -> None:
    """Explain what a model or bundle looks at: `explain SOURCE IMAGE...` or `explain compare FLOAT BUNDLE IMAGE...`.

    SOURCE is a zoo model, a checkpoint or a bundle directory. Gradient methods (gradcam, gradcam++, layercam,
    xgradcam, integrated_gradients, smoothgrad) need the PyTorch model; rise and occlusion also run on bundles."""


@explain_group.command("run")
@click.argument("source")
@click.argument("images", nargs=-1, required=True, type=click.Path())
@click.option("--method", "-m", type=click.Choice(_METHODS), help="Default: gradcam for a model, rise for a bundle.")
@click.option("--target-class", "-c", help="Class index or label to explain (default: the predicted top-1).")
@click.option("--layer", help="CAM layer as a module path (default: the model's last spatial feature map).")
@click.option("--weights", type=click.Path(dir_okay=False), help="Weights for a zoo SOURCE.")
@click.option("--masks", type=click.IntRange(min=1), default=1000, show_default=True, help="RISE masks.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--faithfulness", is_flag=True, help="Also compute deletion / insertion AUC against a random order.")
@click.option("--out", "-o", type=click.Path(file_okay=False), default="explain-out", show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print the records as JSON.")
def explain_run(
    source: str,
    images: tuple[str, ...],
    method: str | None,
    target_class: str | None,
    layer: str | None,
    weights: str | None,
    masks: int,
    seed: int,
    faithfulness: bool,
    out: str,
    as_json: bool,
) -> None:
    """Write an overlay PNG per image, maps.npz and explain.json under --out."""
    from edgecnn.explain.files import explain_images

    res = explain_images(
        source,
        list(images),
        out=out,
        method=method,
        target=target_class,
        layer=layer,
        weights=weights,
        masks=masks,
        seed=seed,
        faithfulness=faithfulness,
        progress=not as_json,
    )
    if as_json:
        echo_json(list(res.records))
        return
    rows: list[list[str]] = []
    for r in res.records:
        row = [r["image"], r["method"], f"{r['class']} {r['label'] or ''}".strip(), f"{r['score']:.3g}", r["overlay"]]
        if "faithfulness" in r:
            f: dict[str, Any] = r["faithfulness"]
            row += [f"{f['deletion_auc']:.3f} / {f['random_deletion_auc']:.3f}"]
        rows.append(row)
    cols = ["image", "method", "class", "score", "overlay"] + (["deletion AUC / random"] if faithfulness else [])
    print_table(f"edgecnn explain → {res.out}", cols, rows)


@explain_group.command("compare")
@click.argument("float_model", metavar="FLOAT")
@click.argument("bundle", type=click.Path())
@click.argument("images", nargs=-1, required=True, type=click.Path())
@click.option("--method", "-m", type=click.Choice(["rise", "occlusion"]), default="rise", show_default=True)
@click.option("--weights", type=click.Path(dir_okay=False), help="Weights for a zoo FLOAT model.")
@click.option("--masks", type=click.IntRange(min=1), default=1000, show_default=True, help="RISE masks.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--out", "-o", type=click.Path(file_okay=False), default="explain-compare", show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print the comparison as JSON.")
def explain_compare(
    float_model: str,
    bundle: str,
    images: tuple[str, ...],
    method: str,
    weights: str | None,
    masks: int,
    seed: int,
    out: str,
    as_json: bool,
) -> None:
    """Explain FLOAT and BUNDLE with the same seeded method; per image Spearman, top-15 % IoU, top-1 agreement."""
    from edgecnn.explain.files import compare_images

    res, where = compare_images(
        float_model,
        bundle,
        list(images),
        out=out,
        method=method,
        weights=weights,
        masks=masks,
        seed=seed,
        progress=not as_json,
    )
    if as_json:
        echo_json({"summary": res.summary(), "rows": [r.to_dict() for r in res.rows]})
        return
    rows = [
        [
            r.image,
            f"{r.float_top1}",
            f"{r.bundle_top1}",
            f"{r.spearman:.3f}",
            f"{r.top_iou:.3f}",
            "LOOKS ELSEWHERE" if r.looks_elsewhere else "",
        ]
        for r in res.rows
    ]
    print_table(
        f"fp32 vs {bundle} ({method}) → {where}",
        ["image", "fp32 top-1", "bundle top-1", "Spearman", "IoU top-15%", ""],
        rows,
    )
    s = res.summary()
    click.echo(
        f"median Spearman {s['median_spearman']:.3f}, median top-15% IoU {s['median_top_iou']:.3f}, "
        f"top-1 agreement {s['top1_agreement']:.0%}"
    )
