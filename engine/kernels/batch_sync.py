"""Batch-norm sums over the whole batch when a training step is split across processes.

A replica step (engine.replica) gives each process part of the batch, but batch normalisation
must see all of it: its mean and variance in forward, and two gradient sums in backward. The
batch-norm kernels therefore pass their per-channel sums through ``moments`` and ``products``,
which return them unchanged in an ordinary step and, inside ``synchronised(exchange)``, add the
other process's. Both processes run the same layers in the same order, so their calls pair up.

Each process sums values minus its own reference (see the kernels: sums of z - r stay accurate
for data far from zero), so the other process's sums are shifted to this process's reference
before they are added:
    sum(z - r1) = sum(z - r2) + n2 (r2 - r1)
    sum((z - r1)^2) = sum((z - r2)^2) + 2 (r2 - r1) sum(z - r2) + n2 (r2 - r1)^2
    sum(g (z - r1)) = sum(g (z - r2)) + (r2 - r1) sum(g)
"""

from __future__ import annotations

import contextvars
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import numpy as np

# Sends this process's float64 vector to the other process and returns the other's, same length.
Exchange = Callable[[np.ndarray], np.ndarray]

_exchange: contextvars.ContextVar[Exchange | None] = contextvars.ContextVar("cnn_engine_batch_exchange",
                                                                            default=None)


@contextmanager
def synchronised(exchange: Exchange) -> Iterator[None]:
    """Batch-norm sums in this context cover the other process's part of the batch too."""
    token = _exchange.set(exchange)
    try:
        yield
    finally:
        _exchange.reset(token)


def _swap(*vectors: np.ndarray) -> list[np.ndarray] | None:
    """The other process's vectors, or None when no exchange is set."""
    exchange = _exchange.get()
    if exchange is None:
        return None
    mine = np.concatenate([np.asarray(v, np.float64).ravel() for v in vectors])
    theirs = exchange(mine)
    return np.split(theirs, np.cumsum([np.size(v) for v in vectors])[:-1])


def moments(reference: np.ndarray, count: int, first: np.ndarray, second: np.ndarray
            ) -> tuple[int, np.ndarray, np.ndarray]:
    """(count, sum(z - reference), sum((z - reference)^2)) over the whole batch, per channel,
    from this process's share of them."""
    other = _swap(np.array([count]), reference, first, second)
    if other is None:
        return count, first, second
    (n2,), r2, first2, second2 = other
    delta = r2 - np.asarray(reference, np.float64)
    total_first = np.asarray(first, np.float64) + first2 + n2 * delta
    total_second = np.asarray(second, np.float64) + second2 + 2 * delta * first2 + n2 * delta * delta
    return count + int(n2), total_first, total_second


def products(reference: np.ndarray, sum_g: np.ndarray, sum_gz: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(sum(g), sum(g (z - reference))) over the whole batch, per channel, from this process's share."""
    other = _swap(reference, sum_g, sum_gz)
    if other is None:
        return sum_g, sum_gz
    r2, sum_g2, sum_gz2 = other
    delta = r2 - np.asarray(reference, np.float64)
    return np.asarray(sum_g, np.float64) + sum_g2, np.asarray(sum_gz, np.float64) + sum_gz2 + delta * sum_g2
