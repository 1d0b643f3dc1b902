"""The model zoo: the registry of architectures and ``create_model`` (every model found by name, with its defaults)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from torch import nn

from edgecnn.errors import ConfigError
from edgecnn.registry import Registry
from edgecnn.runtime.preprocess import Preprocessing


@dataclass(frozen=True, kw_only=True)
class ModelOptions:
    """Builder options shared by every model (None = the variant's own default)."""

    num_classes: int = 1000
    in_chans: int = 3
    width_mult: float | None = None
    depth_mult: float | None = None
    dropout: float | None = None
    drop_path_rate: float | None = None
    features_only: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.num_classes, int) or self.num_classes < 0:
            raise ConfigError(f"num_classes must be an integer >= 0, got {self.num_classes!r}")
        if not isinstance(self.in_chans, int) or self.in_chans < 1:
            raise ConfigError(f"in_chans must be an integer >= 1, got {self.in_chans!r}")
        for name in ("width_mult", "depth_mult"):
            v = getattr(self, name)
            if v is not None and not v > 0:
                raise ConfigError(f"{name} must be > 0, got {v!r}")
        for name in ("dropout", "drop_path_rate"):
            v = getattr(self, name)
            if v is not None and not 0 <= v < 1:
                raise ConfigError(f"{name} must be in [0, 1), got {v!r}")


@dataclass(frozen=True, kw_only=True)
class ModelEntry:
    """A registered architecture: how to build it and what it expects."""

    name: str
    family: str
    build: Callable[[ModelOptions], nn.Module]
    default_resolution: int
    preprocessing: Preprocessing
    paper: str
    task: str = "classification"  # one of TASKS: what the output means (logits, per-pixel logits, an image)
    num_classes: int = 1000  # create_model's default (21 for VOC-style segmentation, 0 for super-resolution)
    in_chans: int = 3  # create_model's default (1 for super-resolution on the Y channel)


# What a model's output is: classification (N, classes), segmentation (N, classes, H, W) per-pixel logits at the
# input size, super_resolution (N, C, s·H, s·W) an image in the input's scale.
TASKS = ("classification", "segmentation", "super_resolution")

MODELS: Registry[ModelEntry] = Registry("model")


def register_model(entry: ModelEntry) -> ModelEntry:
    return MODELS.register(entry.name, entry)


def create_model(
    name: str,
    *,
    num_classes: int | None = None,
    in_chans: int | None = None,
    width_mult: float | None = None,
    depth_mult: float | None = None,
    dropout: float | None = None,
    drop_path_rate: float | None = None,
    features_only: bool = False,
) -> nn.Module:
    """Build a registered model by name. The module carries ``edgecnn_name``, ``edgecnn_options``,
    ``default_resolution``, ``preprocessing`` (the evaluation transform every later stage uses) and ``task``.
    ``num_classes`` / ``in_chans`` default to the entry's own (1000 / 3 for the classifiers)."""
    import edgecnn.models  # noqa: F401  (registers the zoo)

    entry = MODELS.get(name)
    opts = ModelOptions(
        num_classes=entry.num_classes if num_classes is None else num_classes,
        in_chans=entry.in_chans if in_chans is None else in_chans,
        width_mult=width_mult,
        depth_mult=depth_mult,
        dropout=dropout,
        drop_path_rate=drop_path_rate,
        features_only=features_only,
    )
    model = entry.build(opts)
    model.edgecnn_name = name
    model.edgecnn_options = opts
    model.default_resolution = entry.default_resolution
    model.task = entry.task
    pre = entry.preprocessing
    model.preprocessing = pre if opts.in_chans == pre.channels else None
    return model


def list_models(task: str | None = None) -> list[str]:
    """Names of every registered model, or of those for one ``task`` (see TASKS)."""
    import edgecnn.models  # noqa: F401

    if task is not None and task not in TASKS:
        raise ConfigError(f"unknown task {task!r}", hint=f"tasks: {', '.join(TASKS)}")
    return [n for n in MODELS.names() if task is None or MODELS.get(n).task == task]


def get_model_entry(name: str) -> ModelEntry:
    import edgecnn.models  # noqa: F401

    return MODELS.get(name)
