"""Checkpoints: safetensors weights + a JSON sidecar, and a separate resumable training state — no pickle.

Files for a checkpoint named ``NAME`` in the run directory:

* ``NAME.safetensors`` — the evaluation weights (the EMA weights when EMA is on) written by
  :func:`edgecnn.models.weights.save_weights`, so ``edgecnn analyze`` and ``resolve_model`` load it directly;
* ``NAME.json`` — arch, recipe, classes, preprocessing, metrics and producer versions, for people and tools;
* ``NAME.state.safetensors`` — raw weights, EMA weights and optimizer tensors; scalars in its JSON metadata.

Every file is written to a temp file and renamed; the sidecar is written last, so a checkpoint whose sidecar
names epoch *e* is complete for epoch *e* (docs/architecture.md, principle 7).
"""

from __future__ import annotations

import json
import os
import platform
import tempfile
from pathlib import Path
from typing import Any

import torch
from torch import nn

from edgecnn.errors import ConfigError, WeightsFormatError
from edgecnn.fileio import atomic_write_bytes


def versions() -> dict[str, str]:
    import numpy

    from edgecnn._version import __version__

    return {
        "edgecnn": __version__,
        "torch": torch.__version__,
        "numpy": numpy.__version__,
        "python": platform.python_version(),
    }


def atomic_write_json(path: Path, obj: Any) -> None:
    atomic_write_bytes(path, (json.dumps(obj, indent=2, sort_keys=False) + "\n").encode())


def _save_tensors(path: Path, tensors: dict[str, torch.Tensor], meta: dict[str, str]) -> None:
    from safetensors.torch import save_file

    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    os.close(fd)
    try:
        save_file({k: v.detach().cpu().contiguous() for k, v in tensors.items()}, tmp, metadata=meta)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def save_checkpoint(
    out_dir: Path,
    name: str,
    *,
    eval_model: nn.Module,
    classes: list[str],
    sidecar: dict[str, Any],
    train_state: dict[str, Any] | None = None,
) -> Path:
    """Write ``name``'s files (see the module docstring); returns the weights path."""
    from edgecnn.models.weights import save_weights

    out_dir.mkdir(parents=True, exist_ok=True)
    if train_state is not None:
        tensors, scalars = _flatten_state(train_state)
        _save_tensors(out_dir / f"{name}.state.safetensors", tensors, {"format": "edgecnn-train-state", **scalars})
    weights = save_weights(
        eval_model,
        out_dir / f"{name}.safetensors",
        classes=classes,
        extra={"recipe": sidecar.get("recipe", {}), "metrics": sidecar.get("metrics", {}), "epoch": sidecar["epoch"]},
    )
    atomic_write_json(out_dir / f"{name}.json", {**sidecar, "versions": versions(), "weights": weights.name})
    return weights


def _flatten_state(state: dict[str, Any]) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """model/ema state dicts + optimizer state → flat tensors (``model.k``, ``ema.k``, ``optim.<i>.<k>``) and
    JSON scalars (step counters, param-group hyper-parameters, RNG-free by design)."""
    tensors: dict[str, torch.Tensor] = {}
    for prefix in ("model", "ema"):
        for k, v in (state.get(prefix) or {}).items():
            tensors[f"{prefix}.{k}"] = v
    opt = state["optimizer"]
    opt_scalars: dict[str, dict[str, Any]] = {}
    for idx, pstate in opt["state"].items():
        for k, v in pstate.items():
            if isinstance(v, torch.Tensor):
                tensors[f"optim.{idx}.{k}"] = v
            else:
                opt_scalars.setdefault(str(idx), {})[k] = v
    scalars = {
        "progress": json.dumps(state["progress"]),
        "param_groups": json.dumps(opt["param_groups"]),
        "optim_scalars": json.dumps(opt_scalars),
        "extra": json.dumps(state.get("extra", {})),
    }
    return tensors, scalars


def load_train_state(path: Path) -> dict[str, Any]:
    """Inverse of the flattening done by :func:`save_checkpoint` for ``NAME.state.safetensors``."""
    from safetensors import SafetensorError, safe_open

    if not path.is_file():
        raise ConfigError(f"no resumable training state at {str(path)!r}", hint="resume from a run directory")
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = dict(f.metadata() or {})
            flat = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118
    except (SafetensorError, OSError) as e:
        raise WeightsFormatError(f"training state {str(path)!r} is unreadable: {e}") from None
    if meta.get("format") != "edgecnn-train-state":
        raise WeightsFormatError(f"{str(path)!r} is not an edgecnn training state")
    model = {k[6:]: v for k, v in flat.items() if k.startswith("model.")}
    ema = {k[4:]: v for k, v in flat.items() if k.startswith("ema.")}
    opt_state: dict[int, dict[str, Any]] = {}
    for k, v in flat.items():
        if k.startswith("optim."):
            _, idx, name = k.split(".", 2)
            opt_state.setdefault(int(idx), {})[name] = v
    for idx, scal in json.loads(meta["optim_scalars"]).items():
        opt_state.setdefault(int(idx), {}).update(scal)
    return {
        "model": model,
        "ema": ema or None,
        "optimizer": {"state": opt_state, "param_groups": json.loads(meta["param_groups"])},
        "progress": json.loads(meta["progress"]),
        "extra": json.loads(meta.get("extra", "{}")),
    }
