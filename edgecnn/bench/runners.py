"""What ``edgecnn bench`` can time: a bundle through ``edgecnn.runtime``, or a zoo model as a PyTorch baseline.

A runner loads once (load time measured) and hands out a zero-argument callable per batch size on a fixed, seeded
input, so the timed loop holds nothing but the inference call. PyTorch baselines take the paths PyTorch documents for
CPU inference: eager NCHW, eager channels-last, and ``torch.compile`` (inductor, ``freezing=True``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

import numpy as np

from edgecnn.errors import ConfigError, InputSpecError

log = logging.getLogger(__name__)


class TorchMode(StrEnum):
    """PyTorch baselines; ``compile`` is inductor with ``freezing=True`` (constant-folds weights, as deployments)."""

    EAGER = "eager"
    CHANNELS_LAST = "channels_last"
    COMPILE = "compile"


@dataclass(frozen=True, kw_only=True)
class Loaded:
    """A ready-to-time subject: ``make(batch)`` returns the call to time (or raises InputSpecError)."""

    label: str
    kind: str  # "bundle" | "pytorch"
    model: str
    backend: str
    device: str
    precision: str
    resolution: int
    file_bytes: int | None
    load_s: float
    batches: tuple[int, int]  # the batch range the subject accepts
    make: Callable[[int], Callable[[], Any]]
    raw: Any = None  # the runtime Session (bundles) for per-layer profiling


def _input(batch: int, shape: tuple[int, ...], dtype: str = "float32") -> np.ndarray:
    return np.random.default_rng(0).standard_normal((batch, *shape[1:])).astype(dtype)


def session_call(sess: Any, batch: int) -> Callable[[], Any]:
    """The call to time for a runtime session at ``batch``: a fixed seeded input, validated by one checked run, then
    the backend called directly (nothing but the inference in the timed loop)."""
    spec = sess.input
    feeds = {spec.name: _input(batch, spec.concrete_shape(batch), spec.dtype)}
    run = sess.backend.run
    sess.run(feeds)
    return lambda: run(feeds)


def load_bundle(path: Path, *, backend: str | None, device: str | None, threads: int | None) -> Loaded:
    """Open and verify a bundle with ``edgecnn.runtime`` (the timed load includes hash checks and compilation)."""
    from edgecnn.runtime import load

    t0 = time.perf_counter()
    sess = load(path, backend=backend, device=device, threads=threads)
    load_s = time.perf_counter() - t0
    m = sess.manifest
    spec = sess.input
    lo, hi = spec.dim_range(0)

    def make(batch: int) -> Callable[[], Any]:
        if not lo <= batch <= hi:
            raise InputSpecError(
                f"bundle {path.name} accepts batch {lo}..{hi}, not {batch}",
                hint="re-export with --dynamic-batch MIN:OPT:MAX to bench other batches",
            )
        return session_call(sess, batch)

    res = m.data["model"].get("resolution") or spec.concrete_shape(1)[-1]
    return Loaded(
        label=f"{path.name}",
        kind="bundle",
        model=str(m.data["model"].get("name", "?")),
        backend=sess.backend_name,
        device=str(sess.backend.device),
        precision=m.precision,
        resolution=int(res),
        file_bytes=sum(int(f["size"]) for f in m.files.values()),
        load_s=load_s,
        batches=(lo, hi),
        make=make,
        raw=sess,
    )


def load_torch(
    name: str,
    *,
    mode: TorchMode,
    resolution: int | None,
    threads: int | None,
    weights: str | None = None,
    device: str | None = None,
) -> Loaded:
    """Build a zoo model (random init unless ``weights``) in eval mode for one PyTorch baseline, on the CPU or on
    ``cuda[:N]`` (each timed call then ends with a device synchronize, so the figure is the kernel time too)."""
    import torch

    dev = torch.device((device or "cpu").lower())
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(
            f"--device {device}: this PyTorch has no CUDA device",
            hint="install a CUDA build of torch on an NVIDIA machine, or bench on the CPU",
        )

    from edgecnn.models import create_model, get_model_entry

    if threads:
        torch.set_num_threads(threads)
    entry = get_model_entry(name)
    res = resolution or entry.default_resolution
    t0 = time.perf_counter()
    torch.manual_seed(0)
    model = create_model(name).eval()
    if weights:
        from edgecnn.models.weights import load_weights

        load_weights(model, weights)
    fmt = torch.channels_last if mode is not TorchMode.EAGER else torch.contiguous_format
    model = model.to(dev, memory_format=fmt)
    fn: Any = model
    if mode is TorchMode.COMPILE:
        import torch._inductor.config as inductor_config

        inductor_config.freezing = True
        fn = torch.compile(model)
    load_s = time.perf_counter() - t0
    n_params = sum(p.numel() for p in model.parameters())

    def make(batch: int) -> Callable[[], Any]:
        chans = model.edgecnn_options.in_chans  # 1 for the super-resolution nets (the Y channel)
        x = torch.from_numpy(_input(batch, (batch, chans, res, res))).to(dev).contiguous(memory_format=fmt)
        sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
        if mode is TorchMode.COMPILE:
            # every compiled subject starts from a clean dynamo cache: zoo models share forward code objects, so
            # one model's guards and recompile limits must not decide how the next one runs
            torch._dynamo.reset()

        def call() -> Any:
            with torch.inference_mode():
                y = fn(x)
            sync()
            return y

        call()  # compile (or allocate) outside the timed loop; first_inference_s measures this separately
        return call

    return Loaded(
        label=f"{name}:{mode}",
        kind="pytorch",
        model=name,
        backend=f"pytorch-{mode}",
        device=str(dev),
        precision="fp32",
        resolution=res,
        file_bytes=4 * n_params,  # the fp32 weights a checkpoint would hold
        load_s=load_s,
        batches=(1, 1 << 16),
        make=make,
    )


def parse_subject(text: str) -> tuple[str, Path | None]:
    """``path/to/bundle`` → ("bundle", path); ``model`` or ``model:mode`` → ("model", None). Unknown → error."""
    p = Path(text)
    if p.is_dir():
        return "bundle", p
    name = text.split(":", 1)[0]
    from edgecnn.models import list_models

    if name in list_models():
        return "model", None
    from edgecnn.registry import suggest

    close = suggest(name, list_models())
    raise ConfigError(
        f"{text!r} is neither a bundle directory nor a zoo model",
        hint=f"did you mean {close!r}?" if close else "see `edgecnn list models`, or give a bundle directory",
    )


def torch_modes(text: str) -> list[TorchMode]:
    """``model`` → every PyTorch baseline; ``model:eager,compile`` → those."""
    _, sep, modes = text.partition(":")
    if not sep:
        return list(TorchMode)
    out = []
    for m in modes.split(","):
        try:
            out.append(TorchMode(m))
        except ValueError:
            raise ConfigError(
                f"unknown PyTorch mode {m!r} in {text!r}", hint=f"one of {', '.join(t.value for t in TorchMode)}"
            ) from None
    return out
