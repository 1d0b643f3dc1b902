"""The bundle manifest: the format every exporter writes and the runtime checks before anything is parsed.

A bundle is a directory: model file(s), ``golden.npz`` (seeded inputs with expected outputs), and
``manifest.json`` written last. The manifest is strict: missing or unknown fields are errors, file names must be
relative and stay inside the bundle, and every file is listed with its size and sha256.
"""

from __future__ import annotations

import json
import math
import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgecnn import limits as L
from edgecnn.errors import BundleIntegrityError, ManifestError

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
    "task": (dict, False),  # what the output means (edgecnn/runtime/dense.py); absent: a classifier
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
_TOLERANCE = {"max_rel_error": ((int, float), True), "top_k": (int, False)}
_MODEL = {
    "name": (str, True),
    "options": (dict, False),
    "source": (dict, False),
    "params": (int, False),
    "macs": (int, False),
    "resolution": (int, False),
}
LAYOUTS = ("NCHW", "NHWC", "NC", "NCW", "NWC", "NCDHW", "NDHWC")
# backend_options keys and their types: an unknown key (a typo, a flipped byte) is refused, not silently ignored.
# A runtime backend's own ``requires_option`` (edgecnn/runtime/backends.py) is accepted as a dict as well.
_BACKEND_OPTIONS = {
    "runtime_backend": (str, False),
    "onnxruntime_disabled_optimizers": (list, False),
    "openvino_inference_precision": (str, False),
    "openvino_weight_compression": (str, False),
    "tensorrt": (dict, False),
    "tensorrt_engine": ((str, dict, type(None)), False),
}
_OV_PRECISIONS = ("f32", "f16", "bf16")


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
        if k not in obj:
            continue
        v = obj[k]
        if not isinstance(v, typ) or (isinstance(v, bool) and typ in (int, (int, float))):
            raise ManifestError(f"manifest {where}.{k}: wrong type {type(v).__name__}")


def _check_text(value: Any, where: str, limit: int = L.MAX_TEXT_CHARS) -> str:
    if not isinstance(value, str):
        raise ManifestError(f"manifest {where}: expected a string, got {type(value).__name__}")
    if len(value) > limit or "\x00" in value:
        raise ManifestError(f"manifest {where}: string longer than {limit} characters or containing NUL")
    return value


def _depth(obj: Any, limit: int) -> int:
    """Nesting depth of parsed JSON, iteratively (a hostile manifest must not exhaust the interpreter's stack)."""
    deepest, stack = 0, [(obj, 1)]
    while stack:
        node, d = stack.pop()
        deepest = max(deepest, d)
        if deepest > limit:
            return deepest
        if isinstance(node, dict):
            stack.extend((v, d + 1) for v in node.values())
        elif isinstance(node, list):
            stack.extend((v, d + 1) for v in node)
    return deepest


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in pairs:
        if k in out:
            raise ManifestError(f"manifest: key {k!r} appears twice in one object", hint="re-export the bundle")
        out[k] = v
    return out


def _no_constant(name: str) -> Any:
    raise ManifestError(f"manifest: {name} is not a number JSON allows", hint="re-export the bundle")


def parse_json(text: str, where: str) -> Any:
    """Strict JSON for untrusted manifests: duplicate keys, NaN/Infinity and nesting deeper than
    ``limits.MAX_JSON_DEPTH`` are refused (Python's json takes the last duplicate and recurses without bound)."""
    try:
        data = json.loads(text, object_pairs_hook=_no_duplicates, parse_constant=_no_constant)
    except json.JSONDecodeError as e:
        raise ManifestError(f"{where} is not valid JSON: {e}") from None
    except RecursionError:
        raise ManifestError(f"{where}: JSON nested deeper than {L.MAX_JSON_DEPTH} levels") from None
    if _depth(data, L.MAX_JSON_DEPTH) > L.MAX_JSON_DEPTH:
        raise ManifestError(f"{where}: JSON nested deeper than {L.MAX_JSON_DEPTH} levels")
    return data


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
        _check_text(d["name"], f"{where}.name", L.MAX_NAME_CHARS)
        layout = d.get("layout")
        if layout is not None and (layout not in LAYOUTS or len(layout) != len(d["shape"])):
            raise ManifestError(
                f"manifest {where}.layout {str(layout)[:20]!r} is not one of {LAYOUTS} matching the shape's rank"
            )
        if d["dtype"] not in DTYPES:
            raise ManifestError(f"manifest {where}.dtype: unsupported {d['dtype']!r}", hint=f"one of {DTYPES}")
        shape = d["shape"]
        if not 1 <= len(shape) <= L.MAX_RANK or not all(
            isinstance(s, int) and not isinstance(s, bool) and (0 < s <= L.MAX_DIM or s == -1) for s in shape
        ):
            raise ManifestError(
                f"manifest {where}.shape: needs 1..{L.MAX_RANK} dims, each in 1..{L.MAX_DIM} or -1, got {shape}"
            )
        dyn = d.get("dynamic") or {}
        for axis, rng in dyn.items():
            if not (axis.isascii() and axis.isdigit()) or int(axis) >= len(shape) or shape[int(axis)] != -1:
                raise ManifestError(f"manifest {where}.dynamic: axis {axis[:20]!r} is not a -1 dim of {shape}")
            if not (
                isinstance(rng, dict)
                and all(isinstance(rng.get(k), int) and not isinstance(rng.get(k), bool) for k in ("min", "opt", "max"))
                and 1 <= rng["min"] <= rng["opt"] <= rng["max"] <= L.MAX_BATCH
            ):
                raise ManifestError(
                    f"manifest {where}.dynamic[{axis}]: needs integers 1 <= min <= opt <= max <= {L.MAX_BATCH}"
                )
            if "name" in rng:
                _check_text(rng["name"], f"{where}.dynamic[{axis}].name", L.MAX_NAME_CHARS)
        elements = math.prod(
            abs(s) if s != -1 else dyn[str(i)]["max"] for i, s in enumerate(shape) if str(i) in dyn or s != -1
        )
        if elements > L.MAX_TENSOR_ELEMENTS:
            raise ManifestError(f"manifest {where}.shape: {shape} holds more than {L.MAX_TENSOR_ELEMENTS} values")
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
    """A bundle file name must be relative, bounded, printable, and must not climb out of the bundle."""
    if not isinstance(name, str):
        raise ManifestError(f"manifest {where}: file name must be a string, got {type(name).__name__}")
    p = Path(name)
    if not name or p.is_absolute() or name.startswith(("/", "\\")) or ".." in p.parts or "\\" in name:
        raise ManifestError(
            f"manifest {where}: file name {name[:80]!r} is absolute or leaves the bundle",
            hint="bundle files must be plain relative names inside the bundle directory",
        )
    if (
        len(name) > L.MAX_PATH_CHARS
        or any(len(part) > L.MAX_NAME_CHARS for part in p.parts)
        or any(not ch.isprintable() for ch in name)
        or name != p.as_posix()
        or name in (".", MANIFEST)
    ):
        raise ManifestError(
            f"manifest {where}: file name {name[:80]!r} is too long, not normalized, not printable or reserved",
            hint=f"names are at most {L.MAX_NAME_CHARS} characters per part, {L.MAX_PATH_CHARS} in all",
        )


def _check_tolerance(tol: dict[str, Any], precision: str) -> None:
    """The golden rule may be stricter than the precision's parity rule (edgecnn/precision.py), never looser: a
    manifest must not be able to silence its own self-test."""
    from edgecnn.precision import TOLERANCE, Precision

    _check_fields(tol, _TOLERANCE, "golden.tolerance")
    rule = TOLERANCE[Precision(precision)]
    mre = tol["max_rel_error"]
    if not (math.isfinite(mre) and 0 <= mre <= rule["max_rel_error"]):
        raise ManifestError(
            f"manifest golden.tolerance.max_rel_error {mre!r} is outside 0..{rule['max_rel_error']} ({precision} rule)",
            hint="a bundle may not loosen its own self-test; re-export it",
        )
    k = tol.get("top_k", 0)
    if not rule["top_k"] <= k <= L.MAX_TOP_K:
        raise ManifestError(
            f"manifest golden.tolerance.top_k {k!r} is outside {rule['top_k']}..{L.MAX_TOP_K} ({precision} rule)",
            hint="a bundle may not loosen its own self-test; re-export it",
        )


def _check_backend_options(opts: dict[str, Any]) -> None:
    from edgecnn.runtime.backends import BACKENDS

    for key in opts:
        _check_text(key, "backend_options key", L.MAX_NAME_CHARS)
    declared = {b.requires_option for b in map(BACKENDS.get, BACKENDS.names()) if b.requires_option}
    spec = {**{k: (dict, False) for k in declared}, **_BACKEND_OPTIONS}
    _check_fields(opts, spec, "backend_options")
    if opts.get("openvino_weight_compression", "none") not in ("none", "fp16"):
        raise ManifestError("manifest backend_options.openvino_weight_compression: must be none or fp16")
    if "runtime_backend" in opts:
        _check_text(opts["runtime_backend"], "backend_options.runtime_backend", L.MAX_NAME_CHARS)
    disabled = opts.get("onnxruntime_disabled_optimizers", [])
    if len(disabled) > 256 or not all(isinstance(o, str) and 0 < len(o) <= L.MAX_NAME_CHARS for o in disabled):
        raise ManifestError("manifest backend_options.onnxruntime_disabled_optimizers: must be a list of names")
    ov = opts.get("openvino_inference_precision")
    if ov is not None and ov not in _OV_PRECISIONS:
        raise ManifestError(
            f"manifest backend_options.openvino_inference_precision {ov[:20]!r} is not one of {_OV_PRECISIONS}"
        )
    trt = opts.get("tensorrt")
    if trt is not None:
        ws = trt.get("workspace_mb")
        if not isinstance(ws, int) or isinstance(ws, bool) or not 1 <= ws <= 1 << 20:
            raise ManifestError("manifest backend_options.tensorrt.workspace_mb: must be an integer in 1..1048576")
        flags = trt.get("flags", [])
        if not isinstance(flags, list) or not all(isinstance(f, str) and f.isidentifier() for f in flags):
            raise ManifestError("manifest backend_options.tensorrt.flags: must be a list of flag names")
        profiles = trt.get("profiles", {})
        if not isinstance(profiles, dict) or not all(
            isinstance(v, list)
            and len(v) == 3
            and all(
                isinstance(s, list) and all(isinstance(d, int) and not isinstance(d, bool) and d > 0 for d in s)
                for s in v
            )
            for v in profiles.values()
        ):
            raise ManifestError("manifest backend_options.tensorrt.profiles: must map names to [min, opt, max] shapes")


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
    def task(self) -> dict[str, Any]:
        """The ``task`` block (``{"kind": "classification"}`` when the bundle has none)."""
        return self.data.get("task") or {"kind": "classification"}

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
        """Validate an untrusted manifest: types, ranges and limits (:mod:`edgecnn.limits`), file names, the golden
        rule against the precision's, the runtime backend's existence; a :class:`ManifestError` for any violation."""
        from edgecnn.precision import Precision

        _check_fields(data, _TOP, "")
        if data["schema_version"] != SCHEMA_VERSION:
            raise ManifestError(
                f"manifest schema_version {data['schema_version']} is not supported",
                hint=f"this edgecnn reads schema {SCHEMA_VERSION}; re-export or upgrade edgecnn",
            )
        _check_text(data["created"], "created", 64)
        _check_text(data["target"], "target", L.MAX_NAME_CHARS)
        for k, v in data["producer"].items():
            _check_text(k, "producer key", L.MAX_NAME_CHARS)
            _check_text(v, f"producer.{k[:40]}")
        if data["precision"] not in tuple(Precision):
            raise ManifestError(
                f"manifest precision {data['precision'][:40]!r} is unknown", hint=f"one of {', '.join(Precision)}"
            )
        _check_fields(data["model"], _MODEL, "model")
        _check_text(data["model"]["name"], "model.name", L.MAX_NAME_CHARS)
        source = data["model"].get("source")
        if source is not None and not isinstance(source.get("kind"), str):
            raise ManifestError("manifest model.source: needs a 'kind' string")
        if len(data["files"]) > L.MAX_FILES:
            raise ManifestError(f"manifest files: more than {L.MAX_FILES} files")
        for name, meta in data["files"].items():
            check_relative_name(name, f"files[{name[:80]!r}]")
            _check_fields(meta, _FILE, f"files[{name!r}]")
            if not 0 <= meta["size"] < 1 << 40:
                raise ManifestError(f"manifest files[{name!r}].size: {meta['size']} is not a file size")
            sha = meta["sha256"]
            if len(sha) != 64 or any(c not in "0123456789abcdef" for c in sha):
                raise ManifestError(f"manifest files[{name!r}].sha256: not 64 lowercase hex digits")
        _check_fields(data["golden"], _GOLDEN, "golden")
        for ref in (data["entry"], data["golden"]["file"]):
            check_relative_name(ref, "entry/golden")
            if ref not in data["files"]:
                raise ManifestError(f"manifest: {ref[:80]!r} is referenced but not listed in files")
        if data["entry"] == data["golden"]["file"]:
            raise ManifestError("manifest: the entry model and the golden file are the same file")
        if not 1 <= data["golden"]["count"] <= L.MAX_GOLDEN:
            raise ManifestError(
                f"manifest golden.count {data['golden']['count']} is outside 1..{L.MAX_GOLDEN}",
                hint="a self-test needs at least one golden vector; re-export the bundle",
            )
        _check_tolerance(data["golden"]["tolerance"], data["precision"])
        for key in ("inputs", "outputs"):
            if len(data[key]) > L.MAX_TENSORS:
                raise ManifestError(f"manifest {key}: more than {L.MAX_TENSORS} tensors")
        inputs = tuple(TensorSpec.from_dict(t, f"inputs[{i}]") for i, t in enumerate(data["inputs"]))
        outputs = tuple(TensorSpec.from_dict(t, f"outputs[{i}]") for i, t in enumerate(data["outputs"]))
        if not inputs or not outputs:
            raise ManifestError("manifest: a model needs at least one input and one output")
        for key, specs in (("inputs", inputs), ("outputs", outputs)):
            if len({s.name for s in specs}) != len(specs):
                raise ManifestError(f"manifest {key}: two tensors share a name")
        labels = data["labels"]
        if labels is not None and (
            len(labels) > L.MAX_LABELS or not all(isinstance(x, str) and len(x) <= L.MAX_TEXT_CHARS for x in labels)
        ):
            raise ManifestError(f"manifest labels: must be at most {L.MAX_LABELS} strings")
        _check_backend_options(data["backend_options"])
        _check_runtime_backend(data)
        if "task" in data:
            from edgecnn.runtime.dense import check_task

            check_task(data["task"])
        if data["preprocessing"] is not None:
            from edgecnn.errors import ConfigError
            from edgecnn.runtime.preprocess import Preprocessing

            try:
                Preprocessing.from_dict(data["preprocessing"])
            except (ConfigError, TypeError, ValueError) as e:
                raise ManifestError(f"manifest preprocessing: {e}") from None
        parity = data["parity"]
        if parity is not None:
            mre, backend = parity.get("max_rel_error"), parity.get("backend")
            if isinstance(mre, bool) or not isinstance(mre, (int, float)) or not isinstance(backend, str):
                raise ManifestError("manifest parity: needs a numeric max_rel_error and a backend name")
        return cls(data, inputs, outputs)

    @classmethod
    def read(cls, bundle: Path) -> Manifest:
        """Read ``bundle/manifest.json`` as untrusted input: a regular file (no link), bounded in size."""
        path = bundle / MANIFEST
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            st = None
        except OSError as e:
            raise ManifestError(f"{str(path)[:200]!r} cannot be read: {e.strerror}") from None
        if st is None or stat.S_ISDIR(st.st_mode):
            raise ManifestError(
                f"{str(bundle)[:200]!r} is not a bundle: {MANIFEST} is missing",
                hint="an interrupted export leaves no manifest; export again",
            )
        if stat.S_ISLNK(st.st_mode) or not stat.S_ISREG(st.st_mode) or st.st_nlink > 1:
            raise BundleIntegrityError(
                f"{str(path)[:200]!r} is a link or not a regular file",
                hint="a bundle holds its own files; copy the bundle without links",
            )
        if st.st_size > L.MAX_MANIFEST_BYTES:
            raise ManifestError(f"{str(path)[:200]!r} is {st.st_size} bytes, more than {L.MAX_MANIFEST_BYTES}")
        try:
            fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
            with os.fdopen(fd, "rb") as f:
                raw = f.read(L.MAX_MANIFEST_BYTES + 1)
        except OSError as e:
            raise ManifestError(f"{str(path)[:200]!r} cannot be read: {e.strerror}") from None
        if len(raw) > L.MAX_MANIFEST_BYTES:
            raise ManifestError(f"{str(path)[:200]!r} is more than {L.MAX_MANIFEST_BYTES} bytes")
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as e:
            raise ManifestError(f"{str(path)[:200]!r} is not valid UTF-8 JSON: {e}") from None
        return cls.from_dict(parse_json(text, repr(str(path)[:200])))


def _check_runtime_backend(data: dict[str, Any]) -> None:
    """``target`` is free text (a new export target needs no edit here), but the backend that runs it must exist."""
    from edgecnn.runtime.backends import BACKENDS, LEGACY_DEFAULT_BACKEND

    name = data["backend_options"].get("runtime_backend") or LEGACY_DEFAULT_BACKEND.get(data["target"])
    if name is None:
        raise ManifestError(
            f"manifest target {data['target'][:40]!r} names no runtime backend",
            hint="backend_options.runtime_backend is required for targets other than onnx, openvino, tensorrt",
        )
    if name not in BACKENDS.names():
        raise ManifestError(
            f"manifest runtime backend {name[:40]!r} is unknown", hint=f"one of {', '.join(BACKENDS.names())}"
        )
