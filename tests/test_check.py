"""`edgecnn check`: budgets parsed strictly, figures re-measured (or predicted), exit 0 / 1 at the limits, JUnit XML
that a JUnit reader accepts."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

import edgecnn
from edgecnn.deploy.budgets import Budgets, load_budgets, parse_budgets
from edgecnn.deploy.check import check_bundle, to_junit
from edgecnn.errors import ConfigError
from edgecnn.exporters import ExportOptions, export_bundle
from edgecnn.models.synthetic import randomize_batchnorm
from edgecnn.models.weights import save_weights

pytestmark = pytest.mark.xdist_group("check")

MEASURE = {"threads": 1, "iters": 5, "warmup": 2, "rounds": 2, "eval_data": "embedded", "eval_samples": 64}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    d = tmp_path_factory.mktemp("check")
    torch.manual_seed(0)
    net = edgecnn.create_model("mobilenet_v3_small", num_classes=10, width_mult=0.25).eval()
    randomize_batchnorm(net)
    ckpt = save_weights(net, d / "tiny.safetensors")
    bundle = export_bundle(net, ExportOptions(target="onnx", resolution=32), d / "bundle").bundle
    return bundle, ckpt


def _spec(budgets: dict, **measure):
    return parse_budgets({"budgets": budgets, "measure": {**MEASURE, **measure}})


@pytest.mark.parametrize(
    ("doc", "match"),
    [
        ({"budgets": {"max_latncy_ms": 3}}, "did you mean 'max_latency_ms'"),
        ({"budgets": {}}, "no budget set"),
        ({"budgets": {"max_size_mb": "big"}}, "must be a number"),
        ({"budgets": {"max_size_mb": -1}}, "outside"),
        ({"budgets": {"min_top1": 95}}, "outside 0..1"),
        ({"budgets": {"max_size_mb": 1}, "measure": {"threads": 0}}, "integer in 1"),
        ({"budgets": {"max_size_mb": 1}, "limits": {}}, "unknown table"),
        ({"budgets": {"max_drop_points": 0.5}, "measure": {"eval_data": "embedded"}}, "reference"),
        ({"budgets": {"min_top1": 0.5}}, "needs evaluation data"),
        ({"budgets": {"max_latency_ratio": 0.1}, "measure": {"device": "cortex-a76-rpi5"}}, "cannot be predicted"),
    ],
)
def test_bad_budgets_are_refused_with_the_fix(doc, match) -> None:
    with pytest.raises(ConfigError, match=match):
        parse_budgets(doc)


def test_budget_file_errors(tmp_path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_budgets(tmp_path / "none.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[budgets\nmax_size_mb = 1")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_budgets(bad)
    ok = tmp_path / "ok.toml"
    ok.write_text('[budgets]\nmax_drop_points = 1\n[measure]\neval_data = "embedded"\nreference = "m.safetensors"\n')
    spec = load_budgets(ok, threads=2)
    assert spec.measure.reference == str(tmp_path.resolve() / "m.safetensors")  # relative to the file
    assert spec.measure.threads == 2 and spec.measure.eval_data == "embedded"


def test_exit_decision_flips_at_the_measured_figures(tiny) -> None:
    """Budgets just above the figures pass, just below fail — size and accuracy are exact; measured latency is
    noisy, so its limits sit well apart; predicted latency is exact."""
    bundle, ckpt = tiny
    first = check_bundle(bundle, _spec({"max_size_mb": 1e6, "min_top1": 0.0, "max_drop_points": 100},
                                       reference=str(ckpt)))  # fmt: skip
    assert first.ok and first.verified
    fig = {f.name: f for f in first.figures}
    size, top1, drop = fig["max_size_mb"].value, fig["min_top1"].value, fig["max_drop_points"].value
    assert 0 < size < 2 and 0.0 <= top1 <= 1.0
    assert abs(drop) < 1e-6  # an fp32 bundle of the reference checkpoint: the same answers
    for budgets, ok in (
        ({"max_size_mb": size * 1.0001}, True),
        ({"max_size_mb": size * 0.9999}, False),
        ({"min_top1": top1}, True),
        ({"min_top1": min(1.0, top1 + 1 / 64)}, top1 + 1 / 64 > 1.0),
        ({"max_drop_points": 0.0}, True),
    ):
        rep = check_bundle(bundle, _spec(budgets, reference=str(ckpt)))
        assert rep.ok is ok, (budgets, [dataclasses.asdict(f) for f in rep.figures])
    timed = check_bundle(bundle, _spec({"max_latency_ms": 1e6}))
    p50 = timed.figures[0].value
    assert timed.figures[0].how == "measured" and p50 > 0
    assert check_bundle(bundle, _spec({"max_latency_ms": p50 * 20})).ok
    assert not check_bundle(bundle, _spec({"max_latency_ms": p50 / 20})).ok
    pred = check_bundle(bundle, _spec({"max_latency_ms": 1e6}, device="cortex-a76-rpi5")).figures[0]
    assert pred.how == "predicted" and pred.band is not None and pred.band[0] < pred.value < pred.band[1]
    assert check_bundle(bundle, _spec({"max_latency_ms": pred.value * 1.0001}, device="cortex-a76-rpi5")).ok
    assert not check_bundle(bundle, _spec({"max_latency_ms": pred.value * 0.9999}, device="cortex-a76-rpi5")).ok


def test_cli_exit_codes_and_junit(tiny, tmp_path) -> None:
    from junitparser import Failure, JUnitXml

    from edgecnn.cli.main import cli

    bundle, _ = tiny
    budgets = tmp_path / "b.toml"
    junit = tmp_path / "out" / "check.xml"
    junit.parent.mkdir()
    budgets.write_text("[budgets]\nmax_size_mb = 100\n")
    ok = CliRunner().invoke(cli, ["check", str(bundle), "--budgets", str(budgets), "--junit", str(junit)])
    assert ok.exit_code == 0, ok.output
    xml = JUnitXml.fromfile(str(junit))
    cases = [c for suite in xml for c in suite]
    assert [c.name for c in cases] == ["verified", "max_size_mb"] and all(c.is_passed for c in cases)
    budgets.write_text("[budgets]\nmax_size_mb = 0.001\n")
    bad = CliRunner().invoke(cli, ["check", str(bundle), "--budgets", str(budgets), "--junit", str(junit)])
    assert bad.exit_code == 1, bad.output
    xml = JUnitXml.fromfile(str(junit))
    suite = next(iter(xml))
    assert suite.tests == 2 and suite.failures == 1
    failed = [c for c in suite if not c.is_passed]
    assert [c.name for c in failed] == ["max_size_mb"] and isinstance(failed[0].result[0], Failure)
    assert "max_size_mb" in failed[0].result[0].message
    budgets.write_text("[budgets]\nmax_sise_mb = 1\n")
    err = CliRunner().invoke(cli, ["check", str(bundle), "--budgets", str(budgets)])
    assert err.exit_code == 1 and err.output.startswith("error:") and "max_size_mb" in err.output
    assert err.output.count("\n") == 1


def test_a_bundle_that_fails_its_self_test_fails_the_gate() -> None:
    from edgecnn.deploy.check import CheckReport, Figure

    fig = Figure(name="max_size_mb", value=1, limit=2, ok=True, unit="MiB", how="measured")
    rep = CheckReport(bundle="b", device="local", verified=False, verify_detail="self-test FAIL", figures=(fig,))
    assert not rep.ok and 'failures="1"' in to_junit(rep)
    assert Budgets(max_size_mb=1).any() and not Budgets().any()
