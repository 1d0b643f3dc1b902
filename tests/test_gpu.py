"""The CUDA path: PyTorch baselines on cuda and bundles through ONNX Runtime's CUDA execution provider. Marked
``gpu``: they run only where a CUDA device and onnxruntime-gpu exist (never on this project's CI). The refusal on a
machine without CUDA runs everywhere."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from edgecnn import runtime
from edgecnn.bench.runners import TorchMode, load_torch
from edgecnn.errors import ConfigError
from tests.export_helpers import export_cached


def _has_cuda_ep() -> bool:
    try:
        import onnxruntime as ort
    except ImportError:
        return False
    return "CUDAExecutionProvider" in ort.get_available_providers()


HAS_GPU = torch.cuda.is_available() and _has_cuda_ep()
needs_gpu = pytest.mark.skipif(not HAS_GPU, reason="needs a CUDA device, a CUDA torch and onnxruntime-gpu")


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_cuda_baseline_refused_without_cuda() -> None:
    with pytest.raises(ConfigError, match="no CUDA device"):
        load_torch("mobilenet_v2", mode=TorchMode.EAGER, resolution=32, threads=1, device="cuda")


@pytest.mark.gpu
@needs_gpu
@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_ort_cuda_bundle_matches_cpu(tmp_path, precision) -> None:
    b = export_cached(tmp_path, "mobilenet_v2", "onnx", precision)
    x = np.random.default_rng(0).standard_normal((1, 3, 32, 32)).astype(np.float32)
    cpu = runtime.load(b).predict(x)
    gpu_sess = runtime.load(b, device="cuda")
    assert gpu_sess.backend.device == "cuda" and gpu_sess.selftest()["ok"]
    tol = 1e-3 if precision == "fp32" else 3e-2
    assert np.abs(gpu_sess.predict(x) - cpu).max() <= tol * np.abs(cpu).max()


@pytest.mark.gpu
@needs_gpu
def test_cuda_torch_baseline_times_on_the_device() -> None:
    loaded = load_torch("mobilenet_v2", mode=TorchMode.EAGER, resolution=32, threads=1, device="cuda")
    assert loaded.device.startswith("cuda")
    out = loaded.make(2)()
    assert out.is_cuda and out.shape == (2, 1000)
