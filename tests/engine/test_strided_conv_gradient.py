"""A strided convolution's input gradient taken phase by phase (engine/kernels/conv.py) against the
loop oracle, col2im, float64 finite differences, and on three threads with one-image blocks."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from engine.kernels import conv as conv_kernels
from engine.kernels.conv import Convolution, conv2d_backward
from engine.layers import Conv2D
from tests.helpers.gradcheck import check_layer_gradients
from tests.helpers.threads import assert_conv_backward_splits_alike


def loop_input_gradient(grad: np.ndarray, x_shape: tuple[int, ...], kernel: np.ndarray, stride: int,
                        pads: tuple[int, int, int, int]) -> np.ndarray:
    """d_x of a convolution by its definition: every output's gradient times each tap's weight,
    added to the input pixel under the tap (taps on padding dropped)."""
    n, h, w, _ = x_shape
    kh, kw = kernel.shape[:2]
    top, _, left, _ = pads
    d_x = np.zeros(x_shape)
    for i, j, di, dj in itertools.product(range(grad.shape[1]), range(grad.shape[2]), range(kh), range(kw)):
        r, c = i * stride + di - top, j * stride + dj - left
        if 0 <= r < h and 0 <= c < w:
            d_x[:, r, c, :] += grad[:, i, j, :] @ kernel[di, dj].T
    return d_x


# (input (H, W, C), filters, kernel, stride, padding): even and odd sizes, 'same' with the odd
# pixel after, explicit padding, 'valid', kernels smaller than the stride (phases no tap reaches),
# stride 3
CASES = [
    ((8, 8, 4), 4, 3, 2, "same"),
    ((9, 7, 3), 2, 3, 2, "same"),
    ((8, 10, 3), 3, 3, 2, 1),
    ((9, 9, 2), 2, 3, 2, "valid"),
    ((8, 8, 3), 3, 1, 2, "valid"),
    ((7, 8, 2), 2, 1, 2, "same"),
    ((10, 9, 3), 2, 5, 2, "same"),
    ((11, 10, 2), 2, 4, 3, 1),
    ((9, 9, 2), 1, 2, 3, "valid"),
]


@pytest.mark.parametrize("shape,filters,kernel_size,stride,padding", CASES)
def test_phases_match_the_loop_oracle(shape, filters, kernel_size, stride, padding):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((3, *shape))
    kernel = rng.standard_normal((kernel_size, kernel_size, shape[2], filters))
    conv = Convolution(x.shape, kernel.shape, stride, padding, True, x.dtype, None)
    assert conv.by_phases
    grad = rng.standard_normal((3, conv.ho, conv.wo, filters))
    d_x, _, _ = conv2d_backward(grad, x, kernel, True, stride, padding)
    np.testing.assert_allclose(d_x, loop_input_gradient(grad, x.shape, kernel, stride, conv.pads), atol=1e-12)


@pytest.mark.parametrize("shape,filters,kernel_size,stride,padding", CASES[:4])
def test_phases_match_col2im(monkeypatch, shape, filters, kernel_size, stride, padding):
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, *shape))
    kernel = rng.standard_normal((kernel_size, kernel_size, shape[2], filters))
    conv = Convolution(x.shape, kernel.shape, stride, padding, True, x.dtype, None)
    grad = rng.standard_normal((2, conv.ho, conv.wo, filters))
    by_phases = conv2d_backward(grad, x, kernel, True, stride, padding)
    monkeypatch.setattr(conv_kernels.Convolution, "by_phases", property(lambda self: False))
    by_col2im = conv2d_backward(grad, x, kernel, True, stride, padding)
    for ours, theirs in zip(by_phases, by_col2im):
        np.testing.assert_allclose(ours, theirs, atol=1e-12)


@pytest.mark.parametrize("shape,filters,kernel_size,stride,padding", [CASES[1], CASES[6], CASES[7]])
def test_phases_finite_differences(shape, filters, kernel_size, stride, padding):
    rng = np.random.default_rng(2)
    layer = Conv2D(filters=filters, kernel_size=kernel_size, stride=stride, padding=padding)
    layer.build(shape, rng, np.float64)
    layer.params["bias"][...] = rng.standard_normal(filters)
    check_layer_gradients(layer, rng.standard_normal((2, *shape)), rng)


def test_phases_on_threads_and_one_image_blocks(monkeypatch):
    assert_conv_backward_splits_alike(monkeypatch, 3, (5, 9, 8, 4), (3, 3, 4, 4), stride=2, atol=1e-12)
