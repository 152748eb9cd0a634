"""2-D convolution by blocked im2col and one matrix product per block, forward and backward."""

from __future__ import annotations

from typing import Any

import numpy as np

from engine.kernels.blocks import Workspace, images_per_block
from engine.kernels.im2col import (
    col2im_add,
    col2im_add_rows_first,
    conv_pads,
    copy_windows,
    im2col_into,
    strided_view,
    taps_into_image,
)
from engine.kernels.pooling import max_pool_block, max_pool_taps, route_block, route_taps, winner_planes
from engine.kernels.products import add_transposed_product, product_into
from engine.parallel import parallel_for
from engine.shapes import output_size

# Switched off by measurements to compare with col2im (see Convolution.by_taps).
taps_enabled = True

# Up to this many input channels, im2col is built transposed (see Convolution._few_channel_cols).
FEW_CHANNELS = 4


class Convolution:
    """One convolution's sizes, input (N, H, W, C) * kernel (kh, kw, C, F) -> (N, Ho, Wo, F), and
    the per-thread scratch its blocks of images go through."""

    def __init__(self, input_shape: tuple[int, ...], kernel_shape: tuple[int, ...], stride: int,
                 padding: str | int, with_bias: bool, dtype: Any, workspace: Workspace | None,
                 pool: int = 1) -> None:
        self.n, self.h, self.w, self.c = input_shape
        self.kh, self.kw, _, self.f = kernel_shape
        self.stride = stride
        self.pads = conv_pads(self.h, self.w, self.kh, self.kw, stride, padding)
        top, bottom, left, right = self.pads
        # Before pooling with stride == pool, only whole windows count: the last row or column of
        # an odd-sized output is never computed (its gradient would be 0 anyway).
        self.ho = output_size(self.h, self.kh, stride, top, bottom) // pool * pool
        self.wo = output_size(self.w, self.kw, stride, left, right) // pool * pool
        self.pool = pool
        self.rows = self.ho * self.wo  # im2col rows per image
        self.k = self.kh * self.kw * self.c
        # A last column of ones makes the bias one more row of the kernel matrix.
        self.width = self.k + with_bias
        self.dtype = np.dtype(dtype)
        self.workspace = workspace if workspace is not None else Workspace()
        self.block = images_per_block(self.rows * max(self.width, self.f) * self.dtype.itemsize, self.n)
        # Per thread: kernel gradients summed in the layout of _add_kernel_gradient_from_grad_cols.
        self._flipped_sums: dict[int, np.ndarray] = {}

    def cols(self, part: int, x: np.ndarray, pool_major: bool = False) -> np.ndarray:
        """The im2col matrix (n*Ho*Wo, k [+1]) of the few images x, in thread ``part``'s scratch.

        ``pool_major``: the rows ordered by pooling tap first, (pool, pool, n, Ho / pool,
        Wo / pool), so that the product's rows for each tap of the pooling windows form one
        contiguous slab (the copy costs the same in either order)."""
        n = len(x)
        ones = 1 if self.width > self.k else None
        if self.c <= FEW_CHANNELS:
            return self._few_channel_cols(part, x, ones, pool_major)
        if any(self.pads):
            top, bottom, left, right = self.pads
            shape = (self.block, self.h + top + bottom, self.w + left + right, self.c)
            # The border is zeroed once, when the scratch is made; only the inside is written.
            padded = self.workspace.array(f"padded{part}", shape, self.dtype, fill=0, key=self.pads)[:n]
            padded[:, top : top + self.h, left : left + self.w, :] = x
            x = padded
        scratch = self.workspace.array(f"cols{part}", (self.block * self.rows, self.width), self.dtype, fill=ones)
        cols = scratch[: n * self.rows]
        if pool_major:
            self._pool_major_windows(x, cols)
        else:
            im2col_into(x, self.kh, self.kw, self.stride, cols, self.ho, self.wo)
        return cols

    def _pool_major_windows(self, xp: np.ndarray, cols: np.ndarray) -> None:
        """Copy the windows of the padded images xp into cols's rows in pooling-tap order: output
        (pool * p + a, pool * q + b) of image m goes to row (((a * pool + b) * n + m) * Po + p) * Qo + q."""
        n, p = len(xp), self.pool
        po, qo = self.ho // p, self.wo // p
        row, item = cols.strides[0], cols.itemsize
        sn, sh, sw, sc = xp.strides
        step_h, step_w = sh * self.stride, sw * self.stride
        copy_windows(cols, (p, p, n, po, qo, self.kh, self.kw, self.c),
                     (p * n * po * qo * row, n * po * qo * row, po * qo * row, qo * row, row, self.kw * self.c * item,
                      self.c * item, item),
                     xp, (step_h, step_w, sn, step_h * p, step_w * p, sh, sw, sc))

    @property
    def pool_major(self) -> bool:
        """Whether cols can be ordered by pooling tap (see cols): before tiled pooling."""
        return self.pool > 1

    def _few_channel_cols(self, part: int, x: np.ndarray, ones: int | None, pool_major: bool = False) -> np.ndarray:
        """cols for a few input channels (a grayscale or RGB first layer), built transposed from
        channels-first planes: each (kernel offset, channel) is one long row of the scratch, copied
        in runs of Wo values, where a row-major im2col copies runs of kw*C values (3 or 9), several
        times slower; BLAS takes the transpose as it is."""
        n, rows = len(x), len(x) * self.rows
        top, bottom, left, right = self.pads
        if self.c == 1 and not any(self.pads):
            planes = x.reshape(n, 1, self.h, self.w)
        else:
            shape = (self.block, self.c, self.h + top + bottom, self.w + left + right)
            # The border is zeroed once, when the scratch is made; only the inside is written.
            planes = self.workspace.array(f"planes{part}", shape, self.dtype, fill=0, key=self.pads)[:n]
            planes[:, :, top : top + self.h, left : left + self.w] = x.transpose(0, 3, 1, 2)
        scratch = self.workspace.array(f"cols_t{part}", (self.width, self.block * self.rows), self.dtype, fill=ones)
        # Every (offset, channel) row in one copy (numpy calls are few): a (kh, kw, C, n, Ho, Wo) view.
        sn, sc, sh, sw = planes.strides
        step_h, step_w = sh * self.stride, sw * self.stride
        if pool_major:
            p = self.pool
            windows = strided_view(planes, (self.kh, self.kw, self.c, p, p, n, self.ho // p, self.wo // p),
                                   (sh, sw, sc, step_h, step_w, sn, step_h * p, step_w * p), writeable=False)
        else:
            windows = strided_view(planes, (self.kh, self.kw, self.c, n, self.ho, self.wo),
                                   (sh, sw, sc, sn, step_h, step_w), writeable=False)
        np.copyto(scratch[: self.k, :rows].reshape(windows.shape), windows)
        return scratch[:, :rows].T

    def blocks(self, start: int, stop: int) -> list[tuple[int, int, slice]]:
        """(first image, end image, their im2col rows) for cache-sized blocks of [start, stop)."""
        return [(a, min(a + self.block, stop), slice(a * self.rows, min(a + self.block, stop) * self.rows))
                for a in range(start, stop, self.block)]

    def backward_kernel(self, kernel: np.ndarray) -> Any:
        """What backward_block multiplies output gradients with: when same_size, the kernel flipped
        in space with C and F swapped, (kh*kw*F, C); when by_phases, one such matrix per input
        phase, of its taps only (None for a phase no tap reaches); when by_taps, each tap's
        (F, C) matrix, (kh*kw, F, C); else (F, k), the kernel matrix transposed."""
        if self.same_size:
            return _flipped(kernel)
        if self.by_phases:
            return [None if plan is None else _flipped(kernel[plan[0][0] :: self.stride, plan[1][0] :: self.stride])
                    for plan in self._phases()]
        if self.by_taps:
            return np.ascontiguousarray(kernel.transpose(0, 1, 3, 2)).reshape(self.kh * self.kw, self.f, self.c)
        return kernel.reshape(self.k, self.f).T

    def scratch(self, role: str, part: int, columns: int) -> np.ndarray:
        """Thread ``part``'s (block images * Ho*Wo, columns) scratch matrix for ``role``."""
        return self.workspace.array(f"{role}{part}", (self.block * self.rows, columns), self.dtype)

    def backward_block(self, part: int, x: np.ndarray, g: np.ndarray, kernel_t: np.ndarray,
                       d_matrix: np.ndarray, d_x: np.ndarray | None, cols: np.ndarray | None = None) -> None:
        """For the few images x and their output gradient rows g (n*Ho*Wo, F): add their kernel
        (and bias) gradient to d_matrix, and write their input gradient into d_x unless None.
        ``cols``: x's im2col matrix when the caller has already built it."""
        if d_x is not None and cols is None and self.kernel_gradient_from_grad_cols:
            grad_cols = self._input_gradient_by_matmul(part, g, kernel_t, d_x)
            self._add_kernel_gradient_from_grad_cols(part, x, g, grad_cols, d_matrix)
            return
        add_transposed_product(self.cols(part, x) if cols is None else cols, g, d_matrix)
        if d_x is None:
            return
        if self.same_size:
            self._input_gradient_by_matmul(part, g, kernel_t, d_x)
            return
        if self.by_phases:
            self._input_gradient_by_phases(part, g, kernel_t, d_x)
            return
        if self.by_taps:
            # One slab per kernel tap, (kh * kw, rows, C), then summed phase by phase into d_x.
            n = len(x)
            taps = self.scratch("d_cols", part, self.k).reshape(-1)[: self.k * len(g)].reshape(
                self.kh * self.kw, len(g), self.c)
            np.matmul(g, kernel_t, out=taps)
            planes = self.workspace.array(f"tap_planes{part}", (self.stride**2 * self.block * self._plane_size,),
                                          self.dtype)
            taps_into_image(taps.reshape(self.kh, self.kw, n, self.ho, self.wo, self.c), d_x, self.pads,
                            self.stride, planes)
            return
        d_cols = product_into(g, kernel_t, self.scratch("d_cols", part, self.k)[: len(g)])
        d_x[...] = 0  # here, not np.zeros up front: this block is about to be in cache
        windows = d_cols.reshape(len(x), self.ho, self.wo, self.kh, self.kw, self.c)
        if self.stride == 1 and not any(self.pads):
            shape = (self.block, self.ho + self.kh - 1, self.wo, self.kw * self.c)
            col2im_add_rows_first(windows, d_x, self.workspace.array(f"col2im_rows{part}", shape, self.dtype)[: len(x)])
        else:
            col2im_add(windows, d_x, self.pads, self.stride)

    @property
    def by_taps(self) -> bool:
        """Whether the input gradient of a strided convolution (not by_phases) goes tap by tap (see
        taps_into_image) rather than through col2im: where windows overlap. Measured, backward on
        one thread, batch 32: 16 to 32 channels, 3x3 stride 2 at 28x28, 1.31x faster (2.84 -> 2.16
        ms); 32 to 64 at 14x14 and 32x32 even; a 1x1 stride-2 projection (no overlap, three of its
        four phases empty) 0.78x, so it keeps col2im."""
        overlapping = self.kh > self.stride or self.kw > self.stride
        return taps_enabled and self.stride > 1 and overlapping and not self.by_phases

    @property
    def _plane_size(self) -> int:
        """Values in one image's plane of one phase (see taps_into_image)."""
        return (self.ho + (self.kh - 1) // self.stride) * (self.wo + (self.kw - 1) // self.stride) * self.c

    @property
    def same_size(self) -> bool:
        """Stride 1 with kh-1 and kw-1 pixels of padding: the input gradient is itself a 'same'
        convolution of the output gradient, with the kernel flipped and transposed."""
        top, bottom, left, right = self.pads
        return self.stride == 1 and top + bottom == self.kh - 1 and left + right == self.kw - 1

    @property
    def kernel_gradient_from_grad_cols(self) -> bool:
        """Whether backward takes the kernel gradient from the im2col matrix of the padded output
        gradient (see _add_kernel_gradient_from_grad_cols), which the input gradient of a
        same-size convolution builds anyway, instead of rebuilding x's. Measured, backward on one
        thread, batch 32: 1.15-1.25x faster with as many filters as input channels or fewer
        (x's im2col is saved, the product is no larger), 1.02-1.12x with twice as many, 0.93x
        with four times as many (the gradient's matrix is then four times as wide as x's)."""
        return self.same_size and FEW_CHANNELS < self.c and self.f <= 2 * self.c

    def kernel_gradients(self, parts: list[np.ndarray], with_bias: bool) -> tuple[np.ndarray, np.ndarray | None]:
        """(d_kernel, d_bias or None) from the threads' partial (k [+1], F) kernel-matrix gradients
        (and the sums _add_kernel_gradient_from_grad_cols kept aside)."""
        d_matrix = parts[0]
        for other in parts[1:]:
            d_matrix += other
        taps = d_matrix[: self.k].reshape(self.kh, self.kw, self.c, self.f)
        for flipped in self._flipped_sums.values():
            taps += flipped.reshape(self.kh, self.kw, self.f, self.c)[::-1, ::-1].transpose(0, 1, 3, 2)
        self._flipped_sums.clear()
        return taps, (d_matrix[self.k] if with_bias else None)

    def backward_needs_cols(self, with_input_gradient: bool) -> bool:
        """Whether backward_block needs x's im2col matrix (else a caller need not build it)."""
        return not (with_input_gradient and self.kernel_gradient_from_grad_cols)

    def _add_kernel_gradient_from_grad_cols(self, part: int, x: np.ndarray, g: np.ndarray, grad_cols: np.ndarray,
                                            d_matrix: np.ndarray) -> None:
        """Add cols^T g of a same-size convolution to its kernel gradient, from grad_cols, the
        im2col matrix of the padded output gradient (one row per input pixel): kernel tap (i, j)
        pairs input pixel p with the output gradient at p - (i, j) + pads, which is column
        (kh-1-i, kw-1-j) of grad_cols's row p. So grad_cols^T x, ((kh-1-i, kw-1-j, f), c), flipped
        back in space and transposed, is the kernel gradient (kernel_gradients does that); the
        bias row goes to d_matrix."""
        # Summed per thread in this layout and turned into d_matrix's once, in kernel_gradients:
        # turning each block's (a strided pass over the whole kernel) cost more than the saved
        # im2col for wide layers with few pixels per block.
        flipped = self._flipped_sums.get(part)
        if flipped is None:
            flipped = self._flipped_sums[part] = np.zeros((grad_cols.shape[1], self.c), self.dtype)
        add_transposed_product(grad_cols, x.reshape(-1, self.c), flipped)
        if self.width > self.k:  # the bias row: the sums of g
            ones = self.workspace.array(f"ones{part}", (self.block * self.rows,), self.dtype, fill=1)
            d_matrix[self.k] += ones[: len(g)] @ g

    def _input_gradient_by_matmul(self, part: int, g: np.ndarray, kernel_t: np.ndarray,
                                  d_x: np.ndarray) -> np.ndarray:
        """d_x = im2col(padded output gradient) @ flipped kernel: one product writing d_x, instead of
        window gradients and kh*kw scatter-adds (col2im). Output rows cut off before pooling pad
        with zeros like the border. Returns that im2col matrix (one row per input pixel)."""
        n = len(d_x)
        if self.kh == self.kw == 1 and (self.ho, self.wo) == (self.h, self.w):
            cols = g.reshape(n * self.h * self.w, self.f)  # a 1x1 kernel's windows are the gradient itself
            product_into(cols, kernel_t, d_x.reshape(len(cols), self.c))
            return cols
        top, _, left, _ = self.pads
        before_h, before_w = self.kh - 1 - top, self.kw - 1 - left
        shape = (self.block, self.h + self.kh - 1, self.w + self.kw - 1, self.f)
        # Zeroed once when made; only the (Ho, Wo) inside is written, so the key includes Ho and Wo.
        padded = self.workspace.array(f"padded_grad{part}", shape, self.dtype, fill=0,
                                      key=(self.pads, self.ho, self.wo))[:n]
        padded[:, before_h : before_h + self.ho, before_w : before_w + self.wo, :] = g.reshape(n, self.ho, self.wo,
                                                                                                 self.f)
        scratch = self.workspace.array(f"grad_cols{part}", (self.block * self.h * self.w, self.kh * self.kw * self.f),
                                       self.dtype)
        cols = scratch[: n * self.h * self.w]
        im2col_into(padded, self.kh, self.kw, 1, cols, self.h, self.w)
        product_into(cols, kernel_t, d_x.reshape(n * self.h * self.w, self.c))
        return cols

    @property
    def by_phases(self) -> bool:
        """Whether the input gradient goes phase by phase (see _phases): for strided convolutions
        with no more filters than input channels. The phases' windows of the output gradient hold
        kh*kw*F values per input position (summed over phases), col2im's window gradients kh*kw*C:
        with twice as many filters as channels, col2im's smaller copy wins (measured)."""
        return self.stride > 1 and self.f <= self.c

    def _phases(self) -> list[tuple[tuple[int, int, int, int], tuple[int, int, int, int]] | None]:
        """How a strided convolution's input gradient splits into stride**2 phases, the inputs
        (stride*a + p, stride*b + q) for each (p, q), row-major: each phase gets its taps from
        every stride-th kernel row and column only, so it is a stride-1 correlation of the output
        gradient with that sub-kernel, flipped. Per phase, for rows and then columns: (first tap,
        taps, phase size, first output position its windows start at); None for a phase no tap
        reaches (a 1x1 kernel with stride 2)."""
        top, _, left, _ = self.pads

        def along(phase: int, pad: int, kernel: int, size: int) -> tuple[int, int, int, int]:
            first = (phase + pad) % self.stride
            taps = len(range(first, kernel, self.stride))
            # Input stride*a + phase takes tap first + stride*t from output a + shift - t.
            shift = (phase + pad - first) // self.stride
            return first, taps, len(range(phase, size, self.stride)), shift - (taps - 1)

        plans = []
        for p in range(self.stride):
            rows = along(p, top, self.kh, self.h)
            for q in range(self.stride):
                columns = along(q, left, self.kw, self.w)
                plans.append(None if rows[1] == 0 or columns[1] == 0 or rows[2] == 0 or columns[2] == 0
                             else (rows, columns))
        return plans

    def _input_gradient_by_phases(self, part: int, g: np.ndarray, phase_kernels: list[np.ndarray | None],
                                  d_x: np.ndarray) -> None:
        """d_x of a strided convolution phase by phase (see _phases): per phase one product of the
        output gradient's windows with the phase's sub-kernel, written into d_x's strided phase
        slice. col2im would instead add kh*kw window gradients into d_x, each pass strided."""
        n, s = len(d_x), self.stride
        margin_h, margin_w = self.kh, self.kw  # zero rows and columns around g cover every window
        shape = (self.block, self.ho + 2 * margin_h, self.wo + 2 * margin_w, self.f)
        padded = self.workspace.array(f"phase_grad{part}", shape, self.dtype, fill=0,
                                      key=(self.ho, self.wo))[:n]
        g = g.reshape(n, self.ho, self.wo, self.f)
        padded[:, margin_h : margin_h + self.ho, margin_w : margin_w + self.wo] = g
        most = -(-self.h // s) * -(-self.w // s)  # the largest phase's inputs per image
        for (p, q), plan, matrix in zip(((p, q) for p in range(s) for q in range(s)), self._phases(), phase_kernels):
            target = d_x[:, p::s, q::s]
            if plan is None:
                target[...] = 0
                continue
            (_, taps_h, size_h, start_h), (_, taps_w, size_w, start_w) = plan
            out = self.workspace.array(f"phase_out{part}", (self.block * most, self.c), self.dtype)
            out = out[: n * size_h * size_w]
            if taps_h == taps_w == 1 and start_h == start_w == 0 and (size_h, size_w) == (self.ho, self.wo):
                cols = g.reshape(-1, self.f)  # the phase's windows are the gradient itself
            else:
                width = taps_h * taps_w * self.f
                # One flat scratch for every phase's width (a scratch per shape would be remade
                # for each phase).
                scratch = self.workspace.array(f"phase_cols{part}", (self.block * most * self.kh * self.kw * self.f,),
                                               self.dtype)
                cols = scratch[: n * size_h * size_w * width].reshape(-1, width)
                top, left = margin_h + start_h, margin_w + start_w
                im2col_into(padded[:, top : top + size_h + taps_h - 1, left : left + size_w + taps_w - 1],
                            taps_h, taps_w, 1, cols, size_h, size_w)
            product_into(cols, matrix, out)
            target[...] = out.reshape(n, size_h, size_w, self.c)


def _flipped(kernel: np.ndarray) -> np.ndarray:
    """(kh, kw, C, F) -> the kernel flipped in space with C and F swapped, as a (kh*kw*F, C) matrix:
    what a stride-1 correlation of output gradients computes input gradients with."""
    return np.ascontiguousarray(kernel[::-1, ::-1].transpose(0, 1, 3, 2)).reshape(-1, kernel.shape[2])


def kernel_matrix(kernel: np.ndarray, bias: np.ndarray | None, workspace: Workspace) -> np.ndarray:
    """The kernel as a (kh*kw*C [+1], F) matrix, the bias as its last row when there is one."""
    kh, kw, c, f = kernel.shape
    k = kh * kw * c
    if bias is None:
        return np.ascontiguousarray(kernel.reshape(k, f))
    matrix = workspace.array("kernel_matrix", (k + 1, f), kernel.dtype)
    matrix[:k] = kernel.reshape(k, f)
    matrix[k] = bias
    return matrix


def conv2d_forward(
    x: np.ndarray, kernel: np.ndarray, bias: np.ndarray | None, stride: int, padding: str | int,
    workspace: Workspace | None = None, relu: bool = False, relu_mask: np.ndarray | None = None,
) -> np.ndarray:
    """(N, H, W, C) * (kh, kw, C, F) [+ bias (F,)] [then ReLU] -> (N, Ho, Wo, F).

    Each engine thread takes a range of images and works through it in cache-sized blocks:
    im2col (a (rows, kh*kw*C [+1]) matrix in ``workspace`` scratch), one matrix product with the
    kernel (and bias) matrix, ReLU, and ``relu_mask`` (bool, like the output: output > 0, for
    backward). No whole-batch im2col matrix is ever written: the memory traffic would cost more
    than rebuilding each block in backward.
    """
    conv = Convolution(x.shape, kernel.shape, stride, padding, bias is not None, x.dtype, workspace)
    matrix = kernel_matrix(kernel, bias, conv.workspace)
    out = np.empty((conv.n * conv.rows, conv.f), x.dtype)
    mask_rows = None if relu_mask is None else relu_mask.reshape(out.shape)

    def work(part: int, start: int, stop: int) -> None:
        for a, b, rows in conv.blocks(start, stop):
            block_out = product_into(conv.cols(part, x[a:b]), matrix, out[rows])
            if relu:
                np.maximum(block_out, 0, out=block_out)
            if mask_rows is not None:
                np.greater(block_out, 0, out=mask_rows[rows])

    parallel_for(conv.n, work)
    return out.reshape(conv.n, conv.ho, conv.wo, conv.f)


def conv2d_backward(
    grad: np.ndarray,
    x: np.ndarray,
    kernel: np.ndarray,
    with_bias: bool,
    stride: int,
    padding: str | int,
    need_input_grad: bool = True,
    workspace: Workspace | None = None,
    relu_mask: np.ndarray | None = None,
) -> tuple[np.ndarray | None, np.ndarray, np.ndarray | None]:
    """Gradients (d_input or None, d_kernel, d_bias or None) of conv2d_forward(x) for grad (N, Ho, Wo, F).

    With ``relu_mask`` (a fused ReLU's output > 0) grad is first zeroed where the mask is false.
    Each engine thread takes a range of images and works through it in cache-sized blocks:
    rebuild the block's im2col matrix (its ones column yields d_bias in the same product), mask,
    the block's share of the kernel gradient, its window gradients and their col2im.
    """
    conv = Convolution(x.shape, kernel.shape, stride, padding, with_bias, grad.dtype, workspace)
    g2 = np.ascontiguousarray(grad).reshape(conv.n * conv.rows, conv.f)
    mask_rows = None if relu_mask is None else relu_mask.reshape(g2.shape)
    kernel_t = conv.backward_kernel(kernel)
    d_x = np.empty(x.shape, grad.dtype) if need_input_grad else None

    def work(part: int, start: int, stop: int) -> np.ndarray:
        d_matrix = np.zeros((conv.width, conv.f), grad.dtype)
        for a, b, rows in conv.blocks(start, stop):
            g = g2[rows]
            if mask_rows is not None:
                g = np.multiply(g, mask_rows[rows], out=conv.scratch("masked", part, conv.f)[: len(g)])
            conv.backward_block(part, x[a:b], g, kernel_t, d_matrix, None if d_x is None else d_x[a:b])
        return d_matrix

    return (d_x, *conv.kernel_gradients(parallel_for(conv.n, work), with_bias))


def conv2d_maxpool_forward(
    x: np.ndarray, kernel: np.ndarray, bias: np.ndarray | None, stride: int, padding: str | int, pool: int,
    workspace: Workspace | None = None, keep_winners: bool = True,
) -> tuple[np.ndarray, np.ndarray | None]:
    """Conv2D with ReLU, then max pooling with stride == pool, as one kernel.

    Returns (relu(maxpool(conv(x))) (N, Ho // pool, Wo // pool, F), winners as _tiled_max gives them
    or None). Max and ReLU commute, so rectifying the pooled values is exact; block by block the
    full-size convolution output exists only in cache, never in memory.
    """
    conv = Convolution(x.shape, kernel.shape, stride, padding, bias is not None, x.dtype, workspace, pool)
    matrix = kernel_matrix(kernel, bias, conv.workspace)
    po, qo = conv.ho // pool, conv.wo // pool
    out = np.empty((conv.n, po, qo, conv.f), x.dtype)
    winners = np.empty((winner_planes(pool), *out.shape), bool) if keep_winners else None

    def work(part: int, start: int, stop: int) -> None:
        for a, b, _ in conv.blocks(start, stop):
            z = product_into(conv.cols(part, x[a:b], conv.pool_major), matrix,
                             conv.scratch("z", part, conv.f)[: (b - a) * conv.rows])
            block_winners = None if winners is None else winners[:, a:b]
            if conv.pool_major:  # each pooling tap one contiguous slab: pooling runs over long rows
                max_pool_taps(list(z.reshape(pool * pool, b - a, po, qo, conv.f)), pool, out[a:b], block_winners)
            else:
                max_pool_block(z.reshape(b - a, conv.ho, conv.wo, conv.f), pool, out[a:b], block_winners)
            np.maximum(out[a:b], 0, out=out[a:b])

    parallel_for(conv.n, work)
    return out, winners


def conv2d_maxpool_backward(
    grad: np.ndarray, out: np.ndarray, winners: np.ndarray, x: np.ndarray, kernel: np.ndarray, with_bias: bool,
    stride: int, padding: str | int, pool: int, need_input_grad: bool = True, workspace: Workspace | None = None,
) -> tuple[np.ndarray | None, np.ndarray, np.ndarray | None]:
    """Gradients (d_input or None, d_kernel, d_bias or None) of conv2d_maxpool_forward for grad like out.

    Block by block the pooled gradient is masked by the ReLU (out > 0), routed to the window
    winners of a cache-sized convolution-output gradient, and fed to the convolution's backward.
    """
    conv = Convolution(x.shape, kernel.shape, stride, padding, with_bias, grad.dtype, workspace, pool)
    kernel_t = conv.backward_kernel(kernel)
    d_x = np.empty(x.shape, grad.dtype) if need_input_grad else None

    # Without an input gradient (a first layer), a pool-major block needs only the kernel gradient,
    # which does not care in which order the rows come.
    pool_major = conv.pool_major and d_x is None

    def work(part: int, start: int, stop: int) -> np.ndarray:
        d_matrix = np.zeros((conv.width, conv.f), grad.dtype)
        for a, b, _ in conv.blocks(start, stop):
            g = grad[a:b] * (out[a:b] > 0)
            dz = conv.scratch("dz", part, conv.f)[: (b - a) * conv.rows]
            if pool_major:
                route_taps(g, winners[:, a:b], pool, list(dz.reshape(pool * pool, b - a, *grad.shape[1:])))
                add_transposed_product(conv.cols(part, x[a:b], pool_major=True), dz, d_matrix)
                continue
            route_block(g, winners[:, a:b], pool, dz.reshape(b - a, conv.ho, conv.wo, conv.f))
            conv.backward_block(part, x[a:b], dz, kernel_t, d_matrix, None if d_x is None else d_x[a:b])
        return d_matrix

    return (d_x, *conv.kernel_gradients(parallel_for(conv.n, work), with_bias))
