"""Axes that show the numbers themselves.

pyqtgraph rescales an axis whose values all lie below 1 and writes the factor into its label, so an
epoch loss of 0.52 reads "520" on an axis titled "loss (x0.001)". Every plot in the studio turns that off.
Log axes label only a readable subset of their ticks (DecadeAxis).
"""

from __future__ import annotations

import math

import pyqtgraph as pg
from PySide6.QtGui import QFontMetricsF

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


def fine_ticks(low: float, high: float, count: int = 3) -> tuple[float, list[float]]:
    """(step, values): round values (steps of 1, 2 or 5 times a power of ten) between the plain values
    ``low`` and ``high``, for a log axis that spans less than from one multiple of a power of ten to
    the next: the widest step giving ``count`` values, or two where that step would give seven or more."""
    low, high = min(low, high), max(low, high)
    span = high - low if high > low else abs(high) or 1.0
    power = 10.0 ** math.floor(math.log10(span))
    steps = [m * power / 10**k for k in range(4) for m in (5, 2, 1)]

    def inside(step: float) -> list[float]:
        first = math.ceil(low / step - 1e-9)
        last = math.floor(high / step + 1e-9)
        return [k * step for k in range(first, last + 1) if k * step > 0]

    previous: tuple[float, list[float]] | None = None
    for step in steps:
        values = inside(step)
        if len(values) >= count:
            # Rather two labels than a crowd of seven or more.
            return previous if len(values) > 6 and previous is not None else (step, values)
        if len(values) >= 2:
            previous = (step, values)
    return previous if previous is not None else (steps[-1], inside(steps[-1]))


class DecadeAxis(pg.AxisItem):
    """A log axis that labels only the decades (1-2-5 when fewer than two decades are in view): pyqtgraph
    labels every minor tick, "0.01 0.009 0.008 …", which run into each other. Unlabelled ticks still mark
    the multiples in between. A range narrower than from one multiple to the next (a loss between 0.31 and
    0.38) gets round values in between instead of no tick at all. Only ticks whose labels can be drawn
    whole count towards the two labels wanted (see _labelled_range)."""

    _fine_step: float | None = None  # the step of fine_ticks while the range needs them

    def _labelled_range(self, low: float, high: float) -> tuple[float, float]:
        """(low, high) less half a label's height at each end: pyqtgraph leaves out a label that would
        stick out of the axis, so a tick that close to an end counts for no label."""
        length = self.height() if self.orientation in ("left", "right") else self.width()
        font = self.style.get("tickFont") or self.font()
        margin = (high - low) * QFontMetricsF(font).height() / 2 / max(length, 1.0)
        return (low + margin, high - margin) if high - low > 2 * margin else (low, high)

    def logTickStrings(self, values: list[float], scale: float, spacing: float) -> list[str]:  # noqa: N802
        if self._fine_step is not None:
            decimals = max(0, -math.floor(math.log10(self._fine_step) + 1e-9))
            return [_trimmed(f"{10 ** v:.{decimals}f}") for v in values]
        low, high = sorted(self.range)
        keep = labelled_multiples(*self._labelled_range(low, high))
        strings = super().logTickStrings(values, scale, spacing)
        return [text if _multiple(v) in keep else "" for v, text in zip(values, strings)]

    def logTickValues(self, minVal: float, maxVal: float, size: float, stdTicks: list) -> list:  # noqa: N802, N803
        low, high = self._labelled_range(min(minVal, maxVal), max(minVal, maxVal))
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


def _trimmed(text: str) -> str:
    """'0.020' -> '0.02', '3.0' -> '3': fine ticks share a step, not a number of decimals."""
    return text.rstrip("0").rstrip(".") if "." in text else text
