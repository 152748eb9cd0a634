"""The one output-size formula, shared by shape inference and the kernels."""

from __future__ import annotations

Padding = str | int


def resolve_padding(padding: Padding, kernel: int, stride: int, size: int) -> tuple[int, int]:
    """Return (before, after) zero padding along one axis.

    'valid' is no padding; 'same' pads so that the output size is ceil(size / stride),
    putting the odd pixel after (as TensorFlow and ONNX's SAME_UPPER do); an int pads both sides.
    """
    if padding == "valid":
        return 0, 0
    if padding == "same":
        out = -(-size // stride)
        total = max((out - 1) * stride + kernel - size, 0)
        return total // 2, total - total // 2
    p = int(padding)
    return p, p


def output_size(size: int, kernel: int, stride: int, pad_before: int, pad_after: int) -> int:
    """floor((size + pads - kernel) / stride) + 1: the seed's formula with padding added."""
    return (size + pad_before + pad_after - kernel) // stride + 1
