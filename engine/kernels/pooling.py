"""Max and average pooling over (N, H, W, C): side-by-side max windows here, the rest in window_pool.py."""

from __future__ import annotations

import numpy as np

from engine.kernels.blocks import images_per_block
from engine.kernels.im2col import conv_pads
from engine.kernels.window_pool import (
    avg_pool_backward,
    avg_pool_forward,
    first_true,
    max_pool_backward,
    max_pool_forward,
)
from engine.parallel import parallel_for
from engine.shapes import output_size


def pool_forward(
    x: np.ndarray, pool: int, stride: int, padding: str | int, mode: str, training: bool = False,
    relu: bool = False, count_include_pad: bool = True,
) -> tuple[np.ndarray, object]:
    """Max or average pooling of (N, H, W, C); returns the output and what backward needs.

    Average pooling counts padded zeros in the divisor by default (ONNX count_include_pad=1,
    PyTorch's default); with ``count_include_pad`` False each window is divided by the number of
    real pixels it covers (ONNX's default, Keras and TensorFlow). Max pooling pads with -inf so
    padding never wins. With ``training`` max pooling records which input wins each window while
    the data is in cache (backward then never reads x); otherwise backward works that out from x.
    Windows side by side (stride == pool_size, no padding) take the tiled kernels below, others
    engine/kernels/window_pool.py. ``relu`` (tiled max pooling only) pools max(x, 0) without making
    it: a ReLU layer before the pooling, fused.
    """
    if relu and not (mode == "max" and stride == pool and not any(conv_pads(*x.shape[1:3], pool, pool, stride,
                                                                            padding))):
        raise ValueError("relu fusion needs tiled max pooling (stride == pool_size, no padding)")
    n, h, w, c = x.shape
    pads = conv_pads(h, w, pool, pool, stride, padding)
    ho = output_size(h, pool, stride, pads[0], pads[1])
    wo = output_size(w, pool, stride, pads[2], pads[3])
    tiled = stride == pool and not any(pads)
    if tiled and mode == "max":
        out, winners = _tiled_max(x, pool, ho, wo, keep_winners=training, relu=relu)
        return out, (x.shape, pads, ho, wo, tiled, None if training else x, winners, out if relu else None)
    if mode == "avg":
        return avg_pool_forward(x, pool, stride, pads, count_include_pad), (x.shape, pads, ho, wo, tiled,
                                                                                count_include_pad)
    out, winners = max_pool_forward(x, pool, stride, pads, keep_winners=training)
    return out, (x.shape, pads, ho, wo, tiled, None if training else x, winners)


def _tap(x: np.ndarray, i: int, j: int, pool: int, ho: int, wo: int) -> np.ndarray:
    """The (N, Ho, Wo, C) strided view of tap (i, j) of every non-overlapping pool x pool window."""
    return x[:, i : i + pool * (ho - 1) + 1 : pool, j : j + pool * (wo - 1) + 1 : pool, :]


def winner_planes(pool: int) -> int:
    """How many boolean planes max_pool_block records per window: 3 choices for 2x2 windows (first
    or second column in each row, then first or second row), else one mask per tap."""
    return 3 if pool == 2 else pool * pool


def max_pool_block(xs: np.ndarray, pool: int, out: np.ndarray, winners: np.ndarray | None) -> None:
    """Tiled max pooling of a few images xs (n, H, W, C) into out (n, Ho, Wo, C), recording in
    winners ((winner_planes(pool), n, Ho, Wo, C) bool) which input wins each window: the first
    maximum in row-major order (PyTorch's choice), i.e. the first window row whose maximum equals
    the output, then that row's first tap equal to it. Ties, common after ReLU, route once."""
    ho, wo = out.shape[1:3]
    max_pool_taps([_tap(xs, i, j, pool, ho, wo) for i in range(pool) for j in range(pool)], pool, out, winners)


def record_winners(taps: list[np.ndarray], row_maxima: list[np.ndarray], out: np.ndarray, pool: int,
                   winners: np.ndarray) -> None:
    """Which tap wins each window, into winners (pool * pool, n, Ho, Wo, C) bool: the first window
    row whose maximum (row_maxima[i]) equals the window's (out), then that row's first tap
    (taps[i * pool + j]) equal to it. Ties, common after ReLU, route once."""
    if pool == 1:
        winners[0] = True
        return
    rows = first_true([row_max == out for row_max in row_maxima[:-1]])
    for i, row_max in enumerate(row_maxima):
        hits = first_true([taps[i * pool + j] == row_max for j in range(pool - 1)])
        for j, hit in enumerate(hits):
            np.logical_and(hit, rows[i], out=winners[i * pool + j])


def max_pool_taps(taps: list[np.ndarray], pool: int, out: np.ndarray, winners: np.ndarray | None) -> None:
    """max_pool_block from the windows' taps: taps[i * pool + j] (n, Ho, Wo, C) holds tap (i, j)
    of every window (strided views of the input, or contiguous slabs of a tap-major layout)."""
    if pool == 2:
        _max_pool_2x2(*taps, out, winners)
        return
    row_maxima = []
    for i in range(pool):
        row_max = taps[i * pool].copy() if pool == 1 else None
        for j in range(1, pool):
            earlier = taps[i * pool] if row_max is None else row_max
            row_max = np.maximum(earlier, taps[i * pool + j], out=row_max)
        row_maxima.append(row_max)
    np.copyto(out, row_maxima[0])
    for row_max in row_maxima[1:]:
        np.maximum(out, row_max, out=out)
    if winners is not None:
        record_winners(taps, row_maxima, out, pool, winners)


def _max_pool_2x2(t00: np.ndarray, t01: np.ndarray, t10: np.ndarray, t11: np.ndarray, out: np.ndarray,
                  winners: np.ndarray | None) -> None:
    """max_pool_taps for 2x2 windows: three strict comparisons record the winner (a later tap
    wins only when greater, so ties go to the first), instead of one mask per tap."""
    lower = np.maximum(t10, t11)
    np.maximum(t00, t01, out=out)
    if winners is not None:
        np.greater(t01, t00, out=winners[0])
        np.greater(t11, t10, out=winners[1])
        np.greater(lower, out, out=winners[2])
    np.maximum(out, lower, out=out)


def route_block(grad: np.ndarray, winners: np.ndarray, pool: int, d: np.ndarray) -> None:
    """Each window's gradient (grad (n, Ho, Wo, C)) to the input that won it, into d (n, H, W, C)."""
    ho, wo = grad.shape[1:3]
    # Rows and columns beyond the last whole window get no gradient.
    if d.shape[1] > ho * pool:
        d[:, ho * pool :] = 0
    if d.shape[2] > wo * pool:
        d[:, :, wo * pool :] = 0
    route_taps(grad, winners, pool, [_tap(d, i, j, pool, ho, wo) for i in range(pool) for j in range(pool)])


def route_taps(grad: np.ndarray, winners: np.ndarray, pool: int, taps: list[np.ndarray]) -> None:
    """route_block into the windows' taps: taps[i * pool + j] (n, Ho, Wo, C) receives tap (i, j)'s
    gradient (strided views of the input gradient, or contiguous slabs of a tap-major layout)."""
    if pool == 2:
        # Split the gradient between the rows, then each row's share between its two taps:
        # the second tap gets share * choice, the first what is left.
        lower = np.multiply(grad, winners[2])
        upper = np.subtract(grad, lower)
        for i, share, second in ((0, upper, winners[0]), (1, lower, winners[1])):
            right = np.multiply(share, second, out=taps[2 * i + 1])
            np.subtract(share, right, out=taps[2 * i])
        return
    for i in range(pool * pool):
        np.multiply(grad, winners[i], out=taps[i])


def _tiled_max(x: np.ndarray, pool: int, ho: int, wo: int, keep_winners: bool,
               relu: bool = False) -> tuple[np.ndarray, np.ndarray | None]:
    """Max pooling with stride == pool: element-wise maxima of strided taps, no window copies.

    Returns the output (N, Ho, Wo, C) and, with ``keep_winners``, the winner planes of
    max_pool_block. With ``relu`` the output is rectified, which is pooling
    max(x, 0): max and ReLU commute.
    """
    n, h, w, c = x.shape
    out = np.empty((n, ho, wo, c), x.dtype)
    winners = np.empty((winner_planes(pool), n, ho, wo, c), bool) if keep_winners else None
    block = images_per_block(h * w * c * x.itemsize, n)

    def work(part: int, start: int, stop: int) -> None:
        for a in range(start, stop, block):
            b = min(a + block, stop)
            max_pool_block(x[a:b], pool, out[a:b], None if winners is None else winners[:, a:b])
            if relu:
                np.maximum(out[a:b], 0, out=out[a:b])

    parallel_for(n, work)
    return out, winners


def _tiled_max_backward(grad: np.ndarray, winners: np.ndarray, input_shape: tuple[int, ...], pool: int,
                        relu_output: np.ndarray | None = None) -> np.ndarray:
    """Each window's gradient to the input that won it (winners from _tiled_max); with
    ``relu_output`` (a rectified output) the gradient is first zeroed where it is 0."""
    dx = np.empty(input_shape, grad.dtype)

    def work(part: int, start: int, stop: int) -> None:
        g = grad[start:stop]
        if relu_output is not None:
            g = g * (relu_output[start:stop] > 0)
        route_block(g, winners[:, start:stop], pool, dx[start:stop])

    parallel_for(len(grad), work)
    return dx


def pool_backward(grad: np.ndarray, cache: tuple, pool: int, stride: int, mode: str) -> np.ndarray:
    """Gradient of pool_forward with respect to its input."""
    input_shape, pads, ho, wo, tiled = cache[:5]
    if tiled and mode == "max":
        x, winners, relu_output = cache[5:8]
        if winners is None:
            winners = _tiled_max(x, pool, ho, wo, keep_winners=True)[1]
        return _tiled_max_backward(grad, winners, input_shape, pool, relu_output)
    if mode == "avg":
        return avg_pool_backward(grad, input_shape, pool, stride, pads, cache[5])
    x, winners = cache[5:7]
    if winners is None:
        winners = max_pool_forward(x, pool, stride, pads, keep_winners=True)[1]
    return max_pool_backward(grad, winners, input_shape, pool, stride, pads)
