"""Building blocks of the zoo (imports torch; ``edgecnn.layers.geometry`` alone is torch-free)."""

from edgecnn.layers.activations import Act, make_act
from edgecnn.layers.blocks import DepthwiseSeparable, InvertedResidual, SESpec, conv_params, separable_savings
from edgecnn.layers.conv_bn_act import ConvBNAct, NormSpec, PadSame
from edgecnn.layers.drop import DropPath, SpatialDropout, drop_path
from edgecnn.layers.geometry import conv_out_size, effective_kernel, make_divisible, same_padding
from edgecnn.layers.spp import SpatialPyramidPooling
from edgecnn.layers.squeeze_excite import SqueezeExcite
from edgecnn.layers.upsample import TransposedConvUp, transposed_out_size

__all__ = [
    "Act",
    "ConvBNAct",
    "DepthwiseSeparable",
    "DropPath",
    "InvertedResidual",
    "NormSpec",
    "PadSame",
    "SESpec",
    "SpatialDropout",
    "SpatialPyramidPooling",
    "SqueezeExcite",
    "TransposedConvUp",
    "conv_out_size",
    "conv_params",
    "drop_path",
    "effective_kernel",
    "make_act",
    "make_divisible",
    "same_padding",
    "separable_savings",
    "transposed_out_size",
]
