"""The bundle manifest: the format every exporter writes and the runtime checks before anything is parsed.

A bundle is a directory: model file(s), ``golden.npz`` (seeded inputs with expected outputs), and
``manifest.json`` written last. The manifest is strict: missing or unknown fields are errors, file names must be
relative and stay inside the bundle, and every file is listed with its size and sha256.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgecnn.errors import ManifestError

SCHEMA_VERSION = 1
MANIFEST = "manifest.json"
GOLDEN = "golden.npz"
DTYPES = ("float32", "float16", "uint8", "int8", "int64", "int32")

# field → (type, required)
_TOP: dict[str, tuple[type | tuple[type, ...], bool]] = {
    "schema_version": (int, True),
    "producer": (dict, True),
    "created": (str, True),
    "model": (dict, True),
    "target": (str, True),
    "precision": (str, True),
    "entry": (str, True),
    "files": (dict, True),
    "inputs": (list, True),
    "outputs": (list, True),
    "preprocessing": ((dict, type(None)), True),
    "labels": ((list, type(None)), True),
    "golden": (dict, True),
    "quantization": ((dict, type(None)), True),
    "backend_options": (dict, True),
    "parity": ((dict, type(None)), True),
}
_TENSOR = {
    "name": (str, True),
    "dtype": (str, True),
    "shape": (list, True),
    "layout": ((str, type(None)), False),
    "dynamic": (dict, False),
}
_GOLDEN = {"file": (str, True), "count": (int, True), "tolerance": (dict, True)}
_FILE = {"size": (int, True), "sha256": (str, True)}


def _check_fields(obj: Any, spec: dict, where: str) -> None:
    if not isinstance(obj, dict):
        raise ManifestError(f"manifest {where}: expected an object, got {type(obj).__name__}")
    missing = [k for k, (_, req) in spec.items() if req and k not in obj]
    if missing:
        raise ManifestError(
            f"manifest {where}: missing field(s) {missing}",
            hint="the bundle was written by another tool or is damaged; re-export it",
        )
    extra = sorted(set(obj) - set(spec))
    if extra:
        raise ManifestError(
            f"manifest {where}: unknown field(s) {extra}",
            hint="a newer edgecnn may have written it; upgrade edgecnn or re-export",
        )
    for k, (typ, _) in spec.items():
        if k in obj and not isinstance(obj[k], typ) or (typ is int and isinstance(obj.get(k), bool)):
            raise ManifestError(f"manifest {where}.{k}: wrong type {type(obj[k]).__name__}")


@dataclass(frozen=True)
class TensorSpec:
    """One model input or output. ``shape`` has -1 where ``dynamic`` gives the axis name and its min/opt/max."""

    name: str
    dtype: str
    shape: tuple[int, ...]
    layout: str | None = None
    dynamic: dict[str, dict[str, int]] | None = None  # {"0": {"name": "batch", "min": 1, "opt": 1, "max": 8}}

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"name": self.name, "dtype": self.dtype, "shape": list(self.shape)}
        if self.layout:
            d["layout"] = self.layout
        if self.dynamic:
            d["dynamic"] = self.dynamic
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any], where: str) -> TensorSpec:
        _check_fields(d, _TENSOR, where)
        if d["dtype"] not in DTYPES:
            raise ManifestError(f"manifest {where}.dtype: unsupported {d['dtype']!r}", hint=f"one of {DTYPES}")
        shape = d["shape"]
        if not all(isinstance(s, int) and (s > 0 or s == -1) for s in shape):
            raise ManifestError(f"manifest {where}.shape: dims must be positive integers or -1, got {shape}")
        dyn = d.get("dynamic") or {}
        for axis, rng in dyn.items():
            if not axis.isdigit() or int(axis) >= len(shape) or shape[int(axis)] != -1:
                raise ManifestError(f"manifest {where}.dynamic: axis {axis!r} is not a -1 dim of {shape}")
            if not (
                isinstance(rng, dict)
                and all(isinstance(rng.get(k), int) for k in ("min", "opt", "max"))
                and 1 <= rng["min"] <= rng["opt"] <= rng["max"]
            ):
                raise ManifestError(f"manifest {where}.dynamic[{axis}]: needs integers 1 <= min <= opt <= max")
        if any(s == -1 for i, s in enumerate(shape) if str(i) not in dyn):
            raise ManifestError(f"manifest {where}: dim -1 without a dynamic range")
        return cls(d["name"], d["dtype"], tuple(shape), d.get("layout"), dyn or None)

    def dim_range(self, axis: int) -> tuple[int, int]:
        if self.shape[axis] != -1:
            return self.shape[axis], self.shape[axis]
        rng = (self.dynamic or {})[str(axis)]
        return rng["min"], rng["max"]

    def concrete_shape(self, batch: int | None = None) -> tuple[int, ...]:
        """The shape with dynamic dims set to ``batch`` (axis 0) or their ``opt`` value."""
        out = []
        for i, s in enumerate(self.shape):
            if s == -1:
                rng = (self.dynamic or {})[str(i)]
                out.append(batch if (i == 0 and batch) else rng["opt"])
            else:
                out.append(s)
        return tuple(out)


def check_relative_name(name: str, where: str) -> None:
    """A bundle file name must be relative and must not climb out of the bundle."""
    p = Path(name)
    if not name or p.is_absolute() or name.startswith(("/", "\\")) or ".." in p.parts or "\\" in name:
        raise ManifestError(
            f"manifest {where}: file name {name!r} is absolute or leaves the bundle",
            hint="bundle files must be plain relative names inside the bundle directory",
        )


@dataclass(frozen=True)
class Manifest:
    """A validated manifest (the raw dict is kept in ``data``)."""

    data: dict[str, Any]
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]

    @property
    def target(self) -> str:
        return self.data["target"]

    @property
    def precision(self) -> str:
        return self.data["precision"]

    @property
    def entry(self) -> str:
        return self.data["entry"]

    @property
    def files(self) -> dict[str, dict[str, Any]]:
        return self.data["files"]

    @property
    def labels(self) -> list[str] | None:
        return self.data["labels"]

    @property
    def golden(self) -> dict[str, Any]:
        return self.data["golden"]

    @property
    def backend_options(self) -> dict[str, Any]:
        return self.data["backend_options"]

    @property
    def preprocessing(self) -> Any:
        from edgecnn.runtime.preprocess import Preprocessing

        pre = self.data["preprocessing"]
        return Preprocessing.from_dict(pre) if pre is not None else None

    @classmethod
    def from_dict(cls, data: Any) -> Manifest:
        _check_fields(data, _TOP, "")
        if data["schema_version"] != SCHEMA_VERSION:
            raise ManifestError(
                f"manifest schema_version {data['schema_version']} is not supported",
                hint=f"this edgecnn reads schema {SCHEMA_VERSION}; re-export or upgrade edgecnn",
            )
        for name, meta in data["files"].items():
            check_relative_name(name, f"files[{name!r}]")
            _check_fields(meta, _FILE, f"files[{name!r}]")
        for ref in (data["entry"], data["golden"].get("file", "")):
            check_relative_name(ref, "entry/golden")
            if ref not in data["files"]:
                raise ManifestError(f"manifest: {ref!r} is referenced but not listed in files")
        _check_fields(data["golden"], _GOLDEN, "golden")
        inputs = tuple(TensorSpec.from_dict(t, f"inputs[{i}]") for i, t in enumerate(data["inputs"]))
        outputs = tuple(TensorSpec.from_dict(t, f"outputs[{i}]") for i, t in enumerate(data["outputs"]))
        if not inputs or not outputs:
            raise ManifestError("manifest: a model needs at least one input and one output")
        if data["labels"] is not None and not all(isinstance(x, str) for x in data["labels"]):
            raise ManifestError("manifest labels: must be a list of strings")
        if data["preprocessing"] is not None:
            from edgecnn.errors import ConfigError
            from edgecnn.runtime.preprocess import Preprocessing

            try:
                Preprocessing.from_dict(data["preprocessing"])
            except (ConfigError, TypeError) as e:
                raise ManifestError(f"manifest preprocessing: {e}") from None
        return cls(data, inputs, outputs)

    @classmethod
    def read(cls, bundle: Path) -> Manifest:
        path = bundle / MANIFEST
        if not path.is_file():
            raise ManifestError(
                f"{str(bundle)!r} is not a bundle: {MANIFEST} is missing",
                hint="an interrupted export leaves no manifest; export again",
            )
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise ManifestError(f"{str(path)!r} is not valid JSON: {e}") from None
        return cls.from_dict(data)
