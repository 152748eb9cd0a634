"""Batch-norm sums over the whole batch when a training step is split across processes.

A replica step (engine.replica) gives each process part of the batch, but batch normalisation
must see all of it: its mean and variance in forward, and two gradient sums in backward. The
batch-norm kernels take their per-channel sums through a ``StatsReducer``
(engine.kernels.batch_norm), which each BatchNorm layer holds; ``exchanged(model, exchange)``
gives every batch-norm layer of the model one that adds the other process's sums, for the
length of a step. Both processes run the same layers in the same order, so their exchanges pair up.

Each process sums values minus its own reference (see the kernels: sums of z - r stay accurate
for data far from zero), so the other process's sums are shifted to this process's reference
before they are added:
    sum(z - r1) = sum(z - r2) + n2 (r2 - r1)
    sum((z - r1)^2) = sum((z - r2)^2) + 2 (r2 - r1) sum(z - r2) + n2 (r2 - r1)^2
    sum(g (z - r1)) = sum(g (z - r2)) + (r2 - r1) sum(g)
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np

from engine.kernels.batch_norm import WHOLE_BATCH, StatsReducer
from engine.layers.normalization import BatchNorm

# Sends this process's float64 vector to the other process and returns the other's, same length.
Exchange = Callable[[np.ndarray], np.ndarray]


class ExchangedStats(StatsReducer):
    """Adds the other process's part of each sum, swapped through ``exchange``."""

    def __init__(self, exchange: Exchange) -> None:
        self.exchange = exchange

    def _swap(self, *vectors: np.ndarray) -> list[np.ndarray]:
        # Slices of one float64 buffer each way: a few microseconds where concatenate and split
        # took tens, and a step makes two swaps per batch-norm layer on its critical path.
        sizes = [np.size(v) for v in vectors]
        mine = np.empty(sum(sizes))
        bounds = [0]
        for vector, size in zip(vectors, sizes):
            mine[bounds[-1] : bounds[-1] + size] = np.ravel(vector)
            bounds.append(bounds[-1] + size)
        theirs = self.exchange(mine)
        return [theirs[a:b] for a, b in zip(bounds, bounds[1:])]

    def moments(self, reference: np.ndarray, count: int, first: np.ndarray, second: np.ndarray
                ) -> tuple[int, np.ndarray, np.ndarray]:
        (n2,), r2, first2, second2 = self._swap(np.array([count]), reference, first, second)
        delta = r2 - np.asarray(reference, np.float64)
        total_first = np.asarray(first, np.float64) + first2 + n2 * delta
        total_second = np.asarray(second, np.float64) + second2 + 2 * delta * first2 + n2 * delta * delta
        return count + int(n2), total_first, total_second

    def products(self, reference: np.ndarray, sum_g: np.ndarray, sum_gz: np.ndarray
                 ) -> tuple[np.ndarray, np.ndarray]:
        r2, sum_g2, sum_gz2 = self._swap(reference, sum_g, sum_gz)
        delta = r2 - np.asarray(reference, np.float64)
        return np.asarray(sum_g, np.float64) + sum_g2, np.asarray(sum_gz, np.float64) + sum_gz2 + delta * sum_g2


@contextmanager
def exchanged(model: Any, exchange: Exchange) -> Iterator[None]:
    """Within this context the batch-norm layers of ``model`` (anything with ``layers``) normalise
    with the sums of both processes' parts of the batch."""
    norms = [layer for layer in model.layers if isinstance(layer, BatchNorm)]
    reducer = ExchangedStats(exchange)
    for norm in norms:
        norm.stats_reducer = reducer
    try:
        yield
    finally:
        for norm in norms:
            norm.stats_reducer = WHOLE_BATCH
