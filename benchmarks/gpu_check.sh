#!/usr/bin/env bash
# The GPU checks in one go, on a machine with an NVIDIA GPU (run from the repository root):
#   bash benchmarks/gpu_check.sh [MODEL] [RESOLUTION]
# Needs a CUDA build of torch and onnxruntime-gpu in .venv (pip install onnxruntime-gpu); TensorRT is used where
# `import tensorrt` works. Times, side by side in one `edgecnn bench` run: PyTorch eager and torch.compile on CUDA,
# ONNX Runtime CUDA fp32 and fp16 bundles (and the TensorRT engine of a tensorrt bundle), then compares the
# nvidia-h100 profile's prediction with the measured figure. Writes benchmarks/results/gpu_check.{json,md}.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
MODEL=${1:-mobilenet_v2}
RES=${2:-224}
WORK=$(mktemp -d /tmp/edgecnn-gpu-XXXXXX)
trap 'rm -rf "$WORK"' EXIT
E() { "$PY" -m edgecnn "$@"; }
"$PY" - <<'PY'
import sys, torch
import onnxruntime as ort
ok = torch.cuda.is_available() and "CUDAExecutionProvider" in ort.get_available_providers()
print(f"torch {torch.__version__} cuda={torch.cuda.is_available()}; onnxruntime {ort.__version__} {ort.get_available_providers()}")
sys.exit(0 if ok else "gpu_check: needs torch with CUDA and onnxruntime-gpu (pip install onnxruntime-gpu)")
PY
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee "$WORK/gpu.txt"
E export "$MODEL" -t onnx -r "$RES" --out "$WORK/fp32"
E export "$MODEL" -t onnx -r "$RES" --precision fp16 --out "$WORK/fp16"
SUBJECTS=("$WORK/fp32" "$WORK/fp16")
if "$PY" -c "import tensorrt" 2>/dev/null; then
  E export "$MODEL" -t tensorrt -r "$RES" --precision fp16 --out "$WORK/trt16"
  E selftest "$WORK/trt16"
  SUBJECTS+=("$WORK/trt16")
fi
E bench "${SUBJECTS[@]}" "$MODEL:eager,compile" -r "$RES" --device cuda --warmup 50 --iters 500 \
  --baseline "$MODEL:eager" --json > "$WORK/bench.json"
E profile "$MODEL" --profile nvidia-h100 --precision fp16 -r "$RES" --json > "$WORK/h100_fp16.json"
E profile "$MODEL" --profile nvidia-h100 --precision fp32 -r "$RES" --json > "$WORK/h100_fp32.json"
"$PY" - "$WORK" "$MODEL" "$RES" <<'PY'
import json, sys, pathlib
work, model, res = pathlib.Path(sys.argv[1]), sys.argv[2], sys.argv[3]
bench = json.loads((work / "bench.json").read_text())
pred = {p: json.loads((work / f"h100_{p}.json").read_text()) for p in ("fp16", "fp32")}
gpu = (work / "gpu.txt").read_text().strip()
rows = bench["results"]
out = pathlib.Path("benchmarks/results")
(out / "gpu_check.json").write_text(json.dumps({"gpu": gpu, "bench": bench, "h100_prediction": pred}, indent=2) + "\n")
md = [f"# GPU check: {model} at {res} px, batch 1", "", f"`bash benchmarks/gpu_check.sh {model} {res}` on {gpu}.", "",
      "| subject | backend | device | precision | p50 ms | p90 ms | CoV | × eager |", "|---|---|---|---|---|---|---|---|"]
for r in rows:
    ratio = f"{r['ratio']:.2f}" if r.get("ratio") else "–"
    md.append(f"| {r['label']} | {r['backend']} | {r['device']} | {r['precision']} | {r['p50_ms']:.3f} | "
              f"{r['p90_ms']:.3f} | {r['cov']:.1%} | {ratio} |")
md += ["", "nvidia-h100 profile prediction (only meaningful on an H100):", ""]
for p, e in pred.items():
    meas = [r["p50_ms"] for r in rows if r["kind"] == "bundle" and r["precision"] == p]
    m = f"; measured ORT CUDA {meas[0]:.3f} ms" if meas else ""
    md.append(f"- {p}: predicted {e['total_ms']:.3f} ms (band {e['low_ms']:.3f}–{e['high_ms']:.3f}){m}")
(out / "gpu_check.md").write_text("\n".join(md) + "\n")
print("\n".join(md))
PY
