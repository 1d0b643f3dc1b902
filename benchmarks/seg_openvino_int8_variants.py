"""OpenVINO INT8 of the trained segmentation U-Net: NNCF settings side by side (default PERFORMANCE preset with MSE
ranges as in seg_embedded.py, MIXED preset, min/max ranges), each
scored by mIoU on the 500 held-out test canvases and with what the CPU plugin runs in int8.

    OMP_WAIT_POLICY=PASSIVE nice -n 19 .venv/bin/python benchmarks/seg_openvino_int8_variants.py CHECKPOINT

CHECKPOINT: the model.safetensors a seg_embedded.py run left (its scratch folder). Writes
benchmarks/results/seg_openvino_int8_variants.json.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from train_common import environment, quiet_threads, scratch_dir, write_result  # noqa: E402

quiet_threads()


def main() -> int:
    import numpy as np
    import torch

    from edgecnn import runtime
    from edgecnn.data.segmentation import embedded_canvas_splits
    from edgecnn.exporters import ExportOptions, Precision, export_bundle
    from edgecnn.models.resolve import resolve_model
    from edgecnn.quant.config import CalibMethod, Preset, QuantConfig
    from edgecnn.quant.int8_ops import bundle_int8_ops
    from edgecnn.quant.samples import SampleSet
    from edgecnn.train.dense import evaluate_segmentation

    torch.set_num_threads(2)
    env = environment(2)
    net, _ = resolve_model(sys.argv[1])
    train, _, test = embedded_canvas_splits(train=4000, val=500, test=500, size=64, seed=0)
    pre = net.preprocessing
    mean = np.array(pre.mean, np.float32).reshape(1, 3, 1, 1)
    std = np.array(pre.std, np.float32).reshape(1, 3, 1, 1)
    calib = np.ascontiguousarray((train.images[:128].transpose(0, 3, 1, 2).astype(np.float32) / 255 - mean) / std)
    variants = [
        ("mixed", {"preset": Preset.MIXED}),
        ("minmax", {"method": CalibMethod.MINMAX}),
    ]
    out = {"benchmark": "seg_openvino_int8_variants", "command": " ".join(sys.argv), "environment": env, "rows": []}
    for label, kw in variants:
        t = time.time()
        cfg = QuantConfig(calibration=SampleSet(data=calib, source="train canvases"), **kw)
        opts = ExportOptions(target="openvino", precision=Precision.INT8, quant=cfg)
        r = export_bundle(net, opts, scratch_dir("ov_variants") / label, overwrite=True)
        sess = runtime.load(r.bundle)

        def predict(images, sess=sess):
            x = (images.transpose(0, 3, 1, 2).astype(np.float32) / 255 - mean) / std
            return np.concatenate([sess.predict(np.ascontiguousarray(x[i : i + 1])).argmax(1) for i in range(len(x))])

        scores = evaluate_segmentation(predict, test, 11)
        row = {
            "variant": label,
            "miou": scores["miou"],
            "seconds": round(time.time() - t),
            "ops": bundle_int8_ops(r.bundle),
        }
        out["rows"].append(row)
        print(row, flush=True)
    out["load_average_at_end"] = list(os.getloadavg())
    write_result("seg_openvino_int8_variants.json", out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
