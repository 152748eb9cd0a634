"""Matrix products of tall, narrow matrices, cut into short ones that BLAS multiplies without packing.

An im2col product is tall and narrow: (rows, kh*kw*C) @ (kh*kw*C, F), a thousand or more rows
per block against 16 to 64 filters. A general BLAS product copies ("packs") its operands into panels
before multiplying; with so few columns the copy costs about as much as the multiply-adds, and such
products ran at 55-95 GFLOP/s on a core that multiplies large square matrices at 170. OpenBLAS's
Skylake-X-family builds (Skylake-X, Cooper Lake, Sapphire Rapids) also have small-matrix kernels,
which multiply straight from the operands, taken for products of at most a million multiply-adds.
numpy's matmul on a stack of matrices calls BLAS once per matrix of the stack from C, so a tall
product reshaped into a stack of short ones takes those kernels with no Python loop. Measured on one
core (benchmarks/README.md): 1.2-1.8x faster with 32 columns or fewer.

Elsewhere (other BLAS builds and CPUs, where the small kernels do not exist) products run whole.
"""

from __future__ import annotations

import functools

import numpy as np

# OpenBLAS takes its small-matrix kernels for products of up to 100**3 multiply-adds.
SMALL_PRODUCT_MACS = 1_000_000
# Shorter stacked products lose more to the per-product call than packing would cost.
MIN_CHUNK_ROWS = 32
# OpenBLAS's name (threadpoolctl's "architecture") for CPUs whose builds have the small kernels.
_SMALL_KERNEL_ARCHITECTURES = frozenset({"skylakex", "cooperlake", "sapphirerapids"})


@functools.cache
def blas_has_small_kernels() -> bool:
    """Whether numpy's BLAS is an OpenBLAS with small-matrix kernels for this CPU."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return False
    for library in threadpool_info():
        if library.get("user_api") == "blas":
            return (library.get("internal_api") == "openblas"
                    and str(library.get("architecture", "")).lower() in _SMALL_KERNEL_ARCHITECTURES)
    return False


# Switched off by tests (and measurements) to compare with the whole products.
enabled = True


def _chunk_rows(inner: int, columns: int) -> int:
    """Rows per stacked product that keep each under SMALL_PRODUCT_MACS."""
    return SMALL_PRODUCT_MACS // max(inner * columns, 1)


def chunked_rows(inner: int, columns: int) -> int | None:
    """Rows per short product for a tall (rows, inner) @ (inner, columns) product, or None when it
    is faster whole: short products win with 32 columns or fewer, or while each still has about
    100 rows (measured up to 288 columns)."""
    if not (enabled and blas_has_small_kernels()):
        return None
    rows = _chunk_rows(inner, columns)
    if rows < MIN_CHUNK_ROWS or (columns > 32 and rows < 100):
        return None
    return rows


def chunked_reduction_rows(inner: int, columns: int) -> int | None:
    """Rows per short product for a long reduction a.T @ b, a (rows, inner) and b (rows, columns),
    or None when it is faster whole: the short products' (inner, columns) results must then be
    summed, which pays only while they are small (inner under 300) and each has about 100 rows."""
    if not (enabled and blas_has_small_kernels()):
        return None
    rows = _chunk_rows(inner, columns)
    return rows if rows >= 100 and inner < 300 else None


@functools.lru_cache(maxsize=512)
def _even_rows(total: int, most: int) -> int:
    """Rows per short product for ``total`` rows, at most ``most``: a divisor of total when one
    lies between most / 2 and most (no remainder left for one more product), else ``most``."""
    for rows in range(most, most // 2, -1):
        if total % rows == 0:
            return rows
    return most


def product_into(a: np.ndarray, b: np.ndarray, out: np.ndarray) -> np.ndarray:
    """out = a (M, K) @ b (K, N), for a tall a, as short products where that is faster."""
    rows = chunked_rows(a.shape[1], b.shape[1])
    if rows is None or len(a) <= rows:
        return np.matmul(a, b, out=out)
    rows = _even_rows(len(a), rows)
    whole = len(a) // rows * rows
    np.matmul(a[:whole].reshape(-1, rows, a.shape[1]), b, out=out[:whole].reshape(-1, rows, out.shape[1]))
    if whole < len(a):
        np.matmul(a[whole:], b, out=out[whole:])
    return out


def add_transposed_product(a: np.ndarray, b: np.ndarray, total: np.ndarray) -> np.ndarray:
    """total += a.T @ b for a (M, K) and b (M, N) with many rows, as short products where faster."""
    rows = chunked_reduction_rows(a.shape[1], b.shape[1])
    if rows is None or len(a) <= rows:
        total += a.T @ b
        return total
    rows = _even_rows(len(a), rows)
    whole = len(a) // rows * rows
    stacked = a[:whole].reshape(-1, rows, a.shape[1]).transpose(0, 2, 1)
    total += np.matmul(stacked, b[:whole].reshape(-1, rows, b.shape[1])).sum(axis=0)
    if whole < len(a):
        total += a[whole:].T @ b[whole:]
    return total
