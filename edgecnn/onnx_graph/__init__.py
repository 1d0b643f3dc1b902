"""ONNX graph utilities shared by quantization, export, per-layer views and profile fitting (the core layer).

* :mod:`~edgecnn.onnx_graph.torch_export` — the one ``torch.onnx.export`` call (dynamo, or the TorchScript tracer
  that NNCF's QAT export hooks), :class:`DynamicBatch`, and the input / output names every bundle uses;
* :mod:`~edgecnn.onnx_graph.edit` — file-level edits: metadata, debug-metadata stripping, fp16, op listing;
* :mod:`~edgecnn.onnx_graph.rewrites` — exact rewrites into the form a runtime runs fastest;
* :mod:`~edgecnn.onnx_graph.scopes` — which PyTorch layer each node belongs to (the exporter's name scopes);
* :mod:`~edgecnn.onnx_graph.names` — naming unnamed nodes and restoring metadata a graph optimizer dropped.

``onnx`` (and ``torch`` for the export call) are imported inside the functions, never at import time.
"""
