"""Seeded, class-stratified index selection (train/validation splits, test splits, balanced subsets)."""

from __future__ import annotations

import numpy as np

from engine.data.arrays import empty_like_part


def _shuffled_by_class(y: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Indices grouped by class with a random order inside each class, plus each class's start and count.

    A random permutation followed by a *stable* sort on the label keeps the random order within a class,
    so the whole grouping is vectorised.
    """
    perm = rng.permutation(len(y))
    order = perm[np.argsort(y[perm], kind="stable")]
    classes, starts, counts = np.unique(y[order], return_index=True, return_counts=True)
    del classes
    return order, starts, counts


def _allocate(counts: np.ndarray, total: int) -> np.ndarray:
    """Split ``total`` over classes proportionally to ``counts`` (largest remainder), never above a count."""
    counts = counts.astype(np.int64)
    if total <= 0 or counts.sum() == 0:
        return np.zeros_like(counts)
    total = min(total, int(counts.sum()))
    ideal = counts * (total / counts.sum())
    take = np.minimum(np.floor(ideal).astype(np.int64), counts)
    left = total - int(take.sum())
    # Hand the remaining picks to the classes with the largest fractional parts that still have room.
    for k in np.argsort(-(ideal - take), kind="stable"):
        if left == 0:
            break
        if take[k] < counts[k]:
            take[k] += 1
            left -= 1
    return take


def stratified_split(
    y: np.ndarray, fraction: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Split row indices 0..N-1 into (kept, held_out), held_out ~ ``fraction`` of each class.

    Both are sorted int64 arrays; ``round(fraction * N)`` rows are held out in total.
    """
    n = len(y)
    n_out = round(fraction * n)
    if n_out == 0:
        return np.arange(n, dtype=np.int64), np.empty(0, dtype=np.int64)
    order, starts, counts = _shuffled_by_class(y, rng)
    take = _allocate(counts, n_out)
    mask = np.zeros(n, dtype=bool)
    # Position of each element within its class group; the first ``take[k]`` of class k are held out.
    rank = np.arange(n) - np.repeat(starts, counts)
    mask[order[rank < np.repeat(take, counts)]] = True
    return np.flatnonzero(~mask).astype(np.int64), np.flatnonzero(mask).astype(np.int64)


def balanced_choice(y: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """Pick ``min(n, N)`` sorted row indices, as equal per class as the class sizes allow."""
    if n <= 0 or len(y) == 0:
        return np.empty(0, dtype=np.int64)
    order, starts, counts = _shuffled_by_class(y, rng)
    n = min(n, len(y))
    take = np.zeros_like(counts)
    # Water-filling: give every class an equal share, re-spread what small classes cannot use.
    left = n
    while left > 0:
        room = counts - take
        open_ = rng.permutation(np.flatnonzero(room > 0))  # random order: no class favoured by leftovers
        share = max(left // len(open_), 1)
        for k in open_:
            add = min(share, int(room[k]), left)
            take[k] += add
            left -= add
            if left == 0:
                break
    rank = np.arange(len(y)) - np.repeat(starts, counts)
    return np.sort(order[rank < np.repeat(take, counts)]).astype(np.int64)


def hold_out_test(
    x: np.ndarray, y: np.ndarray, test_fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(x_train, y_train, x_test, y_test) for a source without its own test part.

    A stratified, seeded ``test_fraction`` of the rows becomes the test part; 0 gives an empty one.
    """
    if test_fraction <= 0:
        return x, y, *empty_like_part(x)
    keep, held = stratified_split(y, test_fraction, np.random.default_rng(seed))
    return x[keep], y[keep], x[held], y[held]
