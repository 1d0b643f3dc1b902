"""``edgecnn prune``: bad settings get one line and leave nothing behind; the composed path prune → fine-tune →
INT8 writes a checkpoint and a verified bundle whose manifest records the lineage."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

pytest.importorskip("torch_pruning")

from edgecnn.cli.main import cli  # noqa: E402


def _run(*args: str):
    return CliRunner().invoke(cli, list(args))


@pytest.mark.parametrize(
    ("args", "match"),
    [
        (["--ratio", "1.0"], "removes every channel"),
        (["--target-macs", "0.001", "--allocation", "greedy"], "best reachable is"),
        (["--ratio", "0.3", "--layer-ratio", "classifier=0.5"], "cannot be pruned"),
        (["--ratio", "0.3", "--target", "onnx"], "needs calibration data"),
        (["--ratio", "0.3", "--epochs", "1"], "carries no recipe"),
        (["--target-latency", "0.0001", "--profile", "cortex-a53"], "best reachable is"),
    ],
)
def test_bad_settings_one_line_nothing_written(tmp_path, args: list[str], match: str) -> None:
    out = tmp_path / "out"
    r = _run("prune", "mobilenet_v2", "--resolution", "32", "--out", str(out), *args)
    assert r.exit_code != 0
    lines = [x for x in r.output.splitlines() if x.startswith("error:")]
    assert len(lines) == 1 and match in lines[0], r.output
    assert "Traceback" not in r.output
    assert not (out / "model.safetensors").exists()


def test_prune_a_zoo_model_then_analyze_the_checkpoint(tmp_path) -> None:
    out = tmp_path / "p"
    r = _run("prune", "mobilenet_v3_small", "--ratio", "0.5", "--resolution", "32", "--out", str(out), "--json")
    assert r.exit_code == 0, r.output
    summary = json.loads(r.output)
    m0, m1 = summary["macs"]
    assert m1 < 0.6 * m0
    a = _run("analyze", str(out / "model.safetensors"), "--resolution", "32", "--json")
    assert a.exit_code == 0, a.output
    assert json.loads(a.output)["macs"] == m1
    again = _run("prune", "mobilenet_v3_small", "--ratio", "0.5", "--resolution", "32", "--out", str(out))
    assert again.exit_code != 0 and "exists" in again.output  # nothing on disk is replaced without --overwrite


def test_prune_on_a_profile_latency_budget(tmp_path) -> None:
    import edgecnn
    from edgecnn.bench.layer_costs import on_profile
    from edgecnn.profiles import get_profile

    prof = get_profile("x86-avx512-server")
    _, baseline = on_profile(prof, precision=prof.precisions[0], resolution=64)(edgecnn.create_model("mobilenet_v2"))
    args = ["prune", "mobilenet_v2", "--resolution", "64", "--profile", "x86-avx512-server", "--json"]
    r = _run(*args, "--target-latency", str(0.6 * baseline), "--out", str(tmp_path / "b"))
    assert r.exit_code == 0, r.output
    s = json.loads(r.output)
    assert s["latency_ms"]["baseline"] == pytest.approx(baseline)
    assert s["latency_ms"]["predicted"] <= 0.6 * baseline
    step = s["lineage"][0]
    assert step["latency_source"].startswith("profile x86-avx512-server") and step["settings"]["round_to"] == 16
    assert all(k % 16 == 0 or k == n for k, n in step["channels_kept"].values())


@pytest.mark.slow
def test_composed_prune_finetune_int8_bundle_records_lineage(tmp_path) -> None:
    """prune → 1 epoch of distillation on the shapes → INT8 onnx bundle, verified; the manifest says how."""
    import edgecnn
    from edgecnn.models.weights import save_weights
    from edgecnn.train.recipe import load_recipe

    gen = np.random.default_rng(0)
    calib = tmp_path / "calib.npz"
    np.savez(calib, x=gen.standard_normal((16, 3, 32, 32)).astype(np.float32))
    sets = ["data.source=shapes", "data.samples=128", "data.input_size=32", "data.batch_size=32", "train.ema_decay=0"]
    recipe = load_recipe("mnist_embedded", sets)
    teacher = edgecnn.create_model("mobilenet_v2", num_classes=6, width_mult=0.5)  # stands in for a trained one
    src = save_weights(teacher, tmp_path / "teacher.safetensors", extra={"recipe": recipe.to_dict()})
    out = tmp_path / "p"
    r = _run(
        "prune", str(src), "--ratio", "0.3", "--resolution", "32", "--epochs", "1",  # the checkpoint's own recipe
        "--target", "onnx", "--calib-data", str(calib), "--out", str(out), "--json",
    )  # fmt: skip
    assert r.exit_code == 0, r.output
    s = json.loads(r.output)
    manifest = json.loads((out / "bundle-onnx-int8" / "manifest.json").read_text())
    lineage = manifest["model"]["source"]["lineage"]
    assert [x["step"] for x in lineage] == ["prune", "finetune"]
    assert lineage[0]["source"]["sha256"] == __import__("hashlib").sha256(src.read_bytes()).hexdigest()
    assert lineage[1]["epochs"] == 1 and lineage[1]["data"]["source"] == "shapes"
    assert manifest["precision"] == "int8" and manifest["model"]["macs"] == s["macs"][1]
    assert (
        manifest["model"]["source"]["sha256"]
        == __import__("hashlib").sha256((out / "model.safetensors").read_bytes()).hexdigest()
    )


def test_edgecnn_train_starts_from_a_pruned_checkpoint(tmp_path) -> None:
    """`edgecnn train` with model.weights = a pruned checkpoint trains the pruned architecture and saves it."""
    import torch

    import edgecnn
    from edgecnn.models.resolve import resolve_model
    from edgecnn.models.weights import save_weights
    from edgecnn.prune import PruneConfig, prune_model

    torch.manual_seed(0)
    base = edgecnn.create_model("mobilenet_v2", num_classes=6, width_mult=0.35)
    pruned = prune_model(base, PruneConfig(ratio=0.5, resolution=32)).model
    src = save_weights(pruned, tmp_path / "pruned.safetensors")
    sets = ["data.source=shapes", "data.samples=96", "data.input_size=32", "data.batch_size=32", "train.ema_decay=0",
            "model.width_mult=0.35", "model.head_init_scale=1.0", f"model.weights={src}",
            "train.progress=false"]  # fmt: skip
    r = _run("train", "mnist_embedded", "--epochs", "1", "--out", str(tmp_path / "run"),
             *[x for s in sets for x in ("--set", s)])  # fmt: skip
    assert r.exit_code == 0, r.output
    trained, _ = resolve_model(str(tmp_path / "run" / "model.safetensors"))
    widths = {n: m.weight.shape for n, m in trained.named_modules() if isinstance(m, torch.nn.Conv2d)}
    assert widths == {n: m.weight.shape for n, m in pruned.named_modules() if isinstance(m, torch.nn.Conv2d)}
    assert widths != {n: m.weight.shape for n, m in base.named_modules() if isinstance(m, torch.nn.Conv2d)}
