"""Cache-sized blocks, thread shares and per-layer scratch arrays: what every kernel is built on."""

from __future__ import annotations

from typing import Any

import numpy as np

from engine.parallel import is_serial, parallel_for

# Kernels work through their images in blocks of about this many bytes of im2col matrix (or of
# rows): small enough to stay in a core's cache between the steps of a block, large enough that
# the numpy calls per block (each taking the GIL for a moment) stay few, so that the engine's
# threads do not queue for the GIL (benchmarks/README.md has the measurements behind each size
# and threshold here).
BLOCK_BYTES = 4 << 20
# A thread that has its process to itself (see engine.parallel.serial) shares no GIL, and smaller
# blocks stay in its cache.
SERIAL_BLOCK_BYTES = 1 << 20
# A thread's share of an element-wise kernel must hold at least this many values, and its share of
# a matrix product at least this many multiply-adds: handing work to a helper thread and getting
# the result back (two thread wake-ups) costs about what one core needs for that much work, so
# smaller jobs run faster on the calling thread alone.
MIN_SHARE = 1 << 18
MIN_MACS = 1 << 23


def min_rows(row_size: int, share: int | None = None) -> int:
    """Fewest rows of ``row_size`` values worth a thread of their own (``share``: the least work
    per thread, MIN_SHARE by default)."""
    share = MIN_SHARE if share is None else share
    return max(1, -(-share // max(row_size, 1)))


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

    def rows(self, role: str, rows: int, shape: tuple[int, ...], dtype: Any) -> np.ndarray:
        """The first ``rows`` rows of a (rows, *shape) scratch array for ``role`` that only ever grows,
        so that batches of changing sizes (the last one of an epoch, a few images in inference) reuse
        one array instead of each size keeping its own."""
        full_key = (tuple(shape), np.dtype(dtype), None, "rows")
        entry = self._arrays.get(role)
        if entry is not None and entry[0] == full_key and len(entry[1]) >= rows:
            return entry[1][:rows]
        array = np.empty((rows, *shape), dtype)
        self._arrays[role] = (full_key, array)
        return array

    def clear(self) -> None:
        self._arrays.clear()


def matmul(a: np.ndarray, b: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """a (M, K) @ b (K, N), rows of a split across the engine threads (BLAS runs single-threaded)."""
    out = np.empty((a.shape[0], b.shape[1]), np.result_type(a, b)) if out is None else out

    def work(part: int, start: int, stop: int) -> None:
        np.matmul(a[start:stop], b, out=out[start:stop])

    parallel_for(a.shape[0], work, min_items=min_rows(a.shape[1] * b.shape[1], MIN_MACS))
    return out


def summed_parts(parts: list[tuple[np.ndarray | None, ...]]) -> tuple[np.ndarray | None, ...]:
    """The threads' result tuples summed entry by entry, into the first thread's arrays (an entry
    that is None stays None)."""
    totals = parts[0]
    for other in parts[1:]:
        for total, value in zip(totals, other):
            if total is not None:
                total += value
    return totals


def images_per_block(bytes_per_image: int, n: int) -> int:
    budget = SERIAL_BLOCK_BYTES if is_serial() else BLOCK_BYTES
    return max(1, min(n, budget // max(bytes_per_image, 1)))
