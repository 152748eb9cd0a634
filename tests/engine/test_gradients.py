"""Float64 finite-difference checks of every layer's backward pass and of the loss."""

from __future__ import annotations

import numpy as np
import pytest

from engine.layers import (
    ELU,
    AvgPool2D,
    BatchNorm,
    Conv2D,
    Dense,
    Dropout,
    Flatten,
    GlobalAvgPool2D,
    LeakyReLU,
    MaxPool2D,
    ReLU,
    Sigmoid,
    Softmax,
    Tanh,
)
from engine.losses import softmax_cross_entropy
from tests.helpers.gradcheck import check_layer_gradients, numeric_grad, sample_indices


def built(layer, input_shape, seed=0):
    layer.build(input_shape, np.random.default_rng(seed), np.float64)
    # Non-zero biases and batch-norm scales make the checks meaningful.
    for name, p in layer.params.items():
        if name in ("bias", "beta", "gamma"):
            p[...] = np.random.default_rng(seed + 1).standard_normal(p.shape) * 0.5 + (name == "gamma")
    return layer


def images(rng, shape, contiguous=True):
    if contiguous:
        return rng.standard_normal(shape)
    # A view with a step along height and width axes swapped in memory: strides that are not C order.
    n, h, w, c = shape
    big = rng.standard_normal((n, w, 2 * h, c)).transpose(0, 2, 1, 3)[:, ::2]
    assert not big.flags.c_contiguous and big.shape == shape
    return big


CONV_CASES = [
    # (input shape, kernel, stride, padding)
    ((7, 7, 2), 3, 1, "valid"),
    ((8, 6, 3), 3, 2, "valid"),
    ((7, 8, 2), 3, 1, "same"),
    ((8, 8, 1), 3, 2, "same"),
    ((6, 7, 2), 2, 2, "same"),
    ((5, 5, 3), 3, 1, 1),
    ((6, 6, 2), 4, 2, 1),
    ((9, 7, 1), 5, 2, "same"),
]


@pytest.mark.parametrize("contiguous", [True, False])
@pytest.mark.parametrize("shape,kernel,stride,padding", CONV_CASES)
def test_conv2d_gradients(shape, kernel, stride, padding, contiguous):
    rng = np.random.default_rng(1)
    layer = built(Conv2D(filters=3, kernel_size=kernel, stride=stride, padding=padding), shape)
    check_layer_gradients(layer, images(rng, (2, *shape), contiguous), rng)


@pytest.mark.parametrize("activation", ["relu", "leaky_relu", "elu", "sigmoid", "tanh", "softmax"])
def test_conv2d_fused_activation_gradients(activation):
    rng = np.random.default_rng(2)
    layer = built(Conv2D(filters=4, kernel_size=3, padding="same", activation=activation), (5, 6, 2))
    check_layer_gradients(layer, rng.standard_normal((2, 5, 6, 2)), rng)


def test_conv2d_without_bias_has_no_bias_parameter():
    layer = built(Conv2D(filters=2, kernel_size=3, use_bias=False), (5, 5, 1))
    assert set(layer.params) == {"kernel"}
    rng = np.random.default_rng(3)
    check_layer_gradients(layer, rng.standard_normal((2, 5, 5, 1)), rng)


POOL_CASES = [
    ((6, 6, 2), 2, None, "valid"),   # tiled fast path
    ((7, 7, 2), 2, None, "valid"),   # odd size: last row/column dropped
    ((7, 6, 3), 3, 2, "valid"),      # overlapping windows
    ((7, 7, 1), 2, 2, "same"),       # padding after
    ((6, 5, 2), 3, 1, "same"),
    ((6, 6, 2), 3, 2, 1),
]


@pytest.mark.parametrize("cls", [MaxPool2D, AvgPool2D])
@pytest.mark.parametrize("contiguous", [True, False])
@pytest.mark.parametrize("shape,pool,stride,padding", POOL_CASES)
def test_pool_gradients(cls, shape, pool, stride, padding, contiguous):
    rng = np.random.default_rng(4)
    layer = built(cls(pool_size=pool, stride=stride, padding=padding), shape)
    check_layer_gradients(layer, images(rng, (2, *shape), contiguous), rng)


@pytest.mark.parametrize("contiguous", [True, False])
@pytest.mark.parametrize("shape,pool,stride,padding", [c for c in POOL_CASES if c[3] != "valid"])
def test_avg_pool_without_padded_zeros_gradients(shape, pool, stride, padding, contiguous):
    rng = np.random.default_rng(4)
    layer = built(AvgPool2D(pool_size=pool, stride=stride, padding=padding, count_include_pad=False), shape)
    check_layer_gradients(layer, images(rng, (2, *shape), contiguous), rng)


def test_max_pool_routes_tied_gradient_once():
    layer = MaxPool2D(pool_size=2)
    x = np.zeros((1, 2, 2, 1))
    layer.forward(x)
    d_x = layer.backward(np.ones((1, 1, 1, 1)))
    assert d_x.sum() == 1.0 and d_x[0, 0, 0, 0] == 1.0


def test_global_avg_pool_gradients():
    rng = np.random.default_rng(5)
    check_layer_gradients(built(GlobalAvgPool2D(), (5, 4, 3)), images(rng, (3, 5, 4, 3), False), rng)


@pytest.mark.parametrize("shape", [(5, 4, 3), (6,)])
def test_batch_norm_training_gradients(shape):
    rng = np.random.default_rng(6)
    layer = built(BatchNorm(), shape)
    check_layer_gradients(layer, rng.standard_normal((4, *shape)) * 2 + 1, rng, training=True)


def test_batch_norm_inference_gradient_is_the_affine_map():
    rng = np.random.default_rng(7)
    layer = built(BatchNorm(), (4, 4, 2))
    layer.state["moving_mean"][...] = [0.3, -0.2]
    layer.state["moving_variance"][...] = [2.0, 0.5]
    check_layer_gradients(layer, rng.standard_normal((2, 4, 4, 2)), rng, training=False)


@pytest.mark.parametrize("layer", [ReLU(), LeakyReLU(alpha=0.1), ELU(alpha=0.7), Sigmoid(), Tanh(), Softmax()])
def test_activation_gradients(layer):
    rng = np.random.default_rng(8)
    x = rng.standard_normal((3, 4, 5, 2))
    x[np.abs(x) < 1e-3] = 0.5  # keep away from the kink of ReLU-like functions
    check_layer_gradients(built(layer, (4, 5, 2)), x, rng)


@pytest.mark.parametrize("activation", [None, "relu", "tanh", "softmax"])
def test_dense_gradients(activation):
    rng = np.random.default_rng(9)
    layer = built(Dense(units=5, activation=activation), (7,))
    check_layer_gradients(layer, rng.standard_normal((3, 7)), rng)
    check_layer_gradients(layer, np.asfortranarray(rng.standard_normal((3, 7))), rng)


def test_flatten_and_dropout_gradients():
    rng = np.random.default_rng(10)
    check_layer_gradients(built(Flatten(), (3, 4, 2)), images(rng, (2, 3, 4, 2), False), rng)
    dropout = built(Dropout(rate=0.4), (6,))

    def same_mask():
        dropout.rng = np.random.default_rng(123)

    check_layer_gradients(dropout, rng.standard_normal((5, 6)), rng, before_forward=same_mask)
    assert dropout.forward(np.ones((2, 6)), training=False).tolist() == np.ones((2, 6)).tolist()


@pytest.mark.parametrize("smoothing", [0.0, 0.1])
def test_softmax_cross_entropy_gradient(smoothing):
    rng = np.random.default_rng(11)
    logits = rng.standard_normal((6, 4)) * 3
    labels = rng.integers(0, 4, 6)
    loss, grad, probs = softmax_cross_entropy(logits, labels, smoothing)
    idx = sample_indices(logits.shape, rng, 24)
    numeric = numeric_grad(lambda: softmax_cross_entropy(logits, labels, smoothing)[0], logits, idx)
    np.testing.assert_allclose([grad[i] for i in idx], numeric, rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0)


def test_softmax_cross_entropy_is_stable_for_huge_logits():
    logits = np.array([[1000.0, -1000.0, 0.0]], dtype=np.float32)
    loss, grad, probs = softmax_cross_entropy(logits, np.array([1]))
    assert np.isfinite(loss) and loss == pytest.approx(2000.0)
    assert np.all(np.isfinite(grad))
