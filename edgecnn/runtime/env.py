"""Environment fingerprint recorded with every timing: numbers without their machine are not numbers."""

from __future__ import annotations

import importlib.metadata
import os
import platform
from pathlib import Path
from typing import Any

_FLAGS = (
    "avx2", "fma", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_bf16", "amx_int8", "asimd", "sve",
)  # fmt: skip
_INT8_DOT = ("avx512_vnni", "avx_vnni", "amx_int8")  # x86 int8 dot products that accumulate in int32
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


def cpu_flags() -> list[str]:
    """This machine's ISA flags that matter to inference kernels (the fingerprint's ``cpu_flags``)."""
    return _cpuinfo()[1]


def int8_saturates(flags: list[str] | None = None) -> bool:
    """True on an x86 CPU without VNNI / AMX: ONNX Runtime's and OpenVINO's u8×s8 int8 convolutions then multiply
    and add byte pairs into int16 (``vpmaddubsw``), which saturates — an INT8 model runs measurably less exactly
    than its Q/DQ graph says (EfficientNet-Lite0: output SQNR 8 dB instead of 26 dB,
    benchmarks/results/quant_calib_cli.md). ``flags``: a fingerprint's ``cpu_flags`` (default: this machine's)."""
    if flags is None:
        if platform.machine().lower() not in ("x86_64", "amd64", "i686", "x86"):
            return False
        flags = cpu_flags()
    return "avx2" in flags and not any(f in flags for f in _INT8_DOT)


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
