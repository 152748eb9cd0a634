"""ReLU kernels that work in place on arrays the caller owns."""

from __future__ import annotations

import numpy as np

from engine.kernels.blocks import min_rows
from engine.parallel import parallel_for


def relu_forward(x: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
    """max(x, 0), split across the engine threads; ``mask`` (bool, like x) receives output > 0."""
    out = np.empty(x.shape, x.dtype)

    def work(part: int, start: int, stop: int) -> None:
        np.maximum(x[start:stop], 0, out=out[start:stop])
        if mask is not None:
            np.greater(out[start:stop], 0, out=mask[start:stop])

    parallel_for(len(x), work, min_items=min_rows(x[0].size if len(x) else 1))
    return out


def relu_backward(grad: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """grad where mask (the ReLU output > 0, or the output itself) is true, else 0."""
    d_x = np.empty(grad.shape, grad.dtype)

    def work(part: int, start: int, stop: int) -> None:
        keep = mask[start:stop]
        np.multiply(grad[start:stop], keep if keep.dtype == bool else keep > 0, out=d_x[start:stop])

    parallel_for(len(grad), work, min_items=min_rows(grad[0].size if len(grad) else 1))
    return d_x
