"""Pooling with overlapping or padded windows (engine/kernels/window_pool.py) against loops over every
window: values, the tap that wins a tie (the first maximum in row-major order, as PyTorch picks it),
gradients, and the same results whatever the blocks and threads."""

from __future__ import annotations

import numpy as np
import pytest

from engine import parallel
from engine.kernels.im2col import conv_pads
from engine.kernels.pooling import pool_backward, pool_forward
from engine.layers import AvgPool2D, MaxPool2D


def loop_max_pool(x, pool, stride, pads, grad):
    """Max pooling of (N, H, W, C) by loops, and the input gradient routing each window's gradient to
    its first maximum in row-major order."""
    n, h, w, c = x.shape
    top, bottom, left, right = pads
    padded = np.pad(x, ((0, 0), (top, bottom), (left, right), (0, 0)), constant_values=-np.inf)
    ho, wo = (h + top + bottom - pool) // stride + 1, (w + left + right - pool) // stride + 1
    out = np.zeros((n, ho, wo, c))
    d_padded = np.zeros(padded.shape)
    for m in range(n):
        for i in range(ho):
            for j in range(wo):
                for k in range(c):
                    window = padded[m, i * stride : i * stride + pool, j * stride : j * stride + pool, k]
                    a, b = np.unravel_index(np.argmax(window), window.shape)  # argmax: the first maximum
                    out[m, i, j, k] = window[a, b]
                    d_padded[m, i * stride + a, j * stride + b, k] += grad[m, i, j, k]
    return out, d_padded[:, top : top + h, left : left + w]


CASES = [
    # (input shape, pool, stride, padding)
    ((9, 9, 3), 3, 1, "same"),
    ((8, 7, 2), 3, 2, "valid"),
    ((7, 7, 2), 2, 1, "valid"),
    ((6, 9, 1), 3, 2, "same"),
    ((10, 10, 2), 5, 3, 2),
    ((5, 6, 2), 4, 1, "same"),
    ((7, 7, 1), 1, 2, "valid"),
    ((8, 8, 3), 2, 2, "valid"),  # side by side (average pooling's product path)
    ((7, 7, 2), 2, 2, "valid"),  # side by side, the last row and column left out
]


@pytest.mark.parametrize("shape,pool,stride,padding", CASES)
def test_max_pool_with_ties_matches_loops(shape, pool, stride, padding):
    rng = np.random.default_rng(3)
    # Few distinct values: most windows hold their maximum more than once.
    x = rng.integers(-2, 3, size=(3, *shape)).astype(np.float64)
    pads = conv_pads(shape[0], shape[1], pool, pool, stride, padding)
    out, cache = pool_forward(x, pool, stride, padding, "max", training=True)
    grad = rng.standard_normal(out.shape)
    expected, expected_d = loop_max_pool(x, pool, stride, pads, grad)
    np.testing.assert_array_equal(out, expected)
    np.testing.assert_allclose(pool_backward(grad, cache, pool, stride, "max"), expected_d, rtol=1e-12, atol=1e-12)
    # After inference (no winners kept, e.g. a saliency map), backward works them out from x.
    _, cache = pool_forward(x, pool, stride, padding, "max", training=False)
    np.testing.assert_allclose(pool_backward(grad, cache, pool, stride, "max"), expected_d, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("channels", [3, 64])
@pytest.mark.parametrize("mode", ["max", "avg"])
@pytest.mark.parametrize("shape,pool,stride,padding", CASES)
def test_blocks_and_threads_do_not_change_the_results(mode, shape, pool, stride, padding, channels):
    # With 64 channels, 150 images make several cache blocks per thread; 3 channels take the product paths.
    rng = np.random.default_rng(5)
    big_shape = (shape[0] + 2, shape[1] + 2, channels)
    x = rng.standard_normal((150, *big_shape)).astype(np.float32)
    out, cache = pool_forward(x, pool, stride, padding, mode, training=True)
    grad = rng.standard_normal(out.shape).astype(np.float32)
    d_x = pool_backward(grad, cache, pool, stride, mode)
    with parallel.serial():
        for images in (slice(0, 1), slice(0, 150)):
            one_out, one_cache = pool_forward(x[images], pool, stride, padding, mode, training=True)
            np.testing.assert_array_equal(one_out, out[images])
            np.testing.assert_array_equal(pool_backward(grad[images], one_cache, pool, stride, mode), d_x[images])


@pytest.mark.parametrize("count_include_pad", [True, False])
@pytest.mark.parametrize("shape,pool,stride,padding", CASES)
def test_avg_pool_backward_is_the_transpose_of_forward(shape, pool, stride, padding, count_include_pad):
    # <pool(x), g> == <x, pool_backward(g)> for a linear map: checks the spreading exactly.
    rng = np.random.default_rng(6)
    layer = AvgPool2D(pool_size=pool, stride=stride, padding=padding, count_include_pad=count_include_pad)
    x = rng.standard_normal((2, *shape))
    out = layer.forward(x, training=True)
    grad = rng.standard_normal(out.shape)
    assert np.vdot(out, grad) == pytest.approx(np.vdot(x, layer.backward(grad)), rel=1e-12)


def test_overlapping_max_pool_layer_in_float32_matches_float64():
    rng = np.random.default_rng(7)
    x = rng.standard_normal((4, 14, 14, 8))
    layer = MaxPool2D(pool_size=3, stride=1, padding="same")
    np.testing.assert_array_equal(layer.forward(x.astype(np.float32)), layer.forward(x).astype(np.float32))
