"""Checks every transform path of the convolution (engine/kernels/transform_paths.py) must pass: the
same values as the direct kernels, the same training of a network whichever path its layers take,
scratch reused across batch sizes, a memory estimate that covers what a step allocates."""

from __future__ import annotations

import tracemalloc
from collections.abc import Callable

import numpy as np
import pytest

from engine import Model
from engine.kernels.blocks import Workspace
from engine.kernels.conv import conv2d_backward, conv2d_forward
from engine.kernels.transform_paths import TransformPath
from engine.losses import softmax_cross_entropy


def check_matches_direct(path: TransformPath, x_shape: tuple[int, ...], k: int, filters: int, padding: str | int,
                         relu: bool, atol: float, seed: int) -> None:
    """Forward (with bias and ReLU mask) and every gradient, from the forward's cache and without it."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(x_shape)
    kernel = rng.standard_normal((k, k, x_shape[3], filters))
    bias = rng.standard_normal(filters)
    expected = conv2d_forward(x, kernel, bias, 1, padding, relu=relu)
    mask = np.empty(expected.shape, bool) if relu else None
    out, cache = path.forward(x, kernel, bias, padding, keep=True, relu=relu, relu_mask=mask)
    np.testing.assert_allclose(out, expected, atol=atol)
    if relu:
        np.testing.assert_array_equal(mask, expected > 0)

    grad = rng.standard_normal(expected.shape)
    d_x, d_kernel, d_bias = conv2d_backward(grad, x, kernel, True, 1, padding, relu_mask=mask)
    for kept in (cache, None):  # with what the forward kept, and transforming x again
        got = path.backward(grad, x, kept, kernel, True, padding, relu_mask=mask)
        np.testing.assert_allclose(got[0], d_x, atol=atol)
        np.testing.assert_allclose(got[1], d_kernel, atol=10 * atol)
        np.testing.assert_allclose(got[2], d_bias, atol=atol)


def check_trains_alike(take_path: Callable[[bool], None], doc: dict, x: np.ndarray, y: np.ndarray,
                       transformed: Callable[[Model], bool]) -> None:
    """Loss, input gradient, every parameter gradient, the batch-norm state, a saliency-style backward
    after an inference forward and the inference output agree with the path on (``take_path(True)``)
    and off; ``transformed(model)`` says whether the model's layers take the path."""
    results = []
    for on in (True, False):
        take_path(on)
        model = Model(doc, seed=1, dtype=np.float64)
        assert transformed(model) == on
        loss, grad, _ = softmax_cross_entropy(model.forward_logits(x, training=True), y)
        d_x = model.backward(grad, input_grad=True)
        gradients = {name: value.copy() for name, value in model.gradients().items()}
        state = {name: value.copy() for name, value in model.state().items()}
        inference = model.forward_logits(x, training=False)
        saliency = model.backward(np.ones_like(inference), input_grad=True)
        results.append((loss, d_x, gradients, state, inference, saliency))
    (loss_a, *arrays_a, sal_a), (loss_b, *arrays_b, sal_b) = results
    assert loss_a == pytest.approx(loss_b, abs=1e-12)
    d_x_a, grads_a, state_a, inference_a = arrays_a
    d_x_b, grads_b, state_b, inference_b = arrays_b
    np.testing.assert_allclose(d_x_a, d_x_b, atol=1e-11)
    np.testing.assert_allclose(inference_a, inference_b, atol=1e-11)
    np.testing.assert_allclose(sal_a, sal_b, atol=1e-11)
    for a, b in ((grads_a, grads_b), (state_a, state_b)):
        for name in b:
            np.testing.assert_allclose(a[name], b[name], atol=1e-10, err_msg=name)


def check_memory_estimate(path: TransformPath, x_shape: tuple[int, ...], kernel_shape: tuple[int, ...],
                          threads: int) -> None:
    """What one float32 training step of the layer allocates stays within path.memory_bytes."""
    rng = np.random.default_rng(10)
    x = rng.standard_normal(x_shape).astype(np.float32)
    kernel = rng.standard_normal(kernel_shape).astype(np.float32)
    workspace = Workspace()
    tracemalloc.start()
    try:
        out, cache = path.forward(x, kernel, None, "same", keep=True, workspace=workspace)
        path.backward(out, x, cache, kernel, False, "same", workspace=workspace)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    layer_output_and_gradient = 2 * out.nbytes + x.nbytes
    assert peak - layer_output_and_gradient <= path.memory_bytes(x.shape, kernel.shape, "same", threads)


def check_scratch_reused(path: TransformPath, kernel: np.ndarray, image: tuple[int, int, int]) -> Workspace:
    """Batches of changing sizes (a training batch, an epoch's last, inference on a few images) give
    the direct kernels' values and make no new scratch arrays after the first; returns the workspace."""
    rng = np.random.default_rng(13)
    workspace = Workspace()
    sizes = []
    for n in (7, 3, 7, 1, 5):
        x = rng.standard_normal((n, *image))
        out, cache = path.forward(x, kernel, None, "same", keep=True, workspace=workspace)
        np.testing.assert_allclose(out, conv2d_forward(x, kernel, None, 1, "same"), atol=1e-11)
        grad = rng.standard_normal(out.shape)
        got = path.backward(grad, x, cache, kernel, False, "same", workspace=workspace)
        np.testing.assert_allclose(got[0], conv2d_backward(grad, x, kernel, False, 1, "same")[0], atol=1e-11)
        sizes.append(len(workspace._arrays))
    assert len(set(sizes)) == 1
    return workspace


def check_seed_loops(path: TransformPath, k: int, padding: int) -> None:
    """float32 output against the seed's loop formula (its padding: pixels per side)."""
    from tests.engine.test_oracles import seed_conv2d

    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 12, 10, 8)).astype(np.float32)
    kernel = rng.standard_normal((k, k, 8, 6)).astype(np.float32)
    out, _ = path.forward(x, kernel, None, padding, keep=False)
    for image in range(2):
        np.testing.assert_allclose(out[image], seed_conv2d(x[image], kernel, 1, padding), rtol=1e-4, atol=1e-4)
    assert out.dtype == np.float32


def check_without_bias_or_input_gradient(path: TransformPath, k: int, atol: float) -> None:
    rng = np.random.default_rng(4)
    x, kernel = rng.standard_normal((3, 8, 8, 4)), rng.standard_normal((k, k, 4, 3))
    out, cache = path.forward(x, kernel, None, "same", keep=True)
    np.testing.assert_allclose(out, conv2d_forward(x, kernel, None, 1, "same"), atol=atol)
    grad = rng.standard_normal(out.shape)
    d_x, d_kernel, d_bias = path.backward(grad, x, cache, kernel, False, "same", need_input_grad=False)
    assert d_x is None and d_bias is None
    np.testing.assert_allclose(d_kernel, conv2d_backward(grad, x, kernel, False, 1, "same", False)[1],
                               atol=10 * atol)


def check_chunks_and_threads(monkeypatch: pytest.MonkeyPatch, path: TransformPath, k: int,
                             small_chunks: Callable[[pytest.MonkeyPatch], None]) -> None:
    """The same output and gradients on one thread, on three with ``small_chunks`` patched in, and
    again in the same workspace (holding the last call's scratch)."""
    from tests.helpers.threads import alone_and_split

    rng = np.random.default_rng(5)
    x, kernel = rng.standard_normal((7, 9, 9, 3)), rng.standard_normal((k, k, 3, 4))
    grad = rng.standard_normal((7, 9, 9, 4))
    workspace = Workspace()

    def run():
        out, cache = path.forward(x, kernel, None, "same", keep=True, workspace=workspace)
        return (out, *path.backward(grad, x, cache, kernel, True, "same", workspace=workspace))

    alone, split = alone_and_split(monkeypatch, run, small_chunks)
    for a, b in zip(alone, split):
        np.testing.assert_allclose(b, a, atol=1e-11)
    for a, b in zip(alone, run()):
        np.testing.assert_allclose(b, a, atol=1e-11)


def first_conv_transformed(model: Model) -> bool:
    """Whether the model's first Conv2D takes a transform path in training (batch of 4)."""
    from engine.layers import Conv2D

    conv = next(layer for layer in model.layers if isinstance(layer, Conv2D))
    return conv.transform_path((4, *model.input_shape), True) is not None


def check_conv_layer_gradients(path: TransformPath, k: int) -> None:
    """Finite differences through a Conv2D layer (bias, ReLU, 'same' padding) on ``path``."""
    from engine.layers import Conv2D
    from tests.helpers.gradcheck import check_layer_gradients

    rng = np.random.default_rng(6)
    layer = Conv2D(filters=3, kernel_size=k, padding="same", activation="relu")
    layer.build((7, 6, 2), rng, np.float64)
    layer.params["bias"][...] = rng.standard_normal(3)
    x = rng.standard_normal((2, 7, 6, 2))
    assert layer.transform_path(x.shape, training=True) is path
    check_layer_gradients(layer, x, rng)
