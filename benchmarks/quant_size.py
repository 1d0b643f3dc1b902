"""Where the bytes of an INT8 bundle go: MobileNetV2-224 (and optionally other zoo models) fp32 vs INT8 model files
for the ``onnx`` (QDQ) and ``openvino`` (NNCF IR) targets, every byte assigned to a category — int8 weights, their
per-channel scales, biases, activation quantization parameters, graph description (issue: compression, "INT8 file
≈ 4× smaller").

Size does not depend on the weight values: random weights with seeded BN statistics, calibration on seeded random
inputs (as benchmarks/quant_latency.py).

    .venv/bin/python benchmarks/quant_size.py [--models mobilenet_v2 efficientnet_lite0]

Writes benchmarks/results/quant_size.json (+ .md).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from collections import Counter
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
WEIGHT_SLOT = {"Conv": 1, "Gemm": 1, "MatMul": 1}


def onnx_bytes(path: Path) -> dict[str, int]:
    """Every byte of an ONNX file: initializers by role, and the rest (nodes, names, metadata: the graph)."""
    import onnx
    from onnx import numpy_helper

    proto = onnx.load(str(path))
    inits = {t.name: numpy_helper.to_array(t) for t in proto.graph.initializer}
    consumers: dict[str, list[tuple[object, int]]] = {}
    for n in proto.graph.node:
        for k, i in enumerate(n.input):
            consumers.setdefault(i, []).append((n, k))
    role: dict[str, str] = {}
    for n in proto.graph.node:
        if n.op_type == "DequantizeLinear" and n.input[0] in inits:  # a stored quantized tensor
            slots = {(c.op_type, k) for c, k in consumers.get(n.output[0], [])}
            kind = "bias" if any(k == 2 for _, k in slots) else "weight"
            role[n.input[0]] = f"{'biases' if kind == 'bias' else 'weights'} ({inits[n.input[0]].dtype})"
            role[n.input[1]] = f"{kind} scales (float32)"
            if len(n.input) > 2:
                role[n.input[2]] = f"{kind} zero points"
        elif n.op_type in ("QuantizeLinear", "DequantizeLinear"):
            for i in n.input[1:]:
                role.setdefault(i, "activation scales + zero points")
        else:
            for k, i in enumerate(n.input):
                if i in inits and i not in role:
                    if WEIGHT_SLOT.get(n.op_type) == k:
                        role[i] = f"weights ({inits[i].dtype})"
                    elif k == 2 and n.op_type in WEIGHT_SLOT:
                        role[i] = f"biases ({inits[i].dtype})"
                    else:
                        role[i] = "other constants"
    out: Counter[str] = Counter()
    for name, a in inits.items():
        out[role.get(name, "other constants")] += a.nbytes
    out["graph (nodes, names, metadata)"] = path.stat().st_size - sum(out.values())
    return dict(out)


def openvino_bytes(xml: Path) -> dict[str, int]:
    """Every byte of an IR: .bin constants by what consumes them (identical constants are stored once), and the
    .xml (the graph)."""
    import hashlib

    import openvino as ov

    model = ov.Core().read_model(str(xml))
    out: Counter[str] = Counter()
    seen: set[str] = set()
    for op in model.get_ordered_ops():
        if op.get_type_name() != "Constant":
            continue
        digest = hashlib.sha256(op.get_data().tobytes()).hexdigest() + str(op.get_element_type())
        if digest in seen:  # ov.save_model writes a repeated constant's data once
            continue
        seen.add(digest)
        users = {t.get_node().get_type_name() for t in op.output(0).get_target_inputs()}
        et = op.get_element_type().get_type_name()
        if "FakeQuantize" in users:
            kind = "activation ranges (FakeQuantize)"
        elif et in ("i8", "u8"):
            kind = f"weights ({et})"
        elif "Multiply" in users and len(users) == 1:
            kind = "weight scales (f32)"
        elif users & {"Convolution", "GroupConvolution", "MatMul"}:
            kind = f"weights ({et})"
        elif "Add" in users:
            kind = f"biases ({et})"
        else:
            kind = "other constants"
        out[kind] += op.get_byte_size()
    out["other constants"] += xml.with_suffix(".bin").stat().st_size - sum(out.values())  # alignment, if any
    out["graph (.xml)"] = xml.stat().st_size
    return dict(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", nargs="+", default=["mobilenet_v2"])
    ap.add_argument("--calib", type=int, default=64)
    ap.add_argument("--out", type=Path, default=HERE / "results" / "quant_size.json")
    args = ap.parse_args()
    import torch

    import edgecnn
    from edgecnn.bench.results import write_results
    from edgecnn.exporters import ExportOptions, Precision, export_bundle
    from edgecnn.exporters.int8_report import model_bytes
    from edgecnn.models.synthetic import randomize_batchnorm
    from edgecnn.quant.config import QuantConfig
    from edgecnn.quant.samples import from_arrays

    results: dict = {
        "benchmark": "quant_size",
        "command": " ".join([sys.executable.split("/")[-1], *sys.argv]),
        "models": {},
    }
    work = Path(tempfile.mkdtemp(prefix="edgecnn-qsize-"))
    try:
        for name in args.models:
            torch.manual_seed(0)
            model = edgecnn.create_model(name).eval()
            randomize_batchnorm(model)
            res = getattr(model, "default_resolution", 224)
            x = np.random.default_rng(0).standard_normal((args.calib, 3, res, res)).astype(np.float32)
            cfg = QuantConfig(calibration=from_arrays(x, source="random"))
            entry: dict = {"params": sum(p.numel() for p in model.parameters()), "targets": {}}
            for target in ("onnx", "openvino"):
                files = {}
                for prec in ("fp32", "int8"):
                    opts = ExportOptions(
                        target=target,
                        precision=Precision(prec),
                        resolution=res,
                        quant=cfg if prec == "int8" else None,
                    )
                    b = export_bundle(model, opts, work / f"{name}-{target}-{prec}")
                    path = b.bundle / ("model.onnx" if target == "onnx" else "model.xml")
                    files[prec] = {
                        "bytes": model_bytes(b.manifest),
                        "by_category": onnx_bytes(path) if target == "onnx" else openvino_bytes(path),
                    }
                files["ratio"] = files["fp32"]["bytes"] / files["int8"]["bytes"]
                entry["targets"][target] = files
                print(name, target, json.dumps({k: v["bytes"] for k, v in files.items() if k != "ratio"}), flush=True)
            results["models"][name] = entry
    finally:
        shutil.rmtree(work, ignore_errors=True)
    md = ["# INT8 model file size: where the bytes go", "", f"`{results['command']}`", ""]
    for name, entry in results["models"].items():
        for target, files in entry["targets"].items():
            md += [
                f"## {name} → {target}: {files['fp32']['bytes']:,} → {files['int8']['bytes']:,} bytes "
                f"({files['ratio']:.2f}× smaller)",
                "",
                "| category | fp32 bytes | int8 bytes |",
                "|---|---|---|",
            ]
            cats = sorted(
                set(files["fp32"]["by_category"]) | set(files["int8"]["by_category"]),
                key=lambda c: -max(files["fp32"]["by_category"].get(c, 0), files["int8"]["by_category"].get(c, 0)),
            )
            for c in cats:
                f, i = files["fp32"]["by_category"].get(c, 0), files["int8"]["by_category"].get(c, 0)
                md.append(f"| {c} | {f:,} | {i:,} |")
            md.append("")
    write_results(args.out, results, md)


if __name__ == "__main__":
    main()
