"""A plot legend in a row of its own between the title and the data, so it never hides a curve.

Its entries sit side by side and wrap into more rows when the plot is narrow; the row grows to hold them.
"""

from __future__ import annotations

import math

import pyqtgraph as pg
from PySide6.QtCore import QPointF, QRectF, QSizeF, Qt

LEGEND_ROW = 1  # the PlotItem layout's row of the top axis, which the studio's plots never show
GAP = 4  # pixels between the legend and the data area


class LegendAbove(pg.LegendItem):
    """Install with ``LegendAbove(plot_item)``: it becomes the plot's legend (curves made with a name join it)."""

    def __init__(self, plot: pg.PlotItem, text_size: str = "8pt") -> None:
        super().__init__(offset=None, frame=False, labelTextColor="#222222", labelTextSize=text_size,
                         horSpacing=4)
        self.layout.setContentsMargins(2, 0, 2, 0)
        self.plot = plot
        self._arranging = False
        self.setParentItem(plot)
        plot.legend = self
        plot.geometryChanged.connect(self.arrange)
        plot.vb.geometryChanged.connect(self._place)

    def natural_size(self) -> tuple[float, float]:
        """The (width, height) the entries need laid out in the current number of columns."""
        if not self.items:
            return 0.0, 0.0
        self.layout.invalidate()
        hint = self.layout.effectiveSizeHint(Qt.SizeHint.PreferredSize)
        return hint.width(), hint.height()

    def updateSize(self) -> None:  # noqa: N802 (pyqtgraph's name)
        # pyqtgraph adds up each row's entries; the grid lines them up in columns, which can need more.
        self.setGeometry(QRectF(QPointF(0, 0), QSizeF(*self.natural_size())))
        self.arrange()

    def arrange(self) -> None:
        """As many entries a row as the plot's width holds; the legend's row as tall as the legend."""
        if self._arranging:
            return
        self._arranging = True
        try:
            room = self.plot.width() - 8
            for columns in range(max(len(self.items), 1), 0, -1):
                self.setColumnCount(columns)
                if self.natural_size()[0] <= room:
                    break
            rows = math.ceil(len(self.items) / columns)
            self.setColumnCount(math.ceil(len(self.items) / rows) if self.items else 1)  # rows evenly filled
            height = self.height() + GAP if self.items else 0
            self.plot.layout.setRowFixedHeight(LEGEND_ROW, height)
            self.plot.layout.activate()
            self._place()
        finally:
            self._arranging = False

    def _place(self) -> None:
        """Centred over the data area, just above it."""
        area = self.plot.vb.geometry()
        centred = area.left() + (area.width() - self.width()) / 2
        x = max(4.0, min(centred, self.plot.width() - self.width() - 4))
        self.setPos(x, area.top() - self.height() - GAP)
