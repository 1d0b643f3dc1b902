"""The target contract: a spec of what it accepts and a ``build`` that writes its files into a work dir."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import torch
from torch import nn

from edgecnn.exporters.options import ExportOptions, TargetSpec
from edgecnn.registry import Registry


@dataclass(frozen=True, kw_only=True)
class BuildContext:
    model: nn.Module
    example: torch.Tensor
    workdir: Path
    opts: ExportOptions
    target_options: dict[str, Any]
    facts: dict[str, Any]  # key facts stamped into the model file's own metadata


@dataclass(frozen=True, kw_only=True)
class Built:
    entry: str  # the file the runtime opens
    files: list[str]  # every file the target wrote (entry included)
    backend_options: dict[str, Any] = field(default_factory=dict)
    producer: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)  # said plainly in CLI output (e.g. what was not exercised)
    quantization: dict[str, Any] | None = None  # the manifest's quantization record (INT8 only)


class Target(Protocol):
    spec: TargetSpec

    def build(self, ctx: BuildContext) -> Built: ...


TARGETS: Registry[Target] = Registry("export target")
