"""Building blocks (edgecnn.layers): closed-form costs, structure rules and shapes, checked on real modules."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from edgecnn.layers import (
    Act,
    ConvBNAct,
    DepthwiseSeparable,
    DropPath,
    InvertedResidual,
    NormSpec,
    PadSame,
    SESpec,
    SpatialDropout,
    SpatialPyramidPooling,
    SqueezeExcite,
    TransposedConvUp,
    conv_params,
    drop_path,
    make_act,
    separable_savings,
    transposed_out_size,
)
from edgecnn.layers.geometry import same_padding


def _conv_weights(module: nn.Module) -> int:
    """Parameters of the convolutions only (BN excluded), counted from the real module."""
    return sum(
        m.weight.numel() + (m.bias.numel() if m.bias is not None else 0)
        for m in module.modules()
        if isinstance(m, nn.Conv2d)
    )


def _params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


# -- DepthwiseSeparable ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("c_in", "c_out", "k"),
    [(32, 64, 3), (64, 128, 3), (512, 512, 3), (1024, 1024, 3), (16, 24, 5), (3, 7, 7), (8, 8, 1)],
)
def test_depthwise_separable_param_savings(c_in: int, c_out: int, k: int) -> None:
    ds = DepthwiseSeparable(c_in, c_out, k)
    full = nn.Conv2d(c_in, c_out, k, bias=False)
    sep = _conv_weights(ds)
    # closed form: k²·C_in (depthwise) + C_in·C_out (pointwise), both without bias (BN follows)
    assert sep == k * k * c_in + c_in * c_out
    assert sep == conv_params(c_in, c_in, k, groups=c_in) + conv_params(c_in, c_out, 1)
    assert _params(full) == conv_params(c_in, c_out, k) == k * k * c_in * c_out
    # MobileNetV1 eq. 5: ratio = 1/C_out + 1/k², exact
    assert sep / _params(full) == pytest.approx(separable_savings(c_in, c_out, k), rel=1e-12)
    # BN adds 2 learnable params per channel of each of the two convs
    assert _params(ds) == sep + 2 * c_in + 2 * c_out
    assert all(m.bias is None for m in ds.modules() if isinstance(m, nn.Conv2d))


def test_mobilenet_v1_savings_is_about_8_to_9x() -> None:
    # The paper's claim for 3×3 convs at C_out=1024: 8–9 times fewer multiply-adds.
    assert 8 < 1 / separable_savings(1024, 1024, 3) < 9


def test_conv_params_with_bias_and_groups() -> None:
    conv = nn.Conv2d(12, 24, 3, groups=4, bias=True)
    assert conv_params(12, 24, 3, groups=4, bias=True) == _params(conv) == 3 * 3 * 3 * 24 + 24


@pytest.mark.parametrize(("stride", "dilation", "size", "expected"), [(1, 1, 17, 17), (2, 1, 17, 9), (1, 2, 16, 16)])
def test_depthwise_separable_shapes(stride: int, dilation: int, size: int, expected: int) -> None:
    ds = DepthwiseSeparable(8, 16, 3, stride=stride, dilation=dilation).eval()
    assert ds.conv_dw.conv.groups == 8
    assert ds(torch.randn(2, 8, size, size)).shape == (2, 16, expected, expected)


# -- InvertedResidual -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("c_in", "c_out", "stride", "skip"),
    [(16, 16, 1, True), (16, 24, 1, False), (16, 16, 2, False), (24, 32, 2, False)],
)
def test_inverted_residual_skip_rule(c_in: int, c_out: int, stride: int, skip: bool) -> None:
    block = InvertedResidual(c_in, c_out, 3, mid_chs=c_in * 4, stride=stride).eval()
    assert block.has_skip is skip
    x = torch.randn(2, c_in, 8, 8)
    y = block(x)
    assert y.shape == (2, c_out, 8 // stride, 8 // stride)
    if skip:
        # the residual is really added: the output minus the branch is the input
        branch = block.conv_pwl(block.se(block.conv_dw(block.conv_pw(x))))
        torch.testing.assert_close(y - branch, x)


def test_inverted_residual_linear_bottleneck_and_expansion() -> None:
    block = InvertedResidual(16, 24, 3, mid_chs=96)
    assert isinstance(block.conv_pw.act, nn.ReLU6)
    assert isinstance(block.conv_pwl.act, nn.Identity)  # linear bottleneck: no activation after the projection
    assert block.conv_pw.conv.out_channels == 96
    assert block.conv_dw.conv.groups == 96
    assert block.conv_pwl.conv.in_channels == 96


def test_inverted_residual_no_expansion_when_mid_equals_in() -> None:
    block = InvertedResidual(32, 16, 3, mid_chs=32)
    assert not hasattr(block, "conv_pw")
    assert block.conv_dw.conv.in_channels == 32
    assert block.eval()(torch.randn(1, 32, 8, 8)).shape == (1, 16, 8, 8)
    forced = InvertedResidual(32, 16, 3, mid_chs=32, force_expand=True)
    assert isinstance(forced.conv_pw, ConvBNAct)
    assert _params(forced) - _params(block) == 32 * 32 + 2 * 32


@pytest.mark.parametrize("dilation", (1, 2, 3))
@pytest.mark.parametrize("kernel", (3, 5))
@pytest.mark.parametrize("padding", ("symmetric", "same"))
def test_dilation_keeps_size(dilation: int, kernel: int, padding: str) -> None:
    block = InvertedResidual(8, 8, kernel, mid_chs=16, dilation=dilation, padding=padding).eval()
    assert block.conv_dw.conv.dilation == (dilation, dilation)
    assert block(torch.randn(1, 8, 15, 15)).shape == (1, 8, 15, 15)


def test_inverted_residual_with_se_and_drop_path() -> None:
    block = InvertedResidual(16, 16, 5, mid_chs=64, se=SESpec(rd_chs=4, act=Act.SILU), drop_path_rate=0.2)
    assert isinstance(block.se, SqueezeExcite)
    assert block.se.conv_reduce.in_channels == 64 and block.se.conv_reduce.out_channels == 4
    assert isinstance(block.se.act, nn.SiLU) and isinstance(block.se.gate, nn.Sigmoid)
    assert isinstance(block.drop_path, DropPath) and block.drop_path.p == 0.2
    # no skip → no drop path, whatever the rate
    assert isinstance(InvertedResidual(16, 24, mid_chs=64, drop_path_rate=0.2).drop_path, nn.Identity)
    assert isinstance(InvertedResidual(16, 16, mid_chs=64, drop_path_rate=0.0).drop_path, nn.Identity)


# -- ConvBNAct / PadSame ----------------------------------------------------------------------------------------------


def test_conv_bn_act_bias_rule() -> None:
    with_bn = ConvBNAct(3, 8, 3)
    assert with_bn.conv.bias is None and isinstance(with_bn.bn, nn.BatchNorm2d)
    no_bn = ConvBNAct(3, 8, 3, norm=None)
    assert no_bn.conv.bias is not None and isinstance(no_bn.bn, nn.Identity)
    bn = ConvBNAct(3, 8, 3, norm=NormSpec(eps=1e-3, momentum=0.01)).bn
    assert (bn.eps, bn.momentum) == (1e-3, 0.01)
    assert ConvBNAct(3, 8, 3).out_chs == 8


@pytest.mark.parametrize("size", (224, 225, 15, 16))
@pytest.mark.parametrize("kernel", (3, 5))
def test_pad_same_on_stride_2_matches_tf(size: int, kernel: int) -> None:
    layer = ConvBNAct(3, 4, kernel, stride=2, padding="same", norm=None, act=None).eval()
    assert isinstance(layer.pad, PadSame)
    assert layer.conv.padding == (0, 0)
    x = torch.randn(1, 3, size, size)
    before, after = same_padding(size, kernel, 2)
    expected = F.conv2d(F.pad(x, (before, after, before, after)), layer.conv.weight, layer.conv.bias, stride=2)
    y = layer(x)
    assert y.shape[-1] == -(-size // 2)  # ceil(size / 2)
    torch.testing.assert_close(y, expected)


def test_pad_same_is_asymmetric_at_224() -> None:
    # TF pads only bottom/right here: PyTorch's symmetric padding=1 would shift the sampling grid by one pixel.
    x = torch.zeros(1, 1, 224, 224)
    padded = PadSame(3, 2)(x)
    assert padded.shape[-2:] == (225, 225)
    marker = torch.zeros(1, 1, 4, 4)
    marker[..., 0, 0] = 1.0
    out = PadSame(3, 2)(marker)  # 4 px: total pad 1 → (0, 1)
    assert out.shape[-1] == 5 and out[0, 0, 0, 0] == 1.0  # nothing added on top/left
    sym = ConvBNAct(1, 1, 3, stride=2, padding="symmetric", norm=None, act=None)
    same = ConvBNAct(1, 1, 3, stride=2, padding="same", norm=None, act=None)
    same.conv.weight.data.copy_(sym.conv.weight.data)
    same.conv.bias.data.copy_(sym.conv.bias.data)
    x = torch.randn(1, 1, 224, 224)
    assert sym(x).shape == same(x).shape
    assert not torch.allclose(sym(x), same(x))


def test_pad_same_not_created_at_stride_1_odd_kernel() -> None:
    layer = ConvBNAct(3, 4, 3, stride=1, padding="same")
    assert not hasattr(layer, "pad") and layer.conv.padding == (1, 1)
    even = ConvBNAct(3, 4, 2, stride=1, padding="same", norm=None).eval()
    assert isinstance(even.pad, PadSame)
    assert even(torch.randn(1, 3, 9, 9)).shape == (1, 4, 9, 9)


def test_pad_same_noop_when_no_padding_needed() -> None:
    x = torch.randn(1, 2, 8, 8)
    assert PadSame(1, 2)(x) is x


def test_bad_padding_mode() -> None:
    with pytest.raises(ValueError, match="padding"):
        ConvBNAct(3, 4, 3, padding="valid")


# -- activations ------------------------------------------------------------------------------------------------------


def test_make_act() -> None:
    assert isinstance(make_act(None), nn.Identity)
    assert isinstance(make_act("hardswish"), nn.Hardswish)
    assert isinstance(make_act(Act.RELU6), nn.ReLU6)
    assert make_act(Act.SILU).inplace is True and make_act(Act.SILU, inplace=False).inplace is False
    assert isinstance(make_act("sigmoid"), nn.Sigmoid)
    with pytest.raises(ValueError):
        make_act("gelu6")


# -- SqueezeExcite ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("act", "gate"), [(Act.RELU, Act.SIGMOID), (Act.RELU, Act.HARDSIGMOID), (Act.SILU, Act.SIGMOID)]
)
def test_squeeze_excite_shapes_and_gating(act: Act, gate: Act) -> None:
    se = SqueezeExcite(32, 8, act=act, gate=gate).eval()
    assert se.conv_reduce.weight.shape == (8, 32, 1, 1) and se.conv_reduce.bias is not None
    assert se.conv_expand.weight.shape == (32, 8, 1, 1)
    assert _params(se) == 32 * 8 + 8 + 8 * 32 + 32
    x = torch.randn(2, 32, 7, 9)
    y = se(x)
    assert y.shape == x.shape
    scale = y / x  # one gate value in [0, 1] per (sample, channel), constant over space
    assert torch.all(scale >= 0) and torch.all(scale <= 1 + 1e-6)
    torch.testing.assert_close(scale, scale[..., :1, :1].expand_as(scale), rtol=1e-5, atol=1e-6)


def test_squeeze_excite_rejects_zero_channels() -> None:
    with pytest.raises(ValueError, match="reduced channels"):
        SqueezeExcite(8, 0)


# -- DropPath / SpatialDropout ----------------------------------------------------------------------------------------


def test_drop_path_identity_in_eval() -> None:
    layer = DropPath(0.5).eval()
    x = torch.randn(16, 4, 3, 3)
    assert layer(x) is x
    assert drop_path(x, 0.0, training=True) is x
    assert "p=0.5" in repr(layer)


@pytest.mark.parametrize("p", (0.2, 0.5, 0.8))
def test_drop_path_zeroes_whole_samples_and_rescales(p: float) -> None:
    layer = DropPath(p).train()
    x = torch.ones(4000, 3, 2, 2)
    y = layer(x)
    per_sample = y.flatten(1)
    kept = per_sample[:, 0] != 0
    # every sample is either all zero or all scaled by 1/(1-p)
    assert torch.all(per_sample[~kept] == 0)
    torch.testing.assert_close(per_sample[kept], torch.full_like(per_sample[kept], 1 / (1 - p)))
    n = per_sample.shape[0]
    sigma = (p * (1 - p) / n) ** 0.5  # binomial std of the kept fraction
    assert abs(kept.float().mean().item() - (1 - p)) < 5 * sigma
    assert abs(y.mean().item() - 1.0) < 5 * sigma / (1 - p)  # expectation preserved by the 1/(1−p) rescaling


@pytest.mark.parametrize("p", (-0.1, 1.0, 1.5))
def test_drop_path_rejects_bad_p(p: float) -> None:
    with pytest.raises(ValueError, match="DropPath"):
        DropPath(p)


def test_spatial_dropout_zeroes_whole_channels() -> None:
    p = 0.5
    layer = SpatialDropout(p).train()
    x = torch.ones(8, 64, 5, 5)
    y = layer(x)
    maps = y.flatten(2)  # (N, C, H·W)
    zero = maps.eq(0).all(-1)
    scaled = maps.eq(1 / (1 - p)).all(-1)
    assert torch.all(zero | scaled)  # no channel is partly dropped
    assert 0.4 < zero.float().mean().item() < 0.6
    assert layer.eval()(x).equal(x)


@pytest.mark.parametrize("p", (-0.5, 1.0))
def test_spatial_dropout_rejects_bad_p(p: float) -> None:
    with pytest.raises(ValueError, match="SpatialDropout"):
        SpatialDropout(p)


# -- SpatialPyramidPooling --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ("max", "avg"))
@pytest.mark.parametrize("levels", (1, 3, 4))
def test_spp_fixed_length_for_any_input(levels: int, mode: str) -> None:
    spp = SpatialPyramidPooling(levels, mode=mode)
    assert spp.bins == tuple(2**i for i in range(levels))
    expected = spp.output_length(16)
    assert expected == 16 * sum(4**i for i in range(levels))  # C·Σ n²
    for size in (7, 13, 32, 64):
        out = spp(torch.randn(2, 16, size, size + 3))
        assert out.shape == (2, expected)


def test_spp_values() -> None:
    x = torch.arange(16.0).reshape(1, 1, 4, 4)
    out = SpatialPyramidPooling(2, mode="max")(x)
    assert out.tolist() == [[15.0, 5.0, 7.0, 13.0, 15.0]]
    avg = SpatialPyramidPooling(1, mode="avg")(x)
    assert avg.tolist() == [[7.5]]


def test_spp_rejects_bad_options() -> None:
    with pytest.raises(ValueError, match="levels"):
        SpatialPyramidPooling(0)
    with pytest.raises(ValueError, match="mode"):
        SpatialPyramidPooling(2, mode="min")


# -- TransposedConvUp -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("scale", (2, 4))
@pytest.mark.parametrize("size", (1, 7, 16))
def test_transposed_conv_up_scales_size(scale: int, size: int) -> None:
    up = TransposedConvUp(8, 4, scale=scale).eval()
    assert up(torch.randn(2, 8, size, size + 1)).shape == (2, 4, size * scale, (size + 1) * scale)
    refined = TransposedConvUp(8, 4, scale=scale, refine=True).eval()
    assert isinstance(refined.refine, ConvBNAct)
    assert refined(torch.randn(1, 8, size, size)).shape == (1, 4, size * scale, size * scale)


@pytest.mark.parametrize("scale", (0, 1, 3))
def test_transposed_conv_up_rejects_odd_scale(scale: int) -> None:
    with pytest.raises(ValueError, match="scale"):
        TransposedConvUp(8, 4, scale=scale)


def test_transposed_out_size_matches_conv_transpose() -> None:
    checked = 0
    for n in (1, 2, 3, 7, 10):
        for k in (1, 2, 3, 4, 5):
            for s in (1, 2, 3):
                for p in (0, 1, 2):
                    for d in (1, 2):
                        for op in range(max(s, d)):  # torch: output_padding < stride or < dilation
                            layer = nn.ConvTranspose2d(1, 1, k, s, p, output_padding=op, dilation=d, bias=False)
                            expected = transposed_out_size(n, k, s, p, op, d)
                            if expected < 1:  # padding eats the whole output; not a meaningful layer
                                continue
                            assert layer(torch.zeros(1, 1, n, n)).shape[-1] == expected, (n, k, s, p, op, d)
                            checked += 1
    assert checked > 200
