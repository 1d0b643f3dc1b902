"""``edgecnn report``: one self-contained HTML page from a real bundle and real command outputs (tests/fixtures/report),
every section when its data exists, escaped user strings, deterministic bytes, one-line errors, atomic writes —
and the page opened in headless Chromium (skipped only when no Chromium is installed)."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from edgecnn.cli.main import cli
from edgecnn.report import build_context, collect, render_html
from edgecnn.report.browser import Chromium, find_browser
from edgecnn.runtime.manifest import MANIFEST
from tests.export_helpers import export_cached

pytestmark = pytest.mark.xdist_group("report")
FIX = Path(__file__).parent / "fixtures" / "report"
HOSTILE = "<img src=x onerror=alert(1)>"
ALL_SECTIONS = [
    "model-card",
    "verification",
    "static-analysis",
    "training",
    "quantization",
    "latency",
    "tradeoff",
    "explanations",
]
needs_chromium = pytest.mark.skipif(
    find_browser() is None, reason="no Chromium on PATH (apt-get install chromium; .ci/run installs it)"
)


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return export_cached(tmp_path_factory.mktemp("report"), "mobilenet_v3_small", "onnx")


@pytest.fixture
def hostile_bundle(bundle: Path, tmp_path: Path) -> Path:
    """A copy of the bundle whose manifest carries a hostile label (the manifest is what a stranger ships)."""
    dest = tmp_path / "hostile-bundle"
    shutil.copytree(bundle, dest)
    m = json.loads((dest / MANIFEST).read_text())
    m["labels"] = [f"class {i}" for i in range(10)]
    m["labels"][3] = HOSTILE
    m["model"]["source"] = {"kind": "weights", "path": "</script><script>alert(2)</script>", "sha256": "0" * 64}
    (dest / MANIFEST).write_text(json.dumps(m))
    return dest


def _full_inputs(bundle: Path) -> list[str]:
    return [
        str(bundle),
        str(FIX / "run"),
        str(FIX / "quant-report"),
        str(FIX / "bench.json"),
        str(FIX / "profile.json"),
        str(FIX / "explain"),
        str(FIX / "compare"),
    ]


def _report(args: list[str]) -> tuple[int, str]:
    res = CliRunner().invoke(cli, ["report", *args])
    return res.exit_code, res.output


def _embedded(html: str) -> dict:
    raw = re.search(r'<script type="application/json" id="edgecnn-report-data">(.*?)</script>', html, re.S)
    assert raw is not None
    return json.loads(raw.group(1))


@pytest.fixture(scope="module")
def full_report(bundle: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("full") / "report.html"
    code, text = _report([*_full_inputs(bundle), "--accuracy", "mnist-onnx=76.4", "--out", str(out)])
    assert code == 0, text
    return out


def test_every_section_from_real_outputs(full_report: Path, bundle: Path) -> None:
    html = full_report.read_text(encoding="utf-8")
    ids = re.findall(r'<section id="([\w-]+)"', html)
    assert ids == ALL_SECTIONS
    # the runtime's own verification ran on the bundle: hashes verified, golden self-test passed
    assert "verified</span>" in html and "PASS</span>" in html
    data = _embedded(html)
    assert data["schema"] == "edgecnn.report/1"
    [b] = data["bundles"]
    assert b["verification"]["files_ok"] and b["verification"]["selftest"]["ok"]
    assert b["manifest"] == json.loads((bundle / MANIFEST).read_text())
    assert data["bench"][0]["results"] == json.loads((FIX / "bench.json").read_text())
    # the sha256 of each bundle file is shown
    for meta in b["manifest"]["files"].values():
        assert meta["sha256"] in html
    # static analysis computed from the recorded architecture: the manifest's own counts
    assert f"{b['manifest']['model']['params']:,}" in html and f"{b['manifest']['model']['macs']:,}" in html
    # the quantization record: fp32 vs int8 accuracy and the worst layer by name
    q = json.loads((FIX / "quant-report" / "report.json").read_text())
    assert f"{100 * q['fp32_vs_int8']['int8_top1']:.2f} %" in html
    assert q["layer_errors_worst10"][0]["node"] in html
    # explanations: the overlay of explain and the side-by-side panel of explain compare, both embedded
    assert html.count('<img src="data:image/png;base64,') == 2 and "Float model vs bundle" in html


def test_self_contained_and_accessible(full_report: Path) -> None:
    html = full_report.read_text(encoding="utf-8")
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:|//|file:)""", html)
    assert not re.search(r"url\((?!#)", html) and "@import" not in html  # only in-page references
    srcs = re.findall(r'<img [^>]*src="([^"]*)"', html)
    assert srcs and all(s.startswith("data:image/png;base64,") for s in srcs)
    assert all(re.search(r'\balt="[^"]+"', tag) for tag in re.findall(r"<img [^>]*>", html))
    svgs = re.findall(r"<svg [^>]*>", html)
    assert len(svgs) >= 6 and all('role="img"' in t and re.search(r'aria-label="[^"]+"', t) for t in svgs)
    assert all('scope="' in th for th in re.findall(r"<th[ >][^>]*>", html))
    assert "Content-Security-Policy" in html and "default-src 'none'" in html


def test_deterministic_bytes(full_report: Path, bundle: Path) -> None:
    """Built again in this process from the same inputs: the same bytes as the page the CLI wrote."""
    again = render_html(build_context(collect(_full_inputs(bundle)), accuracy={"mnist-onnx": 76.4}))
    assert again == full_report.read_text(encoding="utf-8")


def test_sections_appear_only_with_their_data(tmp_path: Path) -> None:
    out = tmp_path / "r.html"
    code, text = _report([str(FIX / "bench.json"), "--out", str(out)])
    assert code == 0, text
    html = out.read_text(encoding="utf-8")
    assert re.findall(r'<section id="([\w-]+)"', html) == ["latency"]
    assert "sections: Latency" in text


def test_hostile_strings_are_text(hostile_bundle: Path, tmp_path: Path) -> None:
    bench = json.loads((FIX / "bench.json").read_text())
    bench["results"][0]["label"] = HOSTILE
    (tmp_path / "bench.json").write_text(json.dumps(bench))
    out = tmp_path / "r.html"
    code, text = _report(
        [str(hostile_bundle), str(tmp_path / "bench.json"), "--title", HOSTILE, "--no-selftest", "-o", str(out)]
    )
    assert code == 0, text
    html = out.read_text(encoding="utf-8")
    assert HOSTILE not in html and "<script>alert" not in html
    assert "&lt;img src=x onerror=alert(1)&gt;" in html
    data = _embedded(html)  # the embedded JSON keeps the string, \u-escaped
    assert data["bundles"][0]["manifest"]["labels"][3] == HOSTILE


def test_tampered_bundle_is_reported_not_trusted(bundle: Path, tmp_path: Path) -> None:
    bad = tmp_path / "tampered"
    shutil.copytree(bundle, bad)
    model = bad / "model.onnx"
    raw = bytearray(model.read_bytes())
    raw[-1] ^= 0xFF
    model.write_bytes(bytes(raw))
    out = tmp_path / "r.html"
    code, text = _report([str(bad), "-o", str(out)])
    assert code == 0, text
    assert "failed verification" in text
    html = out.read_text(encoding="utf-8")
    assert "FAILED</span>" in html and "sha256" in html and "PASS</span>" not in html


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["missing-dir"], "does not exist"),
        ([str(FIX / "README.md")], "cannot read report input"),
        ([str(FIX / "explain" / "digit-rise.png")], "cannot read report input"),
        ([str(FIX)], "nothing to report"),
        ([str(FIX / "bench.json"), "-a", "nonsense"], "is not NAME=TOP1"),
    ],
)
def test_bad_input_one_line_and_nothing_lost(args: list[str], needle: str, tmp_path: Path) -> None:
    out = tmp_path / "report.html"
    out.write_text("previous report")
    code, text = _report([*args, "--out", str(out)])
    assert code != 0
    assert needle in text and text.startswith("error:") and "Traceback" not in text
    assert len(text.strip().splitlines()) == 1
    assert out.read_text() == "previous report"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.html"]  # no temp file left behind


def test_json_no_command_writes(tmp_path: Path) -> None:
    p = tmp_path / "other.json"
    p.write_text('{"hello": "world"}')
    code, text = _report([str(p), "--out", str(tmp_path / "r.html")])
    assert code == 1 and "no edgecnn command writes" in text


def test_out_is_a_directory(tmp_path: Path) -> None:
    code, text = _report([str(FIX / "bench.json"), "--out", str(tmp_path)])
    assert code == 1 and "is a directory" in text


# -- in a real browser -------------------------------------------------------------------------------------------


# Click the "MACs" header of the static analysis table twice; return the column before and after.
SORT_MACS = """(() => {
  const t = document.querySelector('#static-analysis table.sortable');
  const col = [...t.tHead.rows[0].cells].findIndex(c => c.textContent.trim() === 'MACs');
  const values = () => [...t.tBodies[0].rows].map(r => Number(r.cells[col].dataset.v));
  const before = values();
  const b = t.tHead.rows[0].cells[col].querySelector('button');
  b.click(); b.click();
  return [before, values()];
})()"""


@pytest.fixture(scope="module")
def chromium():
    with Chromium() as browser:  # one headless Chromium for the module; every page opens in a fresh tab
        yield browser


@needs_chromium
def test_report_in_headless_chromium(chromium: Chromium, full_report: Path, tmp_path: Path) -> None:
    shot = tmp_path / "report.png"
    page = chromium.open(full_report, screenshot=shot, evaluate=SORT_MACS)
    assert page.console_errors == []
    assert page.other_requests == [], "the page fetched something besides itself and its data: URIs"
    assert page.sections == ALL_SECTIONS
    assert page.scripted, "the sorting script did not run (a wrong CSP hash would block it)"
    assert len(page.images) >= 7
    for im in page.images:
        assert im["w"] > 0 and im["h"] > 0 and im["alt"], im
    # the sorting enhancement works: MACs column of the per-layer table, descending after two clicks
    unsorted, descending = page.evaluated
    assert sorted(unsorted, reverse=True) == descending != unsorted
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 10_000


@needs_chromium
def test_hostile_label_shows_no_dialog(chromium: Chromium, hostile_bundle: Path, tmp_path: Path) -> None:
    out = tmp_path / "r.html"
    code, text = _report([str(hostile_bundle), "--title", HOSTILE, "--no-selftest", "-o", str(out)])
    assert code == 0, text
    page = chromium.open(out)
    assert page.dialogs == []
    assert page.console_errors == [] and page.other_requests == []
    assert HOSTILE in page.text  # shown as text, in the title and the label list
    assert all(im["tag"] == "svg" for im in page.images)  # no <img> came out of the label


@pytest.mark.slow
def test_demo_report_stage(bundle: Path, tmp_path: Path) -> None:
    """`make demo`'s last step on a small bundle: profile JSONs written, then demo-out/report.html."""
    from edgecnn.demo import report_stage

    shutil.copytree(FIX / "run", tmp_path / "mnist")
    report = report_stage(tmp_path, [bundle], FIX / "bench.json")
    assert report == tmp_path / "report.html"
    html = report.read_text(encoding="utf-8")
    assert re.findall(r'<section id="([\w-]+)"', html)[:3] == ["model-card", "verification", "static-analysis"]
    assert "cortex-a76-rpi5" in html and "jetson-orin-nano" in html and 'id="training"' in html


def test_minimal_bench_document(tmp_path: Path) -> None:
    """Fields an older or hand-edited file lacks show as '–' instead of failing the page."""
    bench = {"schema": "edgecnn.bench/1", "results": [{"label": "only-p50", "p50_ms": 1.5}]}
    (tmp_path / "bench.json").write_text(json.dumps(bench))
    out = tmp_path / "r.html"
    code, text = _report([str(tmp_path / "bench.json"), "-o", str(out)])
    assert code == 0, text
    assert "only-p50" in out.read_text(encoding="utf-8")


ODD_FAST = [("q", "layer_errors_worst10"), ("b", "p90_ms")]


@pytest.mark.parametrize(
    ("every_field", "value"),
    [(False, "x")] + [pytest.param(True, v, marks=pytest.mark.slow) for v in ("x", [1], None)],
)
def test_odd_fields_never_a_traceback(every_field: bool, value: object, tmp_path: Path) -> None:
    """Fields of a quantize report and of a bench result set to a value of another type (a few by default, every
    one with -m slow): the page renders or the command says why in one line; nothing raises past the CLI."""
    q = json.loads((FIX / "quant-report" / "report.json").read_text())
    bench = json.loads((FIX / "bench.json").read_text())
    keys = [("q", k) for k in q] + [("b", k) for k in bench["results"][0]] if every_field else ODD_FAST
    for i, (which, key) in enumerate(keys):
        doc = json.loads(json.dumps(q if which == "q" else bench))
        (doc if which == "q" else doc["results"][0])[key] = value
        folder = tmp_path / f"{i}-report"
        folder.mkdir()
        name = "report.json" if which == "q" else "bench.json"
        (folder / name).write_text(json.dumps(doc))
        res = CliRunner().invoke(cli, ["report", str(folder / name), "-o", str(folder / "r.html")])
        assert res.exception is None or isinstance(res.exception, SystemExit), (key, res.exception)
        if res.exit_code:
            assert res.output.startswith("error: ") and len(res.output.strip().splitlines()) == 1, (key, res.output)
        else:
            assert (folder / "r.html").stat().st_size > 1000


def test_broken_manifest_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / MANIFEST).write_text("{not json")
    code, text = _report([str(tmp_path / "b"), "-o", str(tmp_path / "r.html")])
    assert code == 1 and text.startswith("error: ") and "manifest" in text and len(text.strip().splitlines()) == 1
    assert not (tmp_path / "r.html").exists()
