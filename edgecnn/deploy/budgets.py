"""Deployment budgets: what a bundle must meet on a device — latency, size, accuracy — read from a TOML file.

```toml
[budgets]
max_latency_ms = 4.0          # p50 at batch 1 on the device (measured here, or predicted for a profile)
max_latency_ratio = 0.125     # bundle p50 / PyTorch eager fp32 p50 of the same model, timed side by side
max_size_mb = 5.0             # the bundle's model files (MiB)
min_top1 = 0.95               # top-1 on the evaluation data (0..1)
max_drop_points = 0.5         # fp32 reference top-1 − bundle top-1, in points (needs a reference)

[measure]
device = "local"              # or a hardware profile name / .toml: latency is then predicted with its band
threads = 2
batch = 1
iters = 50
warmup = 10
rounds = 3                    # interleaved rounds of bundle / baseline timing; the median round counts
eval_data = "embedded"        # as --eval-data: a folder, a .npz, or 'embedded' (the test split)
eval_samples = 1000
reference = "runs/x/model.safetensors"   # fp32 checkpoint the accuracy drop is measured against
```

Every key is optional, but at least one budget must be set; unknown keys are refused with the nearest known one.
Relative paths are read relative to the budgets file.
"""

from __future__ import annotations

import math
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from edgecnn import limits as L
from edgecnn.errors import ConfigError
from edgecnn.registry import did_you_mean

LOCAL = "local"


@dataclass(frozen=True, kw_only=True)
class Budgets:
    """Upper / lower limits; ``None`` = not budgeted."""

    max_latency_ms: float | None = None
    max_latency_ratio: float | None = None
    max_size_mb: float | None = None
    min_top1: float | None = None
    max_drop_points: float | None = None

    def any(self) -> bool:
        return any(getattr(self, f.name) is not None for f in fields(self))

    def to_dict(self) -> dict[str, float]:
        return {f.name: getattr(self, f.name) for f in fields(self) if getattr(self, f.name) is not None}


@dataclass(frozen=True, kw_only=True)
class Measure:
    """How the figures are taken."""

    device: str = LOCAL
    threads: int | None = None
    batch: int = 1
    iters: int = 50
    warmup: int = 10
    rounds: int = 3
    eval_data: str | None = None
    eval_samples: int = 1000
    reference: str | None = None

    @property
    def predicted(self) -> bool:
        return self.device != LOCAL


@dataclass(frozen=True, kw_only=True)
class BudgetFile:
    budgets: Budgets
    measure: Measure = field(default_factory=Measure)
    path: str | None = None


_RANGES: dict[str, tuple[float, float]] = {  # inclusive
    "max_latency_ms": (1e-6, 1e7),
    "max_latency_ratio": (1e-6, 1e6),
    "max_size_mb": (1e-6, 1e7),
    "min_top1": (0.0, 1.0),
    "max_drop_points": (0.0, 100.0),
}
_INTS: dict[str, tuple[int, int]] = {
    "threads": (1, L.MAX_THREADS),
    "batch": (1, L.MAX_BATCH),
    "iters": (1, 100_000),
    "warmup": (0, 100_000),
    "rounds": (1, 100),
    "eval_samples": (1, 1_000_000),
}


def _number(where: str, key: str, v: Any) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        raise ConfigError(f"{where}: {key} must be a number, got {v!r}")
    lo, hi = _RANGES[key]
    if not lo <= v <= hi:
        raise ConfigError(f"{where}: {key} = {v!r} is outside {lo:g}..{hi:g}")
    return float(v)


def _unknown(where: str, section: str, key: str, known: list[str]) -> ConfigError:
    where_key = f"[{section}] {key!r}" if section else f"table [{key}]"
    return ConfigError(f"{where}: unknown {where_key}", hint=did_you_mean(key, known))


def parse_budgets(doc: dict[str, Any], *, where: str = "budgets", base: Path | None = None) -> BudgetFile:
    """A parsed TOML document → :class:`BudgetFile` (strict: types, ranges, unknown keys)."""
    for section in doc:
        if section not in ("budgets", "measure"):
            raise _unknown(where, "", section, ["budgets", "measure"])
    raw_b = doc.get("budgets", {})
    raw_m = doc.get("measure", {})
    if not isinstance(raw_b, dict) or not isinstance(raw_m, dict):
        raise ConfigError(f"{where}: [budgets] and [measure] must be tables")
    b_known = [f.name for f in fields(Budgets)]
    for k in raw_b:
        if k not in b_known:
            raise _unknown(where, "budgets", k, b_known)
    budgets = Budgets(**{k: _number(where, k, v) for k, v in raw_b.items()})
    if not budgets.any():
        raise ConfigError(f"{where}: no budget set", hint=f"set one of {', '.join(b_known)} under [budgets]")
    m_known = [f.name for f in fields(Measure)]
    m: dict[str, Any] = {}
    for k, v in raw_m.items():
        if k not in m_known:
            raise _unknown(where, "measure", k, m_known)
        if k in _INTS:
            lo, hi = _INTS[k]
            if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
                raise ConfigError(f"{where}: [measure] {k} must be an integer in {lo}..{hi}, got {v!r}")
        elif not isinstance(v, str) or not v or len(v) > L.MAX_PATH_CHARS:
            raise ConfigError(f"{where}: [measure] {k} must be a non-empty string, got {v!r}")
        if k in ("reference", "eval_data") and base is not None and v != "embedded" and not Path(v).is_absolute():
            v = str(base / v)
        m[k] = v
    measure = Measure(**m)
    if budgets.max_drop_points is not None and measure.reference is None:
        raise ConfigError(
            f"{where}: max_drop_points needs the fp32 model to measure the drop against",
            hint="set [measure] reference = CHECKPOINT (or pass --reference)",
        )
    if (budgets.min_top1 is not None or budgets.max_drop_points is not None) and measure.eval_data is None:
        raise ConfigError(
            f"{where}: an accuracy budget needs evaluation data",
            hint="set [measure] eval_data = DIR | FILE.npz | 'embedded' (or pass --eval-data)",
        )
    if budgets.max_latency_ratio is not None and measure.predicted:
        raise ConfigError(
            f"{where}: max_latency_ratio compares with PyTorch on this machine; it cannot be predicted for "
            f"{measure.device!r}",
            hint="use max_latency_ms for a profile, or device = 'local'",
        )
    return BudgetFile(budgets=budgets, measure=measure, path=where)


def load_budgets(path: str | Path, **overrides: Any) -> BudgetFile:
    """Read a budgets TOML file; ``overrides`` (non-None) replace its [measure] keys (CLI flags win)."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"budgets file {str(p)!r} does not exist", hint="pass a TOML file with a [budgets] table")
    if p.stat().st_size > 1_000_000:
        raise ConfigError(f"budgets file {str(p)!r} is larger than 1 MB")
    try:
        doc = tomllib.loads(p.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise ConfigError(f"budgets file {str(p)!r} is not UTF-8 text") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"budgets file {str(p)!r} is not valid TOML: {e}") from None
    for k, v in overrides.items():
        if v is not None:
            doc.setdefault("measure", {})[k] = v
    return parse_budgets(doc, where=str(p), base=p.resolve().parent)
