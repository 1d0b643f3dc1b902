"""Convolution geometry in plain integers (no torch), shared by layers, analysis and the runtime."""

from __future__ import annotations

import math

from edgecnn.errors import ConfigError


def effective_kernel(kernel_size: int, dilation: int = 1) -> int:
    """Span of a dilated kernel: d·(k−1)+1 (Yu & Koltun 2016, "Multi-scale context aggregation by dilated convs")."""
    return dilation * (kernel_size - 1) + 1


def conv_out_size(
    input_size: int, kernel_size: int, stride: int = 1, padding: int = 0, dilation: int = 1, *, ceil_mode: bool = False
) -> int:
    """OutputSize = ⌊(InputSize − KernelSize + 2·Padding) / Stride⌋ + 1, with KernelSize the dilated span d·(k−1)+1.

    The same formula as ``torch.nn.Conv2d``/``MaxPool2d`` (Dumoulin & Visin, "A guide to convolution arithmetic",
    2016). ``ceil_mode`` rounds up as pooling layers may (a window may not start in the right padding).
    Raises ConfigError when the kernel does not fit the padded input.
    """
    for name, value, low in (
        ("input_size", input_size, 1),
        ("kernel_size", kernel_size, 1),
        ("stride", stride, 1),
        ("padding", padding, 0),
        ("dilation", dilation, 1),
    ):
        if not isinstance(value, int) or isinstance(value, bool) or value < low:
            raise ConfigError(f"conv_out_size: {name} must be an integer >= {low}, got {value!r}")
    span = effective_kernel(kernel_size, dilation)
    room = input_size + 2 * padding - span
    if room < 0:
        raise ConfigError(
            f"conv_out_size: kernel span {span} (k={kernel_size}, d={dilation}) exceeds padded input "
            f"{input_size + 2 * padding}",
            hint="use a larger input, more padding or a smaller kernel/dilation",
        )
    if not ceil_mode:
        return room // stride + 1
    out = math.ceil(room / stride) + 1
    if (out - 1) * stride >= input_size + padding:  # last window would start inside the right padding
        out -= 1
    return out


def same_padding(input_size: int, kernel_size: int, stride: int = 1, dilation: int = 1) -> tuple[int, int]:
    """TensorFlow "SAME" padding (before, after) so that output = ⌈input / stride⌉.

    Asymmetric when the total is odd: the extra pixel goes after (bottom/right), as in TF — this is why TF-ported
    weights (EfficientNet-Lite) need it reproduced exactly on stride-2 convs.
    """
    for name, value in (
        ("input_size", input_size),
        ("kernel_size", kernel_size),
        ("stride", stride),
        ("dilation", dilation),
    ):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ConfigError(f"same_padding: {name} must be an integer >= 1, got {value!r}")
    out = -(-input_size // stride)
    total = max((out - 1) * stride + effective_kernel(kernel_size, dilation) - input_size, 0)
    return total // 2, total - total // 2


def symmetric_padding(kernel_size: int, dilation: int = 1) -> int:
    """PyTorch-style padding that keeps size at stride 1 for odd kernels: d·(k−1)/2."""
    return dilation * (kernel_size - 1) // 2


def make_divisible(value: float, divisor: int = 8, min_value: int | None = None, round_limit: float = 0.9) -> int:
    """Round channels to a multiple of ``divisor``, never below ``round_limit`` of ``value``.

    The rule of the TF MobileNet/EfficientNet releases and torchvision's ``_make_divisible``.
    """
    if not isinstance(divisor, int) or divisor < 1:
        raise ConfigError(f"make_divisible: divisor must be an integer >= 1, got {divisor!r}")
    min_value = min_value or divisor
    new = max(min_value, int(value + divisor / 2) // divisor * divisor)
    if new < round_limit * value:
        new += divisor
    return new
