"""``edgecnn.runtime.load(bundle) → Session``: verified bundle + one backend + the bundle's own preprocessing."""

from __future__ import annotations

import functools
import logging
import os
from dataclasses import dataclass
from typing import Any

import numpy as np

from edgecnn import limits as L
from edgecnn.errors import BundleIntegrityError, ConfigError, InputSpecError, MissingDependencyError
from edgecnn.runtime.backends import BackendSession, default_backend, make_backend
from edgecnn.runtime.bundle import Bundle, open_bundle
from edgecnn.runtime.manifest import Manifest, TensorSpec
from edgecnn.runtime.preprocess import preprocess_batch

# Segmentation golden check: the share of pixels whose class must match (ties between near-equal logits of random
# weights may flip a few pixels within the float tolerance; a wrong graph flips most of them).
DENSE_ARGMAX_AGREEMENT = 0.999


@dataclass(frozen=True)
class Prediction:
    index: int
    label: str
    score: float


log = logging.getLogger(__name__)


def softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def check_input(spec: TensorSpec, x: Any) -> np.ndarray:
    """Validate dtype, rank and every dim against the manifest (dynamic dims within their range)."""
    if not isinstance(x, np.ndarray):
        raise InputSpecError(f"input {spec.name!r} must be a numpy array, got {type(x).__name__}")
    if x.dtype != np.dtype(spec.dtype):
        raise InputSpecError(
            f"input {spec.name!r} must be {spec.dtype}, got {x.dtype}", hint=f"convert with x.astype(np.{spec.dtype})"
        )
    if x.ndim != len(spec.shape):
        raise InputSpecError(
            f"input {spec.name!r} must have rank {len(spec.shape)} {list(spec.shape)}, got shape {list(x.shape)}"
        )
    for axis, dim in enumerate(x.shape):
        lo, hi = spec.dim_range(axis)
        if not lo <= dim <= hi:
            want = str(lo) if lo == hi else f"{lo}..{hi}"
            raise InputSpecError(
                f"input {spec.name!r} dim {axis} is {dim}, the bundle accepts {want} (shape {list(spec.shape)})",
                hint="re-export with --dynamic-batch for other batches"
                if axis == 0
                else "resize the input to the exported resolution",
            )
    return np.ascontiguousarray(x)


class Session:
    """A loaded bundle. ``predict`` is safe to call from many threads at once."""

    def __init__(self, bundle: Bundle, backend: BackendSession) -> None:
        self.bundle = bundle
        self.manifest: Manifest = bundle.manifest
        self.backend = backend
        self.preprocessing = self.manifest.preprocessing
        self.labels = self.manifest.labels
        self.input = self.manifest.inputs[0]

    @property
    def backend_name(self) -> str:
        return self.backend.name

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Run the model on a preprocessed batch; returns the first output."""
        return self.run({self.input.name: x})[0]

    def run(self, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        """All inputs by name → all outputs (checked against the manifest)."""
        specs = {s.name: s for s in self.manifest.inputs}
        if set(feeds) != set(specs):
            raise InputSpecError(f"inputs {sorted(feeds)} do not match the bundle's {sorted(specs)}")
        return self.backend.run({k: check_input(specs[k], v) for k, v in feeds.items()})

    def preprocess(self, images: list[Any]) -> np.ndarray:
        if self.preprocessing is None:
            raise InputSpecError(
                "this bundle has no image preprocessing recorded", hint="preprocess yourself and call Session.predict"
            )
        return preprocess_batch(images, self.preprocessing)

    def predict_image(self, images: Any, *, top_k: int = 5) -> list[list[Prediction]]:
        """Path / PIL image / uint8 array (or a list of them) → top-k labelled predictions per image, using the
        manifest's preprocessing (exactly training's evaluation transform)."""
        _check_top_k(top_k)
        items = images if isinstance(images, (list, tuple)) else [images]
        x = self.preprocess(list(items))
        lo, hi = self.input.dim_range(0)
        if lo <= len(items) <= hi:
            logits = self.predict(x)
        else:  # run one by one through a static batch-1 bundle
            logits = np.concatenate([self.predict(x[i : i + lo]) for i in range(0, len(items), lo)])
        return [self.top_k(row, top_k) for row in logits]

    @property
    def task(self) -> dict[str, Any]:
        """What the output means (the manifest's ``task`` block; ``kind`` classification when absent)."""
        return self.manifest.task

    def _require(self, kind: str) -> dict[str, Any]:
        task = self.task
        if task["kind"] != kind:
            raise InputSpecError(f"this bundle's task is {task['kind']}, not {kind}")
        return task

    def segment(self, image: Any) -> np.ndarray:
        """One image (path / PIL / uint8 array) → its H×W class-index mask at the image's own size (the bundle's
        preprocessing resizes it in; the mask is resized back, nearest)."""
        from edgecnn.runtime.dense import masks_from_logits, resize_mask
        from edgecnn.runtime.preprocess import load_image

        self._require("segmentation")
        img = load_image(image)
        mask = masks_from_logits(self.predict(self.preprocess([img])))[0]
        return resize_mask(mask, img.size) if mask.shape[::-1] != img.size else mask

    def upscale(self, image: Any) -> np.ndarray:
        """One image (path / PIL / uint8 array) → the ``scale``× larger RGB uint8 image: the network upscales the
        luminance (tile by tile at the bundle's input size, edges reflected), the chroma is bicubic."""
        from edgecnn.runtime.dense import bicubic_plane, rgb_to_ycbcr, ycbcr_to_rgb
        from edgecnn.runtime.preprocess import load_image

        s = int(self._require("super_resolution")["scale"])
        rgb = np.asarray(load_image(image).convert("RGB"))
        ycc = rgb_to_ycbcr(rgb)
        h, w = ycc.shape[:2]
        y_up = self.upscale_y(ycc[..., 0])
        cb, cr = (bicubic_plane(ycc[..., i], (w * s, h * s)) for i in (1, 2))
        return ycbcr_to_rgb(np.stack([y_up, cb, cr], -1))

    def upscale_y(self, y: np.ndarray) -> np.ndarray:
        """An H×W luminance plane in [0, 1] → the network's (s·H)×(s·W) plane, clipped to [0, 1]."""
        s = int(self._require("super_resolution")["scale"])
        th, tw = self.input.concrete_shape(1)[2:]
        h, w = y.shape
        ph, pw = -h % th, -w % tw
        padded = np.pad(y.astype(np.float32), ((0, ph), (0, pw)), mode="reflect" if min(h, w) > 1 else "edge")
        out = np.empty((padded.shape[0] * s, padded.shape[1] * s), np.float32)
        for r in range(0, padded.shape[0], th):
            for c in range(0, padded.shape[1], tw):
                tile = padded[r : r + th, c : c + tw][None, None]
                out[r * s : (r + th) * s, c * s : (c + tw) * s] = self.predict(np.ascontiguousarray(tile))[0, 0]
        return np.clip(out[: h * s, : w * s], 0.0, 1.0)

    def top_k(self, logits: np.ndarray, k: int = 5) -> list[Prediction]:
        _check_top_k(k)
        probs = softmax(logits.astype(np.float64))
        idx = np.argsort(-probs)[:k]
        names = self.labels or []
        return [Prediction(int(i), names[i] if i < len(names) else str(int(i)), float(probs[i])) for i in idx]

    def selftest(self) -> dict[str, Any]:
        """Run the golden vectors on this device; report the worst error against the bundle's tolerance."""
        inputs, expected, tol = self.bundle.golden()
        worst, top_ok = 0.0, True
        for x, ref in zip(inputs, expected, strict=True):
            out = self.predict(x)
            err = float(np.abs(out.astype(np.float64) - ref).max() / max(float(np.abs(ref).max()), 1e-12))
            worst = max(worst, err)
            k = int(tol.get("top_k", 0))
            if k and out.ndim == 2:
                top_ok &= bool((np.argsort(-out, axis=-1)[:, :k] == np.argsort(-ref, axis=-1)[:, :k]).all())
            elif k and out.ndim == 4 and out.shape[1] > 1:  # per-pixel class scores: the predicted masks agree
                top_ok &= bool(np.mean(out.argmax(1) == ref.argmax(1)) >= DENSE_ARGMAX_AGREEMENT)
        ok = worst <= tol["max_rel_error"] and top_ok
        return {
            "ok": ok,
            "max_rel_error": worst,
            "tolerance": tol,
            "top_k_identical": top_ok,
            "count": len(inputs),
            "backend": self.backend.name,
            "device": self.backend.device,
        }


def load(
    bundle: str | os.PathLike, backend: str | None = None, device: str | None = None, threads: int | None = None
) -> Session:
    """Verify a bundle (schema, containment, sizes, hashes) and open it with ``backend`` (default: the target's)."""
    if threads is not None:
        L.check_int(threads, L.MIN_THREADS, L.MAX_THREADS, "threads")
    b = open_bundle(bundle)
    name = backend or default_backend(b)
    try:
        session = Session(b, make_backend(name, b, device, threads))
    except MissingDependencyError as e:
        if backend is None and name == "tensorrt":
            raise MissingDependencyError(
                f"{e.message}; a tensorrt bundle runs on an NVIDIA device with TensorRT",
                hint='pip install "edgecnn[tensorrt]" there, or pass --backend '
                "onnxruntime to run the TensorRT-ready ONNX here",
            ) from None
        raise
    _check_io_names(session)
    if b.manifest.precision == "int8" and str(session.backend.device).lower() in ("cpu", "none"):
        _warn_if_int8_saturates()
    return session


@functools.cache
def _warn_if_int8_saturates() -> None:
    """Once per process: int8 bundles on an x86 CPU without VNNI/AMX run less exactly than their graph says."""
    from edgecnn.runtime.env import int8_saturates

    if int8_saturates():
        log.warning(
            "this x86 CPU has no VNNI/AMX: its int8 convolutions saturate (u8×s8 pairs summed in int16), so int8 "
            "bundles may be less accurate here than on the device they were made for — check accuracy on this CPU"
        )


def _check_top_k(k: int) -> None:
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= L.MAX_TOP_K:
        raise ConfigError(f"top_k must be an integer in 1..{L.MAX_TOP_K}, got {k!r}")


def _check_io_names(session: Session) -> None:
    """The model's own input/output names must be the manifest's (a renamed input would otherwise surface as a raw
    SDK error at the first ``run``)."""
    for kind in ("inputs", "outputs"):
        names = getattr(session.backend, f"{kind[:-1]}_names", None)
        if names is None:
            continue
        want = [t.name for t in getattr(session.manifest, kind)]
        if sorted(names) != sorted(want):
            raise BundleIntegrityError(
                f"the model's {kind} {sorted(names)[:8]} are not the manifest's {want[:8]}",
                hint="the manifest and the model file disagree; re-export the bundle",
            )
