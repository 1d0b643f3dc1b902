"""The model zoo (imports torch). Importing this package registers every family."""

from edgecnn.models import (  # noqa: F401  (importing a family module registers it)
    alexnet,
    efficientnet,
    mobilenet_v1,
    mobilenet_v2,
    mobilenet_v3,
    segmentation,
    superres,
)
from edgecnn.models.blocknet import BlockNet, FeatureInfo, FeatureNet, NetConfig
from edgecnn.models.spec import BlockArgs, parse_arch, parse_block
from edgecnn.models.zoo import MODELS, ModelEntry, ModelOptions, create_model, get_model_entry, list_models

__all__ = [
    "MODELS",
    "BlockArgs",
    "BlockNet",
    "FeatureInfo",
    "FeatureNet",
    "ModelEntry",
    "ModelOptions",
    "NetConfig",
    "create_model",
    "get_model_entry",
    "list_models",
    "parse_arch",
    "parse_block",
]
