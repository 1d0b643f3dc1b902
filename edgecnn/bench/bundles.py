"""Bundles for the benchmark scripts: export once (cached by directory), INT8 through ``edgecnn.quant`` when it
exists, and a reason string instead of an exception when a path is not available (so a matrix row can say so)."""

from __future__ import annotations

import logging
from pathlib import Path

from edgecnn.errors import EdgeCNNError

log = logging.getLogger(__name__)


def ensure_bundle(
    model: str,
    target: str,
    precision: str,
    out: Path,
    *,
    resolution: int = 224,
    dynamic_batch: str | None = None,
    calib_data: str = "embedded",
    samples: int = 64,
) -> tuple[Path | None, str | None]:
    """``out`` when it holds a bundle (or one was exported there now), else (None, why not). Random-init weights
    (latency does not depend on weight values); INT8 calibrates on ``calib_data`` through
    :func:`edgecnn.exporters.int8.quantize`."""
    if (out / "manifest.json").is_file():
        return out, None
    import torch

    from edgecnn.exporters import DynamicBatch, ExportOptions, Precision, export_bundle
    from edgecnn.exporters.int8 import quantize

    torch.manual_seed(0)
    dyn = DynamicBatch.parse(dynamic_batch) if dynamic_batch else None
    try:
        if precision == "int8":  # the one INT8 entry point, without its report
            quantize(
                model,
                target=target,
                calib_data=calib_data,
                samples=samples,
                resolution=resolution,
                dynamic_batch=dyn,
                out=out,
                report=False,
            )
        else:
            opts = ExportOptions(
                target=target, precision=Precision(precision), resolution=resolution, dynamic_batch=dyn
            )
            export_bundle(model, opts, out)
    except EdgeCNNError as e:
        log.info("%s %s %s not available: %s", model, target, precision, e)
        return None, str(e)
    return out, None
