"""The seed document's loop formulas, kept here as oracles for the vectorised kernels."""

from __future__ import annotations

import numpy as np
import pytest

from engine import functional
from engine.layers import AvgPool2D, BatchNorm, Conv2D, MaxPool2D
from engine.shapes import resolve_padding


def seed_conv2d(input, filters, stride=1, padding=0):
    """The seed's conv2d, loops and all (float64 output, as in the seed)."""
    if padding > 0:
        input = np.pad(input, ((padding, padding), (padding, padding), (0, 0)), mode="constant")
    output_height = (input.shape[0] - filters.shape[0]) // stride + 1
    output_width = (input.shape[1] - filters.shape[1]) // stride + 1
    output_depth = filters.shape[3]
    output = np.zeros((output_height, output_width, output_depth))
    for i in range(0, output_height):
        for j in range(0, output_width):
            for k in range(output_depth):
                region = input[i * stride : i * stride + filters.shape[0],
                               j * stride : j * stride + filters.shape[1], :]
                output[i, j, k] = np.sum(region * filters[:, :, :, k])
    return output


def seed_max_pooling(input, pool_size=2, stride=2):
    output_height = (input.shape[0] - pool_size) // stride + 1
    output_width = (input.shape[1] - pool_size) // stride + 1
    output_depth = input.shape[2]
    output = np.zeros((output_height, output_width, output_depth))
    for i in range(0, output_height):
        for j in range(0, output_width):
            for k in range(output_depth):
                region = input[i * stride : i * stride + pool_size, j * stride : j * stride + pool_size, k]
                output[i, j, k] = np.max(region)
    return output


def seed_batch_normalization(input, gamma, beta, epsilon=1e-5):
    mean = np.mean(input, axis=0)
    variance = np.var(input, axis=0)
    normalized = (input - mean) / np.sqrt(variance + epsilon)
    return gamma * normalized + beta


@pytest.mark.parametrize(
    "shape,k,filters,stride,padding",
    [((8, 8, 1), 3, 4, 1, 0), ((9, 7, 3), 3, 5, 2, 0), ((6, 6, 2), 3, 3, 1, 1), ((10, 9, 2), 4, 2, 3, 2),
     ((5, 5, 4), 5, 2, 1, 2)],
)
def test_conv2d_matches_seed_loops(shape, k, filters, stride, padding):
    rng = np.random.default_rng(0)
    x = rng.standard_normal(shape).astype(np.float32)
    w = rng.standard_normal((k, k, shape[2], filters)).astype(np.float32)
    expected = seed_conv2d(x, w, stride, padding)
    np.testing.assert_allclose(functional.conv2d(x, w, stride, padding), expected, rtol=1e-4, atol=1e-4)
    # A batch gives each image's result, and the Conv2D layer (bias zero) uses the same kernel.
    batch = np.stack([x, x[::-1].copy()])
    out = functional.conv2d(batch, w, stride, padding)
    np.testing.assert_allclose(out[1], seed_conv2d(batch[1], w, stride, padding), rtol=1e-4, atol=1e-4)
    layer = Conv2D(filters=filters, kernel_size=k, stride=stride, padding=padding)
    layer.build(shape, rng)
    layer.params["kernel"][...] = w
    np.testing.assert_allclose(layer.forward(batch)[0], expected, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("shape,pool,stride", [((8, 8, 3), 2, 2), ((9, 7, 2), 2, 2), ((9, 9, 2), 3, 2),
                                               ((7, 8, 1), 3, 3), ((6, 6, 2), 2, 1)])
def test_max_pooling_matches_seed_loops(shape, pool, stride):
    x = np.random.default_rng(1).standard_normal(shape).astype(np.float32)
    expected = seed_max_pooling(x, pool, stride)
    np.testing.assert_array_equal(functional.max_pooling(x, pool, stride), expected.astype(np.float32))
    layer = MaxPool2D(pool_size=pool, stride=stride)
    np.testing.assert_array_equal(layer.forward(x[None])[0], expected.astype(np.float32))


def loop_average_pooling(input, pool_size, stride, pads, count_include_pad):
    """Average pooling by loops over every window, in the seed's style: the padded zeros are in
    each window's sum; the divisor is the whole window or only the pixels inside the image."""
    top, bottom, left, right = pads
    height, width, depth = input.shape
    padded = np.pad(input, ((top, bottom), (left, right), (0, 0)), mode="constant")
    inside = np.pad(np.ones((height, width)), ((top, bottom), (left, right)), mode="constant")
    output_height = (padded.shape[0] - pool_size) // stride + 1
    output_width = (padded.shape[1] - pool_size) // stride + 1
    output = np.zeros((output_height, output_width, depth))
    for i in range(output_height):
        for j in range(output_width):
            rows = slice(i * stride, i * stride + pool_size)
            cols = slice(j * stride, j * stride + pool_size)
            count = pool_size * pool_size if count_include_pad else inside[rows, cols].sum()
            for k in range(depth):
                output[i, j, k] = padded[rows, cols, k].sum() / count
    return output


@pytest.mark.parametrize("count_include_pad", [True, False])
@pytest.mark.parametrize("shape,pool,stride,padding", [((8, 8, 3), 2, 2, "valid"), ((7, 7, 2), 3, 2, "same"),
                                                       ((6, 5, 1), 3, 1, 1), ((9, 8, 2), 2, 2, "same"),
                                                       ((5, 6, 2), 5, 2, 2), ((6, 6, 1), 4, 3, "same")])
def test_average_pooling_matches_loops(shape, pool, stride, padding, count_include_pad):
    x = np.random.default_rng(7).standard_normal(shape)
    pads = (*resolve_padding(padding, pool, stride, shape[0]), *resolve_padding(padding, pool, stride, shape[1]))
    expected = loop_average_pooling(x, pool, stride, pads, count_include_pad)
    layer = AvgPool2D(pool_size=pool, stride=stride, padding=padding, count_include_pad=count_include_pad)
    np.testing.assert_allclose(layer.forward(x[None])[0], expected, rtol=1e-12)
    np.testing.assert_allclose(layer.forward(x[None].astype(np.float32))[0], expected, rtol=1e-5, atol=1e-6)


def test_batch_normalization_matches_seed_formula():
    rng = np.random.default_rng(2)
    x = rng.standard_normal((16, 5)) * 3 + 2
    gamma, beta = rng.standard_normal(5), rng.standard_normal(5)
    expected = seed_batch_normalization(x, gamma, beta)
    np.testing.assert_allclose(functional.batch_normalization(x, gamma, beta), expected, rtol=1e-12)
    # The layer in training mode is the seed formula over the batch axis for vectors ...
    layer = BatchNorm()
    layer.build((5,), rng, np.float64)
    layer.params["gamma"][...] = gamma
    layer.params["beta"][...] = beta
    np.testing.assert_allclose(layer.forward(x, training=True), expected, rtol=1e-12)
    # ... and per channel over (N, H, W) for feature maps: the seed formula on the flattened pixels.
    maps = rng.standard_normal((4, 3, 3, 5))
    layer4 = BatchNorm()
    layer4.build((3, 3, 5), rng, np.float64)
    layer4.params["gamma"][...] = gamma
    layer4.params["beta"][...] = beta
    flat = seed_batch_normalization(maps.reshape(-1, 5), gamma, beta).reshape(maps.shape)
    np.testing.assert_allclose(layer4.forward(maps, training=True), flat, rtol=1e-12)


def test_batch_norm_running_statistics_and_inference():
    rng = np.random.default_rng(3)
    layer = BatchNorm(momentum=0.5)
    layer.build((2,), rng, np.float64)
    x = rng.standard_normal((50, 2)) * [1.0, 3.0] + [5.0, -1.0]
    layer.forward(x, training=True)
    np.testing.assert_allclose(layer.state["moving_mean"], 0.5 * x.mean(axis=0))
    np.testing.assert_allclose(layer.state["moving_variance"], 0.5 + 0.5 * x.var(axis=0))
    out = layer.forward(x, training=False)
    expected = (x - layer.state["moving_mean"]) / np.sqrt(layer.state["moving_variance"] + 1e-5)
    np.testing.assert_allclose(out, expected)
