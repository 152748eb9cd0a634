"""Pooling whose windows overlap or reach into padding (stride != pool_size, or padded): max and average.

A window's maximum (or sum) is the maximum (sum) over its rows of each row's maximum (sum) along the
width. So each cache-sized block of images reduces along the width once per padded row (pool - 1
passes of the output's width) and then along the height over strided views of that (pool - 1
passes), instead of copying every window out, pool * pool times the output. Max pooling records,
while the block is in cache, which input won each window (the first maximum in row-major order,
PyTorch's choice among ties) in the same two steps (see Winners). Backward adds each window's
gradient at its winner (max) or spreads it over the window (average) through the same strided
views, transposed.

Max pooling pads with -inf (padding never wins: every window holds a real pixel, which the layers
check), average pooling with zeros; the divisor is the whole window or, without count_include_pad,
the real pixels it covers.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from engine.kernels.blocks import images_per_block, min_rows
from engine.parallel import parallel_for
from engine.shapes import output_size

Pads = tuple[int, int, int, int]
# Window sums of side-by-side windows with at most this many values per window row (pool * C) go
# through a matrix product: numpy's strided additions are slow on runs of a few channels.
SUM_BY_PRODUCT = 32


class WindowPool:
    """The sizes of one pooling of (N, H, W, C) with pool x pool windows every ``stride`` pixels."""

    def __init__(self, input_shape: tuple[int, ...], pool: int, stride: int, pads: Pads, itemsize: int) -> None:
        self.n, self.h, self.w, self.c = input_shape
        self.pool, self.stride, self.pads = pool, stride, pads
        top, bottom, left, right = pads
        self.ho = output_size(self.h, pool, stride, top, bottom)
        self.wo = output_size(self.w, pool, stride, left, right)
        # Padded rows and columns that some window reaches (any after them are never read).
        self.hp = stride * (self.ho - 1) + pool
        self.wp = stride * (self.wo - 1) + pool
        self.block = images_per_block(self.h * self.w * self.c * itemsize, self.n)
        # Each pass goes over about the input's size; small batches stay on one thread.
        self.min_images = min_rows(self.h * self.w * self.c * pool)
        # Nothing is padded that a window reaches: the padded images are views of the input.
        self.unpadded = top == left == 0 and self.hp <= self.h and self.wp <= self.w

    def padded(self, x: np.ndarray, fill: float) -> np.ndarray:
        """A few images x padded by fill to (n, hp, wp, C); x itself (cropped) when nothing is added."""
        top, _, left, _ = self.pads
        inside_h, inside_w = min(self.h, self.hp - top), min(self.w, self.wp - left)
        if self.unpadded:
            return x[:, : self.hp, : self.wp]
        xp = np.full((len(x), self.hp, self.wp, self.c), fill, x.dtype)
        xp[:, top : top + inside_h, left : left + inside_w] = x[:, :inside_h, :inside_w]
        return xp

    def columns(self, a: np.ndarray, j: int) -> np.ndarray:
        """Tap column j of every window: a (n, rows, wp, C) viewed as (n, rows, Wo, C)."""
        return a[:, :, j : j + self.stride * (self.wo - 1) + 1 : self.stride]

    def rows(self, a: np.ndarray, i: int) -> np.ndarray:
        """Tap row i of every window: a (n, hp, cols, C) viewed as (n, Ho, cols, C)."""
        return a[:, i : i + self.stride * (self.ho - 1) + 1 : self.stride]

    def reduce(self, xp: np.ndarray, op: Callable[..., np.ndarray], out: np.ndarray) -> np.ndarray:
        """op over every window of padded images xp into out (n, Ho, Wo, C), along the width first;
        returns those row reductions (n, hp, Wo, C), which max pooling's winners need."""
        across = self._fold(op, [self.columns(xp, j) for j in range(self.pool)])
        self._fold(op, [self.rows(across, i) for i in range(self.pool)], out)
        return across

    def reduce_down_first(self, xp: np.ndarray, op: Callable[..., np.ndarray], out: np.ndarray) -> None:
        """reduce, down the height first: that step reads whole contiguous rows, and the strided
        step along the width (slow when C is small) then reads pool / stride times less data."""
        down = self._fold(op, [self.rows(xp, i) for i in range(self.pool)])
        if op is np.add and self.stride == self.pool and self.pool * self.c <= SUM_BY_PRODUCT:
            # Side-by-side windows of few channels: each output pixel's pool * C values in a row,
            # summed by a product with stacked identities.
            rows = down.reshape(-1, self.pool * self.c)
            np.matmul(rows, self.stacked_identity(down.dtype), out=out.reshape(-1, self.c))
            return
        self._fold(op, [self.columns(down, j) for j in range(self.pool)], out)

    def stacked_identity(self, dtype: np.dtype) -> np.ndarray:
        """(pool * C, C): pool identity matrices stacked, which sums a window row's pixels per channel."""
        return np.tile(np.eye(self.c, dtype=dtype), (self.pool, 1))

    @staticmethod
    def _fold(op: Callable[..., np.ndarray], views: list[np.ndarray], out: np.ndarray | None = None) -> np.ndarray:
        """op over views, into out or a new array."""
        if out is None:
            out = views[0].copy() if len(views) == 1 else op(views[0], views[1])
        else:
            np.copyto(out, views[0]) if len(views) == 1 else op(views[0], views[1], out=out)
        for view in views[2:]:
            op(out, view, out=out)
        return out

    def cropped(self, dxp: np.ndarray, d_x: np.ndarray) -> None:
        """Write the inside of a padded input gradient dxp into d_x (zeros where no window reached)."""
        top, _, left, _ = self.pads
        inside_h, inside_w = min(self.h, self.hp - top), min(self.w, self.wp - left)
        if self.unpadded:  # dxp is a view of d_x
            return
        if (inside_h, inside_w) != (self.h, self.w):
            d_x[...] = 0
        d_x[:, :inside_h, :inside_w] = dxp[:, top : top + inside_h, left : left + inside_w]

    def gradient_grid(self, d_x: np.ndarray) -> np.ndarray:
        """A zeroed padded gradient for the images of d_x: a view of d_x itself when unpadded."""
        if self.unpadded:
            d_x[...] = 0
            return d_x[:, : self.hp, : self.wp]
        return np.zeros((len(d_x), self.hp, self.wp, self.c), d_x.dtype)


def first_true(masks: list[np.ndarray]) -> list[np.ndarray]:
    """Masks 'equals the maximum' (one per candidate, in order, all but the last) turned in place
    into 'is the first that does', plus the last candidate's mask: none of the others."""
    taken = masks[0].copy()
    for mask in masks[1:]:
        mask &= ~taken
        taken |= mask
    return [*masks, ~taken]


class Winners:
    """Which input won each window of a max pooling, in two steps (so backward can route in two):
    ``rows[i]`` (n, Ho, Wo, C) marks windows whose winner is in their row i, ``columns[j]``
    (n, hp, Wo, C) marks, for each padded row and window column, that the row's maximum over the
    window's width is at tap j. A window's winner is the first maximum in row-major order: its
    first row holding the maximum, and in that row the first tap holding it. The column step does
    not depend on the window's row, hence one plane per padded row, not per window."""

    def __init__(self, pool: int, output_shape: tuple[int, ...], hp: int) -> None:
        n, ho, wo, c = output_shape
        self.rows = np.empty((pool, n, ho, wo, c), bool)
        self.columns = np.empty((pool, n, hp, wo, c), bool)

    def part(self, a: int, b: int) -> Winners:
        """The winners of images a to b (views)."""
        part = object.__new__(Winners)
        part.rows, part.columns = self.rows[:, a:b], self.columns[:, a:b]
        return part


def max_pool_forward(x: np.ndarray, pool: int, stride: int, pads: Pads, keep_winners: bool
                     ) -> tuple[np.ndarray, Winners | None]:
    """Max pooling of x (N, H, W, C); returns the output and, with keep_winners, its Winners."""
    sizes = WindowPool(x.shape, pool, stride, pads, x.itemsize)
    out = np.empty((sizes.n, sizes.ho, sizes.wo, sizes.c), x.dtype)
    winners = Winners(pool, out.shape, sizes.hp) if keep_winners else None

    def work(part: int, start: int, stop: int) -> None:
        for a in range(start, stop, sizes.block):
            b = min(a + sizes.block, stop)
            xp = sizes.padded(x[a:b], -np.inf)
            if winners is None:
                sizes.reduce_down_first(xp, np.maximum, out[a:b])
                continue
            across = sizes.reduce(xp, np.maximum, out[a:b])
            if pool == 1:
                winners.rows[:, a:b] = winners.columns[:, a:b] = True
            else:
                block = winners.part(a, b)
                for step, hits in ((block.rows, [sizes.rows(across, i) == out[a:b] for i in range(pool - 1)]),
                                   (block.columns, [sizes.columns(xp, j) == across for j in range(pool - 1)])):
                    for plane, hit in zip(step, first_true(hits)):
                        np.copyto(plane, hit)

    parallel_for(sizes.n, work, min_items=sizes.min_images)
    return out, winners


def max_pool_backward(grad: np.ndarray, winners: Winners, input_shape: tuple[int, ...], pool: int, stride: int,
                      pads: Pads) -> np.ndarray:
    """Each window's gradient added at the input that won it (winners from max_pool_forward): first
    to the winning row's entry of the row maxima, then from there to the winning column."""
    sizes = WindowPool(input_shape, pool, stride, pads, grad.itemsize)
    d_x = np.empty(input_shape, grad.dtype)

    def work(part: int, start: int, stop: int) -> None:
        for a in range(start, stop, sizes.block):
            b = min(a + sizes.block, stop)
            block, g = winners.part(a, b), grad[a:b]
            across = np.zeros((b - a, sizes.hp, sizes.wo, sizes.c), grad.dtype)
            share = np.empty(g.shape, grad.dtype)
            # A product and an add per tap: numpy's masked add (where=) runs several times slower.
            for i in range(pool):
                sizes.rows(across, i)[...] += np.multiply(g, block.rows[i], out=share)
            dxp = sizes.gradient_grid(d_x[a:b])
            share = np.empty(across.shape, grad.dtype)
            for j in range(pool):
                sizes.columns(dxp, j)[...] += np.multiply(across, block.columns[j], out=share)
            sizes.cropped(dxp, d_x[a:b])

    parallel_for(sizes.n, work, min_items=sizes.min_images)
    return d_x


def divisor(sizes: WindowPool, count_include_pad: bool) -> float | np.ndarray:
    """What each window's sum is divided by: pool * pool, or (Ho, Wo, 1) counts of real pixels."""
    if count_include_pad or not any(sizes.pads):
        return float(sizes.pool * sizes.pool)
    top, bottom, left, right = sizes.pads

    def along(size: int, before: int, after: int) -> np.ndarray:
        starts = np.arange(output_size(size, sizes.pool, sizes.stride, before, after)) * sizes.stride - before
        return np.minimum(starts + sizes.pool, size) - np.maximum(starts, 0)

    return (along(sizes.h, top, bottom)[:, None] * along(sizes.w, left, right)[None, :])[:, :, None].astype(float)


def avg_pool_forward(x: np.ndarray, pool: int, stride: int, pads: Pads, count_include_pad: bool) -> np.ndarray:
    """Average pooling of x (N, H, W, C)."""
    sizes = WindowPool(x.shape, pool, stride, pads, x.itemsize)
    out = np.empty((sizes.n, sizes.ho, sizes.wo, sizes.c), x.dtype)
    inverse = np.asarray(1 / divisor(sizes, count_include_pad), x.dtype)

    def work(part: int, start: int, stop: int) -> None:
        for a in range(start, stop, sizes.block):
            b = min(a + sizes.block, stop)
            sizes.reduce_down_first(sizes.padded(x[a:b], 0.0), np.add, out[a:b])
            out[a:b] *= inverse

    parallel_for(sizes.n, work, min_items=sizes.min_images)
    return out


def avg_pool_backward(grad: np.ndarray, input_shape: tuple[int, ...], pool: int, stride: int, pads: Pads,
                      count_include_pad: bool) -> np.ndarray:
    """Each window's gradient spread evenly over the pixels it averaged."""
    sizes = WindowPool(input_shape, pool, stride, pads, grad.itemsize)
    d_x = np.empty(input_shape, grad.dtype)
    inverse = np.asarray(1 / divisor(sizes, count_include_pad), grad.dtype)
    tiled = stride == pool and sizes.unpadded

    def work(part: int, start: int, stop: int) -> None:
        for a in range(start, stop, sizes.block):
            b = min(a + sizes.block, stop)
            share = grad[a:b] * inverse
            if tiled:  # windows side by side: each pixel's share is its window's
                dxp = sizes.gradient_grid(d_x[a:b])
                windows = dxp.reshape(b - a, sizes.ho, pool, sizes.wo, pool * sizes.c)
                if pool * sizes.c <= SUM_BY_PRODUCT:  # along the row by a product (see reduce_down_first)
                    spread = share.reshape(-1, sizes.c) @ sizes.stacked_identity(share.dtype).T
                    windows[...] = spread.reshape(b - a, sizes.ho, 1, sizes.wo, pool * sizes.c)
                else:
                    windows.reshape(b - a, sizes.ho, pool, sizes.wo, pool, sizes.c)[...] = share[:, :, None, :, None]
                sizes.cropped(dxp, d_x[a:b])
                continue
            # The transpose of reduce: down the rows of each window, then along its columns.
            across = np.zeros((b - a, sizes.hp, sizes.wo, sizes.c), grad.dtype)
            for i in range(pool):
                sizes.rows(across, i)[...] += share
            dxp = sizes.gradient_grid(d_x[a:b])
            for j in range(pool):
                sizes.columns(dxp, j)[...] += across
            sizes.cropped(dxp, d_x[a:b])

    parallel_for(sizes.n, work, min_items=sizes.min_images)
    return d_x
