"""Weight initialisation from an explicit generator, so one seed gives bit-identical runs."""

from __future__ import annotations

import numpy as np

RELU_LIKE = {"relu", "leaky_relu", "elu"}


def he_normal(shape: tuple[int, ...], fan_in: int, rng: np.random.Generator) -> np.ndarray:
    """N(0, 2 / fan_in): keeps activation variance steady through ReLU layers (He et al., 2015)."""
    return rng.standard_normal(shape) * np.sqrt(2.0 / fan_in)


def glorot_uniform(shape: tuple[int, ...], fan_in: int, fan_out: int, rng: np.random.Generator) -> np.ndarray:
    """U(-l, l), l = sqrt(6 / (fan_in + fan_out)) (Glorot and Bengio, 2010)."""
    limit = np.sqrt(6.0 / (fan_in + fan_out))
    return rng.uniform(-limit, limit, shape)


def init_kernel(
    shape: tuple[int, ...], fan_in: int, fan_out: int, activation: str | None, rng: np.random.Generator
) -> np.ndarray:
    if activation in RELU_LIKE:
        return he_normal(shape, fan_in, rng)
    return glorot_uniform(shape, fan_in, fan_out, rng)
