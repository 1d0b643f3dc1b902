"""Weights in and out: edgecnn safetensors checkpoints, torchvision state dicts, EfficientNet-PyTorch files.

The format is detected from the file and its keys. Foreign layouts are translated by structural key maps
(:mod:`edgecnn.models.convert`); anything that does not fit raises :class:`WeightsMismatchError` naming the
missing, unexpected and misshapen keys. ``torch.load`` runs only with ``weights_only=True`` (no pickle code).
Weights carry the preprocessing they were trained with; loading sets ``model.preprocessing`` accordingly.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from edgecnn._version import __version__
from edgecnn.errors import ConfigError, WeightsFormatError, WeightsMismatchError
from edgecnn.models.blocknet import FeatureNet
from edgecnn.models.channels import apply_channel_record, channel_record
from edgecnn.models.convert import effnet_pytorch_map, torchvision_map, translate
from edgecnn.runtime.bundle import LFS_MAGIC, sha256_file
from edgecnn.runtime.preprocess import Preprocessing

# The evaluation transforms torchvision publishes with its IMAGENET1K_V1 weights: (crop, resize, interpolation).
TORCHVISION_PRE = {
    "mobilenet_v2": (224, 256, "bilinear"),
    "mobilenet_v3_large": (224, 256, "bilinear"),
    "mobilenet_v3_small": (224, 256, "bilinear"),
    "alexnet": (224, 256, "bilinear"),
    "efficientnet_b0": (224, 256, "bicubic"),
    "efficientnet_b1": (240, 256, "bicubic"),
    "efficientnet_b2": (288, 288, "bicubic"),
    "efficientnet_b3": (300, 320, "bicubic"),
    "efficientnet_b4": (380, 384, "bicubic"),
    "efficientnet_b5": (456, 456, "bicubic"),
    "efficientnet_b6": (528, 528, "bicubic"),
    "efficientnet_b7": (600, 600, "bicubic"),
}


@dataclass(frozen=True, kw_only=True)
class WeightsInfo:
    """What ``load_weights`` found: the detected format, the file's hash, and what the weights carry."""

    path: str
    format: str  # "edgecnn" | "torchvision" | "efficientnet_pytorch"
    sha256: str
    preprocessing: Preprocessing | None
    classes: tuple[str, ...] | None = None
    metadata: dict[str, Any] = field(default_factory=dict)


def _check_file(path: Path) -> None:
    if not path.exists():
        raise WeightsFormatError(f"weights file {str(path)!r} does not exist")
    if not path.is_file():
        raise WeightsFormatError(f"weights path {str(path)!r} is not a file")
    with open(path, "rb") as f:
        head = f.read(64)
    if not head:
        raise WeightsFormatError(f"weights file {str(path)!r} is empty")
    if head.startswith(LFS_MAGIC):
        raise WeightsFormatError(
            f"weights file {str(path)!r} is a Git LFS pointer, not the weights",
            hint="run `git lfs pull` to fetch the real file",
        )


def meta_json(meta: dict[str, str], key: str, path: str | os.PathLike, default: str | None = None) -> Any:
    """A JSON value from a checkpoint's safetensors metadata; a :class:`WeightsFormatError` naming the file and key
    when it is not JSON (metadata is free text any tool can write)."""
    raw = meta.get(key, default)
    try:
        return json.loads(raw) if isinstance(raw, str) else raw
    except (json.JSONDecodeError, RecursionError) as e:
        raise WeightsFormatError(
            f"weights file {str(path)!r}: metadata {key!r} is not JSON ({e})",
            hint="the checkpoint was edited or written by another tool; re-save it with edgecnn",
        ) from None


def _is_safetensors(path: Path) -> bool:
    with open(path, "rb") as f:
        head = f.read(9)
    return len(head) == 9 and head[8:9] == b"{"


def read_state_dict(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Tensors and (safetensors) metadata of a weights file, unwrapped from common containers."""
    path = Path(path)
    _check_file(path)
    meta: dict[str, str] = {}
    if _is_safetensors(path):
        from safetensors import SafetensorError, safe_open

        try:
            with safe_open(str(path), framework="pt") as f:
                meta = dict(f.metadata() or {})
                state = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 (safe_open has no __iter__)
        except (SafetensorError, OSError, ValueError) as e:
            raise WeightsFormatError(
                f"weights file {str(path)!r} is not a readable safetensors file: {e}",
                hint="the file may be truncated; download it again",
            ) from None
    else:
        try:
            obj = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as e:  # torch raises RuntimeError/UnpicklingError/EOFError/zipfile errors
            first = " ".join(x.strip() for x in str(e).splitlines() if x.strip()) or type(e).__name__
            first = first if len(first) <= 400 else first[:399] + "…"
            raise WeightsFormatError(
                f"weights file {str(path)!r} is not a readable PyTorch or safetensors file ({first})",
                hint="the file may be truncated or hold pickled code; re-save it as a state dict or safetensors",
            ) from None
        for wrapper in ("state_dict", "model_state_dict", "model"):
            if isinstance(obj, dict) and isinstance(obj.get(wrapper), dict):
                obj = obj[wrapper]
                break
        if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
            raise WeightsFormatError(f"weights file {str(path)!r} does not hold a state dict of tensors")
        state = obj
    if any(k.startswith("module.") for k in state):  # DistributedDataParallel / DataParallel checkpoints
        state = {k.removeprefix("module."): v for k, v in state.items()}
    return state, meta


def detect_format(keys: list[str], meta: dict[str, str]) -> str:
    """Which layout a state dict uses, from its metadata or its key names."""
    if meta.get("format") == "edgecnn":
        return "edgecnn"
    key_set = set(keys)
    if "_conv_stem.weight" in key_set:
        return "efficientnet_pytorch"
    own_stems = (
        "stem.conv.weight",
        "net.stem.conv.weight",
        "backbone.stem.conv.weight",
        "encoder.net.stem.conv.weight",
    )
    if any(k in key_set for k in own_stems) or "deconv.weight" in key_set or "to_subpixels.weight" in key_set:
        return "edgecnn"
    if any(k.startswith("features.") for k in keys) or "backbone.0.0.weight" in key_set:  # classifiers, LR-ASPP
        return "torchvision"
    sample = ", ".join(sorted(keys)[:4])
    raise WeightsFormatError(
        f"unrecognized weights layout (first keys: {sample})",
        hint="supported: edgecnn safetensors, torchvision, EfficientNet-PyTorch state dicts",
    )


def _summarize(kind: str, items: list[str]) -> str:
    more = f" … (+{len(items) - 5} more)" if len(items) > 5 else ""
    return f"{len(items)} {kind}: {', '.join(items[:5])}{more}"


def _family(model: nn.Module) -> str:
    from edgecnn.models.zoo import get_model_entry

    name = getattr(model, "edgecnn_name", None)
    if name is None:
        raise WeightsFormatError("foreign weights need a model built by edgecnn.create_model (to know its family)")
    return get_model_entry(name).family


def load_weights(model: nn.Module, path: str | os.PathLike) -> WeightsInfo:
    """Load a weights file into ``model`` (format auto-detected) and return what was found.

    Raises WeightsFormatError for unreadable files and WeightsMismatchError (naming keys) when they do not fit.
    """
    path = Path(path)
    state, meta = read_state_dict(path)
    fmt = detect_format(list(state), meta)
    target = model.net if isinstance(model, FeatureNet) else model
    if fmt == "edgecnn" and meta.get("channels"):  # a pruned architecture: reshape the zoo model first
        apply_channel_record(target, meta_json(meta, "channels", path), source=f"weights file {str(path)!r}")
        model.channels_pruned = True
    if fmt == "edgecnn" and meta.get("lineage"):
        model.lineage = meta_json(meta, "lineage", path)
    own = target.state_dict()
    if fmt == "edgecnn":
        state = {k.removeprefix("net."): v for k, v in state.items()}
        mapping = {k: k for k in own}
    elif fmt == "torchvision":
        mapping = translate(list(own), torchvision_map(target, _family(model)))
    else:
        mapping = translate(list(own), effnet_pytorch_map(target))
    missing = [src for src in mapping.values() if src not in state]  # named as the file would name them
    used = set(mapping.values())
    unexpected = [k for k in state if k not in used]
    if isinstance(model, FeatureNet):  # the classifier is not part of a feature extractor
        heads = ("classifier", "pre_logits", "_fc")
        unexpected = [k for k in unexpected if not k.startswith(heads) and not k.startswith("classifier.")]
    misshapen = [
        f"{k} {tuple(state[s].shape)}≠{tuple(own[k].shape)}"
        for k, s in mapping.items()
        if s in state and state[s].shape != own[k].shape
    ]
    if missing or unexpected or misshapen:
        parts = [
            _summarize(kind, items)
            for kind, items in (("missing", missing), ("unexpected", unexpected), ("misshapen", misshapen))
            if items
        ]
        hint = "check the model name and options"
        if any("classifier" in m or "_fc" in m for m in misshapen):
            hint = "the checkpoint has a different number of classes: build the model with matching num_classes"
        raise WeightsMismatchError(
            f"{fmt} weights {str(path)!r} do not fit {getattr(model, 'edgecnn_name', '')} model: {'; '.join(parts)}",
            hint=hint,
        )
    target.load_state_dict({k: state[s].to(own[k].dtype) for k, s in mapping.items()}, strict=True)

    pre, classes = _carried_preprocessing(model, fmt, meta, path), None
    if meta.get("classes"):
        classes = meta_json(meta, "classes", path)
        if not isinstance(classes, list) or not all(isinstance(c, str) for c in classes):
            raise WeightsFormatError(f"weights file {str(path)!r}: metadata 'classes' is not a list of names")
        classes = tuple(classes)
    if pre is not None:
        model.preprocessing = pre
    if classes is not None:
        model.classes = classes
    info = WeightsInfo(
        path=str(path), format=fmt, sha256=sha256_file(path), preprocessing=pre, classes=classes, metadata=meta
    )
    model.weights_info = info  # provenance travels with the module (exports record it)
    return info


def _carried_preprocessing(model: nn.Module, fmt: str, meta: dict[str, str], path: Path) -> Preprocessing | None:
    name = getattr(model, "edgecnn_name", None)
    if fmt == "edgecnn":
        if not meta.get("preprocessing"):
            return None
        try:
            return Preprocessing.from_dict(meta_json(meta, "preprocessing", path))
        except ConfigError as e:
            raise WeightsFormatError(f"weights file {str(path)!r}: metadata 'preprocessing' is invalid: {e}") from None
    if fmt == "torchvision" and name in TORCHVISION_PRE:
        crop, resize, interp = TORCHVISION_PRE[name]
        return Preprocessing(input_size=crop, resize_size=resize, interpolation=interp)
    if fmt == "efficientnet_pytorch" and name:
        from edgecnn.models.efficientnet import lite_preprocessing
        from edgecnn.models.zoo import get_model_entry

        return lite_preprocessing(get_model_entry(name).default_resolution) if "lite" in name else None
    return None


def save_weights(
    model: nn.Module, path: str | os.PathLike, *, classes: list[str] | None = None, extra: dict[str, Any] | None = None
) -> Path:
    """Write an edgecnn safetensors checkpoint atomically (temp file + rename), with the model's identity,
    options and preprocessing in the header metadata."""
    from safetensors.torch import save_file

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    opts = getattr(model, "edgecnn_options", None)
    pre: Preprocessing | None = getattr(model, "preprocessing", None)
    meta = {"format": "edgecnn", "edgecnn_version": __version__, "model": getattr(model, "edgecnn_name", "")}
    if opts is not None:
        import dataclasses

        meta["options"] = json.dumps(dataclasses.asdict(opts), sort_keys=True)
    if pre is not None:
        meta["preprocessing"] = json.dumps(pre.to_dict(), sort_keys=True)
    classes = classes if classes is not None else getattr(model, "classes", None)
    if classes is not None:
        meta["classes"] = json.dumps(list(classes))
    if getattr(model, "channels_pruned", False):  # the architecture itself differs from the zoo's
        meta["channels"] = json.dumps(channel_record(model.net if isinstance(model, FeatureNet) else model))
    if getattr(model, "lineage", None):
        meta["lineage"] = json.dumps(model.lineage, sort_keys=True)
    for k, v in (extra or {}).items():
        meta[k] = v if isinstance(v, str) else json.dumps(v, sort_keys=True)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    os.close(fd)
    try:
        save_file(state, tmp, metadata=meta)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path
