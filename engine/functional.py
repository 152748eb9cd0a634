"""Vectorised kernels, plus the seed document's three functions under their own names.

Images are (H, W, C); batches are (N, H, W, C); conv filters are (kh, kw, in_channels, filters).
The layers call the same kernels, so the seed's functions and the trained network agree exactly.

Speed notes (the engine must keep up with PyTorch on a laptop CPU; benchmarks/README.md has the
figures and what was tried):

- Each large kernel splits its batch across the engine's threads (engine.parallel), each calling
  single-threaded BLAS, and works through its images in cache-sized blocks: im2col, matrix
  product, ReLU, pooling, all while a block is in cache. Memory traffic and the number of numpy
  calls (each takes the GIL for a moment) are what cost, so every pass over a large array counts:
  the kernels avoid temporaries, work in place on arrays they own, and never upcast float32.
- Scratch arrays (im2col blocks, padded inputs) live in a per-layer ``Workspace`` and are reused
  from step to step; arrays returned to callers are always fresh.
- Conv2D folds its bias into the matrix product (a column of ones in the im2col matrix), so bias
  and bias gradient cost no extra pass.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.lib.stride_tricks import as_strided

from engine.parallel import parallel_for
from engine.shapes import output_size, resolve_padding

# Kernels work through their images in blocks of about this many bytes of im2col matrix (or of
# rows): small enough to stay in a core's cache between the steps of a block, large enough that
# the numpy calls per block (each taking the GIL for a moment) stay few, so that the engine's
# threads do not queue for the GIL. Measured on a 2-core machine: 4 MiB beats 1 MiB by a third.
BLOCK_BYTES = 4 << 20
# A thread's share of an element-wise kernel (or of a matrix product's multiply-adds) must be at
# least this large: handing work to a helper costs tens of microseconds.
MIN_SHARE = 1 << 18


def _min_rows(row_size: int) -> int:
    """Fewest rows of ``row_size`` values (or multiply-adds) worth a thread of their own."""
    return max(1, -(-MIN_SHARE // max(row_size, 1)))


class Workspace:
    """Scratch arrays that one layer reuses from step to step, one per role.

    An array is reallocated only when its key (shape, dtype and whatever else decides its
    contents, e.g. the padding) changes, so a different batch size never sees stale data. Only
    scratch lives here: nothing a caller keeps is ever overwritten.
    """

    def __init__(self) -> None:
        self._arrays: dict[str, tuple[tuple[Any, ...], np.ndarray]] = {}

    def array(self, role: str, shape: tuple[int, ...], dtype: Any, fill: float | None = None,
              key: tuple[Any, ...] = ()) -> np.ndarray:
        """The scratch array for ``role``; a new one is filled with ``fill`` (uninitialised if None).

        A reused array keeps what the last user left in it, which is what lets constant parts
        (zero borders, a column of ones) be written once.
        """
        full_key = (tuple(shape), np.dtype(dtype), fill, key)
        entry = self._arrays.get(role)
        if entry is not None and entry[0] == full_key:
            return entry[1]
        array = np.empty(shape, dtype) if fill is None else np.full(shape, fill, dtype)
        self._arrays[role] = (full_key, array)
        return array

    def clear(self) -> None:
        self._arrays.clear()


def pad_images(x: np.ndarray, pads: tuple[int, int, int, int], value: float = 0.0) -> np.ndarray:
    """Pad a (N, H, W, C) batch by (top, bottom, left, right); returns x itself when no pads."""
    top, bottom, left, right = pads
    if not any(pads):
        return x
    return np.pad(x, ((0, 0), (top, bottom), (left, right), (0, 0)), constant_values=value)


def window_view(xp: np.ndarray, kh: int, kw: int, stride: int) -> np.ndarray:
    """A read-only strided view (N, Ho, Wo, kh, kw, C) of every window of a padded batch.

    No data is copied; the axes are already in the (kh, kw, C) order of a reshaped kernel, so a
    single reshape yields the im2col matrix.
    """
    n, h, w, c = xp.shape
    ho = (h - kh) // stride + 1
    wo = (w - kw) // stride + 1
    sn, sh, sw, sc = xp.strides
    return as_strided(
        xp, (n, ho, wo, kh, kw, c), (sn, sh * stride, sw * stride, sh, sw, sc), writeable=False
    )


def im2col_into(xp: np.ndarray, kh: int, kw: int, stride: int, out: np.ndarray) -> None:
    """Copy the windows of the padded batch xp into out (N, Ho, Wo, kh, kw, C), any strides; Ho and
    Wo may be fewer than xp has windows (the last are left out)."""
    n, ho, wo = out.shape[:3]
    c = xp.shape[3]
    if c > 1:
        # Rows of kw * C contiguous values: one strided copy is fastest.
        np.copyto(out, window_view(xp, kh, kw, stride)[:, :ho, :wo])
        return
    # One channel (a grayscale first layer): rows of kw values copy slowly, so copy one kernel
    # offset at a time instead, each a (N, Ho, Wo, 1) slab with long rows.
    span_h, span_w = stride * (ho - 1) + 1, stride * (wo - 1) + 1
    for i in range(kh):
        for j in range(kw):
            out[:, :, :, i, j, :] = xp[:, i : i + span_h : stride, j : j + span_w : stride, :]


def col2im(cols: np.ndarray, padded_shape: tuple[int, ...], stride: int) -> np.ndarray:
    """Scatter-add window gradients (N, Ho, Wo, kh, kw, C) back onto a padded (N, Hp, Wp, C) grid.

    One vectorised add per kernel offset (kh * kw of them): overlapping windows sum correctly
    without np.add.at.
    """
    n, ho, wo, kh, kw, c = cols.shape
    out = np.zeros(padded_shape, cols.dtype)
    if stride >= kh and stride >= kw:
        # Windows do not overlap: every padded pixel receives at most one contribution.
        for i in range(kh):
            for j in range(kw):
                out[:, i : i + stride * ho : stride, j : j + stride * wo : stride, :] = cols[:, :, :, i, j, :]
        return out
    for i in range(kh):
        for j in range(kw):
            out[:, i : i + stride * ho : stride, j : j + stride * wo : stride, :] += cols[:, :, :, i, j, :]
    return out


def _inside(out_size: int, in_size: int, offset: int, pad_before: int, stride: int) -> tuple[int, int, int]:
    """Output positions o0 <= o < o1 whose window tap at ``offset`` lands inside the input, and
    the input position i0 of the first: i = o * stride + offset - pad_before."""
    o0 = max(0, -((offset - pad_before) // stride))
    o1 = min(out_size, (in_size - 1 + pad_before - offset) // stride + 1)
    return o0, o1, o0 * stride + offset - pad_before


def col2im_add(cols: np.ndarray, dx: np.ndarray, pads: tuple[int, int, int, int], stride: int) -> None:
    """Add window gradients (N, Ho, Wo, kh, kw, C) into the unpadded input gradient dx (N, H, W, C).

    Taps that fall on padding are skipped, so no padded grid is built and cropped.
    """
    _, ho, wo, kh, kw, _ = cols.shape
    h, w = dx.shape[1:3]
    top, _, left, _ = pads
    for i in range(kh):
        r0, r1, ih = _inside(ho, h, i, top, stride)
        if r1 <= r0:
            continue
        for j in range(kw):
            c0, c1, iw = _inside(wo, w, j, left, stride)
            if c1 <= c0:
                continue
            target = dx[:, ih : ih + (r1 - r0 - 1) * stride + 1 : stride, iw : iw + (c1 - c0 - 1) * stride + 1 : stride]
            target += cols[:, r0:r1, c0:c1, i, j, :]


def conv_pads(h: int, w: int, kh: int, kw: int, stride: int, padding: str | int) -> tuple[int, int, int, int]:
    top, bottom = resolve_padding(padding, kh, stride, h)
    left, right = resolve_padding(padding, kw, stride, w)
    return top, bottom, left, right


def _images_per_block(bytes_per_image: int, n: int) -> int:
    return max(1, min(n, BLOCK_BYTES // max(bytes_per_image, 1)))


def _cols_windows(cols: np.ndarray, n: int, ho: int, wo: int, kh: int, kw: int, c: int) -> np.ndarray:
    """The first kh*kw*C columns of an im2col matrix (rows may be longer) as (N, Ho, Wo, kh, kw, C)."""
    row, item = cols.strides[0], cols.itemsize
    return as_strided(cols, (n, ho, wo, kh, kw, c), (ho * wo * row, wo * row, row, kw * c * item, c * item, item))


class _Convolution:
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
        self.rows = self.ho * self.wo  # im2col rows per image
        self.k = self.kh * self.kw * self.c
        # A last column of ones makes the bias one more row of the kernel matrix.
        self.width = self.k + with_bias
        self.dtype = np.dtype(dtype)
        self.workspace = workspace if workspace is not None else Workspace()
        self.block = _images_per_block(self.rows * max(self.width, self.f) * self.dtype.itemsize, self.n)

    def cols(self, part: int, x: np.ndarray) -> np.ndarray:
        """The im2col matrix (n*Ho*Wo, k [+1]) of the few images x, in thread ``part``'s scratch."""
        n = len(x)
        if any(self.pads):
            top, bottom, left, right = self.pads
            shape = (self.block, self.h + top + bottom, self.w + left + right, self.c)
            # The border is zeroed once, when the scratch is made; only the inside is written.
            padded = self.workspace.array(f"padded{part}", shape, self.dtype, fill=0, key=self.pads)[:n]
            padded[:, top : top + self.h, left : left + self.w, :] = x
            x = padded
        ones = 1 if self.width > self.k else None
        scratch = self.workspace.array(f"cols{part}", (self.block * self.rows, self.width), self.dtype, fill=ones)
        cols = scratch[: n * self.rows]
        im2col_into(x, self.kh, self.kw, self.stride, _cols_windows(cols, n, self.ho, self.wo, self.kh, self.kw,
                                                                    self.c))
        return cols

    def blocks(self, start: int, stop: int) -> list[tuple[int, int, slice]]:
        """(first image, end image, their im2col rows) for cache-sized blocks of [start, stop)."""
        return [(a, min(a + self.block, stop), slice(a * self.rows, min(a + self.block, stop) * self.rows))
                for a in range(start, stop, self.block)]

    def backward_kernel(self, kernel: np.ndarray) -> np.ndarray:
        """The matrix backward_block multiplies output gradients with: (F, k), the kernel matrix
        transposed; or, when same_size, the kernel flipped in space with C and F swapped,
        (kh*kw*F, C)."""
        if self.same_size:
            return np.ascontiguousarray(kernel[::-1, ::-1].transpose(0, 1, 3, 2)).reshape(-1, self.c)
        return kernel.reshape(self.k, self.f).T

    def scratch(self, role: str, part: int, columns: int) -> np.ndarray:
        """Thread ``part``'s (block images * Ho*Wo, columns) scratch matrix for ``role``."""
        return self.workspace.array(f"{role}{part}", (self.block * self.rows, columns), self.dtype)

    def backward_block(self, part: int, x: np.ndarray, g: np.ndarray, kernel_t: np.ndarray,
                       d_matrix: np.ndarray, d_x: np.ndarray | None) -> None:
        """For the few images x and their output gradient rows g (n*Ho*Wo, F): add their kernel
        (and bias) gradient to d_matrix, and write their input gradient into d_x unless None."""
        d_matrix += self.cols(part, x).T @ g
        if d_x is None:
            return
        if self.same_size:
            self._input_gradient_by_matmul(part, g, kernel_t, d_x)
            return
        d_cols = np.matmul(g, kernel_t, out=self.scratch("d_cols", part, self.k)[: len(g)])
        d_x[...] = 0  # here, not np.zeros up front: this block is about to be in cache
        col2im_add(d_cols.reshape(len(x), self.ho, self.wo, self.kh, self.kw, self.c), d_x, self.pads, self.stride)

    @property
    def same_size(self) -> bool:
        """Stride 1 with kh-1 and kw-1 pixels of padding: the input gradient is itself a 'same'
        convolution of the output gradient, with the kernel flipped and transposed."""
        top, bottom, left, right = self.pads
        return self.stride == 1 and top + bottom == self.kh - 1 and left + right == self.kw - 1

    def _input_gradient_by_matmul(self, part: int, g: np.ndarray, kernel_t: np.ndarray, d_x: np.ndarray) -> None:
        """d_x = im2col(padded output gradient) @ flipped kernel: one product writing d_x, instead of
        window gradients and kh*kw scatter-adds (col2im). Output rows cut off before pooling pad
        with zeros like the border."""
        n = len(d_x)
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
        im2col_into(padded, self.kh, self.kw, 1, _cols_windows(cols, n, self.h, self.w, self.kh, self.kw, self.f))
        np.matmul(cols, kernel_t, out=d_x.reshape(n * self.h * self.w, self.c))


def _kernel_matrix(kernel: np.ndarray, bias: np.ndarray | None, workspace: Workspace) -> np.ndarray:
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
    conv = _Convolution(x.shape, kernel.shape, stride, padding, bias is not None, x.dtype, workspace)
    matrix = _kernel_matrix(kernel, bias, conv.workspace)
    out = np.empty((conv.n * conv.rows, conv.f), x.dtype)
    mask_rows = None if relu_mask is None else relu_mask.reshape(out.shape)

    def work(part: int, start: int, stop: int) -> None:
        for a, b, rows in conv.blocks(start, stop):
            block_out = np.matmul(conv.cols(part, x[a:b]), matrix, out=out[rows])
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
    conv = _Convolution(x.shape, kernel.shape, stride, padding, with_bias, grad.dtype, workspace)
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

    return (d_x, *_kernel_gradients(parallel_for(conv.n, work), kernel.shape, with_bias))


def _kernel_gradients(parts: list[np.ndarray], kernel_shape: tuple[int, ...],
                      with_bias: bool) -> tuple[np.ndarray, np.ndarray | None]:
    """(d_kernel, d_bias or None) from the threads' partial (k [+1], F) kernel-matrix gradients."""
    d_matrix = parts[0]
    for other in parts[1:]:
        d_matrix += other
    k = int(np.prod(kernel_shape[:3]))
    return d_matrix[:k].reshape(kernel_shape), (d_matrix[k] if with_bias else None)


def conv2d_maxpool_forward(
    x: np.ndarray, kernel: np.ndarray, bias: np.ndarray | None, stride: int, padding: str | int, pool: int,
    workspace: Workspace | None = None, keep_winners: bool = True,
) -> tuple[np.ndarray, np.ndarray | None]:
    """Conv2D with ReLU, then max pooling with stride == pool, as one kernel.

    Returns (relu(maxpool(conv(x))) (N, Ho // pool, Wo // pool, F), winners as _tiled_max gives them
    or None). Max and ReLU commute, so rectifying the pooled values is exact; block by block the
    full-size convolution output exists only in cache, never in memory.
    """
    conv = _Convolution(x.shape, kernel.shape, stride, padding, bias is not None, x.dtype, workspace, pool)
    matrix = _kernel_matrix(kernel, bias, conv.workspace)
    po, qo = conv.ho // pool, conv.wo // pool
    out = np.empty((conv.n, po, qo, conv.f), x.dtype)
    winners = np.empty((pool * pool, *out.shape), bool) if keep_winners else None

    def work(part: int, start: int, stop: int) -> None:
        for a, b, _ in conv.blocks(start, stop):
            z = np.matmul(conv.cols(part, x[a:b]), matrix, out=conv.scratch("z", part, conv.f)[: (b - a) * conv.rows])
            _max_pool_block(z.reshape(b - a, conv.ho, conv.wo, conv.f), pool, out[a:b],
                            None if winners is None else winners[:, a:b])
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
    conv = _Convolution(x.shape, kernel.shape, stride, padding, with_bias, grad.dtype, workspace, pool)
    kernel_t = conv.backward_kernel(kernel)
    d_x = np.empty(x.shape, grad.dtype) if need_input_grad else None

    def work(part: int, start: int, stop: int) -> np.ndarray:
        d_matrix = np.zeros((conv.width, conv.f), grad.dtype)
        for a, b, _ in conv.blocks(start, stop):
            g = grad[a:b] * (out[a:b] > 0)
            dz = conv.scratch("dz", part, conv.f)[: (b - a) * conv.rows]
            _route_block(g, winners[:, a:b], pool, dz.reshape(b - a, conv.ho, conv.wo, conv.f))
            conv.backward_block(part, x[a:b], dz, kernel_t, d_matrix, None if d_x is None else d_x[a:b])
        return d_matrix

    return (d_x, *_kernel_gradients(parallel_for(conv.n, work), kernel.shape, with_bias))


def pool_forward(
    x: np.ndarray, pool: int, stride: int, padding: str | int, mode: str, training: bool = False,
    relu: bool = False,
) -> tuple[np.ndarray, object]:
    """Max or average pooling of (N, H, W, C); returns the output and what backward needs.

    Average pooling counts padded zeros in the divisor (ONNX count_include_pad=1, PyTorch's
    default); max pooling pads with -inf so padding never wins. With ``training`` the tiled max
    path records which input wins each window while the data is in cache (backward then never
    reads x); otherwise backward works that out from x. ``relu`` (tiled max pooling only) pools
    max(x, 0) without making it: a ReLU layer before the pooling, fused.
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
    if tiled:
        # Non-overlapping windows: a reshape of the cropped input is the window view.
        xr = x[:, : ho * pool, : wo * pool, :].reshape(n, ho, pool, wo, pool, c)
        return xr.mean(axis=(2, 4), dtype=x.dtype), (x.shape, pads, ho, wo, tiled)
    fill = -np.inf if mode == "max" else 0.0
    windows = window_view(pad_images(x, pads, fill), pool, pool, stride)
    if mode == "avg":
        return windows.mean(axis=(3, 4), dtype=x.dtype), (x.shape, pads, ho, wo, tiled)
    flat = windows.reshape(n, ho, wo, pool * pool, c)
    arg = flat.argmax(axis=3)
    out = np.take_along_axis(flat, arg[:, :, :, None, :], axis=3)[:, :, :, 0, :]
    return out, (x.shape, pads, ho, wo, tiled, arg)


def _tap(x: np.ndarray, i: int, j: int, pool: int, ho: int, wo: int) -> np.ndarray:
    """The (N, Ho, Wo, C) strided view of tap (i, j) of every non-overlapping pool x pool window."""
    return x[:, i : i + pool * (ho - 1) + 1 : pool, j : j + pool * (wo - 1) + 1 : pool, :]


def _first_true(masks: list[np.ndarray]) -> list[np.ndarray]:
    """Masks 'equals the maximum' (one per candidate, in order, all but the last) turned in place
    into 'is the first that does', plus the last candidate's mask: none of the others."""
    taken = masks[0].copy()
    for mask in masks[1:]:
        mask &= ~taken
        taken |= mask
    return [*masks, ~taken]


def _max_pool_block(xs: np.ndarray, pool: int, out: np.ndarray, winners: np.ndarray | None) -> None:
    """Tiled max pooling of a few images xs (n, H, W, C) into out (n, Ho, Wo, C), and with winners
    ((pool*pool, n, Ho, Wo, C) bool) one mask per tap: true where that tap is the window's first
    maximum in row-major order (PyTorch's choice), i.e. the first window row whose maximum equals
    the output, then that row's first tap equal to it. Ties, common after ReLU, route once."""
    ho, wo = out.shape[1:3]
    row_maxima = []
    for i in range(pool):
        row_max = _tap(xs, i, 0, pool, ho, wo).copy() if pool == 1 else None
        for j in range(1, pool):
            earlier = _tap(xs, i, 0, pool, ho, wo) if row_max is None else row_max
            row_max = np.maximum(earlier, _tap(xs, i, j, pool, ho, wo), out=row_max)
        row_maxima.append(row_max)
    np.copyto(out, row_maxima[0])
    for row_max in row_maxima[1:]:
        np.maximum(out, row_max, out=out)
    if winners is None:
        return
    if pool == 1:
        winners[0] = True
        return
    rows = _first_true([row_max == out for row_max in row_maxima[:-1]])
    for i, row_max in enumerate(row_maxima):
        taps = _first_true([_tap(xs, i, j, pool, ho, wo) == row_max for j in range(pool - 1)])
        for j, hit in enumerate(taps):
            np.logical_and(hit, rows[i], out=winners[i * pool + j])


def _route_block(grad: np.ndarray, winners: np.ndarray, pool: int, d: np.ndarray) -> None:
    """Each window's gradient (grad (n, Ho, Wo, C)) to the input that won it, into d (n, H, W, C)."""
    ho, wo = grad.shape[1:3]
    # Rows and columns beyond the last whole window get no gradient.
    d[:, ho * pool :] = 0
    d[:, :, wo * pool :] = 0
    for i in range(pool):
        for j in range(pool):
            np.multiply(grad, winners[i * pool + j], out=_tap(d, i, j, pool, ho, wo))


def _tiled_max(x: np.ndarray, pool: int, ho: int, wo: int, keep_winners: bool,
               relu: bool = False) -> tuple[np.ndarray, np.ndarray | None]:
    """Max pooling with stride == pool: element-wise maxima of strided taps, no window copies.

    Returns the output (N, Ho, Wo, C) and, with ``keep_winners``, the (pool*pool, N, Ho, Wo, C)
    winner masks of _max_pool_block. With ``relu`` the output is rectified, which is pooling
    max(x, 0): max and ReLU commute.
    """
    n, h, w, c = x.shape
    out = np.empty((n, ho, wo, c), x.dtype)
    winners = np.empty((pool * pool, n, ho, wo, c), bool) if keep_winners else None
    block = _images_per_block(h * w * c * x.itemsize, n)

    def work(part: int, start: int, stop: int) -> None:
        for a in range(start, stop, block):
            b = min(a + block, stop)
            _max_pool_block(x[a:b], pool, out[a:b], None if winners is None else winners[:, a:b])
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
        _route_block(g, winners[:, start:stop], pool, dx[start:stop])

    parallel_for(len(grad), work)
    return dx


def pool_backward(grad: np.ndarray, cache: tuple, pool: int, stride: int, mode: str) -> np.ndarray:
    """Gradient of pool_forward with respect to its input."""
    input_shape, pads, ho, wo, tiled = cache[:5]
    n, h, w, c = input_shape
    if tiled and mode == "max":
        x, winners, relu_output = cache[5:8]
        if winners is None:
            winners = _tiled_max(x, pool, ho, wo, keep_winners=True)[1]
        return _tiled_max_backward(grad, winners, input_shape, pool, relu_output)
    if tiled:
        dx = np.zeros(input_shape, grad.dtype)
        view = dx[:, : ho * pool, : wo * pool, :].reshape(n, ho, pool, wo, pool, c)
        view[...] = (grad / (pool * pool))[:, :, None, :, None, :]
        return dx
    if mode == "avg":
        cols = np.broadcast_to(
            (grad / (pool * pool))[:, :, :, None, None, :], (n, ho, wo, pool, pool, c)
        )
    else:
        flat = np.zeros((n, ho, wo, pool * pool, c), grad.dtype)
        np.put_along_axis(flat, cache[5][:, :, :, None, :], grad[:, :, :, None, :], axis=3)
        cols = flat.reshape(n, ho, wo, pool, pool, c)
    top, bottom, left, right = pads
    dxp = col2im(cols, (n, h + top + bottom, w + left + right, c), stride)
    return dxp[:, top : top + h, left : left + w, :]


def relu_forward(x: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
    """max(x, 0), split across the engine threads; ``mask`` (bool, like x) receives output > 0."""
    out = np.empty(x.shape, x.dtype)

    def work(part: int, start: int, stop: int) -> None:
        np.maximum(x[start:stop], 0, out=out[start:stop])
        if mask is not None:
            np.greater(out[start:stop], 0, out=mask[start:stop])

    parallel_for(len(x), work, min_items=_min_rows(x[0].size if len(x) else 1))
    return out


def relu_backward(grad: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """grad where mask (the ReLU output > 0, or the output itself) is true, else 0."""
    d_x = np.empty(grad.shape, grad.dtype)

    def work(part: int, start: int, stop: int) -> None:
        keep = mask[start:stop]
        np.multiply(grad[start:stop], keep if keep.dtype == bool else keep > 0, out=d_x[start:stop])

    parallel_for(len(grad), work, min_items=_min_rows(grad[0].size if len(grad) else 1))
    return d_x


def matmul(a: np.ndarray, b: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """a (M, K) @ b (K, N), rows of a split across the engine threads (BLAS runs single-threaded)."""
    out = np.empty((a.shape[0], b.shape[1]), np.result_type(a, b)) if out is None else out

    def work(part: int, start: int, stop: int) -> None:
        np.matmul(a[start:stop], b, out=out[start:stop])

    parallel_for(a.shape[0], work, min_items=_min_rows(a.shape[1] * b.shape[1]))
    return out


def _channel_rows(x: np.ndarray) -> np.ndarray:
    """(..., C) as a C-contiguous (M, C) matrix (no copy when x is contiguous)."""
    return np.ascontiguousarray(x).reshape(-1, x.shape[-1])


def _wide_rows(rows: np.ndarray) -> tuple[np.ndarray, int]:
    """(M, C) rows viewed as (M / r, r * C), r up to 32 and dividing M, and r: per-channel
    operations then run over long rows (numpy's loops are slow on rows of a few dozen values)."""
    m, c = rows.shape
    r = 1
    while r < 32 and m % (2 * r) == 0:
        r *= 2
    return rows.reshape(m // r, r * c), r


def _rows_per_block(width: int, itemsize: int) -> int:
    return max(1, BLOCK_BYTES // (width * itemsize))


def _row_blocks(start: int, stop: int, width: int, itemsize: int) -> list[tuple[int, int]]:
    """Cache-sized blocks of rows [start, stop) of a matrix with rows of ``width`` values."""
    step = _rows_per_block(width, itemsize)
    return [(a, min(a + step, stop)) for a in range(start, stop, step)]


def batch_norm_forward(
    x: np.ndarray, gamma: np.ndarray, beta: np.ndarray, epsilon: float, workspace: Workspace | None = None
) -> tuple[np.ndarray, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Normalise over every axis but the last with the batch's own statistics.

    Returns (output shaped like x, (mean, inv_std, var)), all per channel. Two passes over the
    data, each thread taking a range of rows in cache-sized blocks: one for the sums (BLAS
    products with a ones vector), one writing x * scale + offset. The sums are of x minus a
    per-channel reference close to the mean (the mean of the first rows), so the variance
    E[d^2] - E[d]^2 does not cancel for data far from zero.
    """
    workspace = workspace if workspace is not None else Workspace()
    rows = _channel_rows(x)
    m, c = rows.shape
    dt = x.dtype.type
    wide, r = _wide_rows(rows)
    reference = rows[:256].mean(axis=0, dtype=x.dtype)
    wide_reference = np.tile(reference, r)
    ones = np.ones(len(wide), x.dtype)

    def sums(part: int, start: int, stop: int) -> tuple[np.ndarray, np.ndarray]:
        first, second = np.zeros(r * c, x.dtype), np.zeros(r * c, x.dtype)
        scratch = workspace.array(f"shifted{part}", (_rows_per_block(r * c, x.itemsize), r * c), x.dtype)
        for a, b in _row_blocks(start, stop, r * c, x.itemsize):
            d = np.subtract(wide[a:b], wide_reference, out=scratch[: b - a])
            first += ones[a:b] @ d
            second += np.einsum("ij,ij->j", d, d)
        return first, second

    parts = parallel_for(len(wide), sums, min_items=_min_rows(r * c))
    shift = sum(p[0] for p in parts).reshape(r, c).sum(axis=0) / dt(m)
    var = np.maximum(sum(p[1] for p in parts).reshape(r, c).sum(axis=0) / dt(m) - shift * shift, 0)
    mean = reference + shift
    inv_std = 1 / np.sqrt(var + dt(epsilon))
    scale = np.tile((gamma * inv_std).astype(x.dtype, copy=False), r)
    offset = np.tile((beta - mean * gamma * inv_std).astype(x.dtype, copy=False), r)
    out = np.empty_like(wide)

    def normalise(part: int, start: int, stop: int) -> None:
        for a, b in _row_blocks(start, stop, r * c, x.itemsize):
            block = np.multiply(wide[a:b], scale, out=out[a:b])
            block += offset

    parallel_for(len(wide), normalise, min_items=_min_rows(r * c))
    return out.reshape(x.shape), (mean, inv_std, var)


def batch_norm_backward(grad: np.ndarray, x: np.ndarray, gamma: np.ndarray, mean: np.ndarray,
                        inv_std: np.ndarray, workspace: Workspace | None = None):
    """Returns (d_x, d_gamma, d_beta) for batch_norm_forward(x) in training mode.

    With x_hat = (x - mean) * inv_std: d_x = gamma * inv_std * (grad - d_beta / m - x_hat * d_gamma / m),
    the full derivative through the batch mean and variance. Two passes over grad and x in
    cache-sized blocks (x_hat is never stored): the sums, then one affine combination
    x * a + grad * b + c per channel.
    """
    workspace = workspace if workspace is not None else Workspace()
    g_wide, r = _wide_rows(_channel_rows(grad))
    x_wide = _channel_rows(x).reshape(g_wide.shape)
    c = grad.shape[-1]
    m = len(g_wide) * r
    wide_mean = np.tile(mean.astype(grad.dtype, copy=False), r)
    ones = np.ones(len(g_wide), grad.dtype)

    def sums(part: int, start: int, stop: int) -> tuple[np.ndarray, np.ndarray]:
        d_beta, along = np.zeros(r * c, grad.dtype), np.zeros(r * c, grad.dtype)
        scratch = workspace.array(f"centred{part}", (_rows_per_block(r * c, grad.itemsize), r * c), grad.dtype)
        for a, b in _row_blocks(start, stop, r * c, grad.itemsize):
            d_beta += ones[a:b] @ g_wide[a:b]
            along += np.einsum("ij,ij->j", g_wide[a:b], np.subtract(x_wide[a:b], wide_mean, out=scratch[: b - a]))
        return d_beta, along

    parts = parallel_for(len(g_wide), sums, min_items=_min_rows(r * c))
    d_beta = sum(p[0] for p in parts).reshape(r, c).sum(axis=0)
    d_gamma = sum(p[1] for p in parts).reshape(r, c).sum(axis=0) * inv_std
    scale = gamma * inv_std
    along_centred = -scale * inv_std * d_gamma / m
    offset = -scale * d_beta / m
    along_centred, along_grad, offset = (np.tile(v.astype(grad.dtype, copy=False), r)
                                         for v in (along_centred, scale, offset))
    d_x = np.empty_like(g_wide)

    def combine(part: int, start: int, stop: int) -> None:
        scratch = workspace.array(f"centred{part}", (_rows_per_block(r * c, grad.itemsize), r * c), grad.dtype)
        for a, b in _row_blocks(start, stop, r * c, grad.itemsize):
            # (x - mean) first: x * a - mean * a would cancel for data far from zero.
            block = np.subtract(x_wide[a:b], wide_mean, out=d_x[a:b])
            block *= along_centred
            block += np.multiply(g_wide[a:b], along_grad, out=scratch[: b - a])
            block += offset

    parallel_for(len(g_wide), combine, min_items=_min_rows(r * c))
    return d_x.reshape(grad.shape), d_gamma, d_beta


# -- the seed document's functions, under the seed's names and arguments -------------------------
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
