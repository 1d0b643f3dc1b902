"""The export target descriptor: every fact about a target in one place, and the registry that finds it by name.

A target says what it accepts (precisions, opsets, dynamic batch, its own options), what a bundle of it holds, which
runtime backend runs it on a device and which one checks parity here at export, which quantizer backends make its
INT8 models (:mod:`edgecnn.quant.backend`), which per-layer profiler reads it, and how its files are built. Adding a
target is one module that registers one :class:`Target` — see ``docs/architecture.md``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from edgecnn.errors import ConfigError
from edgecnn.exporters.options import ExportOptions
from edgecnn.precision import Precision
from edgecnn.quant.backend import Quantized, QuantJob, get_quantizer
from edgecnn.registry import Registry, did_you_mean


@dataclass(frozen=True, kw_only=True)
class BuildContext:
    model: nn.Module
    example: torch.Tensor
    workdir: Path
    opts: ExportOptions
    target_options: dict[str, Any]
    facts: dict[str, Any]  # key facts stamped into the model file's own metadata
    target: Target

    def quantize(self, out: Path) -> Quantized:
        """The INT8 model from the target's quantizer backend (its QAT backend when ``opts.quant.qat`` is set)."""
        cfg = self.opts.quant
        if cfg is None:
            raise ConfigError(f"--precision int8 for {self.target.name!r} needs calibration data")
        job = QuantJob(
            model=self.model,
            example=self.example,
            workdir=self.workdir,
            opset=self.opts.opset,
            dynamic_batch=self.opts.dynamic_batch,
            cfg=cfg,
        )
        return self.target.quantizer_for(cfg.qat is not None).quantize(job, out)


@dataclass(frozen=True, kw_only=True)
class Built:
    entry: str  # the file the runtime opens
    files: list[str]  # every file the target wrote (entry included)
    backend_options: dict[str, Any] = field(default_factory=dict)
    producer: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)  # said plainly in CLI output (e.g. what was not exercised)
    quantization: dict[str, Any] | None = None  # the manifest's quantization record (INT8 only)


@dataclass(frozen=True, kw_only=True)
class Target:
    """An export target and everything edgecnn knows about it."""

    name: str
    description: str
    precisions: tuple[Precision, ...]
    opsets: tuple[int, int]
    dynamic_batch: bool = True
    options: dict[str, object] = field(default_factory=dict)  # its own option names with their defaults
    bundle_files: tuple[str, ...]  # the model files a bundle holds (the first is the entry the runtime opens)
    runtime_backend: str  # runs its bundles on a device (recorded in the manifest)
    parity_backend: str  # checks parity through edgecnn.runtime at export, on this machine
    quantizer: str | None = None  # post-training INT8 backend (edgecnn.quant registry)
    qat_quantizer: str | None = None  # exports a QAT model's learned scales
    build: Callable[[BuildContext], Built]

    def quantizer_for(self, qat: bool) -> Any:
        """The registered quantizer backend for post-training quantization, or for a QAT model."""
        name = self.qat_quantizer if qat else self.quantizer
        if name is None:
            raise ConfigError(f"target {self.name!r} has no {'QAT' if qat else 'INT8'} quantizer")
        return get_quantizer(name)

    def validate(self, opts: ExportOptions) -> dict[str, object]:
        """Check ``opts`` against this target; returns the target options with defaults filled in."""
        if opts.precision is Precision.INT8 and opts.quant is None and Precision.INT8 in self.precisions:
            raise ConfigError(
                f"--precision int8 for {self.name!r} needs calibration data",
                hint="pass --calib-data DIR|FILE.npz|embedded (or use `edgecnn quantize`)",
            )
        if opts.quant is not None and opts.precision is not Precision.INT8:
            raise ConfigError(f"quantization settings were given for --precision {opts.precision}; they need int8")
        if opts.precision not in self.precisions:
            raise ConfigError(
                f"target {self.name!r} does not take --precision {opts.precision}",
                hint=f"supported: {', '.join(self.precisions)}",
            )
        if opts.dynamic_batch and not self.dynamic_batch:
            raise ConfigError(f"target {self.name!r} does not support --dynamic-batch")
        lo, hi = self.opsets
        if not lo <= opts.opset <= hi:
            raise ConfigError(f"--opset {opts.opset} is outside {lo}..{hi} for target {self.name!r}")
        unknown = sorted(set(opts.target_options) - set(self.options))
        if unknown:
            raise ConfigError(
                f"target {self.name!r} has no option {unknown[0]!r}",
                hint=did_you_mean(unknown[0], self.options, known="options"),
            )
        merged = {**self.options, **opts.target_options}
        for k, default in self.options.items():
            if not isinstance(merged[k], type(default)):
                raise ConfigError(
                    f"option {k!r} of target {self.name!r} must be {type(default).__name__}, got {merged[k]!r}"
                )
        return merged


TARGETS: Registry[Target] = Registry("export target")


def register_target(target: Target) -> Target:
    return TARGETS.register(target.name, target)
