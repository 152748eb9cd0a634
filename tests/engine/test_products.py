"""Tall products cut into stacks of short ones (engine/kernels/products.py): the same values as one
product, for contiguous and transposed operands, with and without a remainder, and through the
convolution kernels that use them, forward and backward."""

from __future__ import annotations

import numpy as np
import pytest

from engine.kernels import products
from engine.kernels.blocks import Workspace
from engine.kernels.conv import conv2d_backward, conv2d_forward, conv2d_maxpool_backward, conv2d_maxpool_forward
from engine.kernels.conv_batch_norm_relu import conv_bn_relu_backward, conv_bn_relu_forward


@pytest.fixture
def small_kernels(monkeypatch: pytest.MonkeyPatch) -> None:
    """Stacks on whatever BLAS runs the tests: their values must not depend on the CPU."""
    monkeypatch.setattr(products, "blas_has_small_kernels", lambda: True)


def calls_with_stacks(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Record the number of dimensions of every product's first operand."""
    seen: list[int] = []
    real = np.matmul

    def spy(a, b, *args, **kwargs):
        seen.append(np.ndim(a))
        return real(a, b, *args, **kwargs)

    monkeypatch.setattr(products.np, "matmul", spy)
    return seen


@pytest.mark.parametrize("rows", [1568, 1571, 431, 432, 900])
@pytest.mark.parametrize("transposed", [False, True])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_product_into_matches_one_product(small_kernels, monkeypatch, rows, transposed, dtype):
    rng = np.random.default_rng(rows)
    k, n = 145, 16
    # transposed: a view of a (k, rows) array, like the few-channel im2col matrices
    a = rng.normal(size=(k, rows)).astype(dtype).T if transposed else rng.normal(size=(rows, k)).astype(dtype)
    b = rng.normal(size=(k, n)).astype(dtype)
    out = np.full((rows, n), np.nan, dtype)
    seen = calls_with_stacks(monkeypatch)
    assert products.product_into(a, b, out) is out
    np.testing.assert_allclose(out, a.astype(np.float64) @ b, rtol=1e-4 if dtype == np.float32 else 1e-12,
                               atol=1e-4 if dtype == np.float32 else 1e-12)
    most = products.chunked_rows(k, n)
    assert most is not None and most * k * n <= products.SMALL_PRODUCT_MACS
    assert (3 in seen) == (rows > most)


@pytest.mark.parametrize("rows", [1568, 1571, 784, 100])
def test_add_transposed_product_adds_to_the_total(small_kernels, monkeypatch, rows):
    rng = np.random.default_rng(rows)
    a, b = rng.normal(size=(rows, 289)), rng.normal(size=(rows, 32))
    start = rng.normal(size=(289, 32))
    total = start.copy()
    seen = calls_with_stacks(monkeypatch)
    assert products.add_transposed_product(a, b, total) is total
    np.testing.assert_allclose(total, start + a.T @ b, rtol=1e-12, atol=1e-10)
    most = products.chunked_reduction_rows(289, 32)
    assert most is not None
    assert (3 in seen) == (rows > most)


def test_wide_products_stay_whole(small_kernels):
    # 577 x 64 leaves stacks of 27 rows: slower than one packed product (measured)
    assert products.chunked_rows(577, 64) is None
    assert products.chunked_reduction_rows(577, 64) is None
    # a short reduction pays for summing its partial results only when they are small
    assert products.chunked_reduction_rows(1601, 16) is None
    assert products.chunked_rows(145, 16) == products.SMALL_PRODUCT_MACS // (145 * 16)


def test_nothing_is_stacked_without_small_kernels(monkeypatch):
    monkeypatch.setattr(products, "blas_has_small_kernels", lambda: False)
    assert products.chunked_rows(145, 16) is None
    assert products.chunked_reduction_rows(145, 16) is None
    seen = calls_with_stacks(monkeypatch)
    a, b = np.ones((4000, 145), np.float32), np.ones((145, 16), np.float32)
    products.product_into(a, b, np.empty((4000, 16), np.float32))
    assert seen == [2]


@pytest.mark.parametrize("total, most, expected", [(1568, 431, 392), (784, 108, 98), (1571, 431, 431),
                                                  (1000, 1000, 1000), (12, 7, 6)])
def test_even_rows_prefers_a_divisor(total, most, expected):
    assert products._even_rows(total, most) == expected


def run_convolutions(x, kernel, bias, gamma, beta, grad_shape_rng):
    """Forward and backward of the plain, pooled and batch-norm convolution kernels."""
    results = []
    out = conv2d_forward(x, kernel, bias, 1, "same", Workspace(), relu=True)
    grad = grad_shape_rng.normal(size=out.shape).astype(x.dtype)
    results += [out, *conv2d_backward(grad, x, kernel, True, 1, "same", workspace=Workspace())]
    pooled, winners = conv2d_maxpool_forward(x, kernel, bias, 1, "same", 2, Workspace())
    results += [pooled, *conv2d_maxpool_backward(grad[:, ::2, ::2], pooled, winners, x, kernel, True, 1, "same", 2,
                                                 workspace=Workspace())]
    normed, cache, _ = conv_bn_relu_forward(x, kernel, bias, 1, "same", gamma, beta, 1e-5, workspace=Workspace())
    results += [normed, *conv_bn_relu_backward(grad, cache, x, kernel, True, 1, "same", gamma,
                                               workspace=Workspace())]
    return [r for r in results if r is not None]


@pytest.mark.parametrize("channels, filters", [(16, 16), (32, 32), (16, 32), (3, 16)])
def test_convolutions_agree_with_and_without_stacks(small_kernels, monkeypatch, channels, filters):
    rng = np.random.default_rng(channels + filters)
    x = rng.normal(size=(12, 20, 20, channels))
    kernel = rng.normal(size=(3, 3, channels, filters)) * 0.2
    bias, gamma, beta = rng.normal(size=filters), rng.uniform(0.5, 1.5, filters), rng.normal(size=filters)
    seen = calls_with_stacks(monkeypatch)
    stacked = run_convolutions(x, kernel, bias, gamma, beta, np.random.default_rng(0))
    assert 3 in seen
    monkeypatch.setattr(products, "enabled", False)
    whole = run_convolutions(x, kernel, bias, gamma, beta, np.random.default_rng(0))
    assert len(stacked) == len(whole)
    for got, expected in zip(stacked, whole):
        np.testing.assert_allclose(got, expected, rtol=1e-9, atol=1e-9)
