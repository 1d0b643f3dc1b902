"""Size and render time of an ``edgecnn report`` page (issue: one self-contained HTML deployment report).

Builds the report for a set of inputs (bundles, run directories, bench / profile JSON, explain folders — what
``make demo`` passes: give them as arguments, or ``--demo-out demo-out`` to take a finished demo's), records

- the file size in bytes, and how many of them are figures (inline SVG), embedded images and embedded JSON;
- the time ``edgecnn report`` took to build it (median of ``--builds`` runs in this process; bundle self-tests
  included), and whether every build gave the same bytes;
- the time headless Chromium took to load it (median of ``--loads`` fresh-tab loads: navigation → load event, plus
  the browser's own first-contentful-paint and load-event marks), with console errors, requests and dialogs seen;

with the environment, and saves a full-page screenshot.

    .venv/bin/python benchmarks/report_render.py BUNDLE... [RUN_DIR] [RESULTS.json...] [--loads 7]
    .venv/bin/python benchmarks/report_render.py --demo-out demo-out

Writes benchmarks/results/report_render.json (+ .md) and benchmarks/results/report_screenshot.png.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def demo_inputs(demo_out: Path) -> list[str]:
    """What ``make demo``'s last step passes to ``edgecnn report`` (edgecnn/demo.py, report_stage)."""
    names = ["lite0-onnx", "lite0-openvino", "mnist-onnx", "mnist-onnx-int8", "mnist-openvino-int8", "mnist"]
    found = [demo_out / n for n in names if (demo_out / n).is_dir()]
    found += sorted(demo_out.glob("bench.json")) + sorted(demo_out.glob("profile-*.json"))
    return [str(p) for p in found]


def composition(html: str) -> dict[str, int]:
    """Bytes of the page by kind: inline SVG figures, data: images, embedded JSON, the rest."""
    svg = sum(len(m.encode()) for m in re.findall(r"<svg .*?</svg>", html, re.S))
    img = sum(len(m.encode()) for m in re.findall(r'src="data:[^"]*"', html))
    data = re.search(r'<script type="application/json"[^>]*>(.*?)</script>', html, re.S)
    js = len(data.group(1).encode()) if data else 0
    total = len(html.encode())
    return {"total": total, "svg_figures": svg, "data_images": img, "embedded_json": js, "rest": total - svg - img - js}


def shrink_screenshot(src: Path, dest: Path, width: int = 800, colours: int = 64) -> None:
    """The full-page screenshot scaled to ``width`` px and reduced to ``colours`` (a 1280 px page of ~15,000 px is
    2 MB as it comes; this keeps it a few hundred KB for the repository)."""
    from PIL import Image

    with Image.open(src) as im:
        rgb = im.convert("RGB")
        small = rgb.resize((width, round(rgb.height * width / rgb.width)), Image.Resampling.LANCZOS)
        dest.parent.mkdir(parents=True, exist_ok=True)
        small.quantize(colors=colours, method=Image.Quantize.MEDIANCUT).save(dest, optimize=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("inputs", nargs="*", help="what to report on (as for `edgecnn report`)")
    ap.add_argument("--demo-out", type=Path, help="take the inputs of a finished `make demo` from this folder")
    ap.add_argument("--loads", type=int, default=7, help="Chromium loads (fresh tab each)")
    ap.add_argument("--builds", type=int, default=3, help="report builds (the same bytes each time?)")
    ap.add_argument("--out", type=Path, default=HERE / "results" / "report_render.json")
    ap.add_argument("--screenshot", type=Path, default=HERE / "results" / "report_screenshot.png")
    args = ap.parse_args()
    from edgecnn.bench.results import write_results
    from edgecnn.report import build_context, collect, render_html, write_html
    from edgecnn.report.browser import Chromium
    from edgecnn.runtime.env import fingerprint

    inputs = list(args.inputs) + (demo_inputs(args.demo_out) if args.demo_out else [])
    if not inputs:
        ap.error("pass the inputs of the report, or --demo-out DIR")
    build_s, pages = [], []
    for _ in range(args.builds):
        t = time.perf_counter()
        pages.append(render_html(build_context(collect(inputs))))
        build_s.append(time.perf_counter() - t)
    html = pages[0]
    with tempfile.TemporaryDirectory() as tmp:
        page_path = write_html(html, Path(tmp) / "report.html")
        loads = []
        raw_shot = Path(tmp) / "screenshot.png"
        with Chromium() as browser:
            for i in range(args.loads):
                loads.append(browser.open(page_path, screenshot=raw_shot if i == 0 else None))
        shrink_screenshot(raw_shot, args.screenshot)
    first = loads[0]
    load_ms = [p.load_ms for p in loads]
    fcp = [p.paint.get("first-contentful-paint") for p in loads if p.paint.get("first-contentful-paint")]
    doc = {
        "inputs": inputs,
        "bytes": composition(html),
        "sections": first.sections,
        "figures": len(first.images),
        "build_s": {"median": statistics.median(build_s), "all": build_s, "identical_bytes": len(set(pages)) == 1},
        "chromium": {
            "loads": args.loads,
            "navigate_to_load_ms": {"median": statistics.median(load_ms), "min": min(load_ms), "max": max(load_ms)},
            "first_contentful_paint_ms": {"median": statistics.median(fcp)} if fcp else None,
            "load_event_end_ms": {"median": statistics.median(p.load_event_ms or 0 for p in loads)},
            "console_errors": first.console_errors,
            "requests_besides_the_page": first.other_requests,
            "dialogs": first.dialogs,
            "images_not_rendered": [im["alt"] for im in first.images if not (im["w"] > 0 and im["h"] > 0)],
            "page_height_px": first.page_height,
            "viewport": [browser.width, browser.height],
            "binary": browser.binary,
            "version": browser.version,
        },
        "screenshot": str(args.screenshot.relative_to(HERE.parent))
        if args.screenshot.is_relative_to(HERE.parent)
        else str(args.screenshot),
        "environment": fingerprint(None),
        "load_average_1min": os.getloadavg()[0],
    }
    b, c = doc["bytes"], doc["chromium"]
    md = [
        "# edgecnn report: size and render time",
        "",
        f"Inputs: {', '.join(f'`{Path(i).name}`' for i in inputs)}.",
        f"Sections: {', '.join(first.sections)}; {len(first.images)} figures.",
        "",
        "| quantity | value |",
        "|---|---|",
        f"| file size | {b['total']:,} bytes ({b['total'] / 2**10:.0f} KiB) |",
        f"| of which inline SVG figures | {b['svg_figures']:,} bytes |",
        f"| of which data: images | {b['data_images']:,} bytes |",
        f"| of which embedded JSON | {b['embedded_json']:,} bytes |",
        f"| build (`edgecnn report`, median of {args.builds}) | {doc['build_s']['median']:.2f} s "
        f"(same bytes every build: {doc['build_s']['identical_bytes']}) |",
        f"| Chromium navigate → load event (median of {args.loads}) | {c['navigate_to_load_ms']['median']:.0f} ms "
        f"(min {c['navigate_to_load_ms']['min']:.0f}, max {c['navigate_to_load_ms']['max']:.0f}) |",
        f"| first contentful paint (median) | {c['first_contentful_paint_ms']['median']:.0f} ms |"
        if c["first_contentful_paint_ms"]
        else "| first contentful paint | not reported |",
        f"| console errors / other requests / dialogs | {len(c['console_errors'])} / "
        f"{len(c['requests_besides_the_page'])} / {len(c['dialogs'])} |",
        f"| page height at {c['viewport'][0]} px wide | {c['page_height_px']:,} px |",
        "",
        f"Environment: {doc['environment']['cpu']}, {doc['environment']['cores']} cores, "
        f"Python {doc['environment']['python']}, load average {doc['load_average_1min']:.1f} (the build time grows "
        f"with other load: it runs every bundle's golden self-test); {c['version']} (`{c['binary']}`) headless, "
        "a fresh tab per load.",
        f"Screenshot: `{doc['screenshot']}` (the full page at {c['viewport'][0]} px wide, scaled to 800 px and 64 "
        "colours to keep the repository small).",
        "",
        "Reproduce: `make demo`, then `.venv/bin/python benchmarks/report_render.py --demo-out demo-out`."
        if args.demo_out
        else "Reproduce: `.venv/bin/python benchmarks/report_render.py " + " ".join(inputs) + "`.",
    ]
    write_results(args.out, doc, md)
    print("\n".join(md))


if __name__ == "__main__":
    main()
