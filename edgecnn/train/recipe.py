"""Training recipes: frozen typed sections read from TOML, overridable key by key, validated strictly.

A recipe is data (docs/architecture.md, 3). Unknown keys, wrong types and bad values raise :class:`ConfigError`
naming the key path (``optim.lr``) with a did-you-mean suggestion, so a typo never silently trains the default.
"""

from __future__ import annotations

import dataclasses
import json
import tomllib
import types
import typing
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from edgecnn import limits
from edgecnn.data.augment import AugmentConfig
from edgecnn.errors import ConfigError
from edgecnn.registry import did_you_mean


@dataclass(frozen=True, kw_only=True)
class ModelConfig:
    name: str = "mobilenet_v2"
    width_mult: float | None = None
    depth_mult: float | None = None
    dropout: float | None = None
    drop_path_rate: float | None = None
    weights: str | None = None  # initial weights (any format load_weights reads), e.g. for fine-tuning
    head_init_scale: float | None = None  # scale the classifier's initial weights (0: start from uniform outputs)


@dataclass(frozen=True, kw_only=True)
class DataConfig:
    source: str = "embedded"  # "embedded" (MNIST digits) | "shapes" (procedural) | "folder"
    # dense tasks: "canvases" (embedded digits on canvases) | "seg_folder" (images/ masks/ classes.txt) for
    # segmentation; "photos" (embedded photos) | "photo_folder" (any photos) for super-resolution
    path: str | None = None  # folder: root with class sub-folders (split into train/val/test unless val_path)
    val_path: str | None = None  # folder: separate validation tree
    test_path: str | None = None  # folder: separate test tree
    input_size: int = 32
    train_load_size: int | None = None  # train images are loaded at this size, then cropped to input_size
    interpolation: str = "bilinear"
    crop_mode: str = "resize"  # evaluation crop (see edgecnn.runtime.preprocess.Preprocessing)
    resize_size: int | None = None
    crop_fraction: float | None = None
    mean: tuple[float, ...] | None = None  # None: the source's own (ImageNet for folders)
    std: tuple[float, ...] | None = None
    val_fraction: float = 0.1
    test_fraction: float = 0.1
    samples: int | None = None  # procedural set size / cap on the number of images used (quick runs)
    split_seed: int = 0
    batch_size: int = 128
    eval_batch_size: int = 256
    workers: int = 0

    def __post_init__(self) -> None:
        if self.source not in ("embedded", "shapes", "folder", *DENSE_SOURCES):
            raise ConfigError(
                f"data.source must be embedded, shapes, folder, {', '.join(DENSE_SOURCES)}; got {self.source!r}"
            )
        if self.source in ("folder", "seg_folder", "photo_folder") and not self.path:
            raise ConfigError("data.path is required for data.source = 'folder'", hint="a class-per-folder root")
        if self.input_size < 8 or self.batch_size < 1 or self.eval_batch_size < 1 or self.workers < 0:
            raise ConfigError("data.input_size must be >= 8, batch sizes >= 1 and workers >= 0")


DENSE_SOURCES = ("canvases", "seg_folder", "photos", "photo_folder")
DENSE_LOSSES = ("cross_entropy", "dice", "ce_dice", "l1", "l2")


@dataclass(frozen=True, kw_only=True)
class DenseConfig:
    """Segmentation and super-resolution runs (models whose task is not classification)."""

    loss: str = "ce_dice"  # cross_entropy | dice | ce_dice (segmentation); l1 | l2 (super-resolution)
    dice_weight: float = 0.5  # weight of the soft Dice term in ce_dice
    ignore_index: int = 255  # mask value that is neither trained on nor scored
    train_samples: int = 4000  # canvases (segmentation) or random patches per epoch (super-resolution)
    eval_samples: int = 500  # validation and test canvases each
    canvas_size: int = 64
    patch_size: int = 17  # low-resolution patch side (FSRCNN: 11 at x3 / 7 at x4; ESPCN: 17)
    hflip_p: float = 0.0  # joint image + mask geometry (digits: no flips)
    scale_range: tuple[float, float] = (0.8, 1.2)
    rotate_degrees: float = 10.0
    translate: float = 0.1
    brightness: float = 0.2  # image only
    contrast: float = 0.2  # image only

    def __post_init__(self) -> None:
        if self.loss not in DENSE_LOSSES:
            raise ConfigError(f"dense.loss {self.loss!r} is unknown", hint=did_you_mean(self.loss, DENSE_LOSSES))
        if not 0 <= self.ignore_index <= 255 or self.train_samples < 1 or self.eval_samples < 1:
            raise ConfigError("dense.ignore_index must be in 0..255, train_samples and eval_samples >= 1")
        if self.canvas_size < 32 or self.patch_size < 4 or not 0 < self.scale_range[0] <= self.scale_range[1]:
            raise ConfigError("dense.canvas_size >= 32, patch_size >= 4 and 0 < scale_range[0] <= scale_range[1]")


@dataclass(frozen=True, kw_only=True)
class OptimConfig:
    name: str = "adamw"  # "sgd" (Nesterov momentum) | "adamw" | "rmsprop"
    lr: float = 2e-3  # peak learning rate for the global batch
    momentum: float = 0.9
    nesterov: bool = True
    weight_decay: float = 0.05  # not applied to BN parameters and biases
    eps: float = 1e-8
    epochs: int = 10
    warmup_epochs: float = 1.0  # linear warm-up from warmup_start * lr
    warmup_start: float = 0.01
    min_lr_ratio: float = 0.0  # cosine floor as a fraction of lr

    def __post_init__(self) -> None:
        if self.name not in ("sgd", "adamw", "rmsprop"):
            raise ConfigError(
                f"optim.name {self.name!r} is unknown", hint=did_you_mean(self.name, ["sgd", "adamw", "rmsprop"])
            )
        if self.lr <= 0 or self.epochs < 1 or self.warmup_epochs < 0 or self.weight_decay < 0:
            raise ConfigError("optim.lr must be > 0, optim.epochs >= 1, warmup_epochs and weight_decay >= 0")


@dataclass(frozen=True, kw_only=True)
class DistillConfig:
    """Knowledge distillation (Hinton et al. 2015): a teacher checkpoint and how much its soft targets weigh."""

    teacher: str | None = None  # a zoo name + weights is not enough: pass an edgecnn checkpoint
    temperature: float = 4.0
    alpha: float = 0.7  # weight of the KL term; 1 - alpha weighs the hard-label loss

    def __post_init__(self) -> None:
        if self.temperature <= 0 or not 0 <= self.alpha <= 1:
            raise ConfigError("distill.temperature must be > 0 and distill.alpha in [0, 1]")


@dataclass(frozen=True, kw_only=True)
class TrainConfig:
    seed: int = 0
    label_smoothing: float = 0.0
    ema_decay: float = 0.0  # 0 = off; e.g. 0.999 (Polyak averaging of the weights)
    grad_clip: float = 0.0  # max global grad norm; 0 = off
    amp: str = "auto"  # "auto" (bf16/fp16 on CUDA, off on CPU) | "off" | "bf16" | "fp16"
    channels_last: bool = True
    threads: int | None = None  # torch intra-op threads (None: torch's default)
    device: str = "auto"  # "auto" | "cpu" | "cuda" | "cuda:N"
    deterministic: bool = True
    bn_momentum: float | None = None  # override BatchNorm momentum (short runs need faster running statistics)
    sync_bn: bool = True  # under DDP on CUDA, BatchNorm statistics over the global batch (SyncBatchNorm is GPU-only)
    freeze_bn: bool = False  # keep BatchNorm statistics fixed (small-batch fine-tuning; exact DDP equivalence on CPU)
    checkpoint_every: int = 1  # epochs between resumable checkpoints
    progress: bool = True

    def __post_init__(self) -> None:
        if self.amp not in ("auto", "off", "bf16", "fp16"):
            raise ConfigError(f"train.amp must be auto, off, bf16 or fp16, got {self.amp!r}")
        if not 0 <= self.label_smoothing < 1 or not 0 <= self.ema_decay < 1 or self.grad_clip < 0:
            raise ConfigError("train.label_smoothing and train.ema_decay must be in [0, 1), train.grad_clip >= 0")
        if self.threads is not None:  # the same rule as `bench --threads` (edgecnn/limits.py)
            limits.check_int(self.threads, limits.MIN_THREADS, limits.MAX_THREADS, "train.threads")


@dataclass(frozen=True, kw_only=True)
class Recipe:
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    distill: DistillConfig = field(default_factory=DistillConfig)
    dense: DenseConfig = field(default_factory=DenseConfig)

    def to_dict(self) -> dict[str, Any]:
        return json.loads(json.dumps(dataclasses.asdict(self)))

    def replace(self, **sections: Any) -> Recipe:
        return dataclasses.replace(self, **sections)


SECTIONS: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(Recipe))


def _section_types() -> dict[str, type]:
    hints = typing.get_type_hints(Recipe)
    return {name: hints[name] for name in SECTIONS}


def _coerce(path: str, value: Any, annotation: Any) -> Any:
    """Check ``value`` against a field annotation (int, float, bool, str, tuples, optionals)."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(annotation)
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in (a for a in args if a is not type(None)):
            try:
                return _coerce(path, value, arg)
            except ConfigError as e:
                errors.append(e)
        raise errors[0]
    if origin is tuple:
        args = typing.get_args(annotation)
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"recipe key {path!r} must be a list, got {value!r}")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_coerce(path, v, args[0]) for v in value)
        if len(value) != len(args):
            raise ConfigError(f"recipe key {path!r} must have {len(args)} values, got {value!r}")
        return tuple(_coerce(path, v, a) for v, a in zip(value, args, strict=True))
    if annotation is bool:
        if isinstance(value, bool):
            return value
    elif annotation is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif annotation is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    elif annotation is str and isinstance(value, str):
        return value
    if value is None:
        raise ConfigError(f"recipe key {path!r} cannot be empty")
    name = getattr(annotation, "__name__", str(annotation))
    raise ConfigError(f"recipe key {path!r} must be {name}, got {type(value).__name__} {value!r}")


def recipe_from_dict(data: dict[str, Any], *, source: str = "recipe") -> Recipe:
    """Build a validated :class:`Recipe`; every unknown key is reported with its path and a suggestion."""
    types_ = _section_types()
    sections: dict[str, Any] = {}
    for name, table in data.items():
        if name not in types_:
            raise ConfigError(
                f"{source}: unknown section [{name}]",
                hint=did_you_mean(name, types_, known="sections", show=lambda c: f"[{c}]"),
            )
        if not isinstance(table, dict):
            raise ConfigError(f"{source}: [{name}] must be a table of keys")
        cls = types_[name]
        hints = typing.get_type_hints(cls)
        kwargs = {}
        for key, value in table.items():
            if key not in hints:
                raise ConfigError(
                    f"{source}: unknown key '{name}.{key}'",
                    hint=did_you_mean(key, hints, known=f"keys of [{name}]", show=lambda c, n=name: f"'{n}.{c}'"),
                )
            try:
                kwargs[key] = _coerce(f"{name}.{key}", value, hints[key])
            except ConfigError as e:
                raise ConfigError(f"{source}: {e.message}", hint=e.hint) from None
        try:
            sections[name] = cls(**kwargs)
        except ConfigError as e:
            raise ConfigError(f"{source}: {e.message}", hint=e.hint) from None
    return Recipe(**sections)


def parse_override(text: str) -> tuple[list[str], Any]:
    """``optim.lr=0.01`` → (['optim', 'lr'], 0.01); the value is read as TOML (falls back to a bare string)."""
    if "=" not in text:
        raise ConfigError(f"override {text!r} is not KEY=VALUE", hint="e.g. --set optim.lr=0.01")
    key, raw = (s.strip() for s in text.split("=", 1))
    parts = key.split(".")
    if len(parts) != 2 or not all(parts):
        raise ConfigError(f"override key {key!r} must be section.key", hint="e.g. optim.epochs=5")
    try:
        value = tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw
    return parts, value


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    out = {k: dict(v) if isinstance(v, dict) else v for k, v in data.items()}
    for text in overrides:
        (section, key), value = parse_override(text)
        out.setdefault(section, {})[key] = value
    return out


def shipped_recipes() -> list[str]:
    """Names of the recipes that ship with edgecnn (``edgecnn/train/recipes/*.toml``)."""
    root = resources.files("edgecnn.train") / "recipes"
    return sorted(p.name.removesuffix(".toml") for p in root.iterdir() if p.name.endswith(".toml"))


def read_recipe_toml(spec: str | Path) -> tuple[dict[str, Any], str]:
    """The raw TOML tables of a recipe file or a shipped recipe name, and a label for messages."""
    path = Path(spec)
    if path.suffix != ".toml" and not path.exists():
        names = shipped_recipes()
        if str(spec) not in names:
            raise ConfigError(
                f"recipe {str(spec)!r} is neither a file nor a shipped recipe",
                hint=did_you_mean(str(spec), names, known="shipped"),
            )
        text = (resources.files("edgecnn.train") / "recipes" / f"{spec}.toml").read_text(encoding="utf-8")
        label = f"recipe {spec}"
    else:
        if not path.is_file():
            raise ConfigError(f"recipe file {str(path)!r} does not exist")
        label = f"recipe {path.name}"
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError as e:
            raise ConfigError(f"{label} is not UTF-8 text (byte {e.start})", hint="save the recipe as UTF-8") from None
        except OSError as e:
            raise ConfigError(f"{label} cannot be read: {e.strerror}") from None
    try:
        return tomllib.loads(text), label
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{label} is not valid TOML: {e}") from None


def load_recipe(spec: str | Path, overrides: list[str] | None = None) -> Recipe:
    """Read a recipe (file path or shipped name), apply ``section.key=value`` overrides, validate everything."""
    data, label = read_recipe_toml(spec)
    return recipe_from_dict(apply_overrides(data, overrides or []), source=label)
