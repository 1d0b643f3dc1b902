"""The evaluation transform as data, and its one torch-free implementation (numpy + Pillow).

Training's evaluation, calibration and the device runtime all call :func:`preprocess_image` with the
:class:`Preprocessing` that travels with the weights, so deployment preprocessing cannot drift from training's
(the most common deployment bug in this field). Mirrors timm's ``pretrained_cfg`` (interpolation, crop_pct,
mean/std) plus the two crop conventions in use:

* ``resize_crop`` (torchvision): resize the shorter side to ``resize_size``, then centre-crop ``input_size``;
* ``crop_resize`` (TF EfficientNet releases): centre-crop ``crop_fraction`` of the shorter side, then resize the
  square to ``input_size``.
"""

from __future__ import annotations

import dataclasses
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgecnn import limits as L
from edgecnn.errors import ConfigError, InputSpecError, MissingDependencyError

_INTERP = ("nearest", "bilinear", "bicubic")
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True, kw_only=True)
class Preprocessing:
    """How raw images become model inputs. ``mean``/``std`` are in units of the [0, 1]-scaled image."""

    input_size: int = 224
    color: str = "RGB"  # "RGB" | "BGR" | "L" (channel order fed to the network)
    crop_mode: str = "resize_crop"  # "resize_crop" | "crop_resize" | "resize" (squash, no crop)
    resize_size: int | None = 256  # shorter side before the crop (resize_crop)
    crop_fraction: float | None = None  # of the shorter side (crop_resize)
    interpolation: str = "bilinear"
    scale: float = 1.0 / 255.0
    mean: tuple[float, ...] = IMAGENET_MEAN
    std: tuple[float, ...] = IMAGENET_STD
    layout: str = "NCHW"

    def __post_init__(self) -> None:
        if self.color not in ("RGB", "BGR", "L"):
            raise ConfigError(f"preprocessing.color must be RGB, BGR or L, got {self.color!r}")
        if self.crop_mode not in ("resize_crop", "crop_resize", "resize"):
            raise ConfigError(
                f"preprocessing.crop_mode must be resize_crop, crop_resize or resize, got {self.crop_mode!r}"
            )
        if self.interpolation not in _INTERP:
            raise ConfigError(f"preprocessing.interpolation must be one of {_INTERP}, got {self.interpolation!r}")
        if self.layout not in ("NCHW", "NHWC"):
            raise ConfigError(f"preprocessing.layout must be NCHW or NHWC, got {self.layout!r}")
        L.check_int(self.input_size, 1, L.MAX_RESOLUTION, "preprocessing.input_size")
        if isinstance(self.scale, bool) or not isinstance(self.scale, (int, float)) or not 0 < self.scale < 1e6:
            raise ConfigError(f"preprocessing.scale must be a number in (0, 1e6), got {self.scale!r}")
        if self.resize_size is not None:
            L.check_int(self.resize_size, 1, L.MAX_RESOLUTION, "preprocessing.resize_size")
        chans = 1 if self.color == "L" else 3
        values = (*self.mean, *self.std)
        if not all(isinstance(v, (int, float)) and -1e6 < v < 1e6 for v in values):  # also refuses NaN
            raise ConfigError(f"preprocessing.mean/std must be finite numbers, got {self.mean}/{self.std}")
        if len(self.mean) != chans or len(self.std) != chans or min(self.std) <= 0:
            raise ConfigError(f"preprocessing.mean/std need {chans} values (std > 0), got {self.mean}/{self.std}")
        if self.crop_fraction is not None and (
            isinstance(self.crop_fraction, bool) or not isinstance(self.crop_fraction, (int, float))
        ):
            raise ConfigError(f"preprocessing.crop_fraction must be a number, got {self.crop_fraction!r}")
        if self.crop_mode == "resize_crop" and (self.resize_size or 0) < self.input_size:
            raise ConfigError("preprocessing.resize_size must be >= input_size for resize_crop")
        if self.crop_mode == "crop_resize" and not (0 < (self.crop_fraction or 0) <= 1):
            raise ConfigError("preprocessing.crop_fraction must be in (0, 1] for crop_resize")

    @property
    def channels(self) -> int:
        return 1 if self.color == "L" else 3

    def at_resolution(self, input_size: int) -> Preprocessing:
        """The same recipe at another input size (resize_size scaled to keep the crop ratio)."""
        resize = None if self.resize_size is None else round(self.resize_size * input_size / self.input_size)
        return dataclasses.replace(self, input_size=input_size, resize_size=resize)

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["mean"], d["std"] = list(self.mean), list(self.std)
        return d

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Preprocessing:
        if not isinstance(data, dict):
            raise ConfigError(f"preprocessing: expected an object, got {type(data).__name__}")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"preprocessing: unknown key(s) {unknown}", hint=f"known: {sorted(known)}")
        data = dict(data)
        try:
            for k in ("mean", "std"):
                if k in data:
                    data[k] = tuple(float(v) for v in data[k])
            return cls(**data)
        except ConfigError:
            raise
        except (TypeError, ValueError) as e:
            raise ConfigError(
                f"preprocessing: invalid value ({e})", hint="mean/std are lists of numbers, sizes are integers"
            ) from None


def _pil():
    try:
        from PIL import Image
    except ImportError as e:  # pragma: no cover - depends on the install
        raise MissingDependencyError("image preprocessing needs Pillow", hint='pip install "edgecnn[image]"') from e
    return Image


def load_image(image: Any) -> Any:
    """A PIL image from a path, a PIL image or an H×W[×C] uint8 array."""
    Image = _pil()
    if isinstance(image, Image.Image):
        _check_pixels(image.size, "PIL")
        return image
    if isinstance(image, (str, Path)):
        path = Path(image)
        if not path.is_file():
            raise InputSpecError(f"image {str(path)!r} does not exist or is not a file")
        try:
            with warnings.catch_warnings():  # our own limit (below) replaces Pillow's DecompressionBombWarning
                warnings.simplefilter("ignore", Image.DecompressionBombWarning)
                img = Image.open(path)  # reads the header only: the size is checked before any pixel is decoded
            try:
                _check_pixels(img.size, str(path))
                img.load()
            except BaseException:
                img.close()  # refused or undecodable: do not leak the open file
                raise
        except InputSpecError:
            raise
        except Exception as e:  # PIL raises many types for bad files
            raise InputSpecError(f"image {str(path)!r} cannot be decoded: {str(e).splitlines()[0][:200]}") from None
        return img
    if isinstance(image, np.ndarray):
        if image.dtype != np.uint8 or image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[2] not in (1, 3, 4)):
            raise InputSpecError(
                f"image array must be uint8 H×W, H×W×1, H×W×3 or H×W×4, got {image.dtype} {image.shape}",
                hint="pass raw pixels; use Session.predict for preprocessed float tensors",
            )
        _check_pixels((image.shape[1], image.shape[0]), "array")
        return Image.fromarray(image[..., 0] if image.ndim == 3 and image.shape[2] == 1 else image)
    raise InputSpecError(f"unsupported image type {type(image).__name__}", hint="pass a path, PIL image or uint8 array")


def _check_pixels(size: tuple[int, int], what: str) -> None:
    """Refuse empty images and decompression bombs (more than ``limits.MAX_IMAGE_PIXELS``) before decoding."""
    w, h = size
    if w < 1 or h < 1:
        raise InputSpecError(f"image {what} is empty ({w}×{h} pixels)")
    if w * h > L.MAX_IMAGE_PIXELS:
        raise InputSpecError(
            f"image {what} is {w}×{h} pixels, more than {L.MAX_IMAGE_PIXELS}", hint="downscale it before prediction"
        )


def preprocess_image(image: Any, pre: Preprocessing) -> np.ndarray:
    """One image → float32 array of shape (C, H, W) (or (H, W, C) for NHWC), exactly as ``pre`` says."""
    Image = _pil()
    img = load_image(image)
    img = img.convert("L" if pre.color == "L" else "RGB")
    resample = {"nearest": Image.NEAREST, "bilinear": Image.BILINEAR, "bicubic": Image.BICUBIC}[pre.interpolation]
    size = pre.input_size
    w, h = img.size
    if pre.crop_mode == "resize_crop":
        short = pre.resize_size or size
        nw, nh = (short, max(1, round(h * short / w))) if w <= h else (max(1, round(w * short / h)), short)
        img = img.resize((nw, nh), resample)
        left, top = int(round((nw - size) / 2.0)), int(round((nh - size) / 2.0))
        img = img.crop((left, top, left + size, top + size))
    elif pre.crop_mode == "crop_resize":
        side = int(pre.crop_fraction * min(w, h))  # type: ignore[operator]
        left, top = (w - side + 1) // 2, (h - side + 1) // 2
        img = img.crop((left, top, left + side, top + side)).resize((size, size), resample)
    else:
        img = img.resize((size, size), resample)
    arr = np.asarray(img, dtype=np.float32)
    if arr.ndim == 2:
        arr = arr[:, :, None]
    if pre.color == "BGR":
        arr = arr[:, :, ::-1]
    arr = (arr * np.float32(pre.scale) - np.asarray(pre.mean, np.float32)) / np.asarray(pre.std, np.float32)
    if pre.layout == "NCHW":
        arr = arr.transpose(2, 0, 1)
    return np.ascontiguousarray(arr, dtype=np.float32)


def preprocess_batch(images: list[Any], pre: Preprocessing) -> np.ndarray:
    """Several images → one float32 batch."""
    if not images:
        raise InputSpecError("no images given", hint="pass at least one path, PIL image or uint8 array")
    return np.stack([preprocess_image(i, pre) for i in images])
