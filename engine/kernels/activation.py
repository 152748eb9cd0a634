"""ReLU kernels (alone, after a sum of inputs, or ending a convolution's block) that work in place on
arrays the caller owns."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from engine.kernels.blocks import SERIAL_BLOCK_BYTES, min_rows
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


def finish_block(out: np.ndarray, bias: np.ndarray | None, relu: bool, mask: np.ndarray | None) -> None:
    """A block of convolution output, in place: plus ``bias``, then ReLU; ``mask`` (bool, like the
    block) receives output > 0."""
    if bias is not None:
        out += bias
    if relu:
        np.maximum(out, 0, out=out)
    if mask is not None:
        np.greater(out, 0, out=mask)


def relu_backward(grad: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """grad where mask (the ReLU output > 0, or the output itself) is true, else 0."""
    d_x = np.empty(grad.shape, grad.dtype)

    def work(part: int, start: int, stop: int) -> None:
        keep = mask[start:stop]
        np.multiply(grad[start:stop], keep if keep.dtype == bool else keep > 0, out=d_x[start:stop])

    parallel_for(len(grad), work, min_items=min_rows(grad[0].size if len(grad) else 1))
    return d_x


def add_relu_forward(xs: Sequence[np.ndarray], mask: np.ndarray | None = None) -> np.ndarray:
    """max(x1 + x2 + ..., 0) for inputs of one shape, split across the engine threads; ``mask``
    (bool, like the output) receives output > 0. Each thread works through its images in blocks
    that stay in cache between the sum and the ReLU."""
    out = np.empty(xs[0].shape, np.result_type(*xs))
    per_image = out[0].size if len(out) else 1
    step = max(1, SERIAL_BLOCK_BYTES // (per_image * out.itemsize))

    def work(part: int, start: int, stop: int) -> None:
        for a in range(start, stop, step):
            b = min(a + step, stop)
            block = np.add(xs[0][a:b], xs[1][a:b], out=out[a:b])
            for x in xs[2:]:
                block += x[a:b]
            np.maximum(block, 0, out=block)
            if mask is not None:
                np.greater(block, 0, out=mask[a:b])

    parallel_for(len(out), work, min_items=min_rows(per_image))
    return out
