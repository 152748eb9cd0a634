"""Activation kernels: ReLU (alone, after a sum of inputs, or ending a convolution's block) and the
smooth ones, each split across the engine threads and worked through in cache-sized blocks, in place
on arrays the caller owns."""

from __future__ import annotations

from collections.abc import Callable, Sequence

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


def by_blocks(n: int, per_image: int, itemsize: int, work_on: Callable[[slice], None]) -> None:
    """work_on(images) for cache-sized slices of images [0, n) (``per_image`` values each), split
    across the engine threads: several passes over a block then cost one trip to memory."""
    step = max(1, SERIAL_BLOCK_BYTES // max(per_image * itemsize, 1))

    def work(part: int, start: int, stop: int) -> None:
        for a in range(start, stop, step):
            work_on(slice(a, min(a + step, stop)))

    parallel_for(n, work, min_items=min_rows(per_image))


def _blocks_like(x: np.ndarray, work_on: Callable[[slice], None]) -> None:
    by_blocks(len(x), x[0].size if len(x) else 1, x.itemsize, work_on)


def _output(x: np.ndarray, out: np.ndarray | None) -> np.ndarray:
    return np.empty(x.shape, x.dtype) if out is None else out


def tanh_forward(x: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """tanh(x), into ``out`` when given (x itself is allowed)."""
    out = _output(x, out)
    _blocks_like(x, lambda s: np.tanh(x[s], out=out[s]))
    return out


def tanh_backward(grad: np.ndarray, out: np.ndarray) -> np.ndarray:
    """grad * (1 - out^2)."""
    d_x = np.empty(grad.shape, grad.dtype)

    def work_on(s: slice) -> None:
        d = np.multiply(out[s], out[s], out=d_x[s])
        np.subtract(1, d, out=d)
        d *= grad[s]

    _blocks_like(grad, work_on)
    return d_x


def sigmoid_forward(x: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """1 / (1 + exp(-x)) as 0.5 * (1 + tanh(x / 2)): no overflow for large |x|. Into ``out`` when
    given (x itself is allowed)."""
    out = _output(x, out)

    def work_on(s: slice) -> None:
        o = np.multiply(x[s], 0.5, out=out[s])
        np.tanh(o, out=o)
        o += 1
        o *= 0.5

    _blocks_like(x, work_on)
    return out


def sigmoid_backward(grad: np.ndarray, out: np.ndarray) -> np.ndarray:
    """grad * out * (1 - out)."""
    d_x = np.empty(grad.shape, grad.dtype)

    def work_on(s: slice) -> None:
        d = np.subtract(1, out[s], out=d_x[s])
        d *= out[s]
        d *= grad[s]

    _blocks_like(grad, work_on)
    return d_x


def leaky_relu_forward(x: np.ndarray, alpha: float, out: np.ndarray | None = None) -> np.ndarray:
    """max(x, alpha * x) for a slope 0 <= alpha <= 1: x above zero, alpha * x below. Into ``out``
    when given (x itself is allowed)."""
    out = _output(x, out)

    def work_on(s: slice) -> None:
        np.maximum(x[s], np.multiply(x[s], x.dtype.type(alpha)), out=out[s])

    _blocks_like(x, work_on)
    return out


def leaky_relu_backward(grad: np.ndarray, out: np.ndarray, alpha: float) -> np.ndarray:
    """grad where out > 0 (exactly where x > 0), alpha * grad elsewhere. The slope is made as
    alpha + (1 - alpha) * (out > 0): numpy's masked copies (np.where, where=) run ten times slower
    than arithmetic on a random mask."""
    d_x = np.empty(grad.shape, grad.dtype)
    dtype = grad.dtype.type

    def work_on(s: slice) -> None:
        d = np.multiply(out[s] > 0, dtype(1 - alpha), out=d_x[s])
        d += dtype(alpha)
        d *= grad[s]

    _blocks_like(grad, work_on)
    return d_x


def elu_forward(x: np.ndarray, alpha: float, out: np.ndarray | None = None) -> np.ndarray:
    """x above zero, alpha * (exp(x) - 1) below: alpha * expm1(min(x, 0)) + max(x, 0). Into ``out``
    when given (x itself is allowed)."""
    out = _output(x, out)

    def work_on(s: slice) -> None:
        positive = np.maximum(x[s], 0)
        o = np.minimum(x[s], 0, out=out[s])
        np.expm1(o, out=o)
        o *= x.dtype.type(alpha)
        o += positive

    _blocks_like(x, work_on)
    return out


def elu_backward(grad: np.ndarray, out: np.ndarray, alpha: float) -> np.ndarray:
    """grad where out > 0 (exactly where x > 0), grad * (out + alpha) elsewhere (the derivative of
    alpha * (exp(x) - 1) is alpha * exp(x)): the slope min(out, 0) + alpha + (1 - alpha) * (out > 0)."""
    d_x = np.empty(grad.shape, grad.dtype)
    dtype = grad.dtype.type

    def work_on(s: slice) -> None:
        d = np.minimum(out[s], 0, out=d_x[s])
        d += dtype(alpha)
        d += np.multiply(out[s] > 0, dtype(1 - alpha))
        d *= grad[s]

    _blocks_like(grad, work_on)
    return d_x
