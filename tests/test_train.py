"""Trainer, recipes, schedule, EMA, checkpoints and resume — on a tiny model and the procedural data set."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file

from edgecnn.errors import ConfigError
from edgecnn.train.ema import ModelEma
from edgecnn.train.optim import build_optimizer, lr_at, param_groups
from edgecnn.train.recipe import OptimConfig, Recipe, load_recipe, recipe_from_dict, shipped_recipes
from edgecnn.train.trainer import evaluate, fit

TINY = {
    "model": {"name": "mobilenet_v3_small", "width_mult": 0.25, "dropout": 0.1},
    "data": {
        "source": "shapes",
        "input_size": 16,
        "samples": 96,
        "batch_size": 16,
        "val_fraction": 0.125,
        "test_fraction": 0.125,
    },
    "optim": {"name": "adamw", "epochs": 3, "lr": 0.01, "warmup_epochs": 1},
    "train": {"progress": False, "bn_momentum": 0.1, "ema_decay": 0.9, "threads": 1, "seed": 3},
    "augment": {
        "hflip_p": 0.5,
        "crop_p": 0.5,
        "crop_scale": [0.6, 1.0],
        "rotate_p": 0.5,
        "rotate_degrees": 10.0,
        "jitter_p": 0.5,
        "brightness": 0.2,
        "cutout_p": 0.3,
        "mixup_p": 0.3,
        "cutmix_p": 0.3,
    },
}


def tiny(**sections) -> Recipe:
    data = {k: dict(v) for k, v in TINY.items()}
    for k, v in sections.items():
        data[k] = {**data.get(k, {}), **v}
    return recipe_from_dict(data, source="test")


# ---------------------------------------------------------------- recipes


def test_shipped_recipes_validate():
    names = shipped_recipes()
    assert {"mnist_embedded", "imagenet_mobilenet_v3"} <= set(names)
    for name in names:
        r = load_recipe(name)
        assert isinstance(r, Recipe)
    r = load_recipe("mnist_embedded")
    assert r.augment.hflip_p == 0 and r.augment.vflip_p == 0  # no flips for digits


def test_unknown_key_names_path_and_suggestion():
    with pytest.raises(ConfigError, match=r"optim\.lrr") as e:
        recipe_from_dict({"optim": {"lrr": 0.1}})
    assert "optim.lr" in str(e.value)
    with pytest.raises(ConfigError, match=r"\[optimizer\]") as e:
        recipe_from_dict({"optimizer": {"lr": 0.1}})
    assert "[optim]" in str(e.value)


def test_wrong_types_and_values():
    with pytest.raises(ConfigError, match="optim.epochs"):
        recipe_from_dict({"optim": {"epochs": "ten"}})
    with pytest.raises(ConfigError, match="train.amp"):
        recipe_from_dict({"train": {"amp": "fp8"}})
    with pytest.raises(ConfigError, match="adamw"):
        recipe_from_dict({"optim": {"name": "adamm"}})
    with pytest.raises(ConfigError, match="augment.crop_scale"):
        recipe_from_dict({"augment": {"crop_scale": [0.5]}})
    assert recipe_from_dict({"optim": {"lr": 1}}).optim.lr == 1.0  # ints are fine where floats are expected


def test_overrides_and_files(tmp_path):
    path = tmp_path / "r.toml"
    path.write_text('[optim]\nlr = 0.5\n[model]\nname = "mobilenet_v2"\n')
    r = load_recipe(path, ["optim.lr=0.01", "train.seed=7", 'model.name="efficientnet_b0"', "data.mean=[0.1,0.2,0.3]"])
    assert (r.optim.lr, r.train.seed, r.model.name, r.data.mean) == (0.01, 7, "efficientnet_b0", (0.1, 0.2, 0.3))
    with pytest.raises(ConfigError, match="KEY=VALUE"):
        load_recipe(path, ["optim.lr"])
    with pytest.raises(ConfigError, match="mnist_embedded"):
        load_recipe("mnist_embeded")
    bad = tmp_path / "bad.toml"
    bad.write_text("[optim\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_recipe(bad)


# ---------------------------------------------------------------- optimizer pieces


def test_no_weight_decay_on_bn_and_bias():
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4), torch.nn.Linear(4, 2))
    decay, no_decay = param_groups(model, 0.1)
    assert decay["weight_decay"] == 0.1 and no_decay["weight_decay"] == 0.0
    assert all(p.ndim > 1 for p in decay["params"]) and all(p.ndim == 1 for p in no_decay["params"])
    assert len(decay["params"]) == 2 and len(no_decay["params"]) == 4
    for name in ("sgd", "adamw", "rmsprop"):
        opt = build_optimizer(model, OptimConfig(name=name))
        assert len(opt.param_groups) == 2
    assert build_optimizer(model, OptimConfig(name="sgd")).param_groups[0]["nesterov"]


def test_cosine_schedule_with_warmup():
    cfg = OptimConfig(lr=1.0, warmup_start=0.0, min_lr_ratio=0.1)
    lr = [lr_at(s, total_steps=100, warmup_steps=10, base_lr=1.0, cfg=cfg) for s in range(101)]
    assert lr[0] == 0.0 and lr[5] == pytest.approx(0.5) and lr[10] == pytest.approx(1.0)
    assert lr[55] == pytest.approx(0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * 0.5)))
    assert lr[100] == pytest.approx(0.1)
    assert all(a >= b for a, b in zip(lr[10:], lr[11:], strict=False))  # monotone after warm-up


def test_ema_tracks_weights():
    model = torch.nn.Linear(2, 1)
    ema = ModelEma(model, decay=0.5)
    with torch.no_grad():
        model.weight.fill_(1.0)
    before = ema.module.weight.clone()
    ema.update(model)
    d = min(0.5, 2 / 11)
    torch.testing.assert_close(ema.module.weight, d * before + (1 - d) * torch.ones_like(before))


# ---------------------------------------------------------------- training runs


def test_fit_writes_checkpoint_log_curves_and_loads_back(tmp_path):
    res = fit(tiny(), tmp_path)
    assert res.epochs == 3 and res.test_top1 is not None and res.images_per_s > 0
    for name in (
        "model.safetensors",
        "model.json",
        "last.safetensors",
        "last.json",
        "last.state.safetensors",
        "log.jsonl",
        "curves.png",
    ):
        assert (tmp_path / name).is_file(), name
    rows = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [1, 2, 3] and {"train_loss", "val_top1", "lr"} <= set(rows[0])
    side = json.loads((tmp_path / "model.json").read_text())
    assert side["arch"]["name"] == "mobilenet_v3_small" and side["classes"][0] == "square"
    assert side["preprocessing"]["input_size"] == 16 and "torch" in side["versions"]
    assert side["recipe"]["optim"]["lr"] == 0.01 and "test_top1" in side["metrics"]
    assert not list(tmp_path.glob(".*"))  # no temp files left behind

    from edgecnn.data.sources import procedural_splits
    from edgecnn.models.resolve import resolve_model

    model, info = resolve_model(str(tmp_path / "model.safetensors"))
    assert info.classes[:2] == ("square", "disc") and info.preprocessing.input_size == 16
    test = procedural_splits(96, size=16, val_fraction=0.125, test_fraction=0.125).test
    m = evaluate(model, test, info.preprocessing)
    assert m["top1"] == pytest.approx(res.test_top1)  # the checkpoint is what was evaluated
    p = _cli("analyze", str(tmp_path / "model.safetensors"), "-r", "16", "--json")
    assert p.exit_code == 0 and json.loads(p.stdout)["params"] > 0


def _final_weights(path):
    return load_file(str(path))


def test_resume_gives_bit_identical_weights(tmp_path):
    recipe = tiny()
    full = fit(recipe, tmp_path / "full")
    part = fit(recipe, tmp_path / "part", stop_after_epoch=1)
    assert part.epochs == 1 and not (tmp_path / "part" / "model.safetensors").exists()
    with open(tmp_path / "part" / "log.jsonl", "a") as f:
        f.write('{"epoch": 2, "train_lo')  # the interruption tore the next log line
    resumed = fit(recipe, tmp_path / "part", resume=True)
    assert resumed.epochs == 3
    a, b = _final_weights(full.checkpoint), _final_weights(resumed.checkpoint)
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    sa = _final_weights(tmp_path / "full" / "last.state.safetensors")
    sb = _final_weights(tmp_path / "part" / "last.state.safetensors")
    assert all(torch.equal(sa[k], sb[k]) for k in sa)  # optimizer moments and raw weights too
    rows = (tmp_path / "part" / "log.jsonl").read_text().splitlines()
    assert [json.loads(r)["epoch"] for r in rows] == [1, 2, 3]


def test_same_seed_same_weights_other_seed_differs(tmp_path):
    r = tiny(optim={"epochs": 1})
    a = _final_weights(fit(r, tmp_path / "a").checkpoint)
    b = _final_weights(fit(r, tmp_path / "b").checkpoint)
    c = _final_weights(fit(tiny(optim={"epochs": 1}, train={"seed": 4}), tmp_path / "c").checkpoint)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a)


@pytest.mark.parametrize("opt", ["sgd", "rmsprop"])
def test_other_optimizers_grad_clip_label_smoothing(tmp_path, opt):
    r = tiny(
        optim={"name": opt, "epochs": 1, "lr": 0.01}, train={"grad_clip": 1.0, "label_smoothing": 0.1, "ema_decay": 0.0}
    )
    res = fit(r, tmp_path)
    assert res.history[0]["train_loss"] > 0 and math.isfinite(res.history[0]["train_loss"])


def test_bf16_autocast_on_cpu(tmp_path):
    res = fit(tiny(optim={"epochs": 1}, train={"amp": "bf16", "channels_last": False}), tmp_path)
    assert math.isfinite(res.history[0]["train_loss"])


@pytest.mark.slow  # ~8 s quiet, ~15 s on a busy 2-core box
def test_learns_mnist_subset(tmp_path):
    r = tiny(
        model={"width_mult": 0.5, "dropout": 0.0, "head_init_scale": 0.0},
        data={
            "source": "embedded",
            "samples": 800,
            "input_size": 32,
            "batch_size": 32,
            "val_fraction": 0.2,
            "test_fraction": 0.0,
        },
        optim={"epochs": 4, "lr": 0.005},
        augment={
            "mixup_p": 0.0,
            "cutmix_p": 0.0,
            "cutout_p": 0.0,
            "rotate_p": 0.0,
            "jitter_p": 0.0,
            "hflip_p": 0.0,
            "crop_p": 0.0,
        },
        train={"ema_decay": 0.0},
    )
    res = fit(r, tmp_path)
    assert res.val_top1 > 0.3  # ten classes: chance is 0.1; 80 steps from scratch


def test_bad_batch_and_divergence_errors(tmp_path):
    with pytest.raises(ConfigError, match="batch"):
        fit(tiny(data={"batch_size": 512}), tmp_path / "a")
    with pytest.raises(ConfigError, match="diverged"):
        fit(tiny(optim={"lr": 1e30, "epochs": 1, "name": "sgd", "warmup_epochs": 0}), tmp_path / "b")
    (tmp_path / "file").write_text("x")
    with pytest.raises(ConfigError, match="is a file"):
        fit(tiny(), tmp_path / "file")


# ---------------------------------------------------------------- the shared step loop


def _toy_loop(lr: float = 0.1):
    """A seeded linear classifier, four fixed batches and a StepLoop over them (SGD, cosine without warm-up)."""
    from edgecnn.train.distill import objective
    from edgecnn.train.loop import StepLoop
    from edgecnn.train.optim import schedule

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(6, 8), torch.nn.BatchNorm1d(8), torch.nn.ReLU(), torch.nn.Linear(8, 3))
    g = torch.Generator().manual_seed(1)
    x = torch.randn(32, 6, generator=g)
    y = torch.nn.functional.one_hot(x[:, :3].argmax(1), 3).float()  # a learnable rule
    batches = [(x[i : i + 8], y[i : i + 8]) for i in range(0, 32, 8)]
    loop = StepLoop(
        optimizer=torch.optim.SGD(net.parameters(), lr=lr, momentum=0.9),
        loss_fn=objective(None, alpha=0.0, temperature=1.0),
        lr_at=schedule(OptimConfig(lr=lr, min_lr_ratio=0.0), total_steps=4 * 5, warmup_steps=0),
        grad_clip=5.0,
        freeze_bn=True,
    )
    return net, batches, loop


def _run_toy(epochs: int = 5):
    net, batches, loop = _toy_loop()
    stats, step = [], 0
    for epoch in range(epochs):
        stats.append(loop.run_epoch(net, batches, epoch=epoch, step=step))
        step = stats[-1].step
    return net, stats, loop


def test_step_loop_is_deterministic_and_learns():
    net_a, stats_a, loop = _run_toy()
    net_b, stats_b, _ = _run_toy()
    assert [s.step for s in stats_a] == [4, 8, 12, 16, 20] and stats_a[0].samples == 32 and stats_a[0].batches == 4
    assert [s.loss_sum for s in stats_a] == [s.loss_sum for s in stats_b]  # bit-identical on a second run
    assert all(torch.equal(a, b) for a, b in zip(net_a.state_dict().values(), net_b.state_dict().values(), strict=True))
    assert stats_a[-1].mean_loss < 0.6 * stats_a[0].mean_loss  # it learns
    assert loop.optimizer.param_groups[0]["lr"] == pytest.approx(loop.lr_at(19))  # the schedule is applied per step
    assert net_a.training and not net_a[1].training  # freeze_bn: BatchNorm stays in eval mode
    assert int(net_a[1].num_batches_tracked) == 0


def test_step_loop_names_the_divergence():
    net, batches, loop = _toy_loop()
    bad = [(batches[0][0] * float("nan"), batches[0][1])]
    with pytest.raises(ConfigError, match=r"training diverged at epoch 3, step 7") as e:
        loop.run_epoch(net, bad, epoch=2, step=7)
    assert "learning rate" in e.value.hint


def test_fit_steps_through_the_shared_loop(tmp_path, monkeypatch):
    """The trainer's epochs are StepLoop.run_epoch calls (the loop QAT fine-tuning uses; see test_quant_qat.py)."""
    from edgecnn.train.loop import StepLoop

    calls = []
    original = StepLoop.run_epoch

    def spy(self, module, batches, *, epoch, step):
        stats = original(self, module, batches, epoch=epoch, step=step)
        calls.append((epoch, step, stats.step, self.after_step is not None))
        return stats

    monkeypatch.setattr(StepLoop, "run_epoch", spy)
    res = fit(tiny(optim={"epochs": 2}), tmp_path)
    assert calls == [(0, 0, 4, True), (1, 4, 8, True)]  # the EMA update rides on the loop's after-step hook
    assert [r["step"] for r in res.history] == [4, 8]


def test_train_never_imports_later_layers():
    """edgecnn.train sits below quant, exporters, bench and cli: not even a function-level import of them."""
    import ast
    from pathlib import Path

    import edgecnn.train

    later = ("edgecnn.quant", "edgecnn.exporters", "edgecnn.bench", "edgecnn.cli", "exporters", "benchmarks")
    for path in Path(edgecnn.train.__file__).parent.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            bad = [n for n in names if n.startswith(later)]
            assert not bad, f"{path.name} imports {bad}"


# ---------------------------------------------------------------- CLI


def _cli(*args):
    """In-process CLI call (a subprocess would pay the torch import again)."""
    from click.testing import CliRunner

    from edgecnn.cli.main import cli

    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def test_cli_train_recipe_with_overrides(tmp_path):
    recipe = tmp_path / "r.toml"
    lines = []
    for section, table in TINY.items():
        lines.append(f"[{section}]")
        lines += [f"{k} = {json.dumps(v)}" for k, v in table.items()]
    recipe.write_text("\n".join(lines) + "\n")
    out = tmp_path / "run"
    p = _cli("train", str(recipe), "--out", str(out), "--epochs", "1", "--set", "train.seed=5", "--json")
    assert p.exit_code == 0, p.output
    summary = json.loads(p.stdout)
    assert summary["epochs"] == 1 and summary["checkpoint"].endswith("model.safetensors")
    assert json.loads((out / "model.json").read_text())["recipe"]["train"]["seed"] == 5
    p = _cli("train", str(recipe), "--set", "optim.lrr=1")
    assert p.exit_code != 0 and "optim.lrr" in p.stderr and "did you mean 'optim.lr'" in p.stderr
    assert "Traceback" not in p.stderr
    p = _cli("train", "recipes")
    assert p.exit_code == 0 and "mnist_embedded" in p.stdout


def test_cli_augment_preview(tmp_path):
    out = tmp_path / "preview.png"
    p = _cli("augment", "preview", "mnist_embedded", "--out", str(out), "-n", "6", "--rows", "3")
    assert p.exit_code == 0, p.output
    from PIL import Image

    assert Image.open(out).format == "PNG"


def test_import_edgecnn_still_torch_free():
    code = "import sys, edgecnn, edgecnn.data, edgecnn.train; import edgecnn.cli.main; print('torch' in sys.modules)"
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert p.stdout.strip() == "False", p.stderr


def test_train_embedded_default_demo_entry(tmp_path):
    from edgecnn.train.quick import train_embedded_default

    lines: list[str] = []
    res = train_embedded_default(
        tmp_path,
        epochs=1,
        overrides=["data.samples=400", "train.threads=1", "train.progress=false"],
        report=lines.append,
    )
    assert res.checkpoint == tmp_path / "model.safetensors" and res.test_top1 is not None
    assert any(line.startswith("embedded default: test top-1") for line in lines)
    side = json.loads((tmp_path / "model.json").read_text())
    assert side["arch"]["name"] == "mobilenet_v2" and side["classes"] == [str(d) for d in range(10)]
    assert side["preprocessing"]["color"] == "RGB" and side["preprocessing"]["input_size"] == 36


def test_fit_on_a_class_per_folder_tree(tmp_path):
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    for split_name in ("train", "val"):
        for k, cls in enumerate(("dark", "light")):
            d = tmp_path / split_name / cls
            d.mkdir(parents=True)
            for i in range(8):
                base = 40 + 160 * k
                img = np.clip(base + rng.normal(0, 20, (20, 24, 3)), 0, 255).astype(np.uint8)
                Image.fromarray(img).save(d / f"{i}.png")
    r = tiny(
        data={
            "source": "folder",
            "path": str(tmp_path / "train"),
            "val_path": str(tmp_path / "val"),
            "input_size": 16,
            "train_load_size": 20,
            "crop_mode": "resize_crop",
            "resize_size": 18,
            "batch_size": 4,
            "samples": None,
        },
        optim={"epochs": 1},
    )
    res = fit(r, tmp_path / "run")
    side = json.loads((tmp_path / "run" / "model.json").read_text())
    assert side["classes"] == ["dark", "light"] and side["preprocessing"]["crop_mode"] == "resize_crop"
    assert side["preprocessing"]["mean"] == [0.485, 0.456, 0.406]  # ImageNet statistics for folders by default
    assert res.val_top1 is not None and res.test_top1 is None  # no test tree given
