"""Hardware profiles: every built-in loads under the strict schema; bad TOML gets one clear, key-pathed error."""

from __future__ import annotations

import json
import subprocess
import sys
import tomllib
from importlib import resources
from pathlib import Path

import pytest
from click.testing import CliRunner

from edgecnn.cli.main import cli
from edgecnn.errors import ConfigError, UnknownNameError
from edgecnn.profiles import OP_KINDS, builtin_profiles, get_profile, load_profile_file, parse_profile

REQUIRED = {
    "x86-avx512-server",
    "x86-avx2-laptop",
    "cortex-a76-rpi5",
    "cortex-a53",
    "jetson-orin-nano",
    "jetson-orin-nx-dla",
    "nvidia-t4",
    "nvidia-h100",
    "intel-npu",
}


def _raw(name: str) -> dict:
    return tomllib.loads(resources.files("edgecnn.profiles").joinpath(f"{name}.toml").read_text())


def test_builtin_profiles_cover_the_issue_list() -> None:
    profiles = builtin_profiles()
    assert set(profiles) >= REQUIRED
    kinds = {p.kind for p in profiles.values()}
    assert {"cpu", "gpu", "npu", "dla"} <= kinds


@pytest.mark.parametrize("name", sorted(REQUIRED))
def test_every_figure_has_a_source_and_precision_peaks(name: str) -> None:
    p = get_profile(name)
    for prec in p.precisions:
        assert p.peak(prec) > 0
    assert set(p.efficiency) == set(OP_KINDS)
    assert p.bandwidth_gbs > 0
    for section in ("peak_gops", "memory", "caches", "efficiency", "estimator"):
        covered = section in p.sources or all(f"{section}.{k}" in p.sources for k in getattr(p, section))
        assert covered, f"{name}: {section} unsourced"
    assert p.provenance()["profile"] == name


def test_unknown_key_names_its_path_and_suggests() -> None:
    data = _raw("nvidia-t4")
    data["peak_gops"]["fp23"] = data["peak_gops"].pop("fp32")
    with pytest.raises(ConfigError, match=r"unknown key 'peak_gops\.fp23'.*did you mean 'peak_gops\.fp32'"):
        parse_profile(data, "t4.toml")


def test_unknown_top_level_key() -> None:
    data = _raw("nvidia-t4")
    data["bandwith"] = 1
    with pytest.raises(ConfigError, match="unknown key 'bandwith'"):
        parse_profile(data, "t4.toml")


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda d: d["memory"].pop("bandwidth_gbs"), "missing key 'memory.bandwidth_gbs'"),
        (lambda d: d["memory"].update(bandwidth_gbs="fast"), "memory.bandwidth_gbs has the wrong type"),
        (lambda d: d["efficiency"].update(dense=1.5), r"efficiency.dense must be in \(0, 1\]"),
        (lambda d: d.update(kind="fpga"), "kind 'fpga'"),
        (lambda d: d.update(precisions=["fp32", "int4"]), "precisions"),
        (lambda d: d["peak_gops"].pop("int8"), "no figure for precision"),
        (lambda d: d["sources"].pop("memory"), "memory.bandwidth_gbs has no source"),
        (lambda d: d["sources"].update(memory="?"), "must say where the figure comes from"),
        (lambda d: d["sources"].update(memroy="NVIDIA datasheet"), "unknown key 'sources.memroy'"),
        (lambda d: d.update(schema_version=7), "schema_version 7"),
        (lambda d: d["estimator"].update(fused_activations=1), "fused_activations has the wrong type"),
    ],
)
def test_schema_errors(mutate, message: str) -> None:
    data = _raw("nvidia-t4")
    mutate(data)
    with pytest.raises(ConfigError, match=message):
        parse_profile(data, "t4.toml")


def test_unknown_profile_suggests() -> None:
    with pytest.raises(UnknownNameError, match="did you mean 'nvidia-t4'"):
        get_profile("nvidia-t5")


def test_profile_by_path_and_bad_files(tmp_path: Path) -> None:
    src = resources.files("edgecnn.profiles").joinpath("cortex-a53.toml").read_text()
    good = tmp_path / "mine.toml"
    good.write_text(src)
    assert get_profile(str(good)).name == "cortex-a53"
    bad = tmp_path / "bad.toml"
    bad.write_text("name = [unclosed")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_profile_file(bad)
    with pytest.raises(ConfigError, match="cannot read profile"):
        get_profile(str(tmp_path / "missing.toml"))


def test_list_profiles_cli() -> None:
    res = CliRunner().invoke(cli, ["list", "profiles", "--json"])
    assert res.exit_code == 0, res.output
    names = {p["name"] for p in json.loads(res.output)}
    assert names >= REQUIRED
    table = CliRunner().invoke(cli, ["list", "profiles"])
    assert table.exit_code == 0 and "cortex-a76-rpi5" in table.output


def test_profiles_and_cli_help_do_not_import_torch() -> None:
    code = (
        "import sys; import edgecnn.profiles, edgecnn.cli.main; from edgecnn.profiles import builtin_profiles; "
        "builtin_profiles(); assert 'torch' not in sys.modules, 'torch imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
