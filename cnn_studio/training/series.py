"""Growable float arrays for live curves: appends are amortised O(1), reads are views without copying."""

from __future__ import annotations

import numpy as np


class GrowingSeries:
    """Points (x, y) appended in order; ``x``/``y`` are views of the filled part (length ``len(self)``)."""

    def __init__(self, capacity: int = 256) -> None:
        self._x = np.empty(max(1, capacity), dtype=np.float64)
        self._y = np.empty(max(1, capacity), dtype=np.float64)
        self._n = 0

    def __len__(self) -> int:
        return self._n

    def _reserve(self, n: int) -> None:
        if n > len(self._x):
            size = max(n, 2 * len(self._x))
            self._x = np.resize(self._x, size)
            self._y = np.resize(self._y, size)

    def append(self, x: float, y: float) -> None:
        self._reserve(self._n + 1)
        self._x[self._n], self._y[self._n] = x, y
        self._n += 1

    def extend(self, xs: np.ndarray, ys: np.ndarray) -> None:
        xs, ys = np.asarray(xs, dtype=np.float64), np.asarray(ys, dtype=np.float64)
        self._reserve(self._n + len(xs))
        self._x[self._n:self._n + len(xs)] = xs
        self._y[self._n:self._n + len(ys)] = ys
        self._n += len(xs)

    @property
    def x(self) -> np.ndarray:
        return self._x[:self._n]

    @property
    def y(self) -> np.ndarray:
        return self._y[:self._n]

    def nearest(self, x: float) -> int | None:
        """Index of the point whose x is closest to ``x`` (x must be increasing), or None when empty."""
        if self._n == 0:
            return None
        xs = self.x
        i = int(np.searchsorted(xs, x))
        if i >= self._n:
            return self._n - 1
        if i > 0 and x - xs[i - 1] < xs[i] - x:
            return i - 1
        return i


class SmoothedSeries(GrowingSeries):
    """An exponential moving average of appended values, bias-corrected so it starts at the first value.

    ``beta`` near 1 smooths more; non-finite values are kept out of the average.
    """

    def __init__(self, beta: float = 0.9, capacity: int = 256) -> None:
        super().__init__(capacity)
        self.beta = beta
        self._avg = 0.0
        self._weight = 0.0

    def add(self, x: float, value: float) -> None:
        if np.isfinite(value):
            self._avg = self.beta * self._avg + (1 - self.beta) * value
            self._weight = self.beta * self._weight + (1 - self.beta)
        self.append(x, self._avg / self._weight if self._weight else np.nan)
