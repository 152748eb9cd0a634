"""A same-size convolution's kernel gradient taken from the im2col matrix of the padded output
gradient (engine/kernels/conv.py), which its input gradient builds anyway (for a 1x1 kernel, the
gradient itself): against the loop oracles, against the path through x's own im2col matrix
(plain, fused with ReLU and pooling, with batch norm), float64 finite differences, and on three
threads with one-image blocks."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from engine import Model
from engine.kernels import conv as conv_kernels
from engine.kernels import spectral
from engine.kernels.conv import Convolution, conv2d_backward
from engine.losses import softmax_cross_entropy
from tests.engine.test_strided_conv_gradient import loop_input_gradient
from tests.helpers.engine_factories import arch
from tests.helpers.gradcheck import check_model_gradients
from tests.helpers.threads import assert_conv_backward_splits_alike


@pytest.fixture(autouse=True)
def direct_convolutions(monkeypatch: pytest.MonkeyPatch) -> None:
    """These networks test the direct kernels: their 5x5 convolution would go spectral."""
    monkeypatch.setattr(spectral, "enabled", False)


def loop_kernel_gradient(grad: np.ndarray, x: np.ndarray, kernel_shape: tuple[int, ...],
                         pads: tuple[int, int, int, int]) -> np.ndarray:
    """d_kernel of a stride-1 convolution by its definition: each tap's weight meets, over every
    output, the input pixel under that tap (taps on padding add nothing)."""
    kh, kw = kernel_shape[:2]
    h, w = x.shape[1:3]
    top, _, left, _ = pads
    d_kernel = np.zeros(kernel_shape)
    for i, j, di, dj in itertools.product(range(grad.shape[1]), range(grad.shape[2]), range(kh), range(kw)):
        r, c = i + di - top, j + dj - left
        if 0 <= r < h and 0 <= c < w:
            d_kernel[di, dj] += x[:, r, c, :].T @ grad[:, i, j, :]
    return d_kernel


# (input (H, W, C), filters, kernel, padding): odd and even sizes and kernels ('same' with the
# odd pixel after), explicit padding, fewer filters than channels, twice as many, 1x1
CASES = [
    ((8, 8, 6), 6, 3, "same"),
    ((9, 7, 8), 4, 3, "same"),
    ((7, 9, 5), 8, 5, "same"),
    ((9, 8, 6), 6, 4, "same"),
    ((8, 10, 5), 5, 3, 1),
    ((6, 6, 16), 32, 3, "same"),
    ((5, 7, 6), 9, 1, "valid"),
]


def without_grad_cols(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(conv_kernels.Convolution, "kernel_gradient_from_grad_cols", property(lambda self: False))


@pytest.mark.parametrize("shape,filters,kernel_size,padding", CASES)
def test_gradients_match_the_loop_oracles(shape, filters, kernel_size, padding):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((3, *shape))
    kernel = rng.standard_normal((kernel_size, kernel_size, shape[2], filters))
    conv = Convolution(x.shape, kernel.shape, 1, padding, True, x.dtype, None)
    assert conv.kernel_gradient_from_grad_cols
    grad = rng.standard_normal((3, conv.ho, conv.wo, filters))
    d_x, d_kernel, d_bias = conv2d_backward(grad, x, kernel, True, 1, padding)
    np.testing.assert_allclose(d_kernel, loop_kernel_gradient(grad, x, kernel.shape, conv.pads), atol=1e-11)
    np.testing.assert_allclose(d_x, loop_input_gradient(grad, x.shape, kernel, 1, conv.pads), atol=1e-11)
    np.testing.assert_allclose(d_bias, grad.sum(axis=(0, 1, 2)), atol=1e-12)


@pytest.mark.parametrize("shape,filters,kernel_size,padding", CASES)
def test_same_gradients_as_through_the_inputs_im2col(monkeypatch, shape, filters, kernel_size, padding):
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, *shape))
    kernel = rng.standard_normal((kernel_size, kernel_size, shape[2], filters))
    conv = Convolution(x.shape, kernel.shape, 1, padding, True, x.dtype, None)
    grad = rng.standard_normal((2, conv.ho, conv.wo, filters))
    mask = grad > -0.3
    ours = conv2d_backward(grad, x, kernel, True, 1, padding, relu_mask=mask)
    without_grad_cols(monkeypatch)
    theirs = conv2d_backward(grad, x, kernel, True, 1, padding, relu_mask=mask)
    for a, b in zip(ours, theirs):
        np.testing.assert_allclose(a, b, atol=1e-11)


def test_not_used_where_it_would_cost_more():
    def uses(shape, filters, kernel_size=3, stride=1, padding="same"):
        conv = Convolution((2, *shape), (kernel_size, kernel_size, shape[2], filters), stride, padding, True,
                           np.float32, None)
        return conv.kernel_gradient_from_grad_cols

    assert uses((8, 8, 16), 16) and uses((8, 8, 32), 64) and uses((8, 8, 64), 32) and uses((8, 8, 8), 8, 1, 1, 0)
    assert not uses((8, 8, 16), 64)  # the gradient's matrix four times as wide as x's
    assert not uses((8, 8, 3), 3)  # few channels: x's im2col is built transposed
    assert not uses((8, 8, 8), 8, stride=2) and not uses((8, 8, 8), 8, padding="valid")


# Networks whose second convolution is same-size with no more filters than channels, in each of
# the steps it can be fused into; a first convolution before it, so it takes an input gradient.
NETWORKS = {
    "conv": [{"type": "Conv2D", "filters": 6, "kernel_size": 3, "padding": "same", "activation": "relu"}],
    "conv + max pooling, odd size": [
        {"type": "Conv2D", "filters": 6, "kernel_size": 3, "padding": "same", "activation": "relu"},
        {"type": "MaxPool2D", "pool_size": 2}],
    "conv + batch norm + relu": [
        {"type": "Conv2D", "filters": 6, "kernel_size": 3, "padding": "same", "use_bias": False},
        {"type": "BatchNorm"}, {"type": "ReLU"}],
    "conv + batch norm": [
        {"type": "Conv2D", "filters": 6, "kernel_size": 5, "padding": "same"}, {"type": "BatchNorm"}],
    "conv + batch norm + relu + max pooling": [
        {"type": "Conv2D", "filters": 6, "kernel_size": 3, "padding": "same"}, {"type": "BatchNorm"},
        {"type": "ReLU"}, {"type": "MaxPool2D", "pool_size": 2}],
}


def network(second: list[dict], shape=(9, 9, 2)) -> Model:
    layers = [{"type": "Conv2D", "filters": 6, "kernel_size": 3, "padding": "same", "activation": "relu"},
              *second, {"type": "Flatten"}, {"type": "Dense", "units": 3, "activation": "softmax"}]
    return Model(arch(*layers, shape=shape), seed=0, dtype=np.float64)


def training_pass(model: Model, x: np.ndarray, y: np.ndarray) -> dict[str, np.ndarray]:
    _, grad, _ = softmax_cross_entropy(model.forward_logits(x, training=True), y)
    d_x = model.backward(grad, input_grad=True)
    return {"input": d_x, **{k: v.copy() for k, v in model.gradients().items()}}


@pytest.mark.parametrize("name", list(NETWORKS))
def test_fused_steps_train_as_through_the_inputs_im2col(monkeypatch, name):
    rng = np.random.default_rng(2)
    x, y = rng.standard_normal((4, 9, 9, 2)), rng.integers(0, 3, 4)
    calls = []
    add = conv_kernels.Convolution._add_kernel_gradient_from_grad_cols
    with monkeypatch.context() as patched:
        patched.setattr(conv_kernels.Convolution, "_add_kernel_gradient_from_grad_cols",
                        lambda self, *args: calls.append(1) or add(self, *args))
        ours = training_pass(network(NETWORKS[name]), x, y)
    assert calls, "the second convolution took its kernel gradient from x's im2col"
    with monkeypatch.context() as patched:
        without_grad_cols(patched)
        theirs = training_pass(network(NETWORKS[name]), x, y)
    assert ours.keys() == theirs.keys()
    for key in ours:
        np.testing.assert_allclose(ours[key], theirs[key], atol=1e-11, err_msg=key)


@pytest.mark.parametrize("name", ["conv + max pooling, odd size", "conv + batch norm + relu",
                                  "conv + batch norm"])
def test_finite_differences(name):
    rng = np.random.default_rng(3)
    model = network(NETWORKS[name])
    check_model_gradients(model, rng.standard_normal((3, 9, 9, 2)), rng.integers(0, 3, 3), rng)


def test_on_threads_and_one_image_blocks(monkeypatch):
    assert_conv_backward_splits_alike(monkeypatch, 4, (5, 9, 8, 8), (3, 3, 8, 8), stride=1, atol=1e-11)
