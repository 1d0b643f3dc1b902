"""Activation names used by the zoo, and one factory (no string switches scattered over the code)."""

from __future__ import annotations

from enum import StrEnum

from torch import nn


class Act(StrEnum):
    """Activations of the zoo (ReLU6: MobileNetV2; hard-swish: MobileNetV3; SiLU: EfficientNet)."""

    RELU = "relu"
    RELU6 = "relu6"
    HARDSWISH = "hardswish"
    HARDSIGMOID = "hardsigmoid"
    SILU = "silu"
    SIGMOID = "sigmoid"
    IDENTITY = "identity"


_ACT = {
    Act.RELU: nn.ReLU,
    Act.RELU6: nn.ReLU6,
    Act.HARDSWISH: nn.Hardswish,
    Act.HARDSIGMOID: nn.Hardsigmoid,
    Act.SILU: nn.SiLU,
    Act.SIGMOID: nn.Sigmoid,
    Act.IDENTITY: nn.Identity,
}


def make_act(act: Act | str | None, *, inplace: bool = True) -> nn.Module:
    """Instantiate an activation by name; ``None`` gives Identity."""
    act = Act(act) if act is not None else Act.IDENTITY
    cls = _ACT[act]
    if cls in (nn.ReLU, nn.ReLU6, nn.Hardswish, nn.Hardsigmoid, nn.SiLU):
        return cls(inplace=inplace)
    return cls()
