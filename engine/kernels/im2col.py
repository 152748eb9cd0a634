"""im2col and col2im on strided window views of padded (N, H, W, C) batches."""

from __future__ import annotations

import functools

import numpy as np
from numpy.lib.stride_tricks import as_strided

from engine.shapes import resolve_padding


def pad_images(x: np.ndarray, pads: tuple[int, int, int, int], value: float = 0.0) -> np.ndarray:
    """Pad a (N, H, W, C) batch by (top, bottom, left, right); returns x itself when no pads."""
    top, bottom, left, right = pads
    if not any(pads):
        return x
    return np.pad(x, ((0, 0), (top, bottom), (left, right), (0, 0)), constant_values=value)


def strided_view(a: np.ndarray, shape: tuple[int, ...], strides: tuple[int, ...],
                 writeable: bool = True) -> np.ndarray:
    """``as_strided(a, shape, strides)``, checked against a's memory, and without as_strided's cost
    (its checks, paid on every call; kernels that work block by block make many calls) when a is
    contiguous."""
    if not a.flags.c_contiguous:
        return as_strided(a, shape, strides, writeable=writeable)
    view = np.ndarray(shape, a.dtype, buffer=a, strides=strides)  # raises if the view leaves a
    if not writeable:
        view.flags.writeable = False
    return view


def im2col_into(xp: np.ndarray, kh: int, kw: int, stride: int, cols: np.ndarray, ho: int, wo: int) -> None:
    """Write the windows of the padded batch xp, Ho x Wo of them per image (the last windows may be
    left out), into the first kh*kw*C columns of the rows of ``cols``, a C-contiguous (N*Ho*Wo, ...)
    matrix, in (kh, kw, C) order."""
    n, c = len(xp), xp.shape[3]
    row, item = cols.strides[0], cols.itemsize
    shape = (n, ho, wo, kh, kw, c)
    target = (ho * wo * row, wo * row, row, kw * c * item, c * item, item)
    if c > 1:
        # Rows of kw * C contiguous values: one strided copy, each row one element (see copy_windows).
        sn, sh, sw, sc = xp.strides
        copy_windows(cols, shape, target, xp, (sn, sh * stride, sw * stride, sh, sw, sc))
        return
    # One channel (a grayscale first layer): rows of kw values copy slowly, so copy one kernel
    # offset at a time instead, each a (N, Ho, Wo, 1) slab with long rows.
    out = np.ndarray(shape, cols.dtype, buffer=cols, strides=target)
    span_h, span_w = stride * (ho - 1) + 1, stride * (wo - 1) + 1
    for i in range(kh):
        for j in range(kw):
            out[:, :, :, i, j, :] = xp[:, i : i + span_h : stride, j : j + span_w : stride, :]


def copy_windows(cols: np.ndarray, shape: tuple[int, ...], target_strides: tuple[int, ...], source: np.ndarray,
                 source_strides: tuple[int, ...]) -> None:
    """Copy windows of ``source``'s memory, laid out by ``shape`` and ``source_strides`` from its
    first value, into the memory of ``cols`` (C-contiguous) laid out by ``target_strides``; the
    last two axes are (kw, C).

    Where those two axes are one contiguous run of values on both sides, each run is copied as
    one element of a void dtype: numpy's copy pays a fixed cost per innermost run, and these runs
    are short (48 values for a 3x3 kernel on 16 channels). Measured 1.1-1.6x faster than copying
    values, most for few channels."""
    item = cols.itemsize
    contiguous = (shape[-1] * item, item)
    if target_strides[-2:] == contiguous and source_strides[-2:] == contiguous and source.dtype == cols.dtype:
        run = _run_dtype(shape[-1] * shape[-2] * item)
        windows = _view_from(source, shape[:-2], source_strides[:-2], run)
        if windows is not None:
            np.copyto(np.ndarray(shape[:-2], run, buffer=cols, strides=target_strides[:-2]), windows)
            return
    np.copyto(np.ndarray(shape, cols.dtype, buffer=cols, strides=target_strides),
              as_strided(source, shape, source_strides, writeable=False))


@functools.lru_cache(maxsize=64)
def _run_dtype(nbytes: int) -> np.dtype:
    return np.dtype((np.void, nbytes))


def _view_from(start: np.ndarray, shape: tuple[int, ...], strides: tuple[int, ...], dtype: np.dtype
               ) -> np.ndarray | None:
    """A view of ``dtype`` elements from start's first value on, in the memory of the contiguous
    array start lies in (start itself, or a slice of it); None when there is none."""
    if start.flags.c_contiguous:
        return np.ndarray(shape, dtype, buffer=start, strides=strides)  # raises if it leaves start
    owner = start.base
    while isinstance(owner, np.ndarray) and not owner.flags.c_contiguous:
        owner = owner.base
    if not isinstance(owner, np.ndarray):
        return None
    offset = start.__array_interface__["data"][0] - owner.__array_interface__["data"][0]
    return np.ndarray(shape, dtype, buffer=owner, offset=offset, strides=strides)


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


def taps_into_image(taps: np.ndarray, dx: np.ndarray, pads: tuple[int, int, int, int], stride: int,
                    planes: np.ndarray) -> None:
    """dx (N, H, W, C) = the window gradients of a strided convolution summed into the input pixels
    they came from, given tap by tap: ``taps`` (kh, kw, N, Ho, Wo, C), each tap one contiguous slab.

    The padded grid splits by the phase of its rows and columns (modulo the stride): tap (i, j) of
    every window lands on phase (i % stride, j % stride), shifted by (i // stride, j // stride). So
    each phase is summed in a contiguous plane, slab on slab (``planes``: scratch of at least
    stride**2 * N * (Ho + (kh - 1) // stride) * (Wo + (kw - 1) // stride) * C values), and copied
    into its pixels of dx once: stride**2 strided copies where col2im_add makes kh * kw strided
    additions, in runs of C values (see Convolution.by_taps for what that saves)."""
    kh, kw, n, ho, wo, c = taps.shape
    h, w = dx.shape[1:3]
    top, _, left, _ = pads
    ph, pw = ho + (kh - 1) // stride, wo + (kw - 1) // stride
    planes = planes.reshape(-1)[: stride * stride * n * ph * pw * c].reshape(stride, stride, n, ph, pw, c)
    rows = [_phase_lines(pi, top, h, ph, stride) for pi in range(stride)]
    columns = [_phase_lines(pj, left, w, pw, stride) for pj in range(stride)]
    if not all(line[3] for line in rows + columns):
        dx[...] = 0  # pixels no window reads (the last of a 'valid' convolution) get no gradient
    for pi, (y0, a0, count_a, _) in enumerate(rows):
        for pj, (x0, b0, count_b, _) in enumerate(columns):
            plane = planes[pi, pj]
            plane[...] = 0
            for i in range(pi, kh, stride):
                for j in range(pj, kw, stride):
                    plane[:, i // stride : i // stride + ho, j // stride : j // stride + wo] += taps[i, j]
            if count_a and count_b:
                dx[:, y0 : y0 + stride * (count_a - 1) + 1 : stride, x0 : x0 + stride * (count_b - 1) + 1 : stride] = \
                    plane[:, a0 : a0 + count_a, b0 : b0 + count_b]


def _phase_lines(phase: int, pad: int, size: int, lines: int, stride: int) -> tuple[int, int, int, bool]:
    """Padded lines stride * a + phase, a < ``lines``, that are image lines (0 <= line - pad < size):
    (the first image line, its a, how many, whether they are all of the phase's image lines)."""
    a0 = max(0, -(-(pad - phase) // stride))
    first = stride * a0 + phase - pad
    in_image = max(0, -(-(size - first) // stride))
    count = max(0, min(lines - a0, in_image))
    return first, a0, count, count == in_image


def col2im_add_rows_first(cols: np.ndarray, dx: np.ndarray, rows: np.ndarray) -> None:
    """col2im_add for stride 1 and no padding, in two stages with longer runs: each window row
    kh adds a (n, Ho, Wo, kw*C) slab into ``rows`` scratch (n, Ho + kh - 1, Wo, kw*C), runs of
    kw*C values where col2im_add's are C; then each kernel column adds its (n, Ho + kh - 1, Wo, C)
    part into dx."""
    n, ho, wo, kh, kw, c = cols.shape
    rows[:, :ho] = cols[:, :, :, 0].reshape(n, ho, wo, kw * c)
    rows[:, ho:] = 0
    for i in range(1, kh):
        rows[:, i : i + ho] += cols[:, :, :, i].reshape(n, ho, wo, kw * c)
    by_column = rows.reshape(n, ho + kh - 1, wo, kw, c)
    for j in range(kw):
        dx[:, : ho + kh - 1, j : j + wo] += by_column[:, :, :, j]


def conv_pads(h: int, w: int, kh: int, kw: int, stride: int, padding: str | int) -> tuple[int, int, int, int]:
    top, bottom = resolve_padding(padding, kh, stride, h)
    left, right = resolve_padding(padding, kw, stride, w)
    return top, bottom, left, right
