"""Finite-difference gradient checking in float64, shared by the layer and model tests."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from engine.layers import Layer


def numeric_grad(f: Callable[[], float], array: np.ndarray, indices: list[tuple[int, ...]], eps: float = 1e-6):
    """Central differences of scalar f() with respect to chosen entries of `array` (perturbed in place)."""
    out = []
    for idx in indices:
        old = array[idx]
        array[idx] = old + eps
        plus = f()
        array[idx] = old - eps
        minus = f()
        array[idx] = old
        out.append((plus - minus) / (2 * eps))
    return np.array(out)


def sample_indices(shape: tuple[int, ...], rng: np.random.Generator, count: int = 25) -> list[tuple[int, ...]]:
    size = int(np.prod(shape))
    flat = rng.choice(size, size=min(count, size), replace=False)
    return [tuple(int(i) for i in np.unravel_index(k, shape)) for k in flat]


def check_layer_gradients(
    layer: Layer,
    x: np.ndarray,
    rng: np.random.Generator,
    training: bool = True,
    before_forward: Callable[[], None] | None = None,
    rtol: float = 1e-5,
    atol: float = 1e-7,
) -> None:
    """Compare a layer's backward (input and parameter gradients) with finite differences.

    The scalar checked is sum(forward(x) * g) for a fixed random upstream gradient g. `x` may be
    non-contiguous: the finite differences perturb it in place through its own strides.
    """
    layer.needs_input_grad = True

    def forward() -> np.ndarray:
        if before_forward is not None:
            before_forward()
        return layer.forward(x, training)

    out = forward()
    g = rng.standard_normal(out.shape)
    d_x = layer.backward(g.copy())
    assert d_x.shape == x.shape
    analytic_params = {k: v.copy() for k, v in layer.grads.items()}

    def scalar() -> float:
        return float((forward() * g).sum())

    idx = sample_indices(x.shape, rng)
    np.testing.assert_allclose(
        np.array([d_x[i] for i in idx]), numeric_grad(scalar, x, idx), rtol=rtol, atol=atol,
        err_msg=f"{layer!r}: input gradient",
    )
    for name, param in layer.params.items():
        idx = sample_indices(param.shape, rng)
        np.testing.assert_allclose(
            np.array([analytic_params[name][i] for i in idx]), numeric_grad(scalar, param, idx),
            rtol=rtol, atol=atol, err_msg=f"{layer!r}: gradient of {name}",
        )


def check_model_gradients(
    model, x: np.ndarray, y: np.ndarray, rng: np.random.Generator, per_tensor: int = 6, rtol: float = 1e-4
) -> None:
    """Whole-network check: the loss's gradients for sampled parameter and input entries."""
    from engine.losses import softmax_cross_entropy

    def loss() -> float:
        return softmax_cross_entropy(model.forward_logits(x, training=True), y)[0]

    _, grad, _ = softmax_cross_entropy(model.forward_logits(x, training=True), y)
    d_x = model.backward(grad, input_grad=True)
    analytic = {k: v.copy() for k, v in model.gradients().items()}
    for name, param in model.parameters().items():
        idx = sample_indices(param.shape, rng, per_tensor)
        np.testing.assert_allclose([analytic[name][i] for i in idx], numeric_grad(loss, param, idx),
                                   rtol=rtol, atol=1e-8, err_msg=name)
    idx = sample_indices(x.shape, rng, 2 * per_tensor)
    np.testing.assert_allclose([d_x[i] for i in idx], numeric_grad(loss, x, idx), rtol=rtol, atol=1e-8)
