"""Convolution through the Fourier transform (engine/kernels/spectral.py): the same values as the
direct convolution and the seed's loops, forward and backward, and where the engine takes it."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest

from engine import Model, memory, parallel
from engine.architecture import analyze
from engine.kernels import spectral, transform_paths
from engine.kernels.blocks import Workspace
from engine.kernels.conv import conv2d_backward, conv2d_forward
from engine.kernels.spectral import spectral_conv2d_backward, spectral_conv2d_forward, worthwhile
from engine.layers import Conv2D
from engine.losses import softmax_cross_entropy
from tests.engine.test_oracles import seed_conv2d
from tests.helpers.gradcheck import check_layer_gradients, check_model_gradients
from tests.helpers.threads import alone_and_split


@pytest.fixture
def always_spectral(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every stride-1 convolution with a 4x4 or larger kernel takes the spectral path."""
    monkeypatch.setattr(spectral, "MIN_SAVING", dict.fromkeys(spectral.MIN_SAVING, 0.0))


CASES = [
    # (N, H, W, C), kernel, filters, padding
    ((3, 9, 11, 3), 5, 4, "same"),
    ((2, 10, 8, 2), 4, 3, "same"),  # an even kernel: 'same' pads one pixel more after than before
    ((2, 14, 14, 5), 7, 6, "valid"),
    ((2, 8, 9, 2), 5, 3, 1),  # one pixel of padding each side
    ((1, 6, 6, 3), 6, 2, "valid"),  # the kernel covers the whole image
    ((2, 5, 7, 4), 5, 2, 3),  # more padding than 'same'
]


@pytest.mark.parametrize("x_shape,k,filters,padding", CASES)
@pytest.mark.parametrize("relu", [False, True])
def test_matches_the_direct_convolution_forward_and_backward(x_shape, k, filters, padding, relu):
    rng = np.random.default_rng(k * 10 + filters)
    x = rng.standard_normal(x_shape)
    kernel = rng.standard_normal((k, k, x_shape[3], filters))
    bias = rng.standard_normal(filters)
    expected = conv2d_forward(x, kernel, bias, 1, padding, relu=relu)
    mask = np.empty(expected.shape, bool) if relu else None
    out, cache = spectral_conv2d_forward(x, kernel, bias, padding, keep=True, relu=relu, relu_mask=mask)
    np.testing.assert_allclose(out, expected, atol=1e-11)
    if relu:
        np.testing.assert_array_equal(mask, expected > 0)

    grad = rng.standard_normal(expected.shape)
    d_x, d_kernel, d_bias = conv2d_backward(grad, x, kernel, True, 1, padding, relu_mask=mask)
    for kept in (cache, None):  # with the forward's spectra, and transforming x again
        got = spectral_conv2d_backward(grad, x, kept, kernel, True, padding, relu_mask=mask)
        np.testing.assert_allclose(got[0], d_x, atol=1e-11)
        np.testing.assert_allclose(got[1], d_kernel, atol=1e-10)
        np.testing.assert_allclose(got[2], d_bias, atol=1e-11)


def test_matches_the_seed_loops_in_float32():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 12, 10, 8)).astype(np.float32)
    kernel = rng.standard_normal((5, 5, 8, 6)).astype(np.float32)
    out, _ = spectral_conv2d_forward(x, kernel, None, 2, keep=False)
    for image in range(2):
        np.testing.assert_allclose(out[image], seed_conv2d(x[image], kernel, 1, 2), rtol=1e-4, atol=1e-4)
    assert out.dtype == np.float32


def test_without_bias_or_input_gradient():
    rng = np.random.default_rng(4)
    x, kernel = rng.standard_normal((3, 8, 8, 4)), rng.standard_normal((5, 5, 4, 3))
    out, cache = spectral_conv2d_forward(x, kernel, None, "same", keep=True)
    np.testing.assert_allclose(out, conv2d_forward(x, kernel, None, 1, "same"), atol=1e-11)
    grad = rng.standard_normal(out.shape)
    d_x, d_kernel, d_bias = spectral_conv2d_backward(grad, x, cache, kernel, False, "same", need_input_grad=False)
    assert d_x is None and d_bias is None
    np.testing.assert_allclose(d_kernel, conv2d_backward(grad, x, kernel, False, 1, "same", False)[1], atol=1e-10)


def test_chunks_threads_and_reused_scratch_give_the_same_gradients(monkeypatch):
    rng = np.random.default_rng(5)
    x, kernel = rng.standard_normal((7, 9, 9, 3)), rng.standard_normal((5, 5, 3, 4))
    grad = rng.standard_normal((7, 9, 9, 4))
    workspace = Workspace()

    def run():
        out, cache = spectral_conv2d_forward(x, kernel, None, "same", keep=True, workspace=workspace)
        return (out, *spectral_conv2d_backward(grad, x, cache, kernel, True, "same", workspace=workspace))

    alone, split = alone_and_split(monkeypatch, run, lambda patched: patched.setattr(spectral, "CHUNK_IMAGES", 2))
    for a, b in zip(alone, split):
        np.testing.assert_allclose(b, a, atol=1e-11)
    again = run()  # the same workspace, now holding the last call's scratch
    for a, b in zip(alone, again):
        np.testing.assert_allclose(b, a, atol=1e-11)


def test_which_convolutions_take_the_spectral_path():
    # The k5 benchmark's second convolution and the k7 network's 'valid' one: several times fewer
    # multiply-adds in the frequency domain.
    assert worthwhile((32, 16, 16, 32), (5, 5, 32, 64), 1, "same", "input")
    assert worthwhile((32, 14, 14, 32), (7, 7, 32, 64), 1, "valid", "input")
    # 3x3 kernels, strides, and first layers with a few channels stay direct.
    assert not worthwhile((32, 16, 16, 32), (3, 3, 32, 64), 1, "same", "input")
    assert not worthwhile((32, 16, 16, 32), (5, 5, 32, 64), 2, "same", "input")
    assert not worthwhile((32, 32, 32, 3), (5, 5, 3, 32), 1, "same", "kernel")
    assert not worthwhile((32, 28, 28, 1), (7, 7, 1, 32), 1, "same", "kernel")
    # A forward alone needs a larger saving: few channels on large images gain in training only.
    assert worthwhile((32, 64, 64, 16), (5, 5, 16, 32), 1, "same", "input")
    assert not worthwhile((32, 64, 64, 16), (5, 5, 16, 32), 1, "same", "forward")
    assert worthwhile((32, 16, 16, 32), (5, 5, 32, 64), 1, "same", "forward")


def test_the_choice_does_not_depend_on_the_batch_size():
    """Two processes splitting an odd batch must take the same path (their batch norms meet)."""
    shapes = [((5, 5, 16, 16), (6, 6, 16)), ((5, 5, 8, 16), (28, 28, 8)), ((3, 3, 32, 64), (16, 16, 32))]
    for kernel_shape, image in shapes:
        answers = {worthwhile((n, *image), kernel_shape, 1, "same", "input") for n in (1, 9, 10, 32, 64, 256)}
        assert len(answers) == 1


def test_the_switch_turns_it_off(monkeypatch):
    monkeypatch.setattr(spectral, "enabled", False)
    assert not worthwhile((32, 16, 16, 32), (5, 5, 32, 64), 1, "same", "input")


def test_conv2d_layer_gradients_through_the_spectral_path(always_spectral):
    rng = np.random.default_rng(6)
    layer = Conv2D(filters=3, kernel_size=5, padding="same", activation="relu")
    layer.build((7, 6, 2), rng, np.float64)
    layer.params["bias"][...] = rng.standard_normal(3)
    x = rng.standard_normal((2, 7, 6, 2))
    assert layer.transform_path(x.shape, training=True) is transform_paths.SPECTRAL
    check_layer_gradients(layer, x, rng)


def network(pool: bool) -> dict:
    layers = [{"type": "Conv2D", "filters": 4, "kernel_size": 5, "padding": "same", "activation": "relu"}]
    if pool:
        layers.append({"type": "MaxPool2D", "pool_size": 2})
    layers += [{"type": "Conv2D", "filters": 3, "kernel_size": 4, "padding": "valid", "activation": "tanh"},
               {"type": "Flatten"}, {"type": "Dense", "units": 3, "activation": "softmax"}]
    return {"format": "cnn-studio.architecture/2", "input": {"shape": [9, 9, 2]}, "layers": layers}


@pytest.mark.parametrize("pool", [False, True])
def test_network_gradients_through_the_spectral_path(always_spectral, pool):
    rng = np.random.default_rng(7)
    model = Model(network(pool), seed=1, dtype=np.float64)
    x, y = rng.standard_normal((3, 9, 9, 2)), rng.integers(0, 3, 3)
    check_model_gradients(model, x, y, rng)


@pytest.mark.parametrize("pool", [False, True])
def test_a_network_trains_alike_on_either_path(monkeypatch, pool):
    """Forward, gradients and a saliency-style backward after an inference forward agree."""
    rng = np.random.default_rng(8)
    x, y = rng.standard_normal((4, 9, 9, 2)), rng.integers(0, 3, 4)
    results = []
    for saving in (0.0, float("inf")):  # spectral everywhere it can be, then nowhere
        monkeypatch.setattr(spectral, "MIN_SAVING", dict.fromkeys(spectral.MIN_SAVING, saving))
        model = Model(network(pool), seed=1, dtype=np.float64)
        convolutions = [layer for layer in model.layers if isinstance(layer, Conv2D)]
        assert [conv.transform_path(x.shape, True) is not None for conv in convolutions[:1]] == [saving == 0.0]
        loss, grad, _ = softmax_cross_entropy(model.forward_logits(x, training=True), y)
        d_x = model.backward(grad, input_grad=True)
        gradients = {name: value.copy() for name, value in model.gradients().items()}
        model.forward_logits(x, training=False)
        saliency = model.backward(np.ones((4, 3)), input_grad=True)
        results.append((loss, d_x, gradients, saliency))
    (loss_a, d_x_a, grads_a, sal_a), (loss_b, d_x_b, grads_b, sal_b) = results
    assert loss_a == pytest.approx(loss_b, abs=1e-12)
    np.testing.assert_allclose(d_x_a, d_x_b, atol=1e-11)
    np.testing.assert_allclose(sal_a, sal_b, atol=1e-11)
    for name in grads_b:
        np.testing.assert_allclose(grads_a[name], grads_b[name], atol=1e-10, err_msg=name)


def test_threads_split_the_spectral_kernel_gradient(monkeypatch, always_spectral):
    rng = np.random.default_rng(9)
    model_input = rng.standard_normal((6, 9, 9, 2))
    labels = rng.integers(0, 3, 6)

    def run():
        model = Model(network(True), seed=2, dtype=np.float64)
        _, grad, _ = softmax_cross_entropy(model.forward_logits(model_input, training=True), labels)
        model.backward(grad, input_grad=False)
        return {name: value.copy() for name, value in model.gradients().items()}

    before = parallel.get_num_threads()
    alone, split = alone_and_split(monkeypatch, run)
    assert parallel.get_num_threads() == before
    for name in alone:
        np.testing.assert_allclose(split[name], alone[name], atol=1e-11, err_msg=name)


def test_the_memory_estimate_counts_what_the_spectral_path_holds():
    doc = {"format": "cnn-studio.architecture/2", "input": {"shape": [16, 16, 32]}, "layers": [
        {"type": "Conv2D", "filters": 64, "kernel_size": 5, "padding": "same", "activation": "relu"},
        {"type": "GlobalAvgPool2D"}, {"type": "Dense", "units": 3, "activation": "softmax"}]}
    scratch = memory.estimate_training(analyze(doc), 32).part("scratch")
    assert scratch >= spectral.memory_bytes((32, 16, 16, 32), (5, 5, 32, 64), "same", 2)

    # What one training step of the layer really allocates stays within the estimate.
    rng = np.random.default_rng(10)
    x = rng.standard_normal((32, 16, 16, 32)).astype(np.float32)
    kernel = rng.standard_normal((5, 5, 32, 64)).astype(np.float32)
    workspace = Workspace()
    tracemalloc.start()
    try:
        out, cache = spectral_conv2d_forward(x, kernel, None, "same", keep=True, workspace=workspace)
        spectral_conv2d_backward(out, x, cache, kernel, False, "same", workspace=workspace)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    layer_output_and_gradient = 2 * out.nbytes + x.nbytes
    assert peak - layer_output_and_gradient <= spectral.memory_bytes(x.shape, kernel.shape, "same", 1)


def batch_norm_network(tail: str) -> dict:
    """A 5x5 Conv2D -> BatchNorm [-> ReLU [-> MaxPool2D]], the runs the engine fuses."""
    layers: list[dict] = [{"type": "Conv2D", "filters": 4, "kernel_size": 5, "padding": "same", "activation": None},
                          {"type": "BatchNorm"}]
    if tail in ("relu", "pool"):
        layers.append({"type": "ReLU"})
    if tail == "pool":
        layers.append({"type": "MaxPool2D", "pool_size": 2})
    layers += [{"type": "Flatten"}, {"type": "Dense", "units": 3, "activation": "softmax"}]
    return {"format": "cnn-studio.architecture/2", "input": {"shape": [8, 8, 3]}, "layers": layers}


@pytest.mark.parametrize("tail", ["none", "relu", "pool"])
def test_fused_batch_norm_steps_run_layer_by_layer_on_the_spectral_path(monkeypatch, tail):
    rng = np.random.default_rng(11)
    x, y = rng.standard_normal((4, 8, 8, 3)), rng.integers(0, 3, 4)
    results = []
    for saving in (0.0, float("inf")):
        monkeypatch.setattr(spectral, "MIN_SAVING", dict.fromkeys(spectral.MIN_SAVING, saving))
        model = Model(batch_norm_network(tail), seed=3, dtype=np.float64)
        loss, grad, _ = softmax_cross_entropy(model.forward_logits(x, training=True), y)
        d_x = model.backward(grad, input_grad=True)
        gradients = {name: value.copy() for name, value in model.gradients().items()}
        state = {name: value.copy() for name, value in model.state().items()}
        inference = model.forward_logits(x, training=False)
        results.append((loss, d_x, gradients, state, inference))
    for a, b in zip(results[0][2:4], results[1][2:4]):
        for name in b:
            np.testing.assert_allclose(a[name], b[name], atol=1e-10, err_msg=name)
    assert results[0][0] == pytest.approx(results[1][0], abs=1e-12)
    np.testing.assert_allclose(results[0][1], results[1][1], atol=1e-11)
    np.testing.assert_allclose(results[0][4], results[1][4], atol=1e-11)


@pytest.mark.parametrize("tail", ["none", "pool"])
def test_batch_norm_network_gradients_through_the_spectral_path(always_spectral, tail):
    rng = np.random.default_rng(12)
    model = Model(batch_norm_network(tail), seed=4, dtype=np.float64)
    check_model_gradients(model, rng.standard_normal((3, 8, 8, 3)), rng.integers(0, 3, 3), rng)


def test_batches_of_changing_sizes_reuse_one_set_of_scratch_arrays():
    rng = np.random.default_rng(13)
    kernel = rng.standard_normal((5, 5, 4, 6))
    workspace = Workspace()
    sizes = []
    for n in (7, 3, 7, 1, 5):  # a training batch, the epoch's last, inference on a few images
        x = rng.standard_normal((n, 8, 8, 4))
        out, cache = spectral_conv2d_forward(x, kernel, None, "same", keep=True, workspace=workspace)
        np.testing.assert_allclose(out, conv2d_forward(x, kernel, None, 1, "same"), atol=1e-11)
        grad = rng.standard_normal(out.shape)
        got = spectral_conv2d_backward(grad, x, cache, kernel, False, "same", workspace=workspace)
        np.testing.assert_allclose(got[0], conv2d_backward(grad, x, kernel, False, 1, "same")[0], atol=1e-11)
        sizes.append(len(workspace._arrays))
    assert len(set(sizes)) == 1  # no new arrays for the smaller batches after the first
    largest = max(array.nbytes for _, array in workspace._arrays.values())
    assert largest <= 7 * 8 * 8 * 32 * 16  # never more than the largest batch needs
