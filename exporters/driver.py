"""The one export driver: validate → build in a temp dir beside the destination → golden vectors → manifest →
parity through the real runtime → manifest with parity (written last) → atomic rename into place.

A failure or interrupt at any step leaves the destination as it was (DESIGN principles 5, 7, 10).
"""

from __future__ import annotations

import datetime as _dt
import json
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from edgecnn._version import __version__
from edgecnn.errors import ConfigError, ParityError
from edgecnn.exporters.options import TOLERANCE, ExportOptions, Precision
from edgecnn.exporters.target import TARGETS, BuildContext
from edgecnn.exporters.to_onnx import INPUT, OUTPUT
from edgecnn.runtime.bundle import sha256_file
from edgecnn.runtime.manifest import GOLDEN, MANIFEST, SCHEMA_VERSION, Manifest

log = logging.getLogger(__name__)
GOLDEN_COUNT = 3
PARITY_BACKEND = {"onnx": "onnxruntime", "openvino": "openvino", "tensorrt": "onnxruntime"}


@dataclass(frozen=True)
class ExportResult:
    bundle: Path
    manifest: dict[str, Any]
    seconds: dict[str, float]
    notes: list[str] = field(default_factory=list)


def imagenet_labels() -> list[str]:
    from importlib.resources import files

    return files("edgecnn.resources").joinpath("imagenet_classes.txt").read_text(encoding="utf-8").splitlines()


def write_manifest(root: Path, data: dict[str, Any], names: list[str]) -> dict[str, Any]:
    """Record size + sha256 of ``names``, validate against the schema, and write manifest.json atomically."""
    data = {**data, "files": {n: {"size": (root / n).stat().st_size, "sha256": sha256_file(root / n)} for n in names}}
    Manifest.from_dict(data)  # never write a manifest the runtime would refuse
    tmp = root / f".{MANIFEST}.tmp"
    tmp.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, root / MANIFEST)
    return data


def _versions() -> dict[str, str]:
    return {"edgecnn": __version__, "torch": torch.__version__, "exporter": "torch.onnx (dynamo)"}


def _place(workdir: Path, out: Path) -> None:
    """Rename the finished bundle into place; an existing destination is swapped out only after success."""
    backup = None
    if out.exists():
        backup = out.with_name(f".{out.name}.old-{os.getpid()}")
        os.replace(out, backup)
    try:
        os.replace(workdir, out)
    except OSError:
        if backup is not None:
            os.replace(backup, out)
        raise
    if backup is not None:
        shutil.rmtree(backup, ignore_errors=True)


def check_destination(out: Path, overwrite: bool) -> None:
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {str(out)!r} exists and is not a directory")
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise ConfigError(
            f"--out {str(out)!r} already exists and is not empty",
            hint="choose another --out or pass --overwrite (the old bundle is replaced only on success)",
        )


def export_bundle(
    model: str | nn.Module,
    opts: ExportOptions,
    out: str | os.PathLike | None = None,
    *,
    weights: str | None = None,
    overwrite: bool = False,
    progress: Callable[[str], None] | None = None,
) -> ExportResult:
    """Export ``model`` (a zoo name, a checkpoint path or a module from ``create_model``) as a verified bundle."""
    say = progress or (lambda msg: log.info(msg))
    target = TARGETS.get(opts.target)
    target_options = target.spec.validate(opts)  # everything checked before any work
    from edgecnn.models.resolve import resolve_model

    t0 = time.perf_counter()
    if isinstance(model, nn.Module):
        net, info = model.eval(), getattr(model, "weights_info", None)
    else:
        net, info = resolve_model(model, weights=weights)
    name = getattr(net, "edgecnn_name", type(net).__name__.lower())
    out = Path(out) if out is not None else Path(f"{name}-{opts.target}-{opts.precision}")
    check_destination(out, overwrite)
    pre = getattr(net, "preprocessing", None)
    res = opts.resolution or (pre.input_size if pre else getattr(net, "default_resolution", 224))
    if pre is not None and pre.input_size != res:
        pre = pre.at_resolution(res)
    in_chans = getattr(getattr(net, "edgecnn_options", None), "in_chans", 3)
    batch = opts.dynamic_batch.opt if opts.dynamic_batch else opts.batch
    gen = torch.Generator().manual_seed(0)
    example = torch.randn(batch, in_chans, res, res, generator=gen)

    labels = list(getattr(net, "classes", None) or []) or None
    if labels is None and info is not None and info.format in ("torchvision", "efficientnet_pytorch"):
        labels = imagenet_labels()
    source = (
        {"kind": "random-init"}
        if info is None
        else {"kind": "weights", "path": info.path, "sha256": info.sha256, "format": info.format}
    )
    facts = {
        "version": __version__,
        "model": name,
        "target": opts.target,
        "precision": str(opts.precision),
        "source_sha256": source.get("sha256", ""),
        "preprocessing": json.dumps(pre.to_dict()) if pre else "",
        "labels": json.dumps(labels or []),
    }

    out.parent.mkdir(parents=True, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    seconds: dict[str, float] = {"load": time.perf_counter() - t0}
    try:
        say(f"exporting {name} → {opts.target} {opts.precision} at {res}×{res}")
        t = time.perf_counter()
        with torch.no_grad():
            built = target.build(
                BuildContext(
                    model=net, example=example, workdir=workdir, opts=opts, target_options=target_options, facts=facts
                )
            )
        seconds["export"] = time.perf_counter() - t

        say("computing golden vectors")
        gen = torch.Generator().manual_seed(1)
        golden: dict[str, np.ndarray] = {}
        with torch.no_grad():
            for i in range(GOLDEN_COUNT):
                x = torch.randn(batch, in_chans, res, res, generator=gen)
                golden[f"input_{i}"], golden[f"output_{i}"] = x.numpy(), net(x).float().numpy()
        np.savez(workdir / GOLDEN, **golden)
        num_out = golden["output_0"].shape[1:]
        db = opts.dynamic_batch
        dyn = {"0": {"name": "batch", "min": db.min, "opt": db.opt, "max": db.max}} if db else None
        lead = -1 if db else batch
        from edgecnn.analysis import analyze

        stats = analyze(net, res, batch=1)
        data: dict[str, Any] = {
            "schema_version": SCHEMA_VERSION,
            "producer": {**_versions(), **built.producer},
            "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
            "model": {
                "name": name,
                "options": _options(net),
                "source": source,
                "params": stats.params,
                "macs": stats.macs,
                "resolution": res,
            },
            "target": opts.target,
            "precision": str(opts.precision),
            "entry": built.entry,
            "files": {},
            "inputs": [
                {
                    "name": INPUT,
                    "dtype": "float32",
                    "shape": [lead, in_chans, res, res],
                    "layout": "NCHW",
                    **({"dynamic": dyn} if dyn else {}),
                }
            ],
            "outputs": [
                {"name": OUTPUT, "dtype": "float32", "shape": [lead, *num_out], **({"dynamic": dyn} if dyn else {})}
            ],
            "preprocessing": pre.to_dict() if pre else None,
            "labels": labels,
            "golden": {"file": GOLDEN, "count": GOLDEN_COUNT, "tolerance": TOLERANCE[Precision(opts.precision)]},
            "quantization": None,
            "backend_options": built.backend_options,
            "parity": None,
        }
        names = [*built.files, GOLDEN]
        write_manifest(workdir, data, names)

        say("checking parity through edgecnn.runtime")
        t = time.perf_counter()
        parity = check_parity(workdir, net, opts, example)
        seconds["parity"] = time.perf_counter() - t
        if not parity["ok"]:
            raise ParityError(
                f"{opts.target} {opts.precision} export of {name} does not match PyTorch: max relative "
                f"error {parity['max_rel_error']:.2e} > {parity['tolerance']['max_rel_error']:.0e}"
                + ("" if parity["top_k_identical"] else ", top-k differs"),
                hint="rerun with --debug; report the model and options",
            )
        data = write_manifest(workdir, {**data, "parity": parity}, names)  # the manifest is the last write
        _place(workdir, out)
        seconds["total"] = time.perf_counter() - t0
        return ExportResult(bundle=out, manifest=data, seconds=seconds, notes=built.notes)
    finally:
        if workdir.exists():
            shutil.rmtree(workdir, ignore_errors=True)


def _options(net: nn.Module) -> dict[str, Any]:
    import dataclasses

    opts = getattr(net, "edgecnn_options", None)
    return dataclasses.asdict(opts) if opts is not None else {}


def check_parity(root: Path, net: nn.Module, opts: ExportOptions, example: torch.Tensor) -> dict[str, Any]:
    """Load the bundle with the real runtime: golden vectors, plus every batch size of a dynamic range's ends."""
    from edgecnn.runtime import load

    backend = PARITY_BACKEND[opts.target]
    sess = load(root, backend=backend)
    report = sess.selftest()
    if opts.dynamic_batch is not None:
        tol = report["tolerance"]["max_rel_error"]
        gen = torch.Generator().manual_seed(2)
        for b in sorted({opts.dynamic_batch.min, opts.dynamic_batch.max}):
            x = torch.randn(b, *example.shape[1:], generator=gen)
            with torch.no_grad():
                ref = net(x).numpy()
            err = float(np.abs(sess.predict(x.numpy()) - ref).max() / max(float(np.abs(ref).max()), 1e-12))
            report[f"batch_{b}_max_rel_error"] = err
            report["ok"] = report["ok"] and err <= tol
    return report
