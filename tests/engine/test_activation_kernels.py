"""The smooth activations (engine/kernels/activation.py) against their formulas, over inputs large
enough for several cache blocks on the threads, and in place on an array their layer hands over."""

from __future__ import annotations

import numpy as np
import pytest

from engine.layers import ELU, LeakyReLU, Sigmoid, Tanh


@pytest.mark.parametrize("layer,formula,slope", [
    (LeakyReLU(alpha=0.0), lambda x: np.maximum(x, 0), lambda x: (x > 0) * 1.0),
    (LeakyReLU(alpha=0.2), lambda x: np.where(x > 0, x, 0.2 * x), lambda x: np.where(x > 0, 1.0, 0.2)),
    (ELU(alpha=2.5), lambda x: np.where(x > 0, x, 2.5 * np.expm1(x)), lambda x: np.where(x > 0, 1.0, 2.5 * np.exp(x))),
    (ELU(alpha=0.0), lambda x: np.maximum(x, 0), lambda x: (x > 0) * 1.0),
    (Sigmoid(), lambda x: 1 / (1 + np.exp(-x)), lambda x: np.exp(-x) / (1 + np.exp(-x)) ** 2),
    (Tanh(), np.tanh, lambda x: 1 - np.tanh(x) ** 2),
])
def test_activations_match_their_formulas_over_many_blocks(layer, formula, slope):
    # 40 images of 32x32x16: several cache blocks, split across threads; zeros exactly at the kink.
    rng = np.random.default_rng(8)
    x = rng.standard_normal((40, 32, 32, 16)) * 3
    x[:, 0, 0, 0] = 0.0
    grad = rng.standard_normal(x.shape)
    np.testing.assert_allclose(layer.forward(x, training=True), formula(x), rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(layer.backward(grad), grad * slope(x), rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("layer", [LeakyReLU(alpha=0.2), ELU(alpha=1.5), Sigmoid(), Tanh()])
def test_activations_in_place_overwrite_their_input_with_the_same_output(layer):
    # A Conv2D or Dense with such an activation hands over its own new output to be overwritten.
    rng = np.random.default_rng(9)
    x = rng.standard_normal((40, 32, 32, 16)).astype(np.float32)
    grad = rng.standard_normal(x.shape).astype(np.float32)
    expected, expected_grad = layer.forward(x, training=True), layer.backward(grad)
    mine = x.copy()
    out = layer.forward(mine, training=True, in_place=True)
    assert out is mine
    np.testing.assert_array_equal(out, expected)
    np.testing.assert_array_equal(layer.backward(grad), expected_grad)
