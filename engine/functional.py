"""The seed document's three functions under their own names and arguments, vectorised.

Images are (H, W, C); batches are (N, H, W, C); conv filters are (kh, kw, in_channels, filters).
They call the same kernels as the layers (``engine.kernels``), so the seed's functions and the
trained network agree exactly; the seed's loop versions are kept in the tests as the oracle.
"""

from __future__ import annotations

import numpy as np

from engine.kernels.conv import conv2d_forward
from engine.kernels.pooling import pool_forward


def _as_batch(x: np.ndarray) -> tuple[np.ndarray, bool]:
    x = np.asarray(x)
    return (x[None], True) if x.ndim == 3 else (x, False)


def conv2d(input: np.ndarray, filters: np.ndarray, stride: int = 1, padding: int | str = 0) -> np.ndarray:
    """The seed's conv2d: (H, W, C) or (N, H, W, C) with filters (kh, kw, C, F), no bias."""
    x, single = _as_batch(input)
    out = conv2d_forward(x, np.asarray(filters, x.dtype), None, stride, padding)
    return out[0] if single else out


def max_pooling(input: np.ndarray, pool_size: int = 2, stride: int = 2) -> np.ndarray:
    """The seed's max_pooling over (H, W, C) or (N, H, W, C)."""
    x, single = _as_batch(input)
    out, _ = pool_forward(x, pool_size, stride, "valid", "max")
    return out[0] if single else out


def batch_normalization(
    input: np.ndarray, gamma: np.ndarray, beta: np.ndarray, epsilon: float = 1e-5
) -> np.ndarray:
    """The seed's batch_normalization: statistics over axis 0 (the seed's formula, unchanged).

    For a batch of feature maps (N, H, W, C) use the BatchNorm layer, which pools statistics over
    N, H and W per channel.
    """
    x = np.asarray(input)
    mean = x.mean(axis=0)
    var = x.var(axis=0)
    return gamma * ((x - mean) / np.sqrt(var + epsilon)) + beta
