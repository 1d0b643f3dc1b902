"""Export targets (onnx, openvino, tensorrt) and the shared export driver. Installed as ``edgecnn.exporters``."""

if __name__ == "exporters":  # pragma: no cover - guard against importing the source folder as a top-level package
    raise ImportError("import edgecnn.exporters, not exporters (the folder is installed as edgecnn.exporters)")

from edgecnn.exporters import onnx_target, openvino_target, tensorrt_target  # noqa: E402,F401  (register targets)
from edgecnn.exporters.driver import ExportResult, export_bundle  # noqa: E402
from edgecnn.exporters.options import DynamicBatch, ExportOptions, Precision  # noqa: E402
from edgecnn.exporters.target import TARGETS, BuildContext, Built, Target, register_target  # noqa: E402

__all__ = [
    "TARGETS",
    "BuildContext",
    "Built",
    "DynamicBatch",
    "ExportOptions",
    "ExportResult",
    "Precision",
    "Target",
    "export_bundle",
    "register_target",
]
