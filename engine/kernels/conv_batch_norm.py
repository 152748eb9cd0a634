"""Conv2D -> BatchNorm -> ReLU -> tiled max pooling as one kernel, forward and backward.

The plain layers write and re-read the full-size convolution output several times (batch
statistics, normalisation, pooling, and again in backward). Here each block of the convolution's
output is pooled and summed for the batch statistics while it is in cache, and only the pooled
values are normalised. Two facts make that exact:

* Normalisation is a per-channel map y = scale * z + offset with scale = gamma / std. Where
  gamma >= 0 it is increasing, so max pooling commutes with it (as it does with ReLU). Channels
  with gamma < 0 are computed negated (their kernel and bias columns flipped): normalising -z with
  |gamma| is the same function, and every channel's map is then increasing. (At gamma == 0 every
  window ties; the winner is then the largest z, the gradient's limit for gamma -> 0+.)
* Batch norm's gradient needs x_hat where the pooled gradient lands, at each window's winner:
  there it is the pooled value itself.

Backward routes the pooled gradient block by block, adds batch norm's terms through the batch
mean and variance (an affine function of the convolution output: recomputed from the im2col
matrix backward rebuilds anyway, or kept from forward when that product is costly, or for a
first layer folded into the kernel gradient through the im2col Gram matrix) and goes on with the
convolution's own backward while the block is in cache.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from engine.kernels.batch_norm import WHOLE_BATCH, StatsReducer, WideSums, repeated, wide_rows
from engine.kernels.blocks import Workspace, min_rows
from engine.kernels.conv import Convolution, kernel_matrix
from engine.kernels.pooling import max_pool_block, route_block, winner_planes
from engine.kernels.products import add_transposed_product, product_into
from engine.parallel import parallel_for


@dataclass
class ConvBatchNormCache:
    """What backward needs from forward, about z': the convolution output with the channels of
    negative gamma negated, minus a per-channel reference near its mean (the first image's mean in
    training, the running mean in inference), so that sums of squares and products do not cancel
    for data far from zero."""

    matrix: np.ndarray  # (kh*kw*C + 1, F) the kernel and bias matrix that computes z'
    signs: np.ndarray  # (F,) -1 where gamma < 0, else 1
    mean: np.ndarray  # (F,) mean of z' used for normalising: the batch's, or 0 in inference
    inv_std: np.ndarray  # (F,) 1 / sqrt(variance + epsilon)
    pooled: np.ndarray  # (N, Ho // pool, Wo // pool, F) max-pooled z'
    out: np.ndarray  # (N, Ho // pool, Wo // pool, F) the step's output, relu(scale * pooled + offset)
    winners: np.ndarray | None  # pooling's winner planes (max_pool_block); None after inference
    training: bool  # batch statistics (their gradient flows back) or running ones
    z: np.ndarray | None  # (N * Ho * Wo, F) z' itself when kept (training, costly to recompute)
    reference: np.ndarray  # (F,) what z' is minus, in z's sign-flipped coordinates
    count: int  # values per channel behind the batch statistics (the whole batch's, see StatsReducer)
    reducer: StatsReducer  # the forward's: backward's sums cover the same batch


# Backward needs z' again (training only). Recomputing it from the im2col matrix that backward
# rebuilds anyway costs one matrix product, kh*kw*C + 1 multiply-adds per value; keeping it costs
# writing and reading it once. Measured on the seed network with batch norm: recomputing wins
# for its first convolution (10 multiply-adds per value), keeping for the second (289).
RECOMPUTE_WIDTH = 32


def tiled(vector: np.ndarray, wide: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """A per-channel vector repeated along a wide view's rows (see wide_rows)."""
    return repeated(vector, wide.shape[1] // len(vector), dtype)


class Tiles:
    """Per-channel vectors of one kernel call, each tiled (see ``tiled``) once per row width rather
    than once per block: blocks of a few images are many, and np.tile costs microseconds a call."""

    def __init__(self, dtype: np.dtype, **vectors: np.ndarray) -> None:
        self.dtype, self.vectors = dtype, vectors
        self.made: dict[tuple[str, int], np.ndarray] = {}

    def __call__(self, name: str, wide: np.ndarray) -> np.ndarray:
        key = (name, wide.shape[1])
        tile = self.made.get(key)
        if tile is None:  # two threads may both make it: the same values either way
            tile = self.made[key] = tiled(self.vectors[name], wide, self.dtype)
        return tile


def _pooled_parts(n: int, width: int, work: Callable[[int, int, int], Any]) -> list:
    """Run work, a few passes over a pooled-size array of ``width`` values per image, over its images."""
    return parallel_for(n, work, min_items=min_rows(4 * width))


def conv_bn_relu_maxpool_forward(
    x: np.ndarray, kernel: np.ndarray, bias: np.ndarray | None, stride: int, padding: str | int, pool: int,
    gamma: np.ndarray, beta: np.ndarray, epsilon: float, moving: tuple[np.ndarray, np.ndarray] | None = None,
    workspace: Workspace | None = None, keep_winners: bool = True, reducer: StatsReducer = WHOLE_BATCH,
) -> tuple[np.ndarray, ConvBatchNormCache, tuple[np.ndarray, np.ndarray] | None]:
    """relu(batch_norm(conv(x))) max-pooled with stride == pool: (N, Ho // pool, Wo // pool, F).

    With ``moving`` = (running mean, running variance) batch norm uses those (inference);
    without, the batch's own statistics (through ``reducer`` when x is part of the batch), which
    are returned as (mean, biased variance) for the running averages. Returns (output, cache for
    backward, batch statistics or None).
    """
    # Always a bias row (zeros when the layer has none): it also carries the reference.
    conv = Convolution(x.shape, kernel.shape, stride, padding, True, x.dtype, workspace)
    dtype, f = x.dtype, conv.f
    signs = np.where(gamma < 0, -1, 1).astype(dtype)
    matrix = kernel_matrix(kernel, np.zeros(f, dtype) if bias is None else bias, conv.workspace) * signs
    training = moving is None
    # z' is computed minus a per-channel reference near its mean (taken off the bias row, so it
    # costs no pass): the running mean in inference, the first image's mean in training. Sums of
    # squares and products with z' then do not cancel for data far from zero.
    if training:
        reference = (conv.cols(0, x[:1]) @ matrix).mean(axis=0, dtype=np.float64).astype(dtype)
    else:
        reference = (moving[0] * signs).astype(dtype)
    matrix[-1] -= reference
    po, qo = conv.ho // pool, conv.wo // pool
    pooled = np.empty((conv.n, po, qo, f), dtype)
    winners = np.empty((winner_planes(pool), conv.n, po, qo, f), bool) if keep_winners else None
    kept = np.empty((conv.n * conv.rows, f), dtype) if training and conv.width > RECOMPUTE_WIDTH else None

    def work(part: int, start: int, stop: int) -> tuple[np.ndarray, np.ndarray]:
        sums = WideSums(f, dtype)
        for a, b, rows in conv.blocks(start, stop):
            target = conv.scratch("z", part, f)[: (b - a) * conv.rows] if kept is None else kept[rows]
            z = product_into(conv.cols(part, x[a:b]), matrix, target)
            max_pool_block(z.reshape(b - a, conv.ho, conv.wo, f), pool, pooled[a:b],
                           None if winners is None else winners[:, a:b])
            if training:
                sums.add(wide_rows(z)[0])
        return sums.totals()

    parts = parallel_for(conv.n, work)
    m = conv.n * conv.rows
    if training:
        m, first, second = reducer.moments(reference, m, sum(first for first, _ in parts),
                                           sum(second for _, second in parts))
        mean = first / m
        var = np.maximum(second / m - mean * mean, 0)
        batch_stats = ((mean + reference) * signs, var)
    else:
        mean, var = np.zeros(f, dtype), moving[1]
        batch_stats = None
    inv_std = 1 / np.sqrt(var + epsilon)
    scale = np.abs(gamma) * inv_std
    out = np.empty_like(pooled)

    def normalise(part: int, start: int, stop: int) -> None:
        wide, _ = wide_rows(pooled[start:stop].reshape(-1, f))
        wide_out = np.multiply(wide, tiled(scale, wide, dtype), out=out[start:stop].reshape(wide.shape))
        wide_out += tiled(beta - mean * scale, wide, dtype)
        np.maximum(wide_out, 0, out=wide_out)

    _pooled_parts(conv.n, po * qo * f, normalise)
    cache = ConvBatchNormCache(matrix, signs, mean.astype(dtype), inv_std.astype(dtype), pooled, out, winners,
                               training, kept, reference, m, reducer)
    return out, cache, batch_stats


def conv_bn_relu_maxpool_backward(
    grad: np.ndarray, cache: ConvBatchNormCache, x: np.ndarray, kernel: np.ndarray, with_bias: bool, stride: int,
    padding: str | int, pool: int, gamma: np.ndarray, need_input_grad: bool = True,
    workspace: Workspace | None = None,
) -> tuple[np.ndarray | None, np.ndarray, np.ndarray | None, np.ndarray, np.ndarray]:
    """Gradients (d_input or None, d_kernel, d_bias or None, d_gamma, d_beta) of the forward step
    for grad (N, Ho // pool, Wo // pool, F). ``cache.winners`` must be set."""
    conv = Convolution(x.shape, kernel.shape, stride, padding, True, grad.dtype, workspace)
    dtype, f = grad.dtype, conv.f
    masked = np.empty_like(grad)

    def sums(part: int, start: int, stop: int) -> tuple[np.ndarray, np.ndarray]:
        g = np.multiply(grad[start:stop], cache.out[start:stop] > 0, out=masked[start:stop])  # ReLU's mask
        wide_g, r = wide_rows(g.reshape(-1, f))
        wide_pooled, _ = wide_rows(cache.pooled[start:stop].reshape(-1, f))
        # Sums of g and of g * z' at the winners (z' there is the pooled value).
        return ((np.ones(len(wide_g), dtype) @ wide_g).reshape(r, f).sum(axis=0),
                np.einsum("ij,ij->j", wide_g, wide_pooled).reshape(r, f).sum(axis=0))

    parts = _pooled_parts(conv.n, grad[0].size, sums)
    d_beta = sum(p[0] for p in parts)
    # x_hat = (z' - mean) * inv_std; z' is centred near 0, so the difference does not cancel.
    d_gamma_flipped = (sum(p[1] for p in parts) - cache.mean * d_beta) * cache.inv_std
    scale = np.abs(gamma).astype(dtype) * cache.inv_std
    # Through the batch mean and variance every z' also gets along * (z' - mean) - scale * d_beta / m,
    # i.e. along * z' + constant (z' is centred near 0, so this does not cancel). The sums are the
    # whole batch's; d_gamma and d_beta themselves stay this part's (a split step adds them up).
    batch_beta, batch_gz = cache.reducer.products(cache.reference, d_beta, sum(p[1] for p in parts)) \
        if cache.training else (d_beta, None)
    batch_gamma = (batch_gz - cache.mean * batch_beta) * cache.inv_std if cache.training else d_gamma_flipped
    m = cache.count
    along = -scale * cache.inv_std * batch_gamma / m
    constant = -scale * batch_beta / m - along * cache.mean
    kernel_t = conv.backward_kernel(kernel * cache.signs)
    d_x = np.empty(x.shape, dtype) if need_input_grad else None
    # Without an input gradient (a first layer) and with z' not kept, the batch-statistics terms
    # reach only the kernel gradient: cols^T (along * z' + constant) = along * (cols^T cols) matrix
    # + constant * (cols^T 1), from the small Gram matrix of the im2col rows, so z' is neither
    # recomputed nor touched.
    by_gram = cache.training and d_x is None and cache.z is None
    po_qo = grad.shape[1] * grad.shape[2]

    tiles = Tiles(dtype, scale=scale, along=along, constant=constant)
    need_cols = by_gram or (cache.training and cache.z is None) or conv.backward_needs_cols(d_x is not None)

    def work(part: int, start: int, stop: int) -> tuple[np.ndarray, np.ndarray | None]:
        d_matrix = np.zeros((conv.width, f), dtype)
        gram = np.zeros((conv.width, conv.width), dtype) if by_gram else None
        for a, b, rows in conv.blocks(start, stop):
            count = (b - a) * conv.rows
            routed, _ = wide_rows(conv.scratch("routed", part, f)[: (b - a) * po_qo].reshape(-1, f))
            np.multiply(masked[a:b].reshape(routed.shape), tiles("scale", routed), out=routed)
            dz = conv.scratch("dz", part, f)[:count]
            route_block(routed.reshape(b - a, *grad.shape[1:]), cache.winners[:, a:b], pool,
                        dz.reshape(b - a, conv.ho, conv.wo, f))
            cols = conv.cols(part, x[a:b]) if need_cols else None
            if by_gram:
                add_transposed_product(cols, cols, gram)
            elif cache.training:
                scratch = conv.scratch("z", part, f)[:count]
                z = cache.z[rows] if cache.z is not None else product_into(cols, cache.matrix, scratch)
                wide_z, _ = wide_rows(z)
                term = np.multiply(wide_z, tiles("along", wide_z), out=scratch.reshape(wide_z.shape))
                term += tiles("constant", wide_z)
                dz_wide = dz.reshape(wide_z.shape)
                dz_wide += term
            conv.backward_block(part, x[a:b], dz, kernel_t, d_matrix, None if d_x is None else d_x[a:b], cols)
        return d_matrix, gram

    parts = parallel_for(conv.n, work)
    d_matrices = [d_matrix for d_matrix, _ in parts]
    if by_gram:
        gram = sum(g for _, g in parts)
        # The last im2col column is ones: the Gram matrix's last column holds the column sums.
        d_matrices.append((gram @ cache.matrix) * along + np.outer(gram[:, -1], constant))
    d_kernel, d_bias = conv.kernel_gradients(d_matrices, True)
    d_kernel *= cache.signs
    d_gamma = (d_gamma_flipped * cache.signs).astype(dtype)
    return d_x, d_kernel, d_bias * cache.signs if with_bias else None, d_gamma, d_beta.astype(dtype)
