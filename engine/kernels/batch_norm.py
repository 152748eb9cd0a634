"""Batch normalization over every axis but the channels, in cache-blocked passes."""

from __future__ import annotations

import numpy as np

from engine.kernels.blocks import Workspace, min_rows
from engine.parallel import parallel_for


class StatsReducer:
    """How the batch-norm kernels' per-channel sums over their part of the batch become the whole
    batch's. This one returns them as they are: the kernel's input is the whole batch. A training
    step split across processes passes one that adds the other part's sums (engine.batch_sync).

    Every sum is of values minus a per-channel ``reference`` near the mean (sums of z - r stay
    accurate for data far from zero); a reducer needs it to combine sums about different references.
    """

    def moments(self, reference: np.ndarray, count: int, first: np.ndarray, second: np.ndarray
                ) -> tuple[int, np.ndarray, np.ndarray]:
        """(count, sum(z - reference), sum((z - reference)^2)) per channel, over the whole batch."""
        return count, first, second

    def products(self, reference: np.ndarray, sum_g: np.ndarray, sum_gz: np.ndarray
                 ) -> tuple[np.ndarray, np.ndarray]:
        """(sum(g), sum(g (z - reference))) per channel, over the whole batch."""
        return sum_g, sum_gz


WHOLE_BATCH = StatsReducer()


def _channel_rows(x: np.ndarray) -> np.ndarray:
    """(..., C) as a C-contiguous (M, C) matrix (no copy when x is contiguous)."""
    return np.ascontiguousarray(x).reshape(-1, x.shape[-1])


def wide_rows(rows: np.ndarray) -> tuple[np.ndarray, int]:
    """(M, C) rows viewed as (M / r, r * C), r up to 32 and dividing M, and r: per-channel
    operations then run over long rows (numpy's loops are slow on rows of a few dozen values)."""
    m, c = rows.shape
    r = 1
    while r < 32 and m % (2 * r) == 0:
        r *= 2
    return rows.reshape(m // r, r * c), r


class WideSums:
    """Per-channel sums over blocks of wide rows (see wide_rows): of the rows, and of their products
    with a second array's rows. Kept as wide float64 vectors and folded to channels once, in
    ``totals``: per block, folding (and a fresh vector of ones) cost more than the sums themselves,
    tens of microseconds a block in numpy calls."""

    def __init__(self, channels: int, dtype: np.dtype) -> None:
        self.channels, self.dtype = channels, dtype
        self._ones = np.empty(0, dtype)
        self._first: dict[int, np.ndarray] = {}
        self._second: dict[int, np.ndarray] = {}

    def add(self, wide: np.ndarray, other: np.ndarray | None = None) -> None:
        """Add the column sums of ``wide`` and of wide * other (other: wide itself by default)."""
        if len(self._ones) < len(wide):
            self._ones = np.ones(len(wide), self.dtype)
        _accumulate(self._first, self._ones[: len(wide)] @ wide)
        _accumulate(self._second, np.einsum("ij,ij->j", wide, wide if other is None else other))

    def totals(self) -> tuple[np.ndarray, np.ndarray]:
        """(sum of the rows, sum of the products) per channel, float64."""
        return self._fold(self._first), self._fold(self._second)

    def _fold(self, sums: dict[int, np.ndarray]) -> np.ndarray:
        total = np.zeros(self.channels)
        for wide in sums.values():
            total += wide.reshape(-1, self.channels).sum(axis=0)
        return total


def _accumulate(sums: dict[int, np.ndarray], vector: np.ndarray) -> None:
    """Add a wide vector to the running sum of its width (blocks of different sizes may be viewed
    with different widths)."""
    running = sums.get(len(vector))
    if running is None:
        sums[len(vector)] = vector.astype(np.float64)
    else:
        running += vector


# Batch norm's passes read x (and grad) and write the output, with a scratch block beside them: blocks
# of 512 KB keep all of them in a 2 MB L2 cache between the passes. Measured against 4 MB blocks, 16 to
# 128 channels: backward 1.15-1.35x faster on one thread, about even on two (more numpy calls, more
# hand-offs of the interpreter lock).
BLOCK_BYTES = 512 << 10


def _rows_per_block(width: int, itemsize: int) -> int:
    return max(1, BLOCK_BYTES // (width * itemsize))


def _row_blocks(start: int, stop: int, step: int) -> zip:
    """(first, end) of the blocks of ``step`` rows (the last may be shorter) covering [start, stop)."""
    return zip(range(start, stop, step), [*range(start + step, stop, step), stop])


def repeated(vector: np.ndarray, r: int, dtype: np.dtype) -> np.ndarray:
    """A per-channel vector repeated r times, for a wide view's rows (see wide_rows); one call
    where np.tile makes several."""
    out = np.empty((r, len(vector)), dtype)
    out[...] = vector
    return out.reshape(-1)


def _folded(parts: list[np.ndarray], r: int, c: int) -> np.ndarray:
    """The threads' wide sums added and folded to (C,) per-channel sums."""
    total = parts[0] if len(parts) == 1 else sum(parts)
    return np.add.reduce(total.reshape(r, c), axis=0)


def batch_norm_forward(
    x: np.ndarray, gamma: np.ndarray, beta: np.ndarray, epsilon: float, workspace: Workspace | None = None,
    reducer: StatsReducer = WHOLE_BATCH,
) -> tuple[np.ndarray, tuple[np.ndarray, np.ndarray, np.ndarray, int]]:
    """Normalise over every axis but the last with the batch's own statistics.

    Returns (output shaped like x, (mean, inv_std, var, count)): per channel, and the number of
    values per channel they come from (the whole batch's, through ``reducer``, when x is a part).
    Two passes over the data, each thread taking a range of rows in cache-sized blocks: one for
    the sums (BLAS products with a ones vector), one writing x * scale + offset. The sums are of
    x minus a per-channel reference close to the mean (the mean of the first rows), so the
    variance E[d^2] - E[d]^2 does not cancel for data far from zero. Small layers run in tens of
    microseconds, so the per-channel arithmetic around the passes is kept to few numpy calls.
    """
    workspace = workspace if workspace is not None else Workspace()
    rows = _channel_rows(x)
    m, c = rows.shape
    dtype = x.dtype
    wide, r = wide_rows(rows)
    head = rows[:256]
    reference = np.add.reduce(head, axis=0)
    reference *= dtype.type(1 / len(head))
    wide_reference = repeated(reference, r, dtype)
    ones = workspace.array("ones", (len(wide),), dtype, fill=1)
    per_block = _rows_per_block(r * c, x.itemsize)

    def sums(part: int, start: int, stop: int) -> tuple[np.ndarray, np.ndarray]:
        first, second = np.zeros(r * c, dtype), np.zeros(r * c, dtype)
        scratch = workspace.array(f"shifted{part}", (per_block, r * c), dtype)
        for a, b in _row_blocks(start, stop, per_block):
            d = np.subtract(wide[a:b], wide_reference, out=scratch[: b - a])
            first += ones[a:b] @ d
            second += np.einsum("ij,ij->j", d, d)
        return first, second

    parts = parallel_for(len(wide), sums, min_items=min_rows(r * c))
    m, first, second = reducer.moments(reference, m, _folded([p[0] for p in parts], r, c),
                                       _folded([p[1] for p in parts], r, c))
    shift = np.divide(first, m, dtype=np.float64)
    var = np.maximum(np.divide(second, m, dtype=np.float64) - shift * shift, 0).astype(dtype)
    mean = reference + shift.astype(dtype)
    inv_std = 1 / np.sqrt(var + dtype.type(epsilon))
    scale = gamma * inv_std
    coefficients = np.empty((2, r, c), dtype)  # scale and offset, repeated along the wide rows
    coefficients[0] = scale
    coefficients[1] = beta - mean * scale
    wide_scale, wide_offset = coefficients.reshape(2, -1)
    out = np.empty_like(wide)

    def normalise(part: int, start: int, stop: int) -> None:
        for a, b in _row_blocks(start, stop, per_block):
            block = np.multiply(wide[a:b], wide_scale, out=out[a:b])
            block += wide_offset

    parallel_for(len(wide), normalise, min_items=min_rows(r * c))
    return out.reshape(x.shape), (mean, inv_std, var, m)


def batch_norm_backward(grad: np.ndarray, x: np.ndarray, gamma: np.ndarray, mean: np.ndarray,
                        inv_std: np.ndarray, workspace: Workspace | None = None, count: int | None = None,
                        reducer: StatsReducer = WHOLE_BATCH):
    """Returns (d_x, d_gamma, d_beta) for batch_norm_forward(x) in training mode (``count`` and
    ``reducer``: the forward's, when the statistics covered more than x; d_gamma and d_beta are
    then x's share).

    With x_hat = (x - mean) * inv_std: d_x = gamma * inv_std * (grad - d_beta / m - x_hat * d_gamma / m),
    the full derivative through the batch mean and variance. Two passes over grad and x in
    cache-sized blocks (x_hat is never stored): the sums, then one affine combination
    x * a + grad * b + c per channel.
    """
    workspace = workspace if workspace is not None else Workspace()
    g_wide, r = wide_rows(_channel_rows(grad))
    x_wide = _channel_rows(x).reshape(g_wide.shape)
    c = grad.shape[-1]
    dtype = grad.dtype
    m = len(g_wide) * r if count is None else count
    wide_mean = repeated(mean, r, dtype)
    ones = workspace.array("ones", (len(g_wide),), dtype, fill=1)
    per_block = _rows_per_block(r * c, grad.itemsize)

    def sums(part: int, start: int, stop: int) -> tuple[np.ndarray, np.ndarray]:
        d_beta, along = np.zeros(r * c, dtype), np.zeros(r * c, dtype)
        scratch = workspace.array(f"centred{part}", (per_block, r * c), dtype)
        for a, b in _row_blocks(start, stop, per_block):
            d_beta += ones[a:b] @ g_wide[a:b]
            along += np.einsum("ij,ij->j", g_wide[a:b], np.subtract(x_wide[a:b], wide_mean, out=scratch[: b - a]))
        return d_beta, along

    parts = parallel_for(len(g_wide), sums, min_items=min_rows(r * c))
    d_beta = _folded([p[0] for p in parts], r, c)
    along = _folded([p[1] for p in parts], r, c)
    d_gamma = along * inv_std
    # The combination takes the whole batch's sums (the same mean in every part).
    batch_beta, batch_along = reducer.products(mean, d_beta, along)
    scale = gamma * inv_std
    coefficients = np.empty((3, r, c), dtype)  # for x - mean, for grad, and the offset, repeated
    coefficients[0] = -scale * inv_std * batch_along * inv_std / m
    coefficients[1] = scale
    coefficients[2] = -scale * batch_beta / m
    along_centred, along_grad, offset = coefficients.reshape(3, -1)
    d_x = np.empty_like(g_wide)

    def combine(part: int, start: int, stop: int) -> None:
        scratch = workspace.array(f"centred{part}", (per_block, r * c), dtype)
        for a, b in _row_blocks(start, stop, per_block):
            # (x - mean) first: x * a - mean * a would cancel for data far from zero.
            block = np.subtract(x_wide[a:b], wide_mean, out=d_x[a:b])
            block *= along_centred
            block += np.multiply(g_wide[a:b], along_grad, out=scratch[: b - a])
            block += offset

    parallel_for(len(g_wide), combine, min_items=min_rows(r * c))
    return d_x.reshape(grad.shape), d_gamma, d_beta
