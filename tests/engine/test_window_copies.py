"""im2col's window copies: rows of kw * C values copied as void elements give exactly the windows
a plain strided copy gives, from whole batches, cropped views and padded scratch alike."""

from __future__ import annotations

import numpy as np
import pytest

from engine.kernels.im2col import copy_windows, im2col_into


def _expected(xp: np.ndarray, kh: int, kw: int, stride: int, ho: int, wo: int) -> np.ndarray:
    """The im2col rows by index arithmetic, one kernel offset at a time."""
    n, c = len(xp), xp.shape[3]
    out = np.empty((n, ho, wo, kh, kw, c), xp.dtype)
    for i in range(kh):
        for j in range(kw):
            out[:, :, :, i, j] = xp[:, i : i + stride * ho : stride, j : j + stride * wo : stride][:, :ho, :wo]
    return out.reshape(n * ho * wo, kh * kw * c)


@pytest.fixture
def copies(monkeypatch) -> list[str]:
    """The dtype kinds np.copyto is called with ("V": whole runs, "f": values)."""
    kinds, copyto = [], np.copyto
    monkeypatch.setattr(np, "copyto", lambda dst, src: kinds.append(dst.dtype.kind) or copyto(dst, src))
    return kinds


@pytest.mark.parametrize("c, k, stride", [(2, 3, 1), (16, 3, 1), (16, 3, 2), (32, 1, 2), (8, 5, 1), (3, 7, 2)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_windows_match_index_arithmetic(copies, c, k, stride, dtype):
    rng = np.random.default_rng(c * 10 + k)
    xp = rng.standard_normal((3, 11, 10, c)).astype(dtype)
    ho, wo = (11 - k) // stride + 1, (10 - k) // stride + 1
    cols = np.full((3 * ho * wo, k * k * c), np.nan, dtype)
    im2col_into(xp, k, k, stride, cols, ho, wo)
    np.testing.assert_array_equal(cols, _expected(xp, k, k, stride, ho, wo))
    assert copies == ["V"], "each window row is copied as one void element"


def test_fewer_windows_than_the_image_has_from_a_cropped_source_into_wider_rows(copies):
    # The phase path reads windows from a crop of a padded scratch, and rows may hold a bias
    # column after the windows; the last windows may be left out.
    rng = np.random.default_rng(0)
    padded = rng.standard_normal((2, 12, 12, 4)).astype(np.float32)
    crop = padded[:, 2:10, 1:11]
    cols = np.full((2 * 5 * 6, 3 * 3 * 4 + 1), -1.0, np.float32)
    im2col_into(crop, 3, 3, 1, cols, 5, 6)
    np.testing.assert_array_equal(cols[:, :-1], _expected(crop, 3, 3, 1, 5, 6))
    assert np.all(cols[:, -1] == -1.0), "the bias column must stay untouched"
    assert copies == ["V"]


def test_values_are_copied_where_rows_are_not_contiguous(copies):
    # Channels not innermost in the source: a window row is not one run of memory.
    rng = np.random.default_rng(1)
    xp = rng.standard_normal((2, 4, 9, 9)).astype(np.float32).transpose(0, 2, 3, 1)  # (N, H, W, C) view
    cols = np.empty((2 * 7 * 7, 3 * 3 * 4), np.float32)
    sn, sh, sw, sc = xp.strides
    row, item = cols.strides[0], cols.itemsize
    copy_windows(cols, (2, 7, 7, 3, 3, 4), (49 * row, 7 * row, row, 12 * item, 4 * item, item),
                 xp, (sn, sh, sw, sh, sw, sc))
    np.testing.assert_array_equal(cols, _expected(xp, 3, 3, 1, 7, 7))
    assert copies == ["f"]


def test_a_grayscale_image_is_copied_offset_by_offset():
    rng = np.random.default_rng(2)
    xp = rng.standard_normal((2, 9, 9, 1)).astype(np.float32)
    cols = np.empty((2 * 7 * 7, 9), np.float32)
    im2col_into(xp, 3, 3, 1, cols, 7, 7)
    np.testing.assert_array_equal(cols, _expected(xp, 3, 3, 1, 7, 7))
