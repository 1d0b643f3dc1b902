"""Calibration, post-training INT8 quantization per target, quantization-risk lint and the accuracy report.

* :mod:`~edgecnn.quant.samples` — calibration / evaluation sources, always through the evaluation transform;
* :mod:`~edgecnn.quant.config` — :class:`QuantConfig` (method, per-channel, budget, presets);
* :mod:`~edgecnn.quant.onnx_flow` / :mod:`~edgecnn.quant.ort_ptq` — ONNX Runtime QDQ for ``onnx`` and ``tensorrt``;
* :mod:`~edgecnn.quant.openvino_flow` — NNCF for ``openvino``;
* :mod:`~edgecnn.quant.rounding` — error-compensated (GPTQ) weight rounding, on the grid both backends use;
* :mod:`~edgecnn.quant.names` — ``--keep-float`` layer / node names, checked before any work;
* :mod:`~edgecnn.quant.qat` / :mod:`~edgecnn.quant.qat_export` — quantization-aware training (NNCF, torch) and the
  export of the scales it learned, for every target;
* :mod:`~edgecnn.quant.layer_error`, :mod:`~edgecnn.quant.metrics` — per-layer and output error measures;
* :mod:`~edgecnn.quant.lint` — risks found before quantizing;
* :mod:`~edgecnn.exporters.int8_report` — JSON / Markdown / PNG report;
* :mod:`~edgecnn.exporters.int8` — :func:`quantize`, what ``edgecnn quantize`` calls.

The exporters call into this package for ``--precision int8`` (``ExportOptions.quant``). Importing it loads no SDK.
"""
