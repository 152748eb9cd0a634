"""A strided convolution's input gradient taken phase by phase, or tap by tap where it has more
filters than input channels (engine/kernels/conv.py), against the loop oracle, col2im, float64
finite differences, and on three threads with one-image blocks."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from engine.kernels import conv as conv_kernels
from engine.kernels.conv import Convolution, conv2d_backward
from engine.kernels.im2col import col2im_add, taps_into_image
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


def assert_matches_col2im(monkeypatch, shape, filters, kernel_size, stride, padding, seed) -> None:
    """conv2d_backward as the engine takes it, against the same with phases and taps switched off
    (col2im)."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((2, *shape))
    kernel = rng.standard_normal((kernel_size, kernel_size, shape[2], filters))
    conv = Convolution(x.shape, kernel.shape, stride, padding, True, x.dtype, None)
    grad = rng.standard_normal((2, conv.ho, conv.wo, filters))
    ours = conv2d_backward(grad, x, kernel, True, stride, padding)
    monkeypatch.setattr(conv_kernels.Convolution, "by_phases", property(lambda self: False))
    monkeypatch.setattr(conv_kernels, "taps_enabled", False)
    plain = Convolution(x.shape, kernel.shape, stride, padding, True, x.dtype, None)
    assert not plain.by_phases and not plain.by_taps
    by_col2im = conv2d_backward(grad, x, kernel, True, stride, padding)
    for got, expected in zip(ours, by_col2im):
        np.testing.assert_allclose(got, expected, atol=1e-12)


@pytest.mark.parametrize("shape,filters,kernel_size,stride,padding", CASES[:4])
def test_phases_match_col2im(monkeypatch, shape, filters, kernel_size, stride, padding):
    assert_matches_col2im(monkeypatch, shape, filters, kernel_size, stride, padding, seed=1)


@pytest.mark.parametrize("shape,filters,kernel_size,stride,padding", [CASES[1], CASES[6], CASES[7]])
def test_phases_finite_differences(shape, filters, kernel_size, stride, padding):
    rng = np.random.default_rng(2)
    layer = Conv2D(filters=filters, kernel_size=kernel_size, stride=stride, padding=padding)
    layer.build(shape, rng, np.float64)
    layer.params["bias"][...] = rng.standard_normal(filters)
    check_layer_gradients(layer, rng.standard_normal((2, *shape)), rng)


def test_phases_on_threads_and_one_image_blocks(monkeypatch):
    assert_conv_backward_splits_alike(monkeypatch, 3, (5, 9, 8, 4), (3, 3, 4, 4), stride=2, atol=1e-12)


def wider(shape: tuple[int, ...]) -> int:
    """More filters than input channels: the input gradient then goes tap by tap, not by phases."""
    return 2 * shape[2] + 1


@pytest.mark.parametrize("shape,_,kernel_size,stride,padding", CASES)
def test_taps_match_the_loop_oracle(shape, _, kernel_size, stride, padding):
    rng = np.random.default_rng(3)
    x = rng.standard_normal((3, *shape))
    kernel = rng.standard_normal((kernel_size, kernel_size, shape[2], wider(shape)))
    conv = Convolution(x.shape, kernel.shape, stride, padding, True, x.dtype, None)
    assert conv.by_taps == (kernel_size > stride) and not conv.by_phases  # col2im where windows do not overlap
    grad = rng.standard_normal((3, conv.ho, conv.wo, wider(shape)))
    d_x, _, _ = conv2d_backward(grad, x, kernel, True, stride, padding)
    np.testing.assert_allclose(d_x, loop_input_gradient(grad, x.shape, kernel, stride, conv.pads), atol=1e-12)


@pytest.mark.parametrize("shape,_,kernel_size,stride,padding", CASES)
def test_taps_match_col2im(monkeypatch, shape, _, kernel_size, stride, padding):
    assert_matches_col2im(monkeypatch, shape, wider(shape), kernel_size, stride, padding, seed=4)


@pytest.mark.parametrize("shape,_,kernel_size,stride,padding", [CASES[1], CASES[3], CASES[7]])
def test_taps_finite_differences(shape, _, kernel_size, stride, padding):
    rng = np.random.default_rng(5)
    layer = Conv2D(filters=wider(shape), kernel_size=kernel_size, stride=stride, padding=padding)
    layer.build(shape, rng, np.float64)
    layer.params["bias"][...] = rng.standard_normal(wider(shape))
    check_layer_gradients(layer, rng.standard_normal((2, *shape)), rng)


def test_taps_on_threads_and_one_image_blocks(monkeypatch):
    assert_conv_backward_splits_alike(monkeypatch, 3, (5, 9, 8, 4), (3, 3, 4, 9), stride=2, atol=1e-12)


@pytest.mark.parametrize("shape,_,kernel_size,stride,padding", CASES)
def test_taps_into_image_is_col2im_for_any_kernel_and_stride(shape, _, kernel_size, stride, padding):
    """Kernels smaller than the stride included (phases no tap reaches get zeros), and pixels no
    window reads ('valid' leftovers, zeros too), in scratch left dirty by an earlier user."""
    rng = np.random.default_rng(6)
    conv = Convolution((2, *shape), (kernel_size, kernel_size, shape[2], 1), stride, padding, True, np.float64, None)
    windows = rng.standard_normal((2, conv.ho, conv.wo, kernel_size, kernel_size, shape[2]))
    expected = np.zeros((2, *shape))
    col2im_add(windows, expected, conv.pads, stride)
    d_x = np.full((2, *shape), np.nan)
    planes = np.full(stride * stride * 2 * conv._plane_size, np.nan)
    taps_into_image(np.ascontiguousarray(windows.transpose(3, 4, 0, 1, 2, 5)), d_x, conv.pads, stride, planes)
    np.testing.assert_allclose(d_x, expected, atol=1e-12)
