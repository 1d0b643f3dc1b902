"""Environment fingerprint recorded with every timing: numbers without their machine are not numbers."""

from __future__ import annotations

import importlib.metadata
import os
import platform
from pathlib import Path
from typing import Any

_FLAGS = ("avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "amx_bf16", "amx_int8", "asimd", "sve")
_LIBS = ("edgecnn", "numpy", "torch", "onnx", "onnxruntime", "openvino", "nncf", "tensorrt")


def _cpuinfo() -> tuple[str, list[str]]:
    model, flags = platform.processor() or platform.machine(), []
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            key = key.strip()
            if key in ("model name", "Model") and model in ("", platform.machine(), platform.processor()):
                model = value.strip()
            elif key in ("flags", "Features") and not flags:
                have = set(value.split())
                flags = [f for f in _FLAGS if f in have]
    except OSError:
        pass
    return model, flags


def fingerprint(threads: int | None = None) -> dict[str, Any]:
    """CPU model and relevant ISA flags, cores, threads, governor, OS, Python and library versions."""
    model, flags = _cpuinfo()
    gov = Path("/sys/devices/system/cpu/cpu0/cpufreq/scaling_governor")
    versions = {}
    for lib in _LIBS:
        try:
            versions[lib] = importlib.metadata.version(lib)
        except importlib.metadata.PackageNotFoundError:
            continue
    return {
        "cpu": model,
        "cpu_flags": flags,
        "cores": os.cpu_count(),
        "affinity": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "threads": threads,
        "governor": gov.read_text().strip() if gov.exists() else None,
        "os": platform.platform(),
        "python": platform.python_version(),
        "versions": versions,
    }
