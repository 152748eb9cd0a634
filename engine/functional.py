"""Vectorised kernels, plus the seed document's three functions under their own names.

Images are (H, W, C); batches are (N, H, W, C); conv filters are (kh, kw, in_channels, filters).
The layers call the same kernels, so the seed's functions and the trained network agree exactly.

Speed notes (the engine must keep up with PyTorch on a laptop CPU):

- The matrix products go to BLAS, which is multi-threaded; numpy's element-wise operations are
  not, so every pass over a large array counts. The kernels avoid temporaries, work in place on
  arrays they own, and never upcast float32.
- Large scratch arrays (im2col matrices, padded inputs) live in a per-layer ``Workspace`` and are
  reused from step to step; arrays returned to callers are always fresh.
- Conv2D folds its bias into the matrix product (a column of ones in the im2col matrix), so bias
  and bias gradient cost no extra pass.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.lib.stride_tricks import as_strided

from engine.shapes import output_size, resolve_padding

# Input-gradient im2col blocks are computed this many bytes at a time, so each block is still in
# cache when col2im reads it back, and inference never materialises a whole-batch im2col matrix.
BLOCK_BYTES = 4 << 20


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

    def __len__(self) -> int:
        return len(self._arrays)


def pad_images(x: np.ndarray, pads: tuple[int, int, int, int], value: float = 0.0) -> np.ndarray:
    """Pad a (N, H, W, C) batch by (top, bottom, left, right); returns x itself when no pads."""
    top, bottom, left, right = pads
    if not any(pads):
        return x
    return np.pad(x, ((0, 0), (top, bottom), (left, right), (0, 0)), constant_values=value)


def pad_into(x: np.ndarray, pads: tuple[int, int, int, int], workspace: Workspace, value: float = 0.0,
             capacity: int | None = None) -> np.ndarray:
    """Like pad_images, but into a reused workspace array (room for ``capacity`` images) whose
    border was filled once."""
    top, bottom, left, right = pads
    if not any(pads):
        return x
    n, h, w, c = x.shape
    shape = (max(n, capacity or 0), h + top + bottom, w + left + right, c)
    xp = workspace.array("padded", shape, x.dtype, fill=value, key=pads)[:n]
    xp[:, top : top + h, left : left + w, :] = x
    return xp


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
    """Copy every window of the padded batch xp into out (N, Ho, Wo, kh, kw, C), any strides."""
    n, ho, wo = out.shape[:3]
    c = xp.shape[3]
    if c >= 4:
        # Rows of kw * C contiguous values: one strided copy is fastest.
        np.copyto(out, window_view(xp, kh, kw, stride))
        return
    # Few channels (e.g. a grayscale first layer): numpy copies 1-3 value rows slowly, so copy
    # one kernel offset at a time instead, each a (N, Ho, Wo, C) slab with long rows.
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


def conv_cols(
    x: np.ndarray, kh: int, kw: int, stride: int, padding: str | int, with_ones: bool,
    workspace: Workspace | None = None, capacity: int | None = None,
) -> np.ndarray:
    """The im2col matrix (N*Ho*Wo, kh*kw*C) of a (N, H, W, C) batch, plus a last column of ones
    when ``with_ones`` (so that a bias row appended to the kernel matrix adds the bias).

    The matrix is a view of a workspace array with room for ``capacity`` images (default N), so
    blocks of varying size share one allocation.
    """
    workspace = workspace or Workspace()
    n, h, w, c = x.shape
    pads = conv_pads(h, w, kh, kw, stride, padding)
    xp = pad_into(x, pads, workspace, capacity=capacity)
    ho, wo = output_size(h, kh, stride, pads[0], pads[1]), output_size(w, kw, stride, pads[2], pads[3])
    k = kh * kw * c
    # The ones column is written once when the array is made; later steps only write columns < k.
    room = max(n, capacity or 0) * ho * wo
    cols = workspace.array("cols", (room, k + with_ones), x.dtype, fill=1 if with_ones else None)[: n * ho * wo]
    row = cols.strides[0]
    item = cols.itemsize
    windows = as_strided(cols, (n, ho, wo, kh, kw, c), (ho * wo * row, wo * row, row, kw * c * item, c * item, item))
    im2col_into(xp, kh, kw, stride, windows)
    return cols


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
    workspace: Workspace | None = None, keep_cols: bool = True,
) -> tuple[np.ndarray, np.ndarray | None]:
    """(N, H, W, C) * (kh, kw, C, F) [+ bias (F,)] -> (output (N, Ho, Wo, F), im2col matrix or None).

    The im2col matrix is (N*Ho*Wo, kh*kw*C), with a last column of ones when there is a bias; it
    lives in ``workspace`` (valid until the next call) and backward reuses it. With
    ``keep_cols=False`` (inference) the batch is processed in blocks and None is returned.
    """
    workspace = workspace or Workspace()
    kh, kw, c, f = kernel.shape
    n, h, w, _ = x.shape
    pads = conv_pads(h, w, kh, kw, stride, padding)
    ho, wo = output_size(h, kh, stride, pads[0], pads[1]), output_size(w, kw, stride, pads[2], pads[3])
    matrix = _kernel_matrix(kernel, bias, workspace)
    with_ones = bias is not None
    if keep_cols:
        cols = conv_cols(x, kh, kw, stride, padding, with_ones, workspace)
        return (cols @ matrix).reshape(n, ho, wo, f), cols
    out = np.empty((n, ho, wo, f), x.dtype)
    block = _images_per_block(ho * wo * matrix.shape[0] * x.itemsize, n)
    for start in range(0, n, block):
        part = slice(start, min(start + block, n))
        cols = conv_cols(x[part], kh, kw, stride, padding, with_ones, workspace, capacity=block)
        np.matmul(cols, matrix, out=out[part].reshape(-1, f))
    return out, None


def _images_per_block(bytes_per_image: int, n: int) -> int:
    return max(1, min(n, BLOCK_BYTES // max(bytes_per_image, 1)))


def conv2d_backward(
    grad: np.ndarray,
    cols: np.ndarray,
    kernel: np.ndarray,
    input_shape: tuple[int, ...],
    stride: int,
    padding: str | int,
    need_input_grad: bool = True,
    workspace: Workspace | None = None,
) -> tuple[np.ndarray | None, np.ndarray, np.ndarray]:
    """Gradients (d_input or None, d_kernel, d_bias) of conv2d_forward for upstream grad (N, Ho, Wo, F).

    ``cols`` is conv2d_forward's im2col matrix (a last column of ones yields d_bias in the same
    product). The input gradient is built block by block: each block of window gradients is
    added back (col2im) while it is still in cache.
    """
    workspace = workspace or Workspace()
    kh, kw, c, f = kernel.shape
    n, ho, wo, _ = grad.shape
    k = kh * kw * c
    g2 = np.ascontiguousarray(grad).reshape(n * ho * wo, f)
    d_matrix = cols.T @ g2
    d_kernel = d_matrix[:k].reshape(kernel.shape)
    d_bias = d_matrix[k] if cols.shape[1] > k else np.ones(len(g2), g2.dtype) @ g2
    if not need_input_grad:
        return None, d_kernel, d_bias
    _, h, w, _ = input_shape
    pads = conv_pads(h, w, kh, kw, stride, padding)
    kernel_t = kernel.reshape(k, f).T
    d_x = np.zeros(input_shape, grad.dtype)
    rows = ho * wo
    block = _images_per_block(rows * k * grad.itemsize, n)
    scratch = workspace.array("d_cols", (block * rows, k), grad.dtype)
    for start in range(0, n, block):
        stop = min(start + block, n)
        d_cols = scratch[: (stop - start) * rows]
        np.matmul(g2[start * rows : stop * rows], kernel_t, out=d_cols)
        col2im_add(d_cols.reshape(stop - start, ho, wo, kh, kw, c), d_x[start:stop], pads, stride)
    return d_x, d_kernel, d_bias


def pool_forward(
    x: np.ndarray, pool: int, stride: int, padding: str | int, mode: str
) -> tuple[np.ndarray, object]:
    """Max or average pooling of (N, H, W, C); returns the output and what backward needs.

    Average pooling counts padded zeros in the divisor (ONNX count_include_pad=1, PyTorch's
    default); max pooling pads with -inf so padding never wins.
    """
    n, h, w, c = x.shape
    pads = conv_pads(h, w, pool, pool, stride, padding)
    ho = output_size(h, pool, stride, pads[0], pads[1])
    wo = output_size(w, pool, stride, pads[2], pads[3])
    tiled = stride == pool and not any(pads)
    if tiled:
        if mode == "avg":
            # Non-overlapping windows: a reshape of the cropped input is the window view.
            xr = x[:, : ho * pool, : wo * pool, :].reshape(n, ho, pool, wo, pool, c)
            return xr.mean(axis=(2, 4), dtype=x.dtype), (x.shape, pads, ho, wo, tiled)
        # Element-wise maxima of the pool*pool strided sub-grids (one per window offset): no
        # window copy and no argmax; backward finds the winners again by comparison.
        taps = _tile_taps(x, pool, ho, wo)
        out = np.maximum(taps[0], taps[1]) if len(taps) > 1 else taps[0].copy()
        for tap in taps[2:]:
            np.maximum(out, tap, out=out)
        return out, (x.shape, pads, ho, wo, tiled, x, out)
    fill = -np.inf if mode == "max" else 0.0
    windows = window_view(pad_images(x, pads, fill), pool, pool, stride)
    if mode == "avg":
        return windows.mean(axis=(3, 4), dtype=x.dtype), (x.shape, pads, ho, wo, tiled)
    flat = windows.reshape(n, ho, wo, pool * pool, c)
    arg = flat.argmax(axis=3)
    out = np.take_along_axis(flat, arg[:, :, :, None, :], axis=3)[:, :, :, 0, :]
    return out, (x.shape, pads, ho, wo, tiled, arg)


def _tile_taps(x: np.ndarray, pool: int, ho: int, wo: int) -> list[np.ndarray]:
    """The pool*pool strided views (N, Ho, Wo, C) of non-overlapping windows, in row-major tap order."""
    span_h, span_w = pool * (ho - 1) + 1, pool * (wo - 1) + 1
    return [x[:, i : i + span_h : pool, j : j + span_w : pool, :] for i in range(pool) for j in range(pool)]


def pool_backward(grad: np.ndarray, cache: tuple, pool: int, stride: int, mode: str) -> np.ndarray:
    """Gradient of pool_forward with respect to its input."""
    input_shape, pads, ho, wo, tiled = cache[:5]
    n, h, w, c = input_shape
    if tiled:
        dx = np.zeros(input_shape, grad.dtype)
        if mode == "avg":
            view = dx[:, : ho * pool, : wo * pool, :].reshape(n, ho, pool, wo, pool, c)
            view[...] = (grad / (pool * pool))[:, :, None, :, None, :]
            return dx
        x, out = cache[5], cache[6]
        # Each window's gradient goes to its first maximum in row-major order (as in PyTorch),
        # so ties (common after ReLU) are routed once.
        taken = None
        for tap, target in zip(_tile_taps(x, pool, ho, wo), _tile_taps(dx, pool, ho, wo)):
            hit = tap == out
            if taken is None:
                taken = hit
            else:
                hit &= ~taken
                taken |= hit
            np.multiply(grad, hit, out=target)
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


def batch_norm_forward(
    x: np.ndarray, gamma: np.ndarray, beta: np.ndarray, epsilon: float
) -> tuple[np.ndarray, tuple]:
    """Normalise over every axis but the last with the batch's own statistics.

    Returns (output, (x_hat, inv_std, mean, var)), x_hat and output shaped like x. The sums over
    the N*H*W rows are matrix products (BLAS, multi-threaded) rather than numpy reductions.
    """
    c = x.shape[-1]
    rows = np.ascontiguousarray(x).reshape(-1, c)
    m = rows.shape[0]
    mean = (np.ones(m, x.dtype) @ rows) / x.dtype.type(m)
    x_hat = rows - mean
    # Two-pass variance (of the centred values): no cancellation for data far from zero.
    var = np.einsum("ij,ij->j", x_hat, x_hat) / x.dtype.type(m)
    inv_std = 1 / np.sqrt(var + x.dtype.type(epsilon))
    x_hat *= inv_std
    out = x_hat * gamma
    out += beta
    return out.reshape(x.shape), (x_hat.reshape(x.shape), inv_std, mean, var)


def batch_norm_backward(grad: np.ndarray, gamma: np.ndarray, x_hat: np.ndarray, inv_std: np.ndarray):
    """Returns (d_x, d_gamma, d_beta) for batch_norm_forward in training mode.

    d_x = gamma * inv_std * (grad - d_beta / m - x_hat * d_gamma / m): the full derivative through
    the batch mean and variance, applied as one per-channel affine combination of grad and x_hat.
    """
    c = grad.shape[-1]
    g2 = np.ascontiguousarray(grad).reshape(-1, c)
    xh = x_hat.reshape(-1, c)
    m = g2.shape[0]
    d_beta = np.ones(m, grad.dtype) @ g2
    d_gamma = np.einsum("ij,ij->j", g2, xh)
    scale = (gamma * inv_std).astype(grad.dtype, copy=False)
    d_x = g2 * scale
    d_x -= xh * (scale * d_gamma / m).astype(grad.dtype, copy=False)
    d_x -= (scale * d_beta / m).astype(grad.dtype, copy=False)
    return d_x.reshape(grad.shape), d_gamma, d_beta


# -- the seed document's functions, under the seed's names and arguments -------------------------
def _as_batch(x: np.ndarray) -> tuple[np.ndarray, bool]:
    x = np.asarray(x)
    return (x[None], True) if x.ndim == 3 else (x, False)


def conv2d(input: np.ndarray, filters: np.ndarray, stride: int = 1, padding: int | str = 0) -> np.ndarray:
    """The seed's conv2d: (H, W, C) or (N, H, W, C) with filters (kh, kw, C, F), no bias."""
    x, single = _as_batch(input)
    out, _ = conv2d_forward(x, np.asarray(filters, x.dtype), None, stride, padding)
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
