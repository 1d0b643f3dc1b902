"""The command line: output formats, exact goldens, error reporting, and the lazy-import promise."""

from __future__ import annotations

import json
import subprocess
import sys
import traceback
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from click.testing import CliRunner

import edgecnn
from edgecnn.cli.main import cli
from edgecnn.errors import ConfigError, UnknownNameError
from edgecnn.models import create_model, get_model_entry, list_models
from edgecnn.models.weights import save_weights
from tests.tv_reference import REPO_ROOT, TV_MODELS, tv_fixture

HEAVY = ("torch", "onnxruntime", "openvino", "nncf", "tensorrt")


def _invoke(*args: str):
    return CliRunner().invoke(cli, list(args), prog_name="edgecnn")


def _assert_clean_error(result) -> str:
    """Exit code ≠ 0, exactly one line on stderr starting with 'error:', no traceback anywhere."""
    assert result.exit_code != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    assert "Traceback" not in result.output and "Traceback" not in result.stderr
    return lines[0]


def test_version() -> None:
    result = _invoke("--version")
    assert result.exit_code == 0
    assert result.output.strip() == f"edgecnn, version {edgecnn.__version__}"


def test_help_lists_commands() -> None:
    result = _invoke("--help")
    assert result.exit_code == 0
    assert "analyze" in result.output and "list" in result.output and "--debug" in result.output
    assert _invoke("-h").output == result.output


@pytest.fixture
def fast_list(monkeypatch: pytest.MonkeyPatch) -> dict[str, tuple[int, int]]:
    """Replace the (≈8 s) analysis of all 18 models by canned numbers (the real run is test_list_models_json_real)."""
    import edgecnn.analysis

    numbers = {name: (1_000_000 + i, 2_000_000_000 + i) for i, name in enumerate(list_models())}

    def canned_analysis(name: str, *args, **kwargs) -> SimpleNamespace:
        params, macs = numbers[name]
        return SimpleNamespace(params=params, macs=macs)

    monkeypatch.setattr(edgecnn.analysis, "analyze_named", canned_analysis)
    return numbers


def test_list_models_json(fast_list: dict[str, tuple[int, int]]) -> None:
    result = _invoke("list", "models", "--json")
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    assert [r["name"] for r in rows] == list_models()
    for r in rows:
        assert set(r) == {"name", "family", "task", "resolution", "params", "macs", "paper"}
        assert r["task"] == get_model_entry(r["name"]).task
        assert type(r["params"]) is int and type(r["macs"]) is int and type(r["resolution"]) is int
        assert (r["params"], r["macs"]) == fast_list[r["name"]]
        assert r["family"] == get_model_entry(r["name"]).family
        assert r["resolution"] == get_model_entry(r["name"]).default_resolution


def test_list_models_table(fast_list: dict[str, tuple[int, int]]) -> None:
    result = _invoke("list", "models")
    assert result.exit_code == 0
    for name in list_models():
        assert name in result.output
    assert "2.00G" in result.output and "1.00M" in result.output  # human-readable units


@pytest.mark.slow
def test_list_models_json_real() -> None:
    """The real command end to end (analyses every model at its default resolution: ~8 s)."""
    result = _invoke("list", "models", "--json")
    assert result.exit_code == 0, result.output
    by_name = {r["name"]: r for r in json.loads(result.stdout)}
    assert list(by_name) == list_models()
    for name in TV_MODELS:
        ref = tv_fixture(name)
        assert (by_name[name]["params"], by_name[name]["macs"]) == (ref["params"], ref["macs"]), name
        assert by_name[name]["resolution"] == ref["default_resolution"]
    assert (by_name["mobilenet_v1"]["params"], by_name["mobilenet_v1"]["macs"]) == (4_231_976, 568_740_352)
    assert by_name["efficientnet_lite0"]["params"] == 4_652_008
    assert all(type(r["params"]) is int and type(r["macs"]) is int for r in by_name.values())


def test_analyze_json_golden() -> None:
    result = _invoke("analyze", "mobilenet_v2", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == {
        "resolution": 224,
        "batch": 1,
        "model": "mobilenet_v2",
        "input_shape": [1, 3, 224, 224],
        "params": 3_504_872,  # torchvision
        "macs": 300_774_272,  # torchvision
        "resize_macs": 0,
        "activation_bytes": 77_862_304,  # sum of every layer's fp32 output (regression golden)
        "peak_activation_bytes": 4 * 96 * 112 * 112,  # the first 6× expansion at 112×112
        "weight_bytes_fp32": 4 * 3_504_872,
        "weight_bytes_fp16": 2 * 3_504_872,
        "weight_bytes_int8": 3_614_208,  # int8 weights + 8 bytes per output channel (regression golden)
    }


def test_analyze_options_json() -> None:
    result = _invoke(
        "analyze", "mobilenet_v2", "-r", "160", "--batch", "2", "--num-classes", "10", "--width-mult", "0.5", "--json"
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert (data["resolution"], data["batch"], data["input_shape"]) == (160, 2, [2, 3, 160, 160])
    from edgecnn.analysis import analyze_named

    ref = analyze_named("mobilenet_v2", 160, batch=2, num_classes=10, width_mult=0.5)
    assert (data["params"], data["macs"]) == (ref.params, ref.macs)


def test_analyze_per_layer_json() -> None:
    result = _invoke("analyze", "mobilenet_v3_small", "--per-layer", "--json")
    assert result.exit_code == 0
    data = json.loads(result.stdout)
    layers = data["layers"]
    assert layers[0]["name"] == "stem.conv" and layers[0]["output_shape"] == [1, 16, 112, 112]
    assert sum(r["params"] for r in layers) == data["params"] == 2_542_856
    assert sum(r["macs"] for r in layers) == data["macs"] == 56_510_400
    assert "layers" not in json.loads(_invoke("analyze", "mobilenet_v3_small", "--json").stdout)


def test_analyze_per_layer_table() -> None:
    result = _invoke("analyze", "mobilenet_v3_small", "--per-layer")
    assert result.exit_code == 0
    out = result.output
    assert "per layer" in out
    for name in ("stem.conv", "blocks.0.0.se.conv_reduce", "head.conv", "classifier"):
        assert name in out
    assert "2,542,856" in out and "56,510,400" in out


def test_analyze_table() -> None:
    result = _invoke("analyze", "efficientnet_b0")
    assert result.exit_code == 0
    assert "5,288,548" in result.output and "385,814,752" in result.output


def test_analyze_checkpoint_path(tmp_path: Path) -> None:
    path = save_weights(create_model("mobilenet_v3_small", num_classes=12), tmp_path / "m.safetensors")
    result = _invoke("analyze", str(path), "-r", "96", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["model"] == "mobilenet_v3_small" and data["resolution"] == 96
    assert data["params"] == 2_542_856 - 1025 * (1000 - 12)


def test_analyze_with_weights(make_tv_checkpoint) -> None:
    result = _invoke("analyze", "mobilenet_v3_small", "--weights", str(make_tv_checkpoint("mobilenet_v3_small")))
    assert result.exit_code == 0, result.output
    assert "2,542,856" in result.output


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (("analyze", "mobilenet_v4"), "did you mean 'mobilenet_v2'"),
        (("analyze", "alexnet", "-r", "8"), "resolution"),
        (("analyze", "mobilenet_v2", "--weights", "does/not/exist.pth"), "does not exist"),
        (("analyze", "missing.safetensors"), "does not exist"),
    ],
)
def test_errors_are_one_clean_line(args: tuple[str, ...], needle: str) -> None:
    line = _assert_clean_error(_invoke(*args))
    assert needle in line


def test_weights_errors_are_clean(tmp_path: Path) -> None:
    pointer = tmp_path / "w.pth"
    pointer.write_text("version https://git-lfs.github.com/spec/v1\noid sha256:00\nsize 1\n")
    assert "git lfs pull" in _assert_clean_error(_invoke("analyze", "mobilenet_v2", "--weights", str(pointer)))
    torch.save({"stem.conv.weight": torch.zeros(1)}, tmp_path / "tiny.pth")
    line = _assert_clean_error(_invoke("analyze", "mobilenet_v2", "--weights", str(tmp_path / "tiny.pth")))
    assert "missing" in line


def test_errors_in_nested_commands_are_clean(monkeypatch: pytest.MonkeyPatch) -> None:
    import edgecnn.analysis

    def broken(name: str, *args, **kwargs):
        raise ConfigError(f"cannot analyse {name}", hint="a test hint")

    monkeypatch.setattr(edgecnn.analysis, "analyze_named", broken)
    line = _assert_clean_error(_invoke("list", "models", "--json"))
    assert line == "error: cannot analyse alexnet (a test hint)"


def test_usage_errors_exit_2() -> None:
    result = _invoke("analyze", "mobilenet_v2", "--width-mult", "0")
    assert result.exit_code == 2
    assert "Traceback" not in result.output
    assert _invoke("nonsense").exit_code == 2


def test_debug_shows_traceback() -> None:
    result = _invoke("--debug", "analyze", "mobilenet_v4")
    assert result.exit_code != 0
    assert isinstance(result.exception, UnknownNameError)
    tb = "".join(traceback.format_exception(*result.exc_info))
    assert "Traceback" in tb and "registry.py" in tb
    with pytest.raises(UnknownNameError):
        CliRunner().invoke(cli, ["--debug", "analyze", "mobilenet_v4"], catch_exceptions=False)


def test_console_script_error() -> None:
    """The real entry point (``python -m edgecnn``): one stderr line, exit 1, nothing on stdout."""
    cmd = [sys.executable, "-m", "edgecnn", "analyze", "mobilenet_v4"]
    plain = subprocess.run(cmd, capture_output=True, text=True, timeout=120, cwd=REPO_ROOT)
    assert plain.returncode == 1
    assert plain.stderr.strip() == "error: unknown model 'mobilenet_v4' (did you mean 'mobilenet_v2'?)"
    assert plain.stdout == ""


# -- lazy imports (docs/architecture.md, principle 4) ---------------------------------------------------------------


def _loaded_after(code: str) -> list[str]:
    """Run ``code`` in a fresh interpreter and return which heavy SDKs it imported."""
    probe = f"{code}\nimport sys\nprint(sorted(m for m in {HEAVY!r} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, cwd=REPO_ROOT)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1].replace("'", '"'))


def test_import_edgecnn_and_cli_is_light() -> None:
    assert _loaded_after("import edgecnn; edgecnn.__version__; import edgecnn.cli.main") == []


@pytest.mark.parametrize(
    "argv", [["--help"], ["--version"], ["analyze", "--help"], ["list", "--help"], ["list", "models", "--help"]]
)
def test_cli_help_is_light(argv: list[str]) -> None:
    code = (
        "import contextlib, io\n"
        "from edgecnn.cli.main import cli\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        f"    rc = cli({argv!r}, prog_name='edgecnn', standalone_mode=False)\n"
        "assert rc in (None, 0), rc"
    )
    assert _loaded_after(code) == []


def test_runtime_never_imports_torch() -> None:
    code = (
        "import numpy as np\n"
        "import edgecnn.runtime as rt\n"
        "rt.preprocess_image(np.zeros((40, 50, 3), np.uint8), rt.Preprocessing(input_size=32, resize_size=36))"
    )
    assert _loaded_after(code) == []


def test_errors_and_registry_are_light() -> None:
    assert _loaded_after("import edgecnn.errors, edgecnn.registry") == []


def test_geometry_is_light() -> None:
    assert _loaded_after("import edgecnn.layers.geometry") == []


USAGE_ERRORS = [
    ("nonsense",),
    ("export",),
    ("export", "mobilenet_v2"),
    ("export", "mobilenet_v2", "-t", "onnx", "-r", "0"),
    ("export", "mobilenet_v2", "-t", "onnx", "-r", "100000"),
    ("export", "mobilenet_v2", "-t", "onnx", "--batch", "0"),
    ("export", "mobilenet_v2", "-t", "onnx", "--bogus-flag"),
    ("analyze", "mobilenet_v2", "-r", "1"),
    ("analyze", "mobilenet_v2", "-r", "abc"),
    ("profile", "mobilenet_v2", "-r", "0"),
    ("profile", "mobilenet_v2", "--top", "-1"),
    ("bench", "mobilenet_v2", "--threads", "0"),
    ("bench", "mobilenet_v2", "--threads", "-3"),
    ("run", "b"),
    ("run", "b", "x.png", "--top-k", "0"),
    ("run", "b", "x.png", "--threads", "0"),
    ("selftest",),
    ("quantize", "mobilenet_v2", "-r", "3"),
    ("list", "nothing"),
    ("train", "--no-such-option"),
]


@pytest.mark.parametrize("args", USAGE_ERRORS, ids=lambda a: " ".join(a))
def test_usage_errors_are_one_line(args) -> None:
    """click's own usage errors (issue 15, item 6) in the project's format: one ``error:`` line, exit 2."""
    result = _invoke(*args)
    line = _assert_clean_error(result)
    assert result.exit_code == 2, result.output
    assert "--help" in line


def test_os_error_is_one_line(tmp_path) -> None:
    """A file-system error inside a command (here: the preview's --out under a file) is one line naming the path."""
    (tmp_path / "f").write_text("x")
    result = _invoke(
        "augment", "preview", "mnist_embedded", "-n", "1", "--rows", "1", "--out", str(tmp_path / "f" / "x.png")
    )
    line = _assert_clean_error(result)
    assert str(tmp_path / "f") in line
    assert (tmp_path / "f").read_text() == "x"


def test_non_utf8_recipe_is_one_line(tmp_path) -> None:
    bad = tmp_path / "r.toml"
    bad.write_bytes(b'[data]\nsource = "\xff\xfe"\n')
    line = _assert_clean_error(_invoke("train", str(bad), "--out", str(tmp_path / "run")))
    assert "not UTF-8" in line


@pytest.mark.parametrize("key", ["options", "preprocessing", "classes"])
def test_checkpoint_with_non_json_metadata_is_one_line(tmp_path, key) -> None:
    """Safetensors metadata is free text: a value that is not JSON is a WeightsFormatError, not a JSONDecodeError."""
    import edgecnn
    from edgecnn.models.weights import save_weights

    ckpt = save_weights(
        edgecnn.create_model("mobilenet_v3_small", num_classes=4), tmp_path / "m.safetensors", extra={key: "{not json"}
    )
    out = tmp_path / "b"
    line = _assert_clean_error(_invoke("export", str(ckpt), "-t", "onnx", "-r", "32", "--out", str(out)))
    assert "is not JSON" in line and key in line
    assert not out.exists()


def test_train_limits_and_resume_refused_up_front(tmp_path) -> None:
    """train.threads=0 was silently ignored while bench --threads 0 is refused; --resume with nothing to resume
    silently started over (issue 15, item 5)."""
    line = _assert_clean_error(
        _invoke("train", "mnist_embedded", "--set", "train.threads=0", "--out", str(tmp_path / "a"))
    )
    assert "train.threads" in line
    line = _assert_clean_error(_invoke("train", "mnist_embedded", "--resume", "--out", str(tmp_path / "b")))
    assert "no checkpoint to resume" in line
    assert not (tmp_path / "b").exists()


@pytest.mark.parametrize("command", [("train",), ("train", "noisy-student")])
def test_train_into_an_earlier_run_is_refused_unless_resumed_or_overwritten(tmp_path, command) -> None:
    """A second `train --out DIR` into a finished run silently replaced its checkpoints and log (issue 15, item 4)."""
    run = tmp_path / "run"
    (run / "teacher").mkdir(parents=True)
    (run / "teacher" / "model.json").write_text('{"keep": true}')
    (run / "notes.txt").write_text("mine")
    before = {p: p.read_bytes() for p in run.rglob("*") if p.is_file()}
    line = _assert_clean_error(_invoke(*command, "mnist_embedded", "--out", str(run)))
    assert "already holds a training run" in line and "--overwrite" in line
    assert {p: p.read_bytes() for p in run.rglob("*") if p.is_file()} == before


def test_bare_group_prints_its_help_and_nul_argument_is_one_line() -> None:
    result = _invoke("list")
    assert result.stderr.startswith("Usage: edgecnn list") and "error" not in result.stderr
    line = _assert_clean_error(_invoke("run", "nul\x00path", "x.png"))
    assert "NUL byte" in line


def test_quantize_checks_out_and_report_dir_before_calibrating(tmp_path) -> None:
    """The bundle used to be written and only then the report fail (issue 15, item 4): both are checked first."""
    (tmp_path / "f").write_text("x")
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "keep.txt").write_text("x")
    base = ["quantize", "mobilenet_v3_small", "-t", "onnx", "-r", "32", "--calib-data", "embedded"]
    line = _assert_clean_error(_invoke(*base, "--report-dir", str(tmp_path / "f" / "r"), "--out", str(tmp_path / "b")))
    assert "is a file" in line
    line = _assert_clean_error(_invoke(*base, "--out", str(tmp_path / "mine"), "--overwrite"))
    assert "not an edgecnn bundle" in line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f", "mine"]
