"""PyTorch → ONNX: the one ``torch.onnx.export`` call of the package.

The float export uses the *dynamo* exporter (the maintained path; the TorchScript exporter is deprecated), single
file (``external_data=False``), static or dynamic batch, then shape inference, the ``GlobalAveragePool`` rewrite, the
ONNX checker, and the exporter's debugging metadata stripped. A QAT model goes through the TorchScript tracer
instead (``tracer=True``): NNCF's Quantize/Dequantize export mode hooks that tracer, and the dynamo exporter would
need ``torchao`` for fake quantizers (:mod:`edgecnn.quant.qat_export`).
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgecnn.errors import ConfigError, ExportError

log = logging.getLogger(__name__)
INPUT, OUTPUT = "input", "logits"  # the tensor names of every bundle's model file


@dataclass(frozen=True, kw_only=True)
class DynamicBatch:
    """A dynamic batch dimension with its range (and the size engines optimise for)."""

    min: int
    opt: int
    max: int

    @classmethod
    def parse(cls, text: str) -> DynamicBatch:
        """'MIN:OPT:MAX' (or 'MIN:MAX', opt = min)."""
        parts = text.split(":")
        try:
            nums = [int(p) for p in parts]
        except ValueError:
            nums = []
        if len(nums) == 2:
            nums = [nums[0], nums[0], nums[1]]
        if len(nums) != 3 or not 1 <= nums[0] <= nums[1] <= nums[2]:
            raise ConfigError(
                f"--dynamic-batch {text!r} is not MIN:OPT:MAX with 1 <= MIN <= OPT <= MAX",
                hint="e.g. --dynamic-batch 1:8:32",
            )
        return cls(min=nums[0], opt=nums[1], max=nums[2])


def torch_to_onnx(
    model: Any,
    example: Any,
    path: Path,
    *,
    opset: int,
    dynamic_batch: DynamicBatch | None,
    tracer: bool = False,
    what: str = "torch.onnx.export",
) -> Path:
    """Write ``model`` (eval mode) to ``path`` with the exporter's logging silenced; an exporter failure becomes an
    :class:`ExportError` carrying its first line. ``tracer`` picks the TorchScript exporter (see the module doc)."""
    import torch

    kwargs: dict[str, Any]
    if tracer:
        axes = {INPUT: {0: "batch"}, OUTPUT: {0: "batch"}} if dynamic_batch is not None else None
        kwargs = {"dynamo": False, "dynamic_axes": axes}
        hint = "rerun with --debug; the TorchScript exporter supports opsets up to 20"
    else:
        shapes = None
        if dynamic_batch is not None:
            shapes = ({0: torch.export.Dim("batch", min=dynamic_batch.min, max=dynamic_batch.max)},)
        kwargs = {"dynamo": True, "external_data": False, "dynamic_shapes": shapes, "verbose": False}
        hint = "rerun with --debug for the full exporter log"
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        logging.getLogger("torch.onnx").setLevel(logging.ERROR)
        try:
            torch.onnx.export(
                model.eval(),
                (example,),
                str(path),
                opset_version=opset,
                input_names=[INPUT],
                output_names=[OUTPUT],
                **kwargs,
            )
        except Exception as e:  # torch.export raises many types; report the first line
            raise ExportError(f"{what} failed: {str(e).splitlines()[0][:300]}", hint=hint) from e
    return path


def export_onnx(model: Any, example: Any, path: Path, *, opset: int, dynamic_batch: DynamicBatch | None) -> Path:
    """Export ``model`` (eval mode) to ``path`` with the dynamo exporter; BN is folded into convs by its optimizer.
    The file is checked (ONNX checker, strict shape inference) and its pools rewritten (``GlobalAveragePool``)."""
    import onnx

    from edgecnn.onnx_graph.edit import strip_debug_metadata
    from edgecnn.onnx_graph.rewrites import global_average_pools

    torch_to_onnx(model, example, path, opset=opset, dynamic_batch=dynamic_batch)
    proto = onnx.shape_inference.infer_shapes(onnx.load(str(path)), strict_mode=True)
    global_average_pools(proto.graph)
    onnx.checker.check_model(proto, full_check=True)
    proto = onnx.shape_inference.infer_shapes(proto, strict_mode=True)
    strip_debug_metadata(proto)
    onnx.save(proto, str(path))
    return path
