"""Export fingerprints: the same seeded models exported for every target × precision, and the sha256 of every model
file a bundle holds — so a refactor of the export or quantization code can show it writes the same bytes (same
graphs, same int8 integers), not just similar accuracy.

Run it in two checkouts and compare the JSON files; the script imports the INT8 entry point wherever the checkout
keeps it, so it also runs on trees from before the quantizer backends. File hashes depend on the torch / onnx /
onnxruntime / nncf / openvino versions: compare runs from the same environment.

    .venv/bin/python benchmarks/export_fingerprints.py [--out benchmarks/results/export_fingerprints.json]
"""

from __future__ import annotations

import argparse
import hashlib
import shutil
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
MODELS = (("mobilenet_v2", 96), ("mobilenet_v3_small", 64), ("efficientnet_b0", 64))
TARGETS = ("onnx", "openvino", "tensorrt")
PRECISIONS = ("fp32", "fp16", "int8")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", default=",".join(m for m, _ in MODELS), help="comma-separated subset")
    ap.add_argument("--out", type=Path, default=HERE / "results" / "export_fingerprints.json")
    args = ap.parse_args()

    import numpy as np
    import torch

    from edgecnn.exporters import ExportOptions, Precision, export_bundle
    from edgecnn.models import create_model
    from edgecnn.models.synthetic import randomize_batchnorm
    from edgecnn.quant.samples import from_arrays

    try:
        from edgecnn.bench.results import write_results
        from edgecnn.exporters.int8 import quantize
        from edgecnn.runtime.env import fingerprint
    except ImportError:  # a checkout from before the architecture clean-up (issue 14): only the file hashes
        from edgecnn.quant.api import quantize  # type: ignore[no-redef]

        write_results, fingerprint = None, None  # type: ignore[assignment]

    wanted = args.models.split(",")
    rows: dict[str, dict] = {}
    work = Path(tempfile.mkdtemp(prefix="edgecnn-fingerprints-"))
    try:
        for name, res in (m for m in MODELS if m[0] in wanted):
            torch.manual_seed(0)
            net = randomize_batchnorm(create_model(name, num_classes=10).eval())
            calib = from_arrays(np.random.default_rng(0).standard_normal((32, 3, res, res)).astype(np.float32))
            for target in TARGETS:
                for prec in PRECISIONS:
                    out = work / f"{name}-{target}-{prec}"
                    if prec == "int8":
                        kw = {"calib_data": calib, "resolution": res, "out": out, "report": False, "samples": 32}
                        manifest = quantize(net, target=target, **kw).manifest
                    else:
                        opts = ExportOptions(target=target, precision=Precision(prec), resolution=res)
                        manifest = export_bundle(net, opts, out).manifest
                    q = manifest["quantization"] or {}
                    rows[out.name] = {
                        "files": {
                            f: hashlib.sha256((out / f).read_bytes()).hexdigest()
                            for f in manifest["files"]
                            if f != "golden.npz"
                        },
                        "parity_max_rel_error": manifest["parity"]["max_rel_error"],
                        "int8_sqnr_db": (q.get("fp32_vs_int8") or {}).get("sqnr_db"),
                        "kept_float": len(q.get("kept_float", [])),
                    }
                    print(out.name, {k: v[:12] for k, v in rows[out.name]["files"].items()}, flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    md = [
        "# Export fingerprints: sha256 of every model file, seeded models × targets × precisions",
        "",
        "`python benchmarks/export_fingerprints.py`; compare with another checkout's run in the same environment.",
        "",
        "| bundle | model files (sha256, first 16) | parity max rel. error | int8 SQNR dB |",
        "|---|---|---|---|",
    ]
    for k, v in rows.items():
        files = ", ".join(f"{f} {h[:16]}" for f, h in v["files"].items())
        sqnr = "-" if v["int8_sqnr_db"] is None else f"{v['int8_sqnr_db']:.1f}"
        md.append(f"| {k} | {files} | {v['parity_max_rel_error']:.1e} | {sqnr} |")
    if write_results is None:
        import json

        args.out.write_text(json.dumps({"bundles": rows}, indent=2) + "\n")
        return
    write_results(args.out, {"environment": fingerprint(None), "bundles": rows}, md)


if __name__ == "__main__":
    main()
