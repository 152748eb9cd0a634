"""Conv2D -> BatchNorm [-> ReLU] (no pooling after it) as one kernel, forward and backward.

The plain layers write the convolution's output, read it for the batch statistics, read it again
to normalise, then rectify in a pass of their own; backward runs ReLU's mask, batch norm's two
passes and writes batch norm's input gradient before the convolution reads it. Here the
statistics are summed from each block of the convolution's output while it is in cache,
normalisation and ReLU are one pass, and backward forms the convolution's output gradient block
by block in cache. The convolution output z is kept between the passes when recomputing it would
cost more (wide im2col rows); for a narrow first layer (no input gradient) it is never stored:
forward recomputes it block by block, and backward takes batch norm's terms through the small
Gram matrix of the im2col rows.

As in engine/kernels/conv_batch_norm.py, z is computed minus a per-channel reference near its
mean (the first image's mean in training, the running mean in inference), taken off the bias row
of the kernel matrix, so that sums of squares do not cancel for data far from zero.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from engine.kernels.batch_norm import WHOLE_BATCH, StatsReducer, WideSums, wide_rows
from engine.kernels.blocks import Workspace, min_rows
from engine.kernels.conv import Convolution, kernel_matrix
from engine.kernels.conv_batch_norm import RECOMPUTE_WIDTH, Tiles
from engine.kernels.products import add_transposed_product, product_into
from engine.parallel import parallel_for


@dataclass
class ConvBatchNormReluCache:
    """What backward needs from forward; z means the convolution output minus the reference."""

    matrix: np.ndarray  # (kh*kw*C + 1, F) the kernel and bias matrix that computes z
    mean: np.ndarray  # (F,) mean of z used for normalising: the batch's, or 0 in inference
    inv_std: np.ndarray  # (F,) 1 / sqrt(variance + epsilon)
    out: np.ndarray  # (N, Ho, Wo, F) the step's output (with ReLU, its sign is ReLU's mask)
    training: bool  # batch statistics (their gradient flows back) or running ones
    z: np.ndarray | None  # (N * Ho * Wo, F) z itself when kept; else recomputed when needed
    reference: np.ndarray  # (F,) what z is minus
    count: int  # values per channel behind the batch statistics (the whole batch's, see StatsReducer)
    reducer: StatsReducer  # the forward's: backward's sums cover the same batch
    relu: bool = True  # whether a ReLU follows batch norm


def _z(conv: Convolution, part: int, cols: np.ndarray, matrix: np.ndarray, kept: np.ndarray | None,
       rows: slice) -> np.ndarray:
    """A block's z: from ``kept``, or recomputed into thread ``part``'s scratch."""
    if kept is not None:
        return kept[rows]
    return product_into(cols, matrix, conv.scratch("z", part, conv.f)[: len(cols)])


def conv_bn_relu_forward(
    x: np.ndarray, kernel: np.ndarray, bias: np.ndarray | None, stride: int, padding: str | int,
    gamma: np.ndarray, beta: np.ndarray, epsilon: float, moving: tuple[np.ndarray, np.ndarray] | None = None,
    workspace: Workspace | None = None, keep_z: bool = True, reducer: StatsReducer = WHOLE_BATCH,
    relu: bool = True,
) -> tuple[np.ndarray, ConvBatchNormReluCache, tuple[np.ndarray, np.ndarray] | None]:
    """relu(batch_norm(conv(x))), or batch_norm(conv(x)) without ``relu``: (N, Ho, Wo, F).

    With ``moving`` = (running mean, running variance) batch norm uses those (inference);
    without, the batch's own statistics (through ``reducer`` when x is part of the batch),
    returned as (mean, biased variance) for the running averages. ``keep_z``: keep the
    convolution output for backward even where it is cheap to recompute (a backward with the
    input gradient needs it). Returns (output, cache, batch statistics or None).
    """
    # Always a bias row (zeros when the layer has none): it also carries the reference.
    conv = Convolution(x.shape, kernel.shape, stride, padding, True, x.dtype, workspace)
    dtype, f = x.dtype, conv.f
    matrix = kernel_matrix(kernel, np.zeros(f, dtype) if bias is None else bias, conv.workspace).copy()
    training = moving is None
    if training:
        reference = (conv.cols(0, x[:1]) @ matrix).mean(axis=0, dtype=np.float64).astype(dtype)
    else:
        reference = moving[0].astype(dtype)
    matrix[-1] -= reference
    keep = training and (keep_z or conv.width > RECOMPUTE_WIDTH)
    kept = np.empty((conv.n * conv.rows, f), dtype) if keep else None
    out = np.empty((conv.n * conv.rows, f), dtype)

    def statistics(part: int, start: int, stop: int) -> tuple[np.ndarray, np.ndarray]:
        sums = WideSums(f, dtype)
        for a, b, rows in conv.blocks(start, stop):
            target = conv.scratch("z", part, f)[: (b - a) * conv.rows] if kept is None else kept[rows]
            sums.add(wide_rows(product_into(conv.cols(part, x[a:b]), matrix, target))[0])
        return sums.totals()

    m = conv.n * conv.rows
    if training:
        parts = parallel_for(conv.n, statistics)
        m, first, second = reducer.moments(reference, m, sum(first for first, _ in parts),
                                           sum(second for _, second in parts))
        mean = first / m
        var = np.maximum(second / m - mean * mean, 0)
        batch_stats = (mean + reference, var)
    else:
        mean, var = np.zeros(f, dtype), moving[1]
        batch_stats = None
    inv_std = 1 / np.sqrt(var + epsilon)
    scale = gamma * inv_std
    offset = beta - mean * scale

    tiles = Tiles(dtype, scale=scale, offset=offset)
    # In inference batch norm is a fixed per-channel map of z, so it folds into the kernel matrix:
    # scale times each column, offset added to the bias row. One product then gives the output.
    folded = None
    if not training:
        folded = (matrix * scale.astype(dtype)).astype(dtype)
        folded[-1] += offset.astype(dtype)

    def normalise(part: int, start: int, stop: int) -> None:
        for a, b, rows in conv.blocks(start, stop):
            if folded is not None:
                block = product_into(conv.cols(part, x[a:b]), folded, out[rows])
                if relu:
                    np.maximum(block, 0, out=block)
                continue
            cols = None if kept is not None else conv.cols(part, x[a:b])
            wide, _ = wide_rows(_z(conv, part, cols, matrix, kept, rows))
            block = np.multiply(wide, tiles("scale", wide), out=out[rows].reshape(wide.shape))
            block += tiles("offset", wide)
            if relu:
                np.maximum(block, 0, out=block)

    parallel_for(conv.n, normalise)
    cache = ConvBatchNormReluCache(matrix, mean.astype(dtype), inv_std.astype(dtype),
                                   out.reshape(conv.n, conv.ho, conv.wo, f), training, kept, reference, m,
                                   reducer, relu)
    return cache.out, cache, batch_stats


def conv_bn_relu_backward(
    grad: np.ndarray, cache: ConvBatchNormReluCache, x: np.ndarray, kernel: np.ndarray, with_bias: bool,
    stride: int, padding: str | int, gamma: np.ndarray, need_input_grad: bool = True,
    workspace: Workspace | None = None,
) -> tuple[np.ndarray | None, np.ndarray, np.ndarray | None, np.ndarray, np.ndarray]:
    """Gradients (d_input or None, d_kernel, d_bias or None, d_gamma, d_beta) of the forward step
    for grad (N, Ho, Wo, F)."""
    conv = Convolution(x.shape, kernel.shape, stride, padding, True, grad.dtype, workspace)
    dtype, f, rows_total = grad.dtype, conv.f, conv.n * conv.rows
    grad_rows, out_rows = np.ascontiguousarray(grad).reshape(rows_total, f), cache.out.reshape(rows_total, f)
    m = cache.count
    # grad where ReLU passed it, filled block by block below (grad itself without a ReLU)
    masked = np.empty((rows_total, f), dtype) if cache.relu else grad_rows

    def mask(rows: slice) -> np.ndarray:
        if not cache.relu:
            return grad_rows[rows]
        return np.multiply(grad_rows[rows], out_rows[rows] > 0, out=masked[rows])
    scale = gamma.astype(dtype) * cache.inv_std
    d_x = np.empty(x.shape, dtype) if need_input_grad else None
    matrix = cache.matrix

    def finish(d_matrix: np.ndarray, d_gamma: np.ndarray, d_beta: np.ndarray):
        d_kernel, d_bias = conv.kernel_gradients([d_matrix], True)
        return d_x, d_kernel, d_bias if with_bias else None, d_gamma.astype(dtype), d_beta.astype(dtype)

    if cache.training and d_x is None and cache.z is None:
        # A first layer: cols^T dz = scale * cols^T g + along * (cols^T cols) matrix + constant * cols^T 1,
        # so one pass over the blocks collects cols^T g and the Gram matrix, and z is never formed.
        def products(part: int, start: int, stop: int) -> tuple[np.ndarray, np.ndarray]:
            d_rows = np.zeros((conv.width, f), dtype)
            gram = np.zeros((conv.width, conv.width), dtype)
            for a, b, rows in conv.blocks(start, stop):
                cols = conv.cols(part, x[a:b])
                add_transposed_product(cols, mask(rows), d_rows)
                add_transposed_product(cols, cols, gram)
            return d_rows, gram

        parts = parallel_for(conv.n, products)
        d_rows, gram = sum(p[0] for p in parts), sum(p[1] for p in parts)
        d_beta = d_rows[-1]  # the ones column: the sums of g
        gz = (matrix * d_rows).sum(axis=0)
        d_gamma = (gz - cache.mean * d_beta) * cache.inv_std
        # The whole batch's sums (see StatsReducer); d_gamma and d_beta stay this part's.
        batch_beta, batch_gz = cache.reducer.products(cache.reference, d_beta, gz)
        along = -scale * cache.inv_std * (batch_gz - cache.mean * batch_beta) * cache.inv_std / m
        constant = -scale * batch_beta / m - along * cache.mean
        return finish(d_rows * scale + (gram @ matrix) * along + np.outer(gram[:, -1], constant), d_gamma, d_beta)

    def sums(part: int, start: int, stop: int) -> tuple[np.ndarray, np.ndarray]:
        """(sum of g, sum of g * z) per channel over this part's blocks."""
        totals = WideSums(f, dtype)
        for a, b, rows in conv.blocks(start, stop):
            cols = None if cache.z is not None else conv.cols(part, x[a:b])
            wide_z, _ = wide_rows(_z(conv, part, cols, matrix, cache.z, rows))
            wide_g, _ = wide_rows(mask(rows))
            totals.add(wide_g, wide_z)
        return totals.totals()

    parts = parallel_for(conv.n, sums, min_items=min_rows(conv.rows * f))
    d_beta = sum(p[0] for p in parts)
    # x_hat = (z - mean) * inv_std; z is centred near 0, so the difference does not cancel.
    d_gamma = (sum(p[1] for p in parts) - cache.mean * d_beta) * cache.inv_std
    # Through the batch mean and variance every z also gets along * z + constant (training only),
    # from the whole batch's sums (see StatsReducer); d_gamma and d_beta stay this part's.
    if cache.training:
        batch_beta, batch_gz = cache.reducer.products(cache.reference, d_beta, sum(p[1] for p in parts))
        along = -scale * cache.inv_std * (batch_gz - cache.mean * batch_beta) * cache.inv_std / m
        constant = -scale * batch_beta / m - along * cache.mean
    else:
        along, constant = np.zeros(f), np.zeros(f)
    kernel_t = conv.backward_kernel(kernel)
    tiles = Tiles(dtype, scale=scale, along=along, constant=constant)
    need_cols = (cache.training and cache.z is None) or conv.backward_needs_cols(d_x is not None)

    def work(part: int, start: int, stop: int) -> np.ndarray:
        d_matrix = np.zeros((conv.width, f), dtype)
        for a, b, rows in conv.blocks(start, stop):
            cols = conv.cols(part, x[a:b]) if need_cols else None
            dz = conv.scratch("dz", part, f)[: (b - a) * conv.rows]
            wide_dz, _ = wide_rows(dz)
            np.multiply(masked[rows].reshape(wide_dz.shape), tiles("scale", wide_dz), out=wide_dz)
            if cache.training:
                wide_z, _ = wide_rows(_z(conv, part, cols, matrix, cache.z, rows))
                term = np.multiply(wide_z, tiles("along", wide_z),
                                   out=conv.scratch("term", part, f)[: len(dz)].reshape(wide_z.shape))
                term += tiles("constant", wide_z)
                wide_dz += term
            conv.backward_block(part, x[a:b], dz, kernel_t, d_matrix, None if d_x is None else d_x[a:b], cols)
        return d_matrix

    d_matrices = parallel_for(conv.n, work)
    return finish(sum(d_matrices[1:], d_matrices[0]), d_gamma, d_beta)
