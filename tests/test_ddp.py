"""Multi-process training: torchrun starts 2 CPU processes (gloo) running `edgecnn train`; the result must equal
the single-process run on the same global batches (DDP averages gradients; DistributedSampler shards the data)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file

from edgecnn.train.recipe import load_recipe
from edgecnn.train.trainer import fit

RECIPE = """
[model]
name = "mobilenet_v3_small"
width_mult = 0.25
dropout = 0.0
head_init_scale = 0.0
[data]
source = "shapes"
input_size = 16
samples = 80
val_fraction = 0.1
test_fraction = 0.1
batch_size = 16
[optim]
name = "sgd"
lr = 0.05
momentum = 0.9
epochs = 2
warmup_epochs = 0
[train]
seed = 1
threads = 1
progress = false
freeze_bn = true   # per-sample semantics: BN statistics cannot differ between the shards and the global batch
"""


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("ddp")
    recipe = root / "r.toml"
    recipe.write_text(RECIPE)
    ddp = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc_per_node=2",
            "-m",
            "edgecnn",
            "train",
            str(recipe),
            "--out",
            str(root / "ddp"),
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert ddp.returncode == 0, ddp.stderr[-3000:]
    single = fit(load_recipe(recipe), root / "single")  # the reference: one process, the same global batches
    return root, ddp, single


def test_ddp_matches_single_process(runs):
    root, ddp, _ = runs
    a = load_file(str(root / "ddp" / "model.safetensors"))
    b = load_file(str(root / "single" / "model.safetensors"))
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-4, atol=1e-5, msg=k)
    init_ref = torch.zeros_like(a["classifier.weight"])
    assert not torch.equal(a["classifier.weight"], init_ref)  # training did move the (zero-initialized) head


def test_ddp_rank0_only_outputs(runs):
    root, ddp, _ = runs
    summary = json.loads(ddp.stdout)  # exactly one JSON document: only rank 0 reports
    assert summary["epochs"] == 2
    rows = (root / "ddp" / "log.jsonl").read_text().splitlines()
    assert len(rows) == 2  # one line per epoch, not per process
    side = json.loads((root / "ddp" / "model.json").read_text())
    assert side["classes"][0] == "square"
    assert not list((root / "ddp").glob(".*"))
