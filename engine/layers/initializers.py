"""Weight initialisation from an explicit generator, so one seed gives bit-identical runs.

Values are drawn straight into float32 arrays and scaled in place: a network's largest kernel is
never held in float64 or twice, which decides whether a large Dense layer can be built at all.
"""

from __future__ import annotations

import numpy as np

RELU_LIKE = {"relu", "leaky_relu", "elu"}


def he_normal(shape: tuple[int, ...], fan_in: int, rng: np.random.Generator,
              dtype: np.dtype | type = np.float32) -> np.ndarray:
    """N(0, 2 / fan_in): keeps activation variance steady through ReLU layers (He et al., 2015)."""
    out = rng.standard_normal(shape, dtype=np.dtype(dtype))
    out *= out.dtype.type(np.sqrt(2.0 / fan_in))
    return out


def glorot_uniform(shape: tuple[int, ...], fan_in: int, fan_out: int, rng: np.random.Generator,
                   dtype: np.dtype | type = np.float32) -> np.ndarray:
    """U(-l, l), l = sqrt(6 / (fan_in + fan_out)) (Glorot and Bengio, 2010)."""
    limit = np.sqrt(6.0 / (fan_in + fan_out))
    out = rng.random(shape, dtype=np.dtype(dtype))  # [0, 1), then mapped onto [-l, l) in place
    out *= out.dtype.type(2 * limit)
    out -= out.dtype.type(limit)
    return out


def init_kernel(
    shape: tuple[int, ...], fan_in: int, fan_out: int, activation: str | None, rng: np.random.Generator,
    dtype: np.dtype | type = np.float32,
) -> np.ndarray:
    if activation in RELU_LIKE:
        return he_normal(shape, fan_in, rng, dtype)
    return glorot_uniform(shape, fan_in, fan_out, rng, dtype)
