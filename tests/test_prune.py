"""Structured pruning (edgecnn.prune): every zoo family prunes to a dense model that exports with parity, a pruned
checkpoint reloads with no pruning library, the allocations meet their budgets, bad settings fail in one line."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest
import torch
from torch import nn

pytest.importorskip("torch_pruning")

import edgecnn  # noqa: E402
from edgecnn.errors import PruningError, WeightsFormatError  # noqa: E402
from edgecnn.models.channels import apply_channel_record, channel_record  # noqa: E402
from edgecnn.models.resolve import resolve_model  # noqa: E402
from edgecnn.models.synthetic import randomize_batchnorm  # noqa: E402
from edgecnn.models.weights import save_weights  # noqa: E402
from edgecnn.prune import PruneConfig, prune_model  # noqa: E402

# one member per family at a small width and resolution (AlexNet's stem and pools need >= 63 px)
FAMILIES = {
    "mobilenet_v1": ("mobilenet_v1", 0.5, 32),
    "mobilenet_v2": ("mobilenet_v2", 0.5, 32),
    "mobilenet_v3": ("mobilenet_v3_small", 0.5, 32),
    "efficientnet": ("efficientnet_b0", 0.25, 32),
    "efficientnet_lite": ("efficientnet_lite0", 0.25, 32),
    "alexnet": ("alexnet", 0.25, 64),
}


def _model(name: str, width: float) -> nn.Module:
    torch.manual_seed(0)
    m = edgecnn.create_model(name, num_classes=10, width_mult=width).eval()
    randomize_batchnorm(m, seed=0)  # distinct BN scales: the importance ranks are not all ties
    return m


def _x(res: int) -> torch.Tensor:
    return torch.randn(2, 3, res, res, generator=torch.Generator().manual_seed(1))


def _widths(m: nn.Module) -> dict[str, tuple[int, int]]:
    return {n: (c.in_channels, c.out_channels) for n, c in m.named_modules() if isinstance(c, nn.Conv2d)}


@pytest.mark.parametrize("family", list(FAMILIES))
def test_family_prunes_dense_and_exports_with_parity(family: str, tmp_path) -> None:
    from edgecnn.exporters import ExportOptions, export_bundle
    from edgecnn.runtime import load

    name, width, res = FAMILIES[family]
    model = _model(name, width)
    before = _widths(model)
    results = {r: prune_model(model, PruneConfig(ratio=r, resolution=res)) for r in (0.3, 0.5)}
    assert _widths(model) == before  # the source model is left as it was
    for r, res_ in results.items():
        pruned = res_.model
        assert res_.macs_after < res_.macs_before, r
        assert sum(p.numel() for p in pruned.parameters()) < sum(p.numel() for p in model.parameters())
        # dense: ordinary modules with fewer channels, no masks or reparametrisations left behind
        assert not any(n.endswith("_mask") or n.endswith("_orig") for n, _ in pruned.named_parameters())
        assert any(after != before[n] for n, after in _widths(pruned).items())
        assert pruned(_x(res)).shape == (2, 10)
    assert results[0.5].macs_after < results[0.3].macs_after
    out = export_bundle(results[0.5].model, ExportOptions(target="onnx", resolution=res), tmp_path / "b")
    manifest = out.manifest
    assert manifest["model"]["macs"] == results[0.5].macs_after
    assert manifest["model"]["source"]["lineage"][0]["settings"]["ratio"] == 0.5
    session = load(out.bundle)
    x = _x(res).numpy()[:1]
    with torch.no_grad():
        ref = results[0.5].model(torch.from_numpy(x)).numpy()
    assert abs(session.predict(x) - ref).max() < 1e-3


def test_channel_multiples_and_round_trip(tmp_path) -> None:
    model = _model("mobilenet_v2", 1.0)
    res = prune_model(model, PruneConfig(ratio=0.4, resolution=32, round_to=16))
    for root, k in res.keep.items():
        size = res.sizes[root]
        assert k == size or k % 16 == 0, (root, k, size)
    path = save_weights(res.model, tmp_path / "p.safetensors")
    again, info = resolve_model(str(path))
    assert info is not None and _widths(again) == _widths(res.model)
    x = _x(32)
    with torch.no_grad():
        assert torch.equal(again(x), res.model(x))
    assert again.lineage[0]["settings"]["round_to"] == 16


def test_pruned_checkpoint_loads_without_torch_pruning(tmp_path) -> None:
    """analyze, export and the rebuild run in a process where torch_pruning cannot be imported."""
    res = prune_model(_model("mobilenet_v3_small", 0.5), PruneConfig(ratio=0.5, resolution=32))
    path = save_weights(res.model, tmp_path / "p.safetensors")
    with torch.no_grad():
        expected = res.model(_x(32)).numpy().tolist()
    code = textwrap.dedent(
        f"""
        import json, sys
        sys.modules["torch_pruning"] = None  # `import torch_pruning` now raises ImportError
        import torch
        from click.testing import CliRunner
        from edgecnn.cli.main import cli
        from edgecnn.models.resolve import resolve_model
        m, _ = resolve_model({str(path)!r})
        x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(1))
        with torch.no_grad():
            err = (m(x) - torch.tensor(json.loads({json.dumps(json.dumps(expected))}))).abs().max().item()
        r = CliRunner().invoke(cli, ["analyze", {str(path)!r}, "--resolution", "32", "--json"])
        e = CliRunner().invoke(cli, ["export", {str(path)!r}, "--target", "onnx", "--resolution", "32",
                                     "--out", {str(tmp_path / "bundle")!r}])
        print(json.dumps({{"err": err, "analyze": r.exit_code, "export": e.exit_code,
                          "tp": "torch_pruning" in sys.modules and sys.modules["torch_pruning"] is not None,
                          "out": r.output[-300:] + e.output[-300:]}}))
        """
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    got = json.loads(proc.stdout.strip().splitlines()[-1])
    assert got["err"] < 1e-5 and not got["tp"]
    assert got["analyze"] == 0 and got["export"] == 0, got["out"]
    assert (tmp_path / "bundle" / "manifest.json").is_file()


def test_corrupt_channel_record_is_one_clear_error() -> None:
    model = _model("mobilenet_v2", 0.5)
    rec = channel_record(model)
    rec["layers"]["blocks.1.0.conv_pw.conv"]["groups"] = 7
    with pytest.raises(WeightsFormatError, match="not divisible by groups"):
        apply_channel_record(model, rec)
    with pytest.raises(WeightsFormatError, match="not a layer"):
        apply_channel_record(model, {"version": 1, "layers": {"nope": {"kind": "bn", "n": 3}}})


def test_macs_budget_met_uniform_and_greedy() -> None:
    model = _model("mobilenet_v2", 1.0)
    for alloc in ("uniform", "greedy"):
        r = prune_model(model, PruneConfig(target_macs=0.5, allocation=alloc, resolution=32))
        assert 0.4 < r.macs_fraction <= 0.5 + 1e-9, (alloc, r.macs_fraction)


def test_latency_budget_greedy_spends_on_the_expensive_layers() -> None:
    """The same predicted budget under two injected cost sources: when depthwise convs are expensive the greedy plan
    cuts the expanded (depthwise) groups harder than when they are cheap — and both meet the budget."""
    model = _model("mobilenet_v2", 1.0)

    def source(dw_weight: float):
        def costs(m: nn.Module) -> tuple[dict[str, float], float]:
            per = {
                n: (dw_weight if c.groups > 1 else 1.0)
                * c.kernel_size[0] ** 2
                * c.in_channels
                * c.out_channels
                / c.groups
                / 1e4
                for n, c in m.named_modules()
                if isinstance(c, nn.Conv2d)
            }
            return per, sum(per.values()) + 1.0

        return costs

    kept = {}
    for w in (0.1, 30.0):
        _, total = source(w)(model)
        cfg = PruneConfig(target_latency_ms=0.7 * total, allocation="greedy", resolution=32)
        r = prune_model(model, cfg, layer_costs=source(w))
        assert r.predicted_ms is not None and r.predicted_ms <= 0.7 * total
        expanded = [g for g in r.keep if g.endswith("conv_dw.conv")]  # the expanded groups (DepGraph roots them)
        kept[w] = sum(r.keep[g] for g in expanded) / sum(r.sizes[g] for g in expanded)
    assert kept[30.0] < kept[0.1]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"ratio": 1.0}, "removes every channel"),
        ({"target_macs": 0.001}, "best reachable"),
        ({"target_macs": 0.001, "allocation": "greedy"}, "best reachable"),
        ({"ratio": 0.3, "layer_ratios": {"classifier": 0.5}}, "cannot be pruned"),
        (
            {"ratio": 0.3, "layer_ratios": {"blocks.1.0.conv_pw.conv": 0.5}, "ignore": ("blocks.1.0.conv_pw.conv",)},
            "cannot be pruned: it is ignored",
        ),
        ({"ratio": 0.3, "ignore": ("blokcs.1",)}, "no layer named"),
        ({"ratio": 0.3, "criterion": "taylor"}, "taylor criterion scores channels on data"),
    ],
)
def test_bad_settings_fail_with_one_line(kwargs: dict, match: str) -> None:
    with pytest.raises(PruningError, match=match) as e:
        prune_model(_model("mobilenet_v2", 0.5), PruneConfig(resolution=32, **kwargs))
    assert "\n" not in str(e.value)


def test_layer_ratio_by_any_layer_of_the_group() -> None:
    model = _model("mobilenet_v2", 1.0)
    r = prune_model(model, PruneConfig(ratio=0.0, layer_ratios={"blocks.2.0.conv_pw.conv": 0.5}, resolution=32))
    assert r.model.blocks[2][0].conv_pw.conv.out_channels == 72  # 144 → 72
    assert r.model.blocks[2][0].conv_dw.conv.out_channels == 72  # the coupled depthwise conv follows
    assert r.model.blocks[3][0].conv_pw.conv.out_channels == model.blocks[3][0].conv_pw.conv.out_channels


def test_taylor_and_bn_scale_rank_on_their_own_evidence() -> None:
    model = _model("mobilenet_v2", 0.5)
    gen = torch.Generator().manual_seed(0)
    data = [(torch.randn(8, 3, 32, 32, generator=gen), torch.randint(0, 10, (8,), generator=gen)) for _ in range(2)]
    keep = {}
    for crit in ("l1", "bn-scale", "taylor"):
        r = prune_model(model, PruneConfig(ratio=0.5, criterion=crit, resolution=32), data=data)
        keep[crit] = r.model.blocks[1][0].conv_pwl.conv.weight.detach().clone()
    assert keep["l1"].shape == keep["bn-scale"].shape == keep["taylor"].shape
    assert not torch.equal(keep["l1"], keep["bn-scale"]) and not torch.equal(keep["l1"], keep["taylor"])


def test_prune_then_recover_by_distillation_through_the_trainer(tmp_path) -> None:
    """Two rounds of prune → fine-tune (distilled from the unpruned model) on the procedural shapes; each round's
    checkpoint reloads as the pruned architecture and carries the lineage."""
    from edgecnn.prune.recover import finetune_recipe, prune_and_recover
    from edgecnn.train.recipe import load_recipe

    base = load_recipe(
        "mnist_embedded",
        ["data.source=shapes", "data.samples=160", "data.input_size=32", "data.batch_size=32", "train.progress=false",
         "train.ema_decay=0", "train.threads=1"],
    )  # fmt: skip
    recipe = finetune_recipe(base, epochs=1)
    assert recipe.optim.epochs == 1 and recipe.optim.lr < base.optim.lr and recipe.distill.alpha > 0
    teacher = _model("mobilenet_v2", 0.35)
    teacher.classifier = nn.Linear(teacher.classifier.in_features, 6)  # the shapes have 6 classes
    teacher.edgecnn_options = __import__("dataclasses").replace(teacher.edgecnn_options, num_classes=6)
    rounds = prune_and_recover(teacher, PruneConfig(target_macs=0.5, resolution=32), recipe, tmp_path, steps=2)
    assert len(rounds) == 2
    macs = [r.pruned.macs_after for r in rounds]
    assert macs[1] < macs[0] <= teacher_macs(teacher) and macs[1] <= 0.5 * teacher_macs(teacher) * 1.000001
    final = rounds[-1].model
    assert [s["step"] for s in final.lineage] == ["prune", "finetune", "prune", "finetune"]
    assert _widths(final) == _widths(rounds[-1].pruned.model)
    assert rounds[-1].trained is not None and rounds[-1].trained.test_top1 is not None


def teacher_macs(model: nn.Module) -> int:
    from edgecnn.prune import layer_macs

    return int(layer_macs(model, 32)[1])


@pytest.mark.slow
@pytest.mark.parametrize("name", edgecnn.list_models())
def test_zoo_prunes_and_exports_to_every_target_with_parity(name: str, tmp_path) -> None:
    """Every registered model at 30 % and 50 %: dense, smaller, and exported (the driver checks parity through the
    runtime) to onnx, openvino and the TensorRT-ready ONNX."""
    from edgecnn.exporters import ExportOptions, export_bundle

    # AlexNet at 224: below it the adaptive 6x6 pool upsamples, which exports a GatherND TensorRT cannot parse
    # (the unpruned model too)
    res = 224 if name == "alexnet" else 32
    torch.manual_seed(0)
    model = edgecnn.create_model(name, num_classes=10).eval()
    randomize_batchnorm(model, seed=0)
    for ratio in (0.3, 0.5):
        r = prune_model(model, PruneConfig(ratio=ratio, resolution=res))
        assert r.macs_after < r.macs_before and r.params_after < r.params_before
        for target in ("onnx", "openvino", "tensorrt"):
            out = export_bundle(r.model, ExportOptions(target=target, resolution=res), tmp_path / f"{target}-{ratio}")
            assert out.manifest["model"]["macs"] == r.macs_after
