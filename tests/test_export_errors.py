"""Bad export input: typed errors before any work, and nothing half-written ever left behind or loadable."""

from __future__ import annotations

import dataclasses
import os

import pytest
import torch
from click.testing import CliRunner

import edgecnn
from edgecnn import runtime
from edgecnn.cli.main import cli
from edgecnn.errors import ConfigError, ParityError, UnknownNameError
from edgecnn.exporters import TARGETS, DynamicBatch, ExportOptions, Precision, export_bundle
from tests.export_helpers import export_cached


def _model():
    return edgecnn.create_model("mobilenet_v3_small", num_classes=4)


def test_unknown_target_suggests():
    with pytest.raises(UnknownNameError, match="did you mean 'openvino'"):
        export_bundle(_model(), ExportOptions(target="openvin0"))


@pytest.mark.parametrize("target", ["onnx", "openvino", "tensorrt"])
def test_int8_without_calibration_data_is_refused_before_any_work(tmp_path, target):
    out = tmp_path / "b"
    with pytest.raises(ConfigError, match=r"int8 for '\w+' needs calibration data \(pass --calib-data"):
        export_bundle(_model(), ExportOptions(target=target, precision=Precision.INT8), out)
    assert not out.exists()


def test_precision_not_taken_by_target():
    with pytest.raises(ConfigError, match="supported: fp32, fp16"):
        export_bundle(_model(), ExportOptions(target="onnx", precision=Precision.BF16))


def test_unknown_target_option():
    with pytest.raises(ConfigError, match="did you mean 'workspace_mb'"):
        export_bundle(_model(), ExportOptions(target="tensorrt", target_options={"workspace": 1}))


@pytest.mark.parametrize("text", ["8:1:4", "a:b", "0:1:2", "1:2:3:4"])
def test_bad_dynamic_batch(text):
    with pytest.raises(ConfigError, match="MIN:OPT:MAX"):
        DynamicBatch.parse(text)


def test_batch_and_dynamic_exclusive():
    with pytest.raises(ConfigError, match="exclusive"):
        ExportOptions(target="onnx", batch=2, dynamic_batch=DynamicBatch.parse("1:2:4"))


def test_existing_destination_is_kept(tmp_path):
    out = tmp_path / "b"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    with pytest.raises(ConfigError, match="--overwrite"):
        export_bundle(_model(), ExportOptions(target="onnx", resolution=32), out)
    assert (out / "keep.txt").read_text() == "mine"


@pytest.mark.parametrize("exc", [KeyboardInterrupt, RuntimeError])
def test_interrupted_export_leaves_nothing(tmp_path, monkeypatch, exc):
    target = TARGETS.get("onnx")
    real = target.build

    def build_then_die(ctx):
        real(ctx)
        raise exc("interrupted")

    # descriptors are frozen: swap in a copy whose build dies after writing its files
    monkeypatch.setitem(TARGETS._entries, "onnx", dataclasses.replace(target, build=build_then_die))
    out = tmp_path / "b"
    with pytest.raises(exc):
        export_bundle(_model(), ExportOptions(target="onnx", resolution=32), out)
    assert not out.exists()
    assert list(tmp_path.iterdir()) == []  # no temp dir left behind


def test_failed_overwrite_keeps_old_bundle(tmp_path, monkeypatch):
    out = export_cached(tmp_path, "mobilenet_v3_small", "onnx")
    before = (out / "manifest.json").read_text()
    import edgecnn.exporters.driver as driver

    monkeypatch.setattr(
        driver,
        "check_parity",
        lambda *a, **k: {
            "ok": False,
            "max_rel_error": 1.0,
            "tolerance": {"max_rel_error": 1e-4},
            "top_k_identical": False,
        },
    )
    with pytest.raises(ParityError, match="does not match PyTorch"):
        export_bundle(_model(), ExportOptions(target="onnx", resolution=32), out, overwrite=True)
    assert (out / "manifest.json").read_text() == before
    assert runtime.load(out).selftest()["ok"]


def test_overwrite_replaces_after_success(tmp_path):
    out = tmp_path / "b"
    export_bundle(_model(), ExportOptions(target="onnx", resolution=32), out)
    export_bundle(_model(), ExportOptions(target="onnx", resolution=48), out, overwrite=True)
    assert runtime.open_bundle(out).manifest.inputs[0].shape == (1, 3, 48, 48)


def test_parity_catches_a_wrong_export(tmp_path, monkeypatch):
    """A check that can fail: corrupt the ONNX weights after export and the driver refuses the bundle."""
    import onnx
    from onnx import numpy_helper

    import edgecnn.exporters.onnx_target as ot

    real = ot.set_metadata

    def corrupt_then_stamp(path, facts):
        proto = onnx.load(str(path))
        init = proto.graph.initializer[0]
        init.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(init) * 1.5, init.name))
        onnx.save(proto, str(path))
        real(path, facts)

    monkeypatch.setattr(ot, "set_metadata", corrupt_then_stamp)
    with pytest.raises(ParityError):
        export_bundle(_model(), ExportOptions(target="onnx", resolution=32), tmp_path / "b")
    assert not (tmp_path / "b").exists()


def test_cli_export_run_selftest_inspect(tmp_path):
    from PIL import Image

    torch.manual_seed(0)
    runner = CliRunner()
    out = tmp_path / "bundle"
    r = runner.invoke(cli, ["export", "mobilenet_v3_small", "--target", "onnx", "-r", "32", "--out", str(out)])
    assert r.exit_code == 0, r.output
    assert "parity" in r.output and "randomly initialised" in r.output
    img = tmp_path / "x.png"
    Image.new("RGB", (40, 30), (200, 10, 10)).save(img)
    r = runner.invoke(cli, ["run", str(out), str(img), "-k", "2", "--json"])
    assert r.exit_code == 0, r.output
    r = runner.invoke(cli, ["selftest", str(out)])
    assert r.exit_code == 0 and r.output.startswith("PASS")
    r = runner.invoke(cli, ["inspect", str(out), "--json"])
    assert r.exit_code == 0 and '"verified": true' in r.output
    r = runner.invoke(cli, ["export", "mobilenet_v3_small", "--target", "onnx", "--out", str(out)])
    assert r.exit_code == 1 and r.output.startswith("error:") and "Traceback" not in r.output
    r = runner.invoke(cli, ["export", "mobilenet_v3_small", "--target", "onnx", "-p", "int4"])
    assert r.exit_code == 1 and "unknown --precision" in r.output
    r = runner.invoke(cli, ["selftest", str(tmp_path / "nope")])
    assert r.exit_code == 1 and "does not exist" in r.output
    r = runner.invoke(cli, ["list", "targets", "--json"])
    assert r.exit_code == 0 and '"tensorrt"' in r.output


def test_overwrite_refuses_a_folder_that_is_not_a_bundle(tmp_path):
    """--overwrite used to delete any directory (issue 15, item 1): a user's folder must survive, path named."""
    out = tmp_path / "photos"
    out.mkdir()
    (out / "holiday.jpg").write_bytes(b"precious")
    with pytest.raises(ConfigError, match="not an edgecnn bundle") as e:
        export_bundle(_model(), ExportOptions(target="onnx", resolution=32), out, overwrite=True)
    assert str(out) in str(e.value)
    assert (out / "holiday.jpg").read_bytes() == b"precious"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["photos"]


@pytest.mark.parametrize("dest", [".", "..", "/"])
def test_out_dot_refused_up_front(tmp_path, monkeypatch, dest):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "mine.txt").write_text("x")
    with pytest.raises(ConfigError, match="not a bundle directory"):
        export_bundle(_model(), ExportOptions(target="onnx", resolution=32), dest, overwrite=True)
    assert (tmp_path / "mine.txt").read_text() == "x"


def test_out_under_a_file_refused(tmp_path):
    (tmp_path / "f").write_text("x")
    with pytest.raises(ConfigError, match="is a file"):
        export_bundle(_model(), ExportOptions(target="onnx", resolution=32), tmp_path / "f" / "b")


def test_stale_temp_dirs_cleaned_and_backup_restored(tmp_path):
    """A SIGKILLed export leaves .NAME.tmp-* (issue 15, item 6); the next export of NAME removes them. A kill between
    the two renames leaves only .NAME.old-PID: that is the user's previous bundle and is put back."""
    import subprocess
    import sys

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    pid = int(dead.stdout)
    old = export_cached(tmp_path / "cache", "mobilenet_v3_small", "onnx")
    out = tmp_path / "b"
    backup = tmp_path / f".b.old-{pid}"
    import shutil

    shutil.copytree(old, backup)
    for stale in (f".b.tmp-{pid}-abc", ".b.tmp-legacy123"):
        (tmp_path / stale).mkdir()
        (tmp_path / stale / "model.onnx").write_bytes(b"0" * 100)
    live = tmp_path / f".b.tmp-{os.getpid()}-live"  # this process is alive: its work dir is left alone
    live.mkdir()
    from edgecnn.exporters.driver import clean_stale

    clean_stale(out)
    assert runtime.load(out).selftest()["ok"]  # restored
    assert sorted(p.name for p in tmp_path.iterdir() if p.name != "cache") == [live.name, "b"]
    export_bundle(_model(), ExportOptions(target="onnx", resolution=32), out, overwrite=True)
    assert sorted(p.name for p in tmp_path.iterdir() if p.name != "cache") == [live.name, "b"]


@pytest.mark.slow
def test_sigkill_during_export_never_leaves_a_partial_bundle(tmp_path):
    """Kill `edgecnn export --overwrite` at seeded random times (benchmarks/reliability.py does 30+): the destination
    is always the old or the new bundle, verified, and the next export leaves no temp dir of it behind."""
    import random
    import signal
    import subprocess
    import sys
    import time

    from edgecnn.models.weights import save_weights

    ckpt = save_weights(edgecnn.create_model("mobilenet_v3_small", num_classes=4, width_mult=0.25), tmp_path / "m.st")
    dest = tmp_path / "dest"
    cmd = [sys.executable, "-m", "edgecnn", "export", str(ckpt), "-t", "onnx", "-r", "32", "--out", str(dest)]
    cmd.append("--overwrite")
    subprocess.run(cmd, check=True, capture_output=True, timeout=600)
    rng = random.Random(0)
    for _ in range(4):
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(rng.uniform(0.5, 12.0))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        if dest.exists():  # the old bundle or the new one, verified — never a partial one
            assert runtime.load(dest).selftest()["ok"]
        else:  # killed between _place's two renames: the old bundle waits beside it and the next export restores it
            assert list(tmp_path.glob(".dest.old-*"))
    subprocess.run(cmd, check=True, capture_output=True, timeout=600)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dest", "m.st"]
