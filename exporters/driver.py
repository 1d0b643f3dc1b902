"""The one export driver: validate → build in a temp dir beside the destination → golden vectors → manifest →
parity through the real runtime → manifest with parity (written last) → atomic rename into place.

A failure or interrupt at any step leaves the destination as it was (docs/architecture.md, principles 5, 7, 10).

INT8: the target quantizes (``opts.quant``, :mod:`edgecnn.quant`) and returns the manifest's quantization record;
golden inputs are real calibration samples and golden outputs the INT8 model's own (what a device must reproduce),
and parity also records INT8 vs PyTorch on them, refusing a collapsed model (cosine < ``INT8_MIN_COSINE``).
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
from edgecnn.errors import BundleError, ConfigError, ExportError, ParityError
from edgecnn.exporters.options import ExportOptions
from edgecnn.exporters.target import TARGETS, BuildContext, Built, Target
from edgecnn.onnx_graph.torch_export import INPUT, OUTPUT
from edgecnn.precision import INT8_MIN_COSINE, TOLERANCE, Precision
from edgecnn.runtime.bundle import sha256_file
from edgecnn.runtime.manifest import GOLDEN, MANIFEST, SCHEMA_VERSION, Manifest

log = logging.getLogger(__name__)
GOLDEN_COUNT = 3


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


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, owned by someone else
        return True
    return True


def clean_stale(out: Path) -> list[Path]:
    """Remove what a killed export of ``out`` left beside it (``.NAME.tmp-PID-*`` work dirs of dead processes) and
    restore a ``.NAME.old-PID`` backup whose export died between the two renames of :func:`_place` (else the user's
    previous bundle would be lost). Returns the paths removed or restored."""
    done: list[Path] = []
    parent = out.parent if str(out.parent) else Path(".")
    if not parent.is_dir():
        return done
    for p in sorted(parent.glob(f".{out.name}.tmp-*")) + sorted(parent.glob(f".{out.name}.old-*")):
        kind, _, rest = p.name[len(out.name) + 2 :].partition("-")
        pid_text = rest.split("-", 1)[0]
        if pid_text.isdigit() and _pid_alive(int(pid_text)):
            continue  # another export of the same destination is running now
        if p.is_symlink() or not p.is_dir():
            continue
        if kind == "old" and not out.exists() and (p / MANIFEST).is_file():
            os.replace(p, out)
            log.warning("restored the previous bundle %s from an interrupted export", out)
        else:
            shutil.rmtree(p, ignore_errors=True)
            log.info("removed %s left by an interrupted export", p)
        done.append(p)
    return done


def _is_bundle(path: Path) -> bool:
    try:
        Manifest.read(path)
    except BundleError:
        return False
    return True


def check_destination(out: Path, overwrite: bool) -> None:
    """Refuse a destination the export must not replace: a file, ``.``/``..``/a root, or (with ``--overwrite``) a
    directory that is neither empty nor a bundle — ``--overwrite`` replaces bundles, never a user's folder."""
    if not out.name or out.name in (".", "..") or out.resolve() == Path.cwd().resolve():
        raise ConfigError(
            f"--out {str(out)!r} names the current or a parent directory, not a bundle directory",
            hint="pass a new directory name, e.g. --out my-bundle",
        )
    for up in out.parents:
        if up.exists() and not up.is_dir():
            raise ConfigError(
                f"--out {str(out)!r}: {str(up)!r} is a file, not a directory", hint="choose another --out"
            )
    if out.is_symlink():
        raise ConfigError(f"--out {str(out)!r} is a symbolic link", hint="pass the real directory or a new name")
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {str(out)!r} exists and is not a directory", hint="choose another --out")
    if not out.exists():
        return
    try:
        empty = not any(out.iterdir())
    except OSError as e:
        raise ConfigError(f"--out {str(out)!r} cannot be read: {e.strerror}", hint="choose another --out") from None
    if empty:
        return
    if not overwrite:
        raise ConfigError(
            f"--out {str(out)!r} already exists and is not empty",
            hint="choose another --out or pass --overwrite (the old bundle is replaced only on success)",
        )
    if not _is_bundle(out):
        raise ConfigError(
            f"--out {str(out)!r} is not an edgecnn bundle (no valid {MANIFEST}); --overwrite only replaces bundles",
            hint="choose another --out, or empty or remove that directory yourself",
        )


def check_writable_dir(path: Path, flag: str) -> None:
    """``path`` is (or can be created as) a directory this process may write: checked before any work so a report or
    bundle is never lost after minutes of computing it."""
    probe = path
    while not probe.exists():
        if probe.parent == probe:
            break
        probe = probe.parent
    if probe.exists() and not probe.is_dir():
        raise ConfigError(
            f"{flag} {str(path)!r}: {str(probe)!r} is a file, not a directory", hint=f"choose another {flag}"
        )
    if not os.access(probe, os.W_OK | os.X_OK):
        raise ConfigError(f"{flag} {str(path)!r}: {str(probe)!r} is not writable", hint=f"choose a writable {flag}")


def _check_writable(parent: Path, out: Path) -> None:
    if not os.access(parent, os.W_OK | os.X_OK):
        raise ConfigError(
            f"--out {str(out)!r}: cannot write to {str(parent)!r} (permission denied)",
            hint="choose a writable --out",
        )


@dataclass(frozen=True, kw_only=True)
class _Plan:
    """Everything decided before the first file is written: the model, its shapes, labels and provenance."""

    net: nn.Module
    name: str
    target: Target
    target_options: dict[str, Any]
    out: Path
    resolution: int
    in_chans: int
    batch: int
    preprocessing: Any
    labels: list[str] | None
    source: dict[str, Any]

    @property
    def example(self) -> torch.Tensor:
        gen = torch.Generator().manual_seed(0)
        return torch.randn(self.batch, self.in_chans, self.resolution, self.resolution, generator=gen)

    def facts(self, opts: ExportOptions) -> dict[str, Any]:
        """Key facts stamped into the model file's own metadata (the file alone is not anonymous)."""
        pre = self.preprocessing
        return {
            "version": __version__,
            "model": self.name,
            "target": opts.target,
            "precision": str(opts.precision),
            "source_sha256": self.source.get("sha256", ""),
            "preprocessing": json.dumps(pre.to_dict()) if pre else "",
            "labels": json.dumps(self.labels or []),
        }


def _plan(
    model: str | nn.Module, opts: ExportOptions, out: str | os.PathLike | None, weights: str | None, overwrite: bool
) -> _Plan:
    """Validate everything and resolve the model before any work (docs/architecture.md, principle 10: errors first)."""
    target = TARGETS.get(opts.target)
    target_options = target.validate(opts)
    from edgecnn.models.resolve import resolve_model

    if isinstance(model, nn.Module):
        net, info = model.eval(), getattr(model, "weights_info", None)
    else:
        net, info = resolve_model(model, weights=weights)
    name = getattr(net, "edgecnn_name", type(net).__name__.lower())
    dest = Path(out) if out is not None else Path(f"{name}-{opts.target}-{opts.precision}")
    check_destination(dest, overwrite)
    pre = getattr(net, "preprocessing", None)
    res = opts.resolution or (pre.input_size if pre else getattr(net, "default_resolution", 224))
    if pre is not None and pre.input_size != res:
        pre = pre.at_resolution(res)
    in_chans = getattr(getattr(net, "edgecnn_options", None), "in_chans", 3)
    if opts.quant is not None:
        for part, what in ((opts.quant.calibration, "calibration"), (opts.quant.evaluation, "evaluation")):
            if part is not None:
                part.check_shape((in_chans, res, res), what)
    labels = list(getattr(net, "classes", None) or []) or None
    if labels is None and info is not None and info.format in ("torchvision", "efficientnet_pytorch"):
        labels = imagenet_labels()
    source = (
        {"kind": "random-init"}
        if info is None
        else {"kind": "weights", "path": info.path, "sha256": info.sha256, "format": info.format}
    )
    if getattr(net, "lineage", None):  # how the weights were made: pruning, fine-tuning (edgecnn prune)
        source["lineage"] = net.lineage
    return _Plan(
        net=net,
        name=name,
        target=target,
        target_options=target_options,
        out=dest,
        resolution=res,
        in_chans=in_chans,
        batch=opts.dynamic_batch.opt if opts.dynamic_batch else opts.batch,
        preprocessing=pre,
        labels=labels,
        source=source,
    )


def _build(plan: _Plan, opts: ExportOptions, workdir: Path, example: torch.Tensor) -> Built:
    """The target writes its files; the descriptor's promise about them is checked."""
    ctx = BuildContext(
        model=plan.net,
        example=example,
        workdir=workdir,
        opts=opts,
        target_options=plan.target_options,
        facts=plan.facts(opts),
        target=plan.target,
    )
    with torch.no_grad():
        built = plan.target.build(ctx)
    expected = plan.target.bundle_files
    if built.entry != expected[0] or not set(expected) <= set(built.files):
        raise ExportError(
            f"target {plan.target.name!r} wrote {built.files} (entry {built.entry!r}); its descriptor promises "
            f"{list(expected)} with entry {expected[0]!r}",
            hint="fix the target's build or its bundle_files",
        )
    # The runtime refuses a bundle holding files its manifest does not list (an SDK could read them unverified):
    # scratch a target or its quantizer left behind goes now.
    keep = set(built.files) | {str(p) for n in built.files for p in Path(n).parents if str(p) != "."}
    for path in sorted(workdir.rglob("*"), reverse=True):
        rel = path.relative_to(workdir).as_posix()
        if rel not in keep:
            log.debug("removing scratch %s left by the %s build", rel, plan.target.name)
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            else:
                path.unlink()
    return built


def _manifest(plan: _Plan, opts: ExportOptions, built: Built, golden: dict[str, np.ndarray]) -> dict[str, Any]:
    """The manifest before parity: shapes, preprocessing, labels, golden rule, quantization, backend options."""
    num_out = golden["output_0"].shape[1:]
    db = opts.dynamic_batch
    dyn = {"0": {"name": "batch", "min": db.min, "opt": db.opt, "max": db.max}} if db else None
    lead = -1 if db else plan.batch
    from edgecnn.analysis import analyze

    stats = analyze(plan.net, plan.resolution, batch=1)
    pre = plan.preprocessing
    shape = [lead, plan.in_chans, plan.resolution, plan.resolution]
    return {
        "schema_version": SCHEMA_VERSION,
        "producer": {**_versions(), **built.producer},
        "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "model": {
            "name": plan.name,
            "options": _options(plan.net),
            "source": plan.source,
            "params": stats.params,
            "macs": stats.macs,
            "resolution": plan.resolution,
        },
        "target": opts.target,
        "precision": str(opts.precision),
        "entry": built.entry,
        "files": {},
        "inputs": [
            {"name": INPUT, "dtype": "float32", "shape": shape, "layout": "NCHW", **({"dynamic": dyn} if dyn else {})}
        ],
        "outputs": [
            {"name": OUTPUT, "dtype": "float32", "shape": [lead, *num_out], **({"dynamic": dyn} if dyn else {})}
        ],
        "preprocessing": pre.to_dict() if pre else None,
        "labels": plan.labels,
        "golden": {"file": GOLDEN, "count": GOLDEN_COUNT, "tolerance": TOLERANCE[Precision(opts.precision)]},
        "quantization": built.quantization,
        "backend_options": {**built.backend_options, "runtime_backend": plan.target.runtime_backend},
        "parity": None,
        **({"task": task} if (task := task_block(plan.net, plan.labels)) else {}),
    }


def task_block(net: nn.Module, labels: list[str] | None) -> dict[str, Any] | None:
    """The manifest's ``task`` block of a dense model (edgecnn/runtime/dense.py); None for a classifier."""
    kind = getattr(net, "task", "classification")
    if kind == "segmentation":
        from edgecnn.data.segmentation import IGNORE_INDEX, default_palette

        k = int(getattr(net, "num_classes", 0)) or len(labels or [])
        classes = list(labels) if labels and len(labels) == k else [f"class_{i}" for i in range(k)]
        return {
            "kind": kind,
            "classes": classes,
            "palette": default_palette(k).tolist(),
            "output_stride": int(getattr(net, "output_stride", 1)),
            "input_multiple": int(getattr(net, "input_multiple", 1)),
            "ignore_index": IGNORE_INDEX,
        }
    if kind == "super_resolution":
        return {"kind": kind, "scale": int(net.scale), "color_space": "YCbCr-BT601", "channel": "Y"}
    return None


def _check_parity_result(plan: _Plan, opts: ExportOptions, parity: dict[str, Any], notes: list[str]) -> None:
    """Refuse an export that does not reproduce PyTorch, or an INT8 model that no longer computes its function."""
    int8 = opts.precision is Precision.INT8
    if int8 and parity["fp32_max_abs"] < 1e-6:  # e.g. zero-init heads
        notes.append("the float model's outputs are ~0 (random init?): fp32 vs int8 agreement not checked")
    elif int8 and parity["ok"] and parity["fp32_cosine"] < INT8_MIN_COSINE:
        raise ParityError(
            f"the INT8 {opts.target} model of {plan.name} no longer computes the float model: output cosine "
            f"{parity['fp32_cosine']:.3f} < {INT8_MIN_COSINE} against PyTorch on calibration samples",
            hint="quantization collapsed; keep per-channel weights, use --max-drop, or see `edgecnn quantize "
            "--lint-only`",
        )
    if not parity["ok"]:
        raise ParityError(
            f"{opts.target} {opts.precision} export of {plan.name} does not match PyTorch: max relative "
            f"error {parity['max_rel_error']:.2e} > {parity['tolerance']['max_rel_error']:.0e}"
            + ("" if parity["top_k_identical"] else ", top-k differs"),
            hint="rerun with --debug; report the model and options",
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
    t0 = time.perf_counter()
    plan = _plan(model, opts, out, weights, overwrite)
    example = plan.example
    try:
        plan.out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ConfigError(
            f"--out {str(plan.out)!r}: cannot create {str(plan.out.parent)!r}: {e.strerror}",
            hint="choose a writable --out",
        ) from None
    _check_writable(plan.out.parent, plan.out)
    clean_stale(plan.out)
    try:
        workdir = Path(tempfile.mkdtemp(prefix=f".{plan.out.name}.tmp-{os.getpid()}-", dir=plan.out.parent))
    except OSError as e:
        raise ConfigError(
            f"--out {str(plan.out)!r}: cannot write to {str(plan.out.parent)!r}: {e.strerror}",
            hint="choose a writable --out",
        ) from None
    seconds: dict[str, float] = {"load": time.perf_counter() - t0}
    try:
        say(f"exporting {plan.name} → {opts.target} {opts.precision} at {plan.resolution}×{plan.resolution}")
        t = time.perf_counter()
        built = _build(plan, opts, workdir, example)
        seconds["export"] = time.perf_counter() - t

        say("computing golden vectors")
        golden = _golden_inputs(opts, plan.batch, (plan.in_chans, plan.resolution, plan.resolution))
        with torch.no_grad():
            for i in range(GOLDEN_COUNT):
                golden[f"output_{i}"] = plan.net(torch.from_numpy(golden[f"input_{i}"])).float().numpy()
        np.savez(workdir / GOLDEN, **golden)
        data = _manifest(plan, opts, built, golden)
        names = [*built.files, GOLDEN]
        write_manifest(workdir, data, names)

        backend = plan.target.parity_backend
        if opts.precision is Precision.INT8:
            say("recording the INT8 model's own golden outputs")
            data = _int8_golden(workdir, data, names, golden, backend)
        say("checking parity through edgecnn.runtime")
        t = time.perf_counter()
        parity = check_parity(workdir, plan.net, opts, example, backend)
        seconds["parity"] = time.perf_counter() - t
        _check_parity_result(plan, opts, parity, built.notes)
        data = write_manifest(workdir, {**data, "parity": parity}, names)  # the manifest is the last write
        _place(workdir, plan.out)
        seconds["total"] = time.perf_counter() - t0
        return ExportResult(bundle=plan.out, manifest=data, seconds=seconds, notes=built.notes)
    finally:
        if workdir.exists():
            shutil.rmtree(workdir, ignore_errors=True)


def _golden_inputs(opts: ExportOptions, batch: int, shape: tuple[int, ...]) -> dict[str, np.ndarray]:
    """Seeded random inputs; for INT8 real calibration samples (random noise is not what int8 ranges were set for)."""
    golden: dict[str, np.ndarray] = {}
    if opts.precision is Precision.INT8 and opts.quant is not None:
        calib = opts.quant.calibration.data
        pool = np.resize(calib, (GOLDEN_COUNT * batch, *calib.shape[1:])).astype(np.float32)
        for i in range(GOLDEN_COUNT):
            golden[f"input_{i}"] = np.ascontiguousarray(pool[i * batch : (i + 1) * batch])
        return golden
    gen = torch.Generator().manual_seed(1)
    for i in range(GOLDEN_COUNT):
        golden[f"input_{i}"] = torch.randn(batch, *shape, generator=gen).numpy()
    return golden


def _int8_golden(
    root: Path, data: dict[str, Any], names: list[str], golden: dict[str, np.ndarray], backend: str
) -> dict[str, Any]:
    """Replace the golden outputs with the INT8 model's own (run through edgecnn.runtime) and rewrite the manifest."""
    from edgecnn.runtime import load

    sess = load(root, backend=backend)
    own = {**golden}
    for i in range(GOLDEN_COUNT):
        own[f"output_{i}"] = sess.predict(golden[f"input_{i}"]).astype(np.float32)
    del sess
    np.savez(root / GOLDEN, **own)
    return write_manifest(root, data, names)


def _options(net: nn.Module) -> dict[str, Any]:
    import dataclasses

    opts = getattr(net, "edgecnn_options", None)
    return dataclasses.asdict(opts) if opts is not None else {}


def check_parity(
    root: Path, net: nn.Module, opts: ExportOptions, example: torch.Tensor, backend: str
) -> dict[str, Any]:
    """Load the bundle with the real runtime (``backend``, the target's parity backend): golden vectors, plus every
    batch size of a dynamic range's ends."""
    from edgecnn.runtime import load

    sess = load(root, backend=backend)
    report = sess.selftest()
    if opts.precision is Precision.INT8:  # golden outputs are the int8 model's own; also compare with PyTorch
        from edgecnn.quant.metrics import compare

        inputs, _, _ = sess.bundle.golden()
        x = np.concatenate(inputs)
        with torch.no_grad():
            ref = net(torch.from_numpy(x)).float().numpy()
        got = np.concatenate([sess.predict(i) for i in inputs])
        cmp = compare(ref, got)
        report.update(
            fp32_cosine=cmp["cosine"],
            fp32_top1_agreement=cmp["top1_agreement"],
            fp32_sqnr_db=cmp["sqnr_db"],
            fp32_max_abs=float(np.abs(ref).max()),
        )
        return report  # dynamic batch ends: the same int8 kernels, covered by the golden run
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
