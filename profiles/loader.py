"""Hardware profiles: TOML data, a strict schema, and a registry of the built-in ones (:mod:`edgecnn.registry`).

A profile describes one compute unit (a CPU with ``cores`` cores, a GPU, an NPU, a DLA): its peak throughput per
precision, memory bandwidth, caches, the fraction of peak each op kind reaches (roofline ceilings), and the source
of every figure. Unknown keys, missing keys, wrong types and figures without a source are errors that name the key
path and suggest the nearest valid key — a typo must never silently fall back to a default.
"""

from __future__ import annotations

import datetime as _dt
import logging
import tomllib
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from edgecnn.errors import ConfigError, UnknownNameError
from edgecnn.precision import Precision
from edgecnn.registry import did_you_mean, suggest

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1
KINDS = ("cpu", "gpu", "npu", "dla")
PRECISIONS = tuple(str(p) for p in Precision)  # the one precision vocabulary (edgecnn.precision)
OP_KINDS = ("dense", "pointwise", "depthwise", "pooling", "elementwise", "linear")
# optional kinds: a profile without them uses the kind they refine (calibration fits them where it can measure them)
OPTIONAL_KINDS = {
    "stem": "dense",  # a dense conv on the image (≤ 4 input channels: a shallow GEMM)
    "swish": "elementwise",  # SiLU / GELU: a transcendental per element
    "hardswish": "elementwise",  # piecewise linear, often fused into the conv
    "add": "elementwise",  # the residual add, often absorbed by the conv that produces one operand
    "gate": "elementwise",  # the squeeze-excite channel multiply (a broadcast)
}
# kinds a runtime may fuse into the op before them; a profile lists the fused ones per precision
FUSIBLE_KINDS = ("swish", "hardswish", "add", "gate")
# ops an int8 runtime may have no integer kernel for, which it then runs in float between a DequantizeLinear and a
# QuantizeLinear (ONNX Runtime's QDQ path: HardSigmoid); value = kernels per op: dequantize, the float op,
# quantize — and for x·f(x) activations the integer multiply by x after them
FLOAT_OPS_INT8 = {"Hardsigmoid": 3, "Hardswish": 4, "Sigmoid": 3, "SiLU": 4, "AdaptiveAvgPool2d": 3}

_NUM = (int, float)
# section → {key: (type, required)}; "*" sections hold their own keys listed here
_TOP: dict[str, tuple[Any, bool]] = {
    "schema_version": (int, True),
    "name": (str, True),
    "description": (str, True),
    "kind": (str, True),
    "default_target": (str, True),
    "default_device": (str, True),
    "precisions": (list, True),
    "cores": (int, False),
    "clock_ghz": (_NUM, False),
    "peak_gops": (dict, True),
    "memory": (dict, True),
    "caches": (dict, True),
    "efficiency": (dict, True),
    "efficiency_int8": (dict, False),
    "element_ns": (dict, False),
    "element_ns_int8": (dict, False),
    "estimator": (dict, True),
    "sources": (dict, True),
    "notes": (str, False),
    "calibration": (dict, False),
}
_SECTIONS: dict[str, dict[str, tuple[Any, bool]]] = {
    "peak_gops": {p: (_NUM, False) for p in PRECISIONS},
    "memory": {"bandwidth_gbs": (_NUM, True), "capacity_gib": (_NUM, False), "type": (str, False)},
    "caches": {"l1d_kib": (_NUM, False), "l2_kib": (_NUM, False), "l3_kib": (_NUM, False), "sram_kib": (_NUM, False)},
    "efficiency": {**{k: (_NUM, True) for k in OP_KINDS}, **{k: (_NUM, False) for k in OPTIONAL_KINDS}},
    "efficiency_int8": {k: (_NUM, False) for k in (*OP_KINDS, *OPTIONAL_KINDS)},
    # a fixed cost per output element on top of the compute roof (requantization, activation, store): what makes a
    # conv with few channels per output slower per MAC than a wide one; calibration fits it per kind
    "element_ns": {k: (_NUM, False) for k in (*OP_KINDS, *OPTIONAL_KINDS)},
    "element_ns_int8": {k: (_NUM, False) for k in (*OP_KINDS, *OPTIONAL_KINDS)},
    "estimator": {
        "memory_efficiency": (_NUM, True),
        "layer_overhead_us": (_NUM, True),
        "model_overhead_us": (_NUM, True),
        "error_band": (_NUM, True),
        "fused_activations": (bool, True),
        "cache_bandwidth_gbs": (_NUM, False),
        "l2_bandwidth_gbs": (_NUM, False),
        "graph_factor": (_NUM, False),
        "fused_kinds": (list, False),
        "fused_kinds_int8": (list, False),
        "float_ops_int8": (list, False),
        "layer_overhead_us_int8": (_NUM, False),
        # the epilogue pass a conv pays per element of an activation fused into it (ns); calibration fits it
        "fused_activation_ns": (_NUM, False),
        "fused_activation_ns_int8": (_NUM, False),
    },
    "calibration": {
        "base": (str, True),
        "created": (str, True),
        "method": (str, True),
        "threads": (int, True),
        "points": (int, True),
        "median_abs_error": (_NUM, True),
        "cpu": (str, True),
        "backend": (str, True),
        "contended": (bool, False),
        "models": (str, False),
    },
}
_SOURCED = (
    "peak_gops",
    "memory",
    "caches",
    "efficiency",
    "efficiency_int8",
    "element_ns",
    "element_ns_int8",
    "estimator",
)


@dataclass(frozen=True, kw_only=True)
class Profile:
    """A validated hardware profile. ``peak_gops`` is dense throughput in GOP/s (1 MAC = 2 ops) for the whole unit."""

    name: str
    description: str
    kind: str
    default_target: str
    default_device: str
    precisions: tuple[str, ...]
    peak_gops: dict[str, float]
    memory: dict[str, Any]
    caches: dict[str, float]
    efficiency: dict[str, float]
    estimator: dict[str, Any]
    sources: dict[str, str]
    efficiency_int8: dict[str, float] = field(default_factory=dict)
    element_ns: dict[str, float] = field(default_factory=dict)
    element_ns_int8: dict[str, float] = field(default_factory=dict)
    cores: int | None = None
    clock_ghz: float | None = None
    notes: str = ""
    calibration: dict[str, Any] | None = None
    path: str = ""
    raw: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def bandwidth_gbs(self) -> float:
        return float(self.memory["bandwidth_gbs"])

    @property
    def last_cache_bytes(self) -> float:
        """Size of the largest cache level (bytes), 0 when the profile lists none."""
        return 1024.0 * max(self.caches.values(), default=0.0)

    @property
    def l2_cache_bytes(self) -> float:
        """Private L2 of the profile's cores (bytes); 0 when not listed."""
        return self.l2_cache_bytes_for(self.cores or 1)

    def l2_cache_bytes_for(self, cores: int) -> float:
        """Private L2 of ``cores`` cores (bytes): per-core ``l2_kib`` × ``cores``; 0 when not listed."""
        return 1024.0 * float(self.caches.get("l2_kib", 0.0)) * cores

    def efficiency_for(self, precision: str, kind: str) -> float:
        """The op kind's efficiency at ``precision``: a measured int8 figure when calibrated, else the shared one."""
        if precision == "int8" and kind in self.efficiency_int8:
            return self.efficiency_int8[kind]
        if kind in self.efficiency:
            return self.efficiency[kind]
        return self.efficiency_for(precision, OPTIONAL_KINDS[kind])

    def element_ns_for(self, precision: str, kind: str) -> float:
        """Nanoseconds per output element the op kind pays on top of its compute roof at ``precision``
        (``element_ns_int8`` for int8 when the profile has that table, else ``element_ns``); 0 when not listed."""
        table = self.element_ns_int8 if precision == "int8" and self.element_ns_int8 else self.element_ns
        return float(table.get(kind, 0.0))

    def fused_activation_ns_for(self, precision: str) -> float:
        """ns per element of an activation fused into its conv: ``estimator.fused_activation_ns_int8`` for int8
        when present, else ``estimator.fused_activation_ns``; 0 (fused activations are free) when absent."""
        if precision == "int8" and "fused_activation_ns_int8" in self.estimator:
            return float(self.estimator["fused_activation_ns_int8"])
        return float(self.estimator.get("fused_activation_ns", 0.0))

    def fused_kinds_for(self, precision: str) -> frozenset[str]:
        """Op kinds the profile's runtime fuses into the op before them at ``precision`` (they cost nothing):
        ``estimator.fused_kinds_int8`` for int8 when present, else ``estimator.fused_kinds``."""
        key = "fused_kinds_int8" if precision == "int8" and "fused_kinds_int8" in self.estimator else "fused_kinds"
        return frozenset(self.estimator.get(key, ()))

    def float_ops_for(self, precision: str) -> dict[str, int]:
        """PyTorch op types the profile's runtime runs in float between Q/DQ at ``precision`` → kernels per op
        (``estimator.float_ops_int8``; empty for other precisions and for profiles without it)."""
        if precision != "int8":
            return {}
        return {k: FLOAT_OPS_INT8[k] for k in self.estimator.get("float_ops_int8", ())}

    def layer_overhead_us_for(self, precision: str) -> float:
        """Per-kernel dispatch cost at ``precision``: ``estimator.layer_overhead_us_int8`` for int8 when present
        (an int8 kernel also computes its requantization), else ``estimator.layer_overhead_us``."""
        if precision == "int8" and "layer_overhead_us_int8" in self.estimator:
            return float(self.estimator["layer_overhead_us_int8"])
        return float(self.estimator["layer_overhead_us"])

    def peak(self, precision: str) -> float:
        if precision not in self.peak_gops:
            raise ConfigError(
                f"profile {self.name!r} has no {precision} figure",
                hint=f"its precisions: {', '.join(self.precisions)}",
            )
        return float(self.peak_gops[precision])

    def provenance(self) -> dict[str, Any]:
        """What a prediction must carry: which profile, where its figures come from, how it was calibrated."""
        return {
            "profile": self.name,
            "path": self.path,
            "sources": dict(self.sources),
            "calibration": dict(self.calibration) if self.calibration else None,
        }


def _fail(where: str, message: str, hint: str | None = None) -> ConfigError:
    return ConfigError(f"profile {where}: {message}", hint=hint)


def _check_table(obj: dict[str, Any], spec: dict[str, tuple[Any, bool]], where: str, prefix: str) -> None:
    for key in obj:
        if key not in spec:
            hint = did_you_mean(key, spec, known="valid keys", show=lambda c: f"'{prefix}{c}'")
            raise _fail(where, f"unknown key '{prefix}{key}'", hint)
    for key, (typ, required) in spec.items():
        if key not in obj:
            if required:
                raise _fail(where, f"missing key '{prefix}{key}'")
            continue
        value = obj[key]
        if not isinstance(value, typ) or (typ is not bool and isinstance(value, bool)):
            raise _fail(where, f"{prefix}{key} has the wrong type {type(value).__name__}")
        if typ is _NUM and value < 0:
            raise _fail(where, f"{prefix}{key} must not be negative, got {value}")


def parse_profile(data: dict[str, Any], where: str) -> Profile:
    """Validate a TOML document against the schema; every problem names its key path."""
    _check_table(data, _TOP, where, "")
    if data["schema_version"] != SCHEMA_VERSION:
        raise _fail(
            where, f"schema_version {data['schema_version']} is not supported", f"this edgecnn reads {SCHEMA_VERSION}"
        )
    for section, spec in _SECTIONS.items():
        if section in data:
            _check_table(data[section], spec, where, f"{section}.")
    if data["kind"] not in KINDS:
        raise _fail(where, f"kind {data['kind']!r} is not one of {', '.join(KINDS)}")
    precs = data["precisions"]
    bad = [p for p in precs if p not in PRECISIONS]
    if bad or not precs:
        raise _fail(where, f"precisions {precs} must be a non-empty subset of {', '.join(PRECISIONS)}")
    missing_peak = [p for p in precs if p not in data["peak_gops"]]
    if missing_peak:
        raise _fail(where, f"peak_gops has no figure for precision(s) {missing_peak}")
    for section in ("efficiency", "efficiency_int8"):
        for k, v in data.get(section, {}).items():
            if not 0 < v <= 1:
                raise _fail(where, f"{section}.{k} must be in (0, 1], got {v}")
    if not 0 < data["estimator"]["memory_efficiency"] <= 1:
        raise _fail(where, "estimator.memory_efficiency must be in (0, 1]")
    for key in ("fused_kinds", "fused_kinds_int8"):
        bad = [k for k in data["estimator"].get(key, []) if k not in FUSIBLE_KINDS]
        if bad:
            raise _fail(where, f"estimator.{key} lists {bad}", f"fusible kinds: {', '.join(FUSIBLE_KINDS)}")
    bad = [k for k in data["estimator"].get("float_ops_int8", []) if k not in FLOAT_OPS_INT8]
    if bad:
        raise _fail(where, f"estimator.float_ops_int8 lists {bad}", f"known ops: {', '.join(FLOAT_OPS_INT8)}")
    _check_sources(data, where)
    return Profile(
        name=data["name"],
        description=data["description"],
        kind=data["kind"],
        default_target=data["default_target"],
        default_device=data["default_device"],
        precisions=tuple(precs),
        peak_gops={k: float(v) for k, v in data["peak_gops"].items()},
        memory=dict(data["memory"]),
        caches={k: float(v) for k, v in data["caches"].items()},
        efficiency={k: float(v) for k, v in data["efficiency"].items()},
        efficiency_int8={k: float(v) for k, v in data.get("efficiency_int8", {}).items()},
        element_ns={k: float(v) for k, v in data.get("element_ns", {}).items()},
        element_ns_int8={k: float(v) for k, v in data.get("element_ns_int8", {}).items()},
        estimator=dict(data["estimator"]),
        sources=dict(data["sources"]),
        cores=data.get("cores"),
        clock_ghz=data.get("clock_ghz"),
        notes=data.get("notes", ""),
        calibration=data.get("calibration"),
        path=where,
        raw=data,
    )


def _check_sources(data: dict[str, Any], where: str) -> None:
    """Every figure has a source: ``sources.<section>`` covers a section, ``sources."<section>.<key>"`` one key."""
    src = data["sources"]
    valid = set(_SOURCED) | {f"{s}.{k}" for s in _SOURCED for k in data.get(s, {})}
    for key, value in src.items():
        if key not in valid:
            close = suggest(key, sorted(valid))
            raise _fail(where, f"unknown key 'sources.{key}'", f"did you mean 'sources.{close}'?" if close else None)
        if not isinstance(value, str) or len(value.strip()) < 8:
            raise _fail(where, f"sources.{key} must say where the figure comes from (a document, or how derived)")
    for section in _SOURCED:
        if section in src:
            continue
        unsourced = [k for k in data.get(section, {}) if f"{section}.{k}" not in src]
        if unsourced:
            raise _fail(
                where,
                f"{section}.{unsourced[0]} has no source",
                f'add sources.{section} or sources."{section}.{unsourced[0]}"',
            )


def load_profile_file(path: str | Path) -> Profile:
    p = Path(path)
    try:
        data = tomllib.loads(p.read_text(encoding="utf-8"))
    except OSError as e:
        raise ConfigError(f"cannot read profile {str(p)!r}: {e.strerror or e}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise ConfigError(f"profile {str(p)!r} is not valid TOML: {e}") from None
    return parse_profile(data, str(p))


def builtin_profiles() -> dict[str, Profile]:
    """Every ``*.toml`` shipped in ``edgecnn.profiles``, by name (a duplicate name is an error)."""
    out: dict[str, Profile] = {}
    for entry in sorted(resources.files("edgecnn.profiles").iterdir(), key=lambda e: e.name):
        if not entry.name.endswith(".toml"):
            continue
        data = tomllib.loads(entry.read_text(encoding="utf-8"))
        prof = parse_profile(data, f"edgecnn.profiles/{entry.name}")
        if prof.name in out:
            raise ConfigError(f"profile name {prof.name!r} is defined twice ({entry.name})")
        out[prof.name] = prof
    return out


def get_profile(name_or_path: str) -> Profile:
    """A built-in profile by name, or a profile TOML by path (e.g. one written by ``edgecnn profile fit``)."""
    if name_or_path.endswith(".toml") or Path(name_or_path).is_file():
        return load_profile_file(name_or_path)
    known = builtin_profiles()
    if name_or_path in known:
        return known[name_or_path]
    raise UnknownNameError(
        f"unknown profile {name_or_path!r}", hint=did_you_mean(name_or_path, sorted(known)) + " (or a .toml path)"
    )


def now_iso() -> str:
    return _dt.datetime.now(_dt.UTC).replace(microsecond=0).isoformat()
