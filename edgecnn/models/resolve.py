"""Turn what a user typed (a zoo name or a checkpoint path) into a model — the one path every command uses."""

from __future__ import annotations

from pathlib import Path

from torch import nn

from edgecnn.errors import ConfigError, WeightsFormatError
from edgecnn.models.weights import WeightsInfo, load_weights, meta_json, read_state_dict
from edgecnn.models.zoo import MODELS, create_model

WEIGHT_SUFFIXES = (".safetensors", ".pt", ".pth", ".bin")


def is_checkpoint(spec: str) -> bool:
    """Whether a MODEL argument names a checkpoint file rather than a zoo model."""
    import edgecnn.models  # noqa: F401  (registers the zoo)

    return spec not in MODELS and (Path(spec).suffix in WEIGHT_SUFFIXES or Path(spec).exists())


def resolve_model(
    spec: str,
    *,
    weights: str | None = None,
    num_classes: int | None = None,
    width_mult: float | None = None,
    depth_mult: float | None = None,
) -> tuple[nn.Module, WeightsInfo | None]:
    """``spec`` is a registered model name, or an edgecnn ``.safetensors`` checkpoint that names its model.

    ``weights`` (any supported format) is loaded into the named model. Returns the eval-mode model and what the
    weights carried (None for random init).
    """
    import edgecnn.models  # noqa: F401  (registers the zoo)

    path = Path(spec)
    if is_checkpoint(spec):
        if weights:
            raise ConfigError(f"{spec!r} is a checkpoint already; --weights cannot be combined with it")
        _, meta = read_state_dict(path)
        if not meta.get("model"):
            raise ConfigError(
                f"checkpoint {spec!r} does not name its model",
                hint="pass the model name and the file as --weights FILE",
            )
        opts = meta_json(meta, "options", path, "{}")
        if not isinstance(opts, dict):
            raise WeightsFormatError(f"checkpoint {spec!r}: metadata 'options' is not an object")
        keys = ("num_classes", "in_chans", "width_mult", "depth_mult", "dropout", "drop_path_rate", "features_only")
        model = create_model(meta["model"], **{k: opts[k] for k in keys if k in opts})
        return model.eval(), load_weights(model, path)
    model = create_model(spec, num_classes=num_classes, width_mult=width_mult, depth_mult=depth_mult)
    info = load_weights(model, weights) if weights else None
    return model.eval(), info


def as_module(model: str | nn.Module, weights: str | None = None) -> nn.Module:
    """``model`` itself in eval mode when it is a module, else :func:`resolve_model` of the name or checkpoint."""
    if isinstance(model, nn.Module):
        return model.eval()
    return resolve_model(model, weights=weights)[0]
