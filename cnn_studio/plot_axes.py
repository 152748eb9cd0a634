"""Axes that show the numbers themselves.

pyqtgraph rescales an axis whose values all lie below 1 and writes the factor into its label, so an
epoch loss of 0.52 reads "520" on an axis titled "loss (x0.001)". Every plot in the studio turns that off.
"""

from __future__ import annotations

import pyqtgraph as pg

AXES = ("left", "bottom", "right", "top")


def plain_numbers(plot: pg.PlotWidget | pg.PlotItem) -> None:
    """Turn off the automatic SI-prefix scaling of every axis of ``plot``."""
    item = plot.getPlotItem() if isinstance(plot, pg.PlotWidget) else plot
    for name in AXES:
        axis = item.getAxis(name)
        if axis is not None:
            axis.enableAutoSIPrefix(False)
