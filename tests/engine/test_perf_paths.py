"""The engine's fast paths against its plain ones: fused ReLU + max-pool steps, worker threads,
scratch buffers reused across batch sizes, and winners recorded in forward versus found in backward."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from engine import Model, parallel
from engine.kernels import blocks
from engine.layers import BatchNorm, Conv2D, MaxPool2D
from engine.layers.fusion import ConvBatchNormReluMaxPool, ConvMaxPool
from engine.losses import softmax_cross_entropy
from tests.helpers.engine_factories import arch, layer_by_layer
from tests.helpers.gradcheck import check_model_gradients


def conv_pool_net(shape, conv, pool, *, bn=False):
    """Conv2D -> [BatchNorm -> ReLU | relu activation] -> MaxPool2D -> Flatten -> Dense softmax."""
    if bn:
        head = [{"type": "Conv2D", "filters": 3, **conv}, {"type": "BatchNorm"}, {"type": "ReLU"}]
    else:
        head = [{"type": "Conv2D", "filters": 3, "activation": "relu", **conv}]
    return arch(*head, {"type": "MaxPool2D", **pool}, {"type": "Flatten"},
                {"type": "Dense", "units": 4, "activation": "softmax"}, shape=shape)


FUSED_CASES = [
    # (input shape, conv settings, pool settings): even, odd (last row/column cropped), padded, strided
    ((8, 8, 1), {"kernel_size": 3, "padding": "same"}, {"pool_size": 2}),
    ((9, 7, 2), {"kernel_size": 3, "padding": "same"}, {"pool_size": 2}),
    ((9, 11, 2), {"kernel_size": 3}, {"pool_size": 2}),
    ((10, 9, 3), {"kernel_size": 3, "stride": 2, "padding": 1}, {"pool_size": 2}),
    ((9, 9, 2), {"kernel_size": 2}, {"pool_size": 3, "stride": 3}),
    # One channel: the convolution's rows come window element by window element (tap-major)
    ((9, 11, 1), {"kernel_size": 3}, {"pool_size": 2}),
    ((10, 9, 1), {"kernel_size": 3, "stride": 2, "padding": 1}, {"pool_size": 2}),
    ((9, 9, 1), {"kernel_size": 2}, {"pool_size": 3, "stride": 3}),
    # More channels: row-major im2col, its rows still ordered by pooling tap in forward (and in a
    # backward without input gradient)
    ((9, 10, 6), {"kernel_size": 3, "padding": "same"}, {"pool_size": 2}),
    ((11, 9, 5), {"kernel_size": 2, "stride": 2, "padding": 1}, {"pool_size": 3, "stride": 3}),
]


@pytest.mark.parametrize("bn", [False, True])
@pytest.mark.parametrize("shape,conv,pool", FUSED_CASES)
def test_fused_steps_compute_what_the_layers_compute(shape, conv, pool, bn):
    model = Model(conv_pool_net(shape, conv, pool, bn=bn), seed=1, dtype=np.float64)
    fused = ConvBatchNormReluMaxPool if bn else ConvMaxPool
    assert any(isinstance(step, fused) for step in model._steps)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((5, *shape))
    y = rng.integers(0, 4, 5)

    def grad(logits):
        return softmax_cross_entropy(logits, y)[1]

    # Plain first, fused, then plain again: layers and fused steps share scratch buffers.
    first_logits, first_d_x, _ = layer_by_layer(model, x, grad)
    logits = model.forward_logits(x, training=True)
    d_x = model.backward(grad(logits), input_grad=True)
    fused_grads = {k: v.copy() for k, v in model.gradients().items()}
    plain_logits, plain_d_x, plain_grads = layer_by_layer(model, x, grad)
    np.testing.assert_array_equal(first_d_x, plain_d_x)
    np.testing.assert_allclose(logits, plain_logits, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(d_x, plain_d_x, rtol=1e-10, atol=1e-12)
    for name, value in plain_grads.items():
        np.testing.assert_allclose(fused_grads[name], value, rtol=1e-10, atol=1e-12, err_msg=name)
    # As in training: no input gradient, so the first fused step takes its other (tap-major) path.
    model.backward(grad(model.forward_logits(x, training=True)))
    for name, value in plain_grads.items():
        np.testing.assert_allclose(model.gradients()[name], value, rtol=1e-10, atol=1e-12, err_msg=name)
    # Inference goes through the fused steps too, and matches the layers' own outputs.
    np.testing.assert_allclose(model.forward(x), model.layer_outputs(x)[-1][1], rtol=1e-12)


def test_fused_model_gradients_match_finite_differences():
    model = Model(conv_pool_net((9, 11, 2), {"kernel_size": 3}, {"pool_size": 2}), seed=2, dtype=np.float64)
    rng = np.random.default_rng(1)
    x = rng.standard_normal((3, 9, 11, 2))
    check_model_gradients(model, x, np.array([0, 3, 1]), rng, per_tensor=8, rtol=1e-5)


def test_fused_pooling_routes_ties_to_the_first_maximum():
    # A zero kernel with a positive bias makes every convolution output equal: all windows tie.
    model = Model(conv_pool_net((6, 6, 1), {"kernel_size": 3, "padding": "same"}, {"pool_size": 2}),
                  dtype=np.float64)
    conv = model.layers[0]
    conv.params["kernel"][...] = 0
    conv.params["bias"][...] = 0.5
    x = np.random.default_rng(2).standard_normal((2, 6, 6, 1))
    model.forward_logits(x, training=True)
    d_x = model.backward(np.ones((2, 4)), input_grad=True)
    fused_bias_grad = conv.grads["bias"].copy()
    _, plain_d_x, plain = layer_by_layer(model, x, lambda logits: np.ones((2, 4)))
    np.testing.assert_allclose(fused_bias_grad, plain["conv2d_1.bias"], rtol=1e-12)
    np.testing.assert_allclose(d_x, plain_d_x, rtol=1e-12, atol=1e-15)


def test_backward_after_inference_forward_equals_training_path():
    """Saliency runs backward after an inference forward: fused steps then find the winners anew."""
    model = Model(conv_pool_net((9, 11, 2), {"kernel_size": 3}, {"pool_size": 2}), seed=3, dtype=np.float64)
    x = np.random.default_rng(3).standard_normal((1, 9, 11, 2))
    grad = np.zeros((1, 4))
    grad[0, 2] = 1
    model.forward_logits(x, training=True)
    after_training = model.backward(grad, input_grad=True)
    model.forward_logits(x, training=False)
    after_inference = model.backward(grad, input_grad=True)
    np.testing.assert_allclose(after_inference, after_training, rtol=1e-12)
    saliency, index = model.input_gradient(x[0], class_index=2)
    assert index == 2
    np.testing.assert_allclose(saliency, after_training[0], rtol=1e-12)


def test_max_pool_winners_from_forward_or_from_backward_agree():
    rng = np.random.default_rng(4)
    x = np.maximum(rng.standard_normal((3, 7, 6, 2)), 0)  # ReLU-like input: many tied zeros
    grad = rng.standard_normal((3, 3, 3, 2))
    recorded, derived = MaxPool2D(pool_size=2), MaxPool2D(pool_size=2)
    np.testing.assert_array_equal(recorded.forward(x, training=True), derived.forward(x, training=False))
    np.testing.assert_array_equal(recorded.backward(grad), derived.backward(grad))


def test_a_layer_used_alone_and_inside_a_fused_step_keeps_no_stale_scratch():
    model = Model(conv_pool_net((9, 7, 2), {"kernel_size": 3, "padding": "same"}, {"pool_size": 2}), seed=5,
                  dtype=np.float64)
    conv = model.layers[0]
    rng = np.random.default_rng(7)
    x = rng.standard_normal((3, 9, 7, 2))
    grad = rng.standard_normal((3, 4))
    model.forward_logits(x, training=True)
    expected = model.backward(grad, input_grad=True)
    # The conv alone, with a gradient on every output row (the fused step never has one on the
    # row cut off before pooling), then the fused step again.
    conv.needs_input_grad = True
    conv.forward(x, training=True)
    conv.backward(rng.standard_normal((3, 9, 7, 3)))
    model.forward_logits(x, training=True)
    np.testing.assert_allclose(model.backward(grad, input_grad=True), expected, rtol=1e-12)


def test_scratch_reuse_across_batch_sizes_matches_fresh_layers():
    rng = np.random.default_rng(5)
    reused = Conv2D(filters=4, kernel_size=3, stride=2, padding="same", activation="relu")
    reused.build((9, 8, 3), rng, np.float64)
    for n in (6, 2, 6, 1):
        fresh = Conv2D(filters=4, kernel_size=3, stride=2, padding="same", activation="relu")
        fresh.build((9, 8, 3), rng, np.float64)
        for name in fresh.params:
            fresh.params[name][...] = reused.params[name]
        x = rng.standard_normal((n, 9, 8, 3))
        g = rng.standard_normal((n, 5, 4, 4))
        np.testing.assert_array_equal(reused.forward(x, training=True), fresh.forward(x, training=True))
        np.testing.assert_array_equal(reused.backward(g), fresh.backward(g))
        np.testing.assert_array_equal(reused.grads["kernel"], fresh.grads["kernel"])


def test_batch_norm_statistics_stay_accurate_far_from_zero():
    """float32 maps with mean 1000 and std 0.5: one-pass sums must not cancel away the variance."""
    rng = np.random.default_rng(8)
    x64 = rng.standard_normal((6, 9, 9, 3)) * 0.5 + 1000
    layer = BatchNorm(momentum=0.0)
    layer.build((9, 9, 3), rng, np.float32)
    out = layer.forward(x64.astype(np.float32), training=True)
    reference = x64.astype(np.float32).astype(np.float64)
    np.testing.assert_allclose(layer.state["moving_variance"], reference.var(axis=(0, 1, 2)), rtol=1e-3)
    np.testing.assert_allclose(out.std(axis=(0, 1, 2), dtype=np.float64), 1, rtol=1e-3)
    assert out.dtype == np.float32


def test_thread_count_does_not_change_results(monkeypatch):
    # Every kernel splits, however small its share (normally small ones stay on one thread).
    monkeypatch.setattr(blocks, "MIN_SHARE", 1)
    monkeypatch.setattr(blocks, "MIN_MACS", 1)
    model = Model(conv_pool_net((10, 9, 3), {"kernel_size": 3, "padding": "same"}, {"pool_size": 2}, bn=True),
                  seed=4, dtype=np.float64)
    rng = np.random.default_rng(6)
    x = rng.standard_normal((8, 10, 9, 3))
    y = rng.integers(0, 4, 8)
    before = parallel.get_num_threads()

    def run() -> tuple[np.ndarray, dict[str, np.ndarray]]:
        model.layers[1].state["moving_mean"][...] = 0
        logits = model.forward_logits(x, training=True)
        d_x = model.backward(softmax_cross_entropy(logits, y)[1], input_grad=True)
        return d_x, {k: v.copy() for k, v in model.gradients().items()}

    try:
        parallel.set_num_threads(1)
        serial_d_x, serial = run()
        parallel.set_num_threads(2)
        threaded_d_x, threaded = run()
    finally:
        parallel.set_num_threads(before)
    np.testing.assert_allclose(threaded_d_x, serial_d_x, rtol=1e-12, atol=1e-15)
    for name, value in serial.items():
        np.testing.assert_allclose(threaded[name], value, rtol=1e-10, atol=1e-14, err_msg=name)


def test_parallel_for_covers_the_range_in_order_and_reraises():
    before = parallel.get_num_threads()
    try:
        parallel.set_num_threads(2)
        assert parallel.parallel_for(10, lambda part, a, b: (part, a, b)) == [(0, 0, 5), (1, 5, 10)]
        # Too little work for two threads stays on the caller.
        assert parallel.parallel_for(10, lambda part, a, b: (a, b), min_items=8) == [(0, 10)]
        assert parallel.parallel_for(0, lambda part, a, b: (a, b)) == []

        def fail_in_helper(part, a, b):
            if part == 1:
                raise ZeroDivisionError("helper range failed")
            return part

        with pytest.raises(ZeroDivisionError, match="helper range failed"):
            parallel.parallel_for(4, fail_in_helper)
        # The pool still works after a failure.
        assert parallel.parallel_for(4, lambda part, a, b: b - a) == [2, 2]
    finally:
        parallel.set_num_threads(before)
    assert parallel.split(7, 3) == [(0, 2), (2, 4), (4, 7)]


def test_helpers_follow_the_callers_numpy_error_state():
    """The trainer silences overflow on its way to reporting divergence; helpers must too."""
    before = parallel.get_num_threads()

    def overflow_in_helper(part, a, b):
        return np.full(4, 3e38, np.float32) * np.float32(10) if part == 1 else None

    try:
        parallel.set_num_threads(2)
        with np.errstate(over="raise"), pytest.raises(FloatingPointError):
            parallel.parallel_for(2, overflow_in_helper)
        with np.errstate(over="ignore"), warnings.catch_warnings():
            warnings.simplefilter("error")
            assert np.isinf(parallel.parallel_for(2, overflow_in_helper)[1]).all()
    finally:
        parallel.set_num_threads(before)
    with pytest.raises(ValueError, match="at least 1"):
        parallel.set_num_threads(0)


@pytest.mark.parametrize("n, ho, wo, kh, kw, c", [(3, 10, 10, 3, 3, 32), (2, 4, 7, 2, 5, 3), (1, 1, 1, 3, 3, 1)])
def test_rows_first_col2im_adds_what_col2im_adds(n, ho, wo, kh, kw, c):
    from engine.kernels.im2col import col2im_add, col2im_add_rows_first

    rng = np.random.default_rng(0)
    cols = rng.standard_normal((n, ho, wo, kh, kw, c))
    start = rng.standard_normal((n, ho + kh - 1 + 1, wo + kw - 1 + 2, c))  # wider than the windows reach
    expected, got = start.copy(), start.copy()
    col2im_add(cols, expected, (0, 0, 0, 0), 1)
    col2im_add_rows_first(cols, got, np.full((n, ho + kh - 1, wo, kw * c), np.nan))
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12)
