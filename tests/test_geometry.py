"""Convolution geometry (edgecnn.layers.geometry) checked against what torch's layers actually produce."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from edgecnn.errors import ConfigError
from edgecnn.layers.geometry import conv_out_size, effective_kernel, make_divisible, same_padding, symmetric_padding

SIZES = range(1, 41)
KERNELS = (1, 3, 5, 7)
STRIDES = (1, 2, 3)
PADDINGS = (0, 1, 2, 3)
DILATIONS = (1, 2, 3)


def _torch_conv_size(n: int, k: int, s: int, p: int, d: int) -> int:
    x = torch.zeros(1, 1, n, n)
    w = torch.zeros(1, 1, k, k)
    out = F.conv2d(x, w, stride=s, padding=p, dilation=d)
    assert out.shape[-1] == out.shape[-2]
    return int(out.shape[-1])


@pytest.mark.parametrize("dilation", DILATIONS)
@pytest.mark.parametrize("kernel", KERNELS)
def test_conv_out_size_matches_conv2d(kernel: int, dilation: int) -> None:
    checked = rejected = 0
    for n in SIZES:
        for s in STRIDES:
            for p in PADDINGS:
                span = dilation * (kernel - 1) + 1
                if span > n + 2 * p:  # the kernel does not fit: torch refuses, and so must we
                    with pytest.raises(RuntimeError):
                        _torch_conv_size(n, kernel, s, p, dilation)
                    with pytest.raises(ConfigError, match="exceeds padded input"):
                        conv_out_size(n, kernel, s, p, dilation)
                    rejected += 1
                    continue
                assert conv_out_size(n, kernel, s, p, dilation) == _torch_conv_size(n, kernel, s, p, dilation), (
                    n,
                    kernel,
                    s,
                    p,
                    dilation,
                )
                checked += 1
    assert checked > 0
    if kernel * dilation > 7:
        assert rejected > 0  # the grid really exercises the error path


@pytest.mark.parametrize("dilation", (1, 2))
@pytest.mark.parametrize("kernel", (1, 2, 3, 5))
def test_ceil_mode_matches_maxpool(kernel: int, dilation: int) -> None:
    span = effective_kernel(kernel, dilation)
    checked = 0
    for n in SIZES:
        for s in STRIDES:
            for p in PADDINGS:
                if 2 * p > kernel or span > n + 2 * p:  # MaxPool2d: pad at most half the kernel, window must fit
                    continue
                pool = torch.nn.MaxPool2d(kernel, s, p, dilation=dilation, ceil_mode=True)
                expected = int(pool(torch.zeros(1, 1, n, n)).shape[-1])
                assert conv_out_size(n, kernel, s, p, dilation, ceil_mode=True) == expected, (n, kernel, s, p, dilation)
                floor_pool = torch.nn.MaxPool2d(kernel, s, p, dilation=dilation, ceil_mode=False)
                assert conv_out_size(n, kernel, s, p, dilation) == int(floor_pool(torch.zeros(1, 1, n, n)).shape[-1])
                checked += 1
    assert checked > 0


def test_ceil_mode_drops_window_starting_in_padding() -> None:
    # 5 px, k=2, s=2, p=1: ceil gives 4 windows, but the 4th would start at padded index 6 = inside the right padding.
    assert conv_out_size(5, 2, 2, 1, ceil_mode=True) == 3
    assert torch.nn.MaxPool2d(2, 2, 1, ceil_mode=True)(torch.zeros(1, 1, 5, 5)).shape[-1] == 3
    # AlexNet/GoogLeNet-style pooling where ceil_mode adds one window.
    assert conv_out_size(56, 3, 2) == 27
    assert conv_out_size(56, 3, 2, ceil_mode=True) == 28


def test_conv_out_size_known_values() -> None:
    assert conv_out_size(224, 3, 2, 1) == 112  # MobileNet stem
    assert conv_out_size(224, 11, 4, 2) == 55  # AlexNet conv1
    assert conv_out_size(7, 3, 1, 1) == 7
    assert conv_out_size(32, 3, 1, 2, 2) == 32  # dilated "same"
    assert conv_out_size(1, 1) == 1
    assert conv_out_size(3, 3) == 1  # kernel exactly the input: one output


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        (dict(input_size=0, kernel_size=3), "input_size"),
        (dict(input_size=-1, kernel_size=3), "input_size"),
        (dict(input_size=8, kernel_size=0), "kernel_size"),
        (dict(input_size=8, kernel_size=3, stride=0), "stride"),
        (dict(input_size=8, kernel_size=3, stride=-2), "stride"),
        (dict(input_size=8, kernel_size=3, padding=-1), "padding"),
        (dict(input_size=8, kernel_size=3, dilation=0), "dilation"),
        (dict(input_size=8.0, kernel_size=3), "input_size"),
        (dict(input_size=8, kernel_size=3.0), "kernel_size"),
        (dict(input_size="8", kernel_size=3), "input_size"),
        (dict(input_size=8, kernel_size=3, stride=None), "stride"),
    ],
)
def test_conv_out_size_rejects_bad_arguments(kwargs: dict, name: str) -> None:
    with pytest.raises(ConfigError, match=name):
        conv_out_size(**kwargs)


def test_conv_out_size_too_small_input_has_hint() -> None:
    with pytest.raises(ConfigError) as info:
        conv_out_size(4, 7)
    assert info.value.hint and "larger input" in info.value.hint
    assert "span 7" in str(info.value)
    with pytest.raises(ConfigError, match="span 7"):  # dilation widens the span: 3·(3−1)+1
        conv_out_size(6, 3, dilation=3)


@pytest.mark.parametrize("dilation", (1, 2))
@pytest.mark.parametrize("kernel", (1, 2, 3, 4, 5, 7))
@pytest.mark.parametrize("stride", (1, 2, 3))
def test_same_padding_gives_ceil_output(kernel: int, stride: int, dilation: int) -> None:
    for n in range(1, 41):
        before, after = same_padding(n, kernel, stride, dilation)
        assert 0 <= before <= after <= before + 1  # asymmetric only by one, extra pixel after (TF)
        out = conv_out_size(n + before + after, kernel, stride, 0, dilation)
        assert out == math.ceil(n / stride), (n, kernel, stride, dilation)
        # and torch agrees when the padding is applied explicitly
        x = F.pad(torch.zeros(1, 1, n, n), (before, after, before, after))
        y = F.conv2d(x, torch.zeros(1, 1, kernel, kernel), stride=stride, dilation=dilation)
        assert y.shape[-1] == math.ceil(n / stride)


@pytest.mark.parametrize(
    ("n", "k", "s", "d", "expected"),
    [
        (224, 3, 2, 1, (0, 1)),  # EfficientNet-Lite stem: TF pads only bottom/right
        (225, 3, 2, 1, (1, 1)),
        (112, 5, 2, 1, (1, 2)),
        (224, 3, 1, 1, (1, 1)),  # stride 1, odd kernel: symmetric
        (224, 4, 1, 1, (1, 2)),  # even kernel: asymmetric even at stride 1
        (224, 1, 2, 1, (0, 0)),
        (7, 3, 1, 2, (2, 2)),
        (1, 3, 2, 1, (1, 1)),
    ],
)
def test_same_padding_values(n: int, k: int, s: int, d: int, expected: tuple[int, int]) -> None:
    assert same_padding(n, k, s, d) == expected


@pytest.mark.parametrize("args", [(224, 3, 0), (0, 3, 1), (-4, 3, 2), (224, 0, 1)])
def test_same_padding_rejects_bad_arguments(args: tuple[int, ...]) -> None:
    with pytest.raises(ConfigError):
        same_padding(*args)


def test_effective_and_symmetric_padding() -> None:
    assert effective_kernel(3) == 3
    assert effective_kernel(3, 2) == 5
    assert effective_kernel(5, 3) == 13
    for k in (1, 3, 5, 7):
        for d in (1, 2, 3):
            p = symmetric_padding(k, d)
            assert conv_out_size(17, k, 1, p, d) == 17  # keeps size at stride 1 for odd kernels


@pytest.mark.parametrize(
    ("value", "divisor", "min_value", "expected"),
    [
        (32, 8, None, 32),
        (32 * 0.5, 8, None, 16),
        (32 * 0.75, 8, None, 24),
        (32 * 1.1, 8, None, 32),  # 35.2 → 32 (≥ 90 %)
        (40 * 1.1, 8, None, 48),  # 44.0 → 48 (round half up)
        (16 * 0.35, 8, None, 8),  # never below min_value (= divisor)
        (3, 8, None, 8),
        (1280 * 1.4, 8, None, 1792),
        (24 * 1.4, 8, None, 32),  # 33.6 → 32
        (10, 8, None, 16),  # 10 → 8 would be < 90 % of 10 → bumped to 16
        (91, 8, None, 88),  # 88 ≥ 81.9
        (95, 8, None, 96),
        (17, 4, None, 16),
        (7, 8, 4, 8),
        (2, 8, 4, 4),
        (320 * 1.2, 8, None, 384),
    ],
)
def test_make_divisible(value: float, divisor: int, min_value: int | None, expected: int) -> None:
    got = make_divisible(value, divisor, min_value)
    assert got == expected
    assert got % divisor == 0 or got == min_value
    assert got >= 0.9 * value


def test_make_divisible_invariants() -> None:
    for value in (0.5 * v for v in range(1, 800)):
        got = make_divisible(value, 8)
        assert got % 8 == 0 and got >= 8, value
        assert got >= 0.9 * value, value  # never more than 10 % below the request
        assert got <= value + 8, value  # and never more than one step above


@pytest.mark.parametrize("divisor", [0, -8])
def test_make_divisible_rejects_bad_divisor(divisor: int) -> None:
    with pytest.raises(ConfigError):
        make_divisible(32, divisor)
