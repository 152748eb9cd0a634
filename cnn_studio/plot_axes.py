"""Axes that show the numbers themselves.

pyqtgraph rescales an axis whose values all lie below 1 and writes the factor into its label, so an
epoch loss of 0.52 reads "520" on an axis titled "loss (x0.001)". Every plot in the studio turns that off.
Log axes label only a readable subset of their ticks (DecadeAxis).
"""

from __future__ import annotations

import math

import pyqtgraph as pg

AXES = ("left", "bottom", "right", "top")


def plain_numbers(plot: pg.PlotWidget | pg.PlotItem) -> None:
    """Turn off the automatic SI-prefix scaling of every axis of ``plot``."""
    item = plot.getPlotItem() if isinstance(plot, pg.PlotWidget) else plot
    for name in AXES:
        axis = item.getAxis(name)
        if axis is not None:
            axis.enableAutoSIPrefix(False)


# The multiples of a power of ten a log axis labels, sparsest first: decades, then 1-2-5, then every one.
LABELLED_MULTIPLES = ((1,), (1, 2, 5), tuple(range(1, 10)))


def _multiple(log_value: float) -> int:
    """9 for log10(0.009), 1 for log10(100)."""
    return round(10 ** (log_value - math.floor(log_value + 1e-9)))


def _multiples_inside(low: float, high: float) -> int:
    """How many of the values 1..9 times a power of ten lie between log10 values ``low`` and ``high``."""
    first, last = math.floor(low), math.ceil(high)
    return sum(low - 1e-9 <= d + math.log10(m) <= high + 1e-9 for d in range(first, last + 1) for m in range(1, 10))


def labelled_multiples(low: float, high: float) -> tuple[int, ...]:
    """The sparsest of LABELLED_MULTIPLES that labels at least two ticks between log10 values ``low`` and ``high``."""
    first, last = math.floor(min(low, high)), math.ceil(max(low, high))
    for multiples in LABELLED_MULTIPLES:
        inside = [d + math.log10(m) for d in range(first, last + 1) for m in multiples]
        if sum(min(low, high) - 1e-9 <= v <= max(low, high) + 1e-9 for v in inside) >= 2:
            return multiples
    return LABELLED_MULTIPLES[-1]


def fine_ticks(low: float, high: float, count: int = 4) -> tuple[float, list[float]]:
    """(step, values): about ``count`` evenly spaced round values (steps 1, 2 or 5 times a power of ten)
    between the plain values ``low`` and ``high``, for a log axis that spans less than one multiple."""
    low, high = min(low, high), max(low, high)
    raw = (high - low) / count if high > low else abs(high) or 1.0
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    first = math.ceil(low / step - 1e-9)
    values = [k * step for k in range(first, first + count + 2) if k * step <= high * (1 + 1e-9) and k * step > 0]
    return step, values


class DecadeAxis(pg.AxisItem):
    """A log axis that labels only the decades (1-2-5 when fewer than two decades are in view): pyqtgraph
    labels every minor tick, "0.01 0.009 0.008 …", which run into each other. Unlabelled ticks still mark
    the multiples in between. A range narrower than from one multiple to the next (a loss between 0.31 and
    0.38) gets round values in between instead of no tick at all."""

    _fine_step: float | None = None  # the step of fine_ticks while the range needs them

    def logTickStrings(self, values: list[float], scale: float, spacing: float) -> list[str]:  # noqa: N802
        if self._fine_step is not None:
            decimals = max(0, -math.floor(math.log10(self._fine_step) + 1e-9))
            return [f"{10 ** v:.{decimals}f}" for v in values]
        low, high = self.range
        keep = labelled_multiples(low, high)
        strings = super().logTickStrings(values, scale, spacing)
        return [text if _multiple(v) in keep else "" for v, text in zip(values, strings)]

    def logTickValues(self, minVal: float, maxVal: float, size: float, stdTicks: list) -> list:  # noqa: N802, N803
        low, high = min(minVal, maxVal), max(minVal, maxVal)
        self._fine_step = None
        if labelled_multiples(low, high) == LABELLED_MULTIPLES[-1] and _multiples_inside(low, high) < 2:
            self._fine_step, values = fine_ticks(10 ** low, 10 ** high)
            return [(None, [math.log10(v) for v in values])]
        # pyqtgraph's minor level repeats the decades its major levels hold: drop them, so no label is drawn twice.
        levels = super().logTickValues(minVal, maxVal, size, stdTicks)
        seen: list[float] = []
        kept = []
        for spacing, values in levels:
            kept.append((spacing, [v for v in values if all(abs(v - s) > 1e-6 for s in seen)]))
            seen.extend(values)
        return kept
