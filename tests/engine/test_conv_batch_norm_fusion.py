"""The fused Conv2D -> BatchNorm -> ReLU [-> MaxPool2D] steps against the same layers run one by one:
forward, backward, running statistics, inference and saliency, for gammas of both signs, with and
without the convolution's bias, and for data far from zero. Every test runs twice: as the engine
trains (a step without pooling then fuses only where there is no input gradient) and with the
fused kernel for every step, so that kernel's training path stays checked too."""

from __future__ import annotations

import numpy as np
import pytest

from engine import Model
from engine.layers import fusion
from engine.layers.fusion import ConvBatchNorm, ConvBatchNormRelu, ConvBatchNormReluMaxPool, ReluMaxPool
from engine.losses import softmax_cross_entropy
from tests.helpers.engine_factories import arch, layer_by_layer
from tests.helpers.gradcheck import check_model_gradients


@pytest.fixture(autouse=True, params=[False, True], ids=["as-trained", "always-fused"])
def fuse_with_input_gradient(request, monkeypatch):
    monkeypatch.setattr(fusion, "FUSE_TRAINING_WITH_INPUT_GRADIENT", request.param)
    return request.param


GEOMETRIES = [
    # (input shape, conv settings, pool settings): even, odd (last row/column not pooled but still
    # in the batch statistics), padded, strided, 3x3 pooling
    ((8, 8, 1), {"kernel_size": 3, "padding": "same"}, {"pool_size": 2}),
    ((9, 11, 2), {"kernel_size": 3}, {"pool_size": 2}),
    ((10, 9, 3), {"kernel_size": 3, "stride": 2, "padding": 1}, {"pool_size": 2}),
    ((9, 9, 2), {"kernel_size": 2}, {"pool_size": 3}),
]


def conv_bn_net(shape, conv, pool, use_bias=True, filters=4):
    return arch({"type": "Conv2D", "filters": filters, "use_bias": use_bias, **conv}, {"type": "BatchNorm"},
                {"type": "ReLU"}, {"type": "MaxPool2D", **pool}, {"type": "Flatten"},
                {"type": "Dense", "units": 3, "activation": "softmax"}, shape=shape)


def fused_model(layers: list[dict], shape, fused_type: type, seed: int = 0) -> Model:
    """A float64 model starting with a fused step of ``fused_type``, whose batch norm has gammas of
    both signs, a non-zero beta and running statistics away from their initial values."""
    model = Model(arch(*layers, shape=shape), seed=seed, dtype=np.float64)
    assert isinstance(model._steps[0], fused_type)
    norm = model.layers[1]
    norm.params["gamma"][...] = [1.3, -0.7, 0.4, -1.8]
    norm.params["beta"][...] = [0.1, -0.2, 0.3, 0.05]
    norm.state["moving_mean"][...] = [0.2, -0.1, 0.05, 0.3]
    norm.state["moving_variance"][...] = [0.5, 1.5, 0.8, 2.0]
    return model


def make_model(shape, conv, pool, use_bias=True, seed=0) -> Model:
    return fused_model(conv_bn_net(shape, conv, pool, use_bias)["layers"], shape, ConvBatchNormReluMaxPool, seed)


def plain_training_pass(model: Model, x: np.ndarray, y: np.ndarray):
    """The layers one at a time, as in training: (logits, d_x, gradients)."""
    return layer_by_layer(model, x, lambda logits: softmax_cross_entropy(logits, y)[1])


def assert_trains_like_the_layers(model: Model, x: np.ndarray, y: np.ndarray) -> None:
    """Fused training passes give the plain layers' logits, input gradient, gradients and running
    statistics: with the input gradient, and without it, as in training (a first layer then takes
    its other path)."""
    state = {k: v.copy() for k, v in model.state().items()}
    plain_logits, plain_d_x, plain_grads = plain_training_pass(model, x, y)
    plain_state = {k: v.copy() for k, v in model.state().items()}
    for input_grad in (True, False):
        model.set_weights({**model.parameters(), **state})  # running statistics back to where they were
        logits = model.forward_logits(x, training=True)
        d_x = model.backward(softmax_cross_entropy(logits, y)[1], input_grad=input_grad)
        np.testing.assert_allclose(logits, plain_logits, rtol=1e-11, atol=1e-12)
        if input_grad:
            np.testing.assert_allclose(d_x, plain_d_x, rtol=1e-9, atol=1e-12)
        for name, value in plain_grads.items():
            np.testing.assert_allclose(model.gradients()[name], value, rtol=1e-9, atol=1e-12, err_msg=name)
        for name, value in plain_state.items():
            np.testing.assert_allclose(model.state()[name], value, rtol=1e-11, atol=1e-12, err_msg=name)


def assert_inference_and_saliency_like_the_layers(model: Model, x: np.ndarray, class_index: int) -> None:
    """Inference matches the layers' own outputs; so does saliency, a backward after an inference
    forward, through the running statistics."""
    np.testing.assert_allclose(model.forward(x), model.layer_outputs(x)[-1][1], rtol=1e-12)
    fused, _ = model.input_gradient(x[0], class_index=class_index)

    def one_class(logits: np.ndarray) -> np.ndarray:
        g = np.zeros_like(logits)
        g[0, class_index] = 1
        return g

    plain = layer_by_layer(model, x[:1], one_class, training=False)[1]
    np.testing.assert_allclose(fused, plain[0], rtol=1e-10, atol=1e-14)


@pytest.mark.parametrize("use_bias", [True, False])
@pytest.mark.parametrize("shape,conv,pool", GEOMETRIES)
def test_fused_step_trains_like_the_four_layers(shape, conv, pool, use_bias):
    model = make_model(shape, conv, pool, use_bias)
    rng = np.random.default_rng(0)
    assert_trains_like_the_layers(model, rng.standard_normal((6, *shape)), rng.integers(0, 3, 6))
    assert ("conv2d_1.bias" in model.gradients()) == use_bias


@pytest.mark.parametrize("shape,conv,pool", GEOMETRIES[:2])
def test_fused_inference_and_saliency_match_the_layers(shape, conv, pool):
    model = make_model(shape, conv, pool)
    assert_inference_and_saliency_like_the_layers(model, np.random.default_rng(1).standard_normal((3, *shape)), 2)


def test_fused_gradients_match_finite_differences():
    model = make_model((9, 11, 2), {"kernel_size": 3}, {"pool_size": 2}, use_bias=False, seed=3)
    rng = np.random.default_rng(4)
    x = rng.standard_normal((4, 9, 11, 2))
    check_model_gradients(model, x, np.array([0, 2, 1, 1]), rng, per_tensor=8, rtol=1e-5)


def test_fused_statistics_stay_accurate_far_from_zero():
    # A constant input far from zero makes every convolution output about 1000 plus small changes:
    # sums of squares without a reference near the mean would lose the variance to rounding.
    shape, conv, pool = (8, 8, 1), {"kernel_size": 3}, {"pool_size": 2}
    model = Model(conv_bn_net(shape, conv, pool), seed=5, dtype=np.float32)
    conv_layer, norm = model.layers[0], model.layers[1]
    norm.config["momentum"] = 0.0
    x = (np.random.default_rng(6).standard_normal((16, *shape)) * 0.01 + 1000).astype(np.float32)
    model.forward_logits(x, training=True)
    z = conv_layer.forward(x.astype(np.float64), False).reshape(-1, 4)  # the convolution in float64
    np.testing.assert_allclose(norm.state["moving_mean"], z.mean(axis=0), rtol=1e-5)
    np.testing.assert_allclose(norm.state["moving_variance"], z.var(axis=0), rtol=2e-2)


def test_relu_layer_before_pooling_still_fuses_with_the_pooling():
    # Without batch norm, a Conv2D without activation, a ReLU layer and pooling: ReLU + pooling fuse.
    model = Model(arch({"type": "Conv2D", "filters": 3, "kernel_size": 3}, {"type": "ReLU"},
                       {"type": "MaxPool2D", "pool_size": 2}, {"type": "Flatten"},
                       {"type": "Dense", "units": 3, "activation": "softmax"}, shape=(8, 8, 2)),
                  seed=7, dtype=np.float64)
    assert any(isinstance(step, ReluMaxPool) for step in model._steps)
    rng = np.random.default_rng(8)
    x = rng.standard_normal((4, 8, 8, 2))
    y = rng.integers(0, 3, 4)
    plain_logits, plain_d_x, plain_grads = plain_training_pass(model, x, y)
    logits = model.forward_logits(x, training=True)
    d_x = model.backward(softmax_cross_entropy(logits, y)[1], input_grad=True)
    np.testing.assert_allclose(logits, plain_logits, rtol=1e-12)
    np.testing.assert_allclose(d_x, plain_d_x, rtol=1e-10, atol=1e-14)
    for name, value in plain_grads.items():
        np.testing.assert_allclose(model.gradients()[name], value, rtol=1e-10, atol=1e-14, err_msg=name)


# -- Conv2D -> BatchNorm -> ReLU without pooling ------------------------------------------------------------------
NO_POOL_GEOMETRIES = [
    # (input shape, conv settings, what follows the ReLU)
    ((8, 8, 1), {"kernel_size": 3, "padding": "same"}, []),
    ((9, 11, 2), {"kernel_size": 3}, [{"type": "Conv2D", "filters": 2, "kernel_size": 1}]),
    ((10, 9, 3), {"kernel_size": 3, "stride": 2, "padding": 1}, [{"type": "MaxPool2D", "pool_size": 2, "stride": 1}]),
]


def conv_bn_relu_model(shape, conv, tail, use_bias=True, seed=0) -> Model:
    layers = [{"type": "Conv2D", "filters": 4, "use_bias": use_bias, **conv}, {"type": "BatchNorm"}, {"type": "ReLU"},
              *tail, {"type": "Flatten"}, {"type": "Dense", "units": 3, "activation": "softmax"}]
    return fused_model(layers, shape, ConvBatchNormRelu, seed)


@pytest.mark.parametrize("use_bias", [True, False])
@pytest.mark.parametrize("shape,conv,tail", NO_POOL_GEOMETRIES)
def test_fused_conv_bn_relu_trains_like_the_three_layers(shape, conv, tail, use_bias):
    model = conv_bn_relu_model(shape, conv, tail, use_bias)
    rng = np.random.default_rng(0)
    assert_trains_like_the_layers(model, rng.standard_normal((5, *shape)), rng.integers(0, 3, 5))
    assert ("conv2d_1.bias" in model.gradients()) == use_bias


def test_fused_conv_bn_relu_inference_and_saliency_match_the_layers():
    model = conv_bn_relu_model(*NO_POOL_GEOMETRIES[1])
    assert_inference_and_saliency_like_the_layers(model, np.random.default_rng(1).standard_normal((3, 9, 11, 2)), 1)


@pytest.mark.parametrize("use_bias", [True, False])
def test_fused_conv_bn_inference_without_relu_matches_the_layers(use_bias):
    # Inference folds batch norm into the kernel matrix; without a ReLU negative outputs stay.
    layers = [{"type": "Conv2D", "filters": 4, "kernel_size": 3, "padding": "same", "use_bias": use_bias},
              {"type": "BatchNorm"}, {"type": "Flatten"}, {"type": "Dense", "units": 3, "activation": "softmax"}]
    model = fused_model(layers, (7, 6, 2), ConvBatchNorm, seed=2)
    x = np.random.default_rng(5).standard_normal((3, 7, 6, 2)) + 4.0
    assert (model.layer_outputs(x)[1][1] < 0).any()
    assert_inference_and_saliency_like_the_layers(model, x, 0)


def test_fused_conv_bn_relu_gradients_match_finite_differences():
    model = conv_bn_relu_model(*NO_POOL_GEOMETRIES[2], use_bias=False, seed=3)
    rng = np.random.default_rng(4)
    check_model_gradients(model, rng.standard_normal((4, 10, 9, 3)), np.array([0, 2, 1, 1]), rng, per_tensor=8,
                          rtol=1e-5)


def test_fused_conv_bn_relu_statistics_stay_accurate_far_from_zero():
    model = Model(arch({"type": "Conv2D", "filters": 4, "kernel_size": 3}, {"type": "BatchNorm", "momentum": 0.0},
                       {"type": "ReLU"}, {"type": "Flatten"}, {"type": "Dense", "units": 3, "activation": "softmax"},
                       shape=(8, 8, 1)), seed=5, dtype=np.float32)
    x = (np.random.default_rng(6).standard_normal((16, 8, 8, 1)) * 0.01 + 1000).astype(np.float32)
    model.forward_logits(x, training=True)
    z = model.layers[0].forward(x.astype(np.float64), False).reshape(-1, 4)
    np.testing.assert_allclose(model.layers[1].state["moving_mean"], z.mean(axis=0), rtol=1e-5)
    np.testing.assert_allclose(model.layers[1].state["moving_variance"], z.var(axis=0), rtol=2e-2)


def test_without_pooling_training_fuses_only_a_step_with_no_input_gradient(fuse_with_input_gradient):
    """As the engine trains: the fused kernel for a first layer (its batch norm terms through the
    Gram matrix) and in inference (batch norm folded into the kernel), the layers one by one for a
    step whose input gradient is needed, here the second of two such steps."""
    block = [{"type": "Conv2D", "filters": 4, "kernel_size": 3, "padding": "same", "use_bias": False},
             {"type": "BatchNorm"}, {"type": "ReLU"}]
    model = Model(arch(*block, *block, {"type": "Flatten"}, {"type": "Dense", "units": 3, "activation": "softmax"},
                       shape=(8, 8, 2)), seed=0, dtype=np.float64)
    first, second = model._steps[:2]
    assert isinstance(first, ConvBatchNormRelu) and isinstance(second, ConvBatchNormRelu)
    x = np.random.default_rng(7).standard_normal((3, 8, 8, 2))
    logits = model.forward_logits(x, training=True)
    assert first._cache is not fusion._LAYER_BY_LAYER
    assert (second._cache is not fusion._LAYER_BY_LAYER) == fuse_with_input_gradient
    model.backward(softmax_cross_entropy(logits, np.array([0, 1, 2]))[1])
    model.forward(x)
    assert first._cache is not fusion._LAYER_BY_LAYER and second._cache is not fusion._LAYER_BY_LAYER


def two_blocks_model(seed: int = 0) -> Model:
    """Two Conv2D -> BatchNorm -> ReLU steps (the second has an input gradient, so in training it runs
    one by one), gammas of both signs in each."""
    block = [{"type": "Conv2D", "filters": 4, "kernel_size": 3, "padding": "same", "use_bias": False},
             {"type": "BatchNorm"}, {"type": "ReLU"}]
    model = Model(arch(*block, *block, {"type": "Flatten"}, {"type": "Dense", "units": 3, "activation": "softmax"},
                       shape=(7, 6, 2)), seed=seed, dtype=np.float64)
    for norm in (model.layers[1], model.layers[4]):
        norm.params["gamma"][...] = [1.3, -0.7, 0.4, -1.8]
        norm.params["beta"][...] = [0.1, -0.2, 0.3, 0.05]
    return model


@pytest.mark.parametrize("winograd_from", [None, 4], ids=["im2col", "winograd"])
def test_a_later_conv_bn_relu_step_trains_and_infers_like_the_layers(monkeypatch, winograd_from):
    """Also through a transform path, which runs the layers one by one in inference too."""
    if winograd_from is not None:
        from engine.kernels import winograd
        monkeypatch.setattr(winograd, "MIN_CHANNELS", dict.fromkeys(("forward", "kernel", "input"), winograd_from))
    model = two_blocks_model()
    rng = np.random.default_rng(8)
    x = rng.standard_normal((5, 7, 6, 2))
    assert_trains_like_the_layers(model, x, rng.integers(0, 3, 5))
    assert_inference_and_saliency_like_the_layers(model, x[:3], 2)
