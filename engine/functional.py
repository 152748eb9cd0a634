"""Vectorised kernels, plus the seed document's three functions under their own names.

Images are (H, W, C); batches are (N, H, W, C); conv filters are (kh, kw, in_channels, filters).
The layers call the same kernels, so the seed's functions and the trained network agree exactly.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import as_strided

from engine.shapes import output_size, resolve_padding


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


def conv_pads(h: int, w: int, kh: int, kw: int, stride: int, padding: str | int) -> tuple[int, int, int, int]:
    top, bottom = resolve_padding(padding, kh, stride, h)
    left, right = resolve_padding(padding, kw, stride, w)
    return top, bottom, left, right


def conv2d_forward(
    x: np.ndarray, kernel: np.ndarray, bias: np.ndarray | None, stride: int, padding: str | int
) -> tuple[np.ndarray, np.ndarray]:
    """(N, H, W, C) * (kh, kw, C, F) -> ((N, Ho, Wo, F), im2col matrix (N*Ho*Wo, kh*kw*C))."""
    kh, kw, c, f = kernel.shape
    pads = conv_pads(x.shape[1], x.shape[2], kh, kw, stride, padding)
    xp = pad_images(x, pads)
    windows = window_view(xp, kh, kw, stride)
    n, ho, wo = windows.shape[:3]
    cols = windows.reshape(n * ho * wo, kh * kw * c)
    out = cols @ kernel.reshape(kh * kw * c, f)
    if bias is not None:
        out += bias
    return out.reshape(n, ho, wo, f), cols


def conv2d_backward(
    grad: np.ndarray,
    cols: np.ndarray,
    kernel: np.ndarray,
    input_shape: tuple[int, ...],
    stride: int,
    padding: str | int,
    need_input_grad: bool = True,
) -> tuple[np.ndarray | None, np.ndarray, np.ndarray]:
    """Gradients (d_input or None, d_kernel, d_bias) of conv2d_forward for upstream grad (N, Ho, Wo, F)."""
    kh, kw, c, f = kernel.shape
    n, ho, wo, _ = grad.shape
    g2 = grad.reshape(n * ho * wo, f)
    d_kernel = (cols.T @ g2).reshape(kernel.shape)
    d_bias = g2.sum(axis=0)
    if not need_input_grad:
        return None, d_kernel, d_bias
    d_cols = (g2 @ kernel.reshape(kh * kw * c, f).T).reshape(n, ho, wo, kh, kw, c)
    _, h, w, _ = input_shape
    top, bottom, left, right = conv_pads(h, w, kh, kw, stride, padding)
    dxp = col2im(d_cols, (n, h + top + bottom, w + left + right, c), stride)
    return dxp[:, top : top + h, left : left + w, :], d_kernel, d_bias


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
        # Non-overlapping windows: a reshape of the cropped input is the window view.
        xr = x[:, : ho * pool, : wo * pool, :].reshape(n, ho, pool, wo, pool, c)
        if mode == "avg":
            return xr.mean(axis=(2, 4), dtype=x.dtype), (x.shape, pads, ho, wo, tiled)
        out = xr.max(axis=(2, 4))
        # Keep only the first maximum per window so ties route the gradient once, like PyTorch.
        mask = xr == out[:, :, None, :, None, :]
        if mask.sum() != out.size:
            flat = mask.transpose(0, 1, 3, 5, 2, 4).reshape(n, ho, wo, c, pool * pool)
            first = np.cumsum(flat, axis=-1) == 1
            mask = (first & flat).reshape(n, ho, wo, c, pool, pool).transpose(0, 1, 4, 2, 5, 3)
        return out, (x.shape, pads, ho, wo, tiled, mask)
    fill = -np.inf if mode == "max" else 0.0
    windows = window_view(pad_images(x, pads, fill), pool, pool, stride)
    if mode == "avg":
        return windows.mean(axis=(3, 4), dtype=x.dtype), (x.shape, pads, ho, wo, tiled)
    flat = windows.reshape(n, ho, wo, pool * pool, c)
    arg = flat.argmax(axis=3)
    out = np.take_along_axis(flat, arg[:, :, :, None, :], axis=3)[:, :, :, 0, :]
    return out, (x.shape, pads, ho, wo, tiled, arg)


def pool_backward(grad: np.ndarray, cache: tuple, pool: int, stride: int, mode: str) -> np.ndarray:
    """Gradient of pool_forward with respect to its input."""
    input_shape, pads, ho, wo, tiled = cache[:5]
    n, h, w, c = input_shape
    if tiled:
        dx = np.zeros(input_shape, grad.dtype)
        view = dx[:, : ho * pool, : wo * pool, :].reshape(n, ho, pool, wo, pool, c)
        if mode == "avg":
            view[...] = (grad / (pool * pool))[:, :, None, :, None, :]
        else:
            np.multiply(cache[5], grad[:, :, None, :, None, :], out=view)
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
    """Normalise over every axis but the last with the batch's own statistics."""
    axes = tuple(range(x.ndim - 1))
    mean = x.mean(axis=axes)
    var = x.var(axis=axes)
    inv_std = 1.0 / np.sqrt(var + epsilon)
    x_hat = (x - mean) * inv_std
    return x_hat * gamma + beta, (x_hat, inv_std, mean, var)


def batch_norm_backward(grad: np.ndarray, gamma: np.ndarray, x_hat: np.ndarray, inv_std: np.ndarray):
    """Returns (d_x, d_gamma, d_beta) for batch_norm_forward in training mode."""
    axes = tuple(range(grad.ndim - 1))
    m = grad.size // grad.shape[-1]
    d_beta = grad.sum(axis=axes)
    d_gamma = (grad * x_hat).sum(axis=axes)
    # The full derivative through the batch mean and variance, collapsed to one expression.
    d_x = (gamma * inv_std / m) * (m * grad - d_beta - x_hat * d_gamma)
    return d_x.astype(grad.dtype, copy=False), d_gamma, d_beta


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
