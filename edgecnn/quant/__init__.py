"""Calibration, post-training INT8 quantization backends, QAT, quantization-risk lint and error measures.

* :mod:`~edgecnn.quant.backend` — the :class:`Quantizer` interface and its registry; a target names its backends;
* :mod:`~edgecnn.quant.quantizers` — the built-in backends (ONNX Runtime QDQ, TensorRT Q/DQ, NNCF OpenVINO, NNCF QAT);
* :mod:`~edgecnn.quant.samples` — calibration / evaluation sources, always through the evaluation transform;
* :mod:`~edgecnn.quant.config` — :class:`QuantConfig` (method, per-channel, budget, presets) and ``make_config``;
* :mod:`~edgecnn.quant.onnx_flow` / :mod:`~edgecnn.quant.ort_ptq` — ONNX Runtime QDQ, laid out by a ``QdqScheme``;
* :mod:`~edgecnn.quant.openvino_flow` — NNCF on OpenVINO models;
* :mod:`~edgecnn.quant.ranges` — MSE-optimal activation ranges;
* :mod:`~edgecnn.quant.rounding` — error-compensated (GPTQ) weight rounding, on the grid both backends use;
* :mod:`~edgecnn.quant.names` — ``--keep-float`` layer / node names, checked before any work;
* :mod:`~edgecnn.quant.qat` / :mod:`~edgecnn.quant.qat_export` — quantization-aware training (NNCF, torch, through
  the trainer's step loop) and the export of the scales it learned;
* :mod:`~edgecnn.quant.layer_error`, :mod:`~edgecnn.quant.metrics` — per-layer and output error measures;
* :mod:`~edgecnn.quant.lint` — risks found before quantizing.

This package never imports the exporters, the benchmarks or the CLI (docs/architecture.md): the export driver calls
a target's quantizer backend, and ``edgecnn.exporters.int8.quantize`` (what ``edgecnn quantize`` calls) adds the
export and the report on top. Importing it loads no SDK.
"""
