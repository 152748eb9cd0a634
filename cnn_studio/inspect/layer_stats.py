"""Per-layer statistics: a table of every layer and histograms of the selected one's weights and outputs.

"Dead ReLU" is the share of a ReLU layer's units (channels or features) that stayed at zero for
every image of the batch: they pass no gradient and have stopped learning.
"""

from __future__ import annotations

import math

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QAbstractTableModel, QModelIndex, QPersistentModelIndex, Qt
from PySide6.QtGui import QBrush, QColor
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QHeaderView,
    QLabel,
    QSplitter,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from cnn_studio.plot_axes import plain_numbers
from engine.inspection import Histogram, LayerStatistics

# Short headings (the tooltips say more) and no separate type column (the layer cell's tooltip and
# the histogram headings name the type): the table fits a narrow pane without a horizontal scroll bar.
COLUMNS = ("Layer", "Output", "Weights\n\u03bc \u00b1 \u03c3", "Outputs\n\u03bc \u00b1 \u03c3", "Dead\nReLU")
COLUMN_TIPS = (
    "The layer's name (its type in the tooltip of each cell)",
    "The shape of one image's output: height \u00d7 width \u00d7 channels, or features",
    "\u03bc \u00b1 \u03c3: mean and standard deviation of the layer's weights (kernel or matrix; biases left out)",
    "\u03bc \u00b1 \u03c3: mean and standard deviation of the layer's outputs over the measured images",
    "Units (channels or features) of a ReLU layer that output zero for every measured image",
)
DEAD_COLUMN = 4
DEAD_WARNING = 0.5  # above this share of dead units the cell turns red


def _mean_std(mean: float, std: float) -> str:
    return "" if math.isnan(mean) else f"{mean:+.3f} \u00b1 {std:.3f}"


class LayerStatsModel(QAbstractTableModel):
    """Rows: layers; columns: COLUMNS."""

    def __init__(self) -> None:
        super().__init__()
        self.stats: list[LayerStatistics] = []

    def set_statistics(self, stats: list[LayerStatistics]) -> None:
        self.beginResetModel()
        self.stats = list(stats)
        self.endResetModel()

    def rowCount(self, parent: QModelIndex | QPersistentModelIndex = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self.stats)

    def columnCount(self, parent: QModelIndex | QPersistentModelIndex = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(COLUMNS)

    def headerData(self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole):
        if orientation != Qt.Orientation.Horizontal:
            return None
        if role == Qt.ItemDataRole.DisplayRole:
            return COLUMNS[section]
        if role == Qt.ItemDataRole.ToolTipRole:
            return COLUMN_TIPS[section]
        return None

    def data(self, index: QModelIndex | QPersistentModelIndex, role: int = Qt.ItemDataRole.DisplayRole):
        if not index.isValid():
            return None
        s = self.stats[index.row()]
        column = index.column()
        if role == Qt.ItemDataRole.DisplayRole:
            if column == 0:
                return s.name
            if column == 1:
                return "\u00d7".join(map(str, s.output_shape))
            if column == 2:
                return _mean_std(s.weight_mean, s.weight_std)
            if column == 3:
                return _mean_std(s.activation_mean, s.activation_std)
            if column == DEAD_COLUMN:
                fraction = s.dead_fraction
                return "" if fraction is None else f"{100 * fraction:.0f}% ({s.dead_units}/{s.units})"
        if role == Qt.ItemDataRole.BackgroundRole and column == DEAD_COLUMN:
            fraction = s.dead_fraction
            if fraction is not None and fraction > DEAD_WARNING:
                return QBrush(QColor(250, 205, 200))
        if role == Qt.ItemDataRole.ToolTipRole and column == 0:
            return f"{s.name} ({s.type})"
        if role == Qt.ItemDataRole.ToolTipRole and column == DEAD_COLUMN and s.relu:
            return (f"{s.dead_units} of {s.units} units of {s.name} output zero for all {s.samples} images: "
                    "they pass no gradient and stopped learning. Many dead units hint at a learning rate "
                    "that is too high or a bad initialisation.")
        return None


def _draw_histogram(plot: pg.PlotWidget, histogram: Histogram | None, colour: tuple[int, int, int],
                    log_counts: bool = False) -> None:
    """Bars of ``histogram``; with ``log_counts`` the height is log10(1 + count), so a huge bar (e.g. the
    zeros of a ReLU) does not flatten the rest."""
    plot.clear()
    if histogram is None:
        return
    counts = np.log10(1 + histogram.counts) if log_counts else histogram.counts
    plot.plot(histogram.edges, counts, stepMode="center", fillLevel=0,
              brush=pg.mkBrush(*colour, 150), pen=pg.mkPen(colour, width=1.5))
    plot.getPlotItem().setLabel("left", "log10(1 + count)" if log_counts else "count")
    plot.autoRange()


class LayerStatsView(QWidget):
    """``set_statistics(list[LayerStatistics], note)``; selecting a row draws its two histograms."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.note = QLabel("Statistics appear once there is a trained network (updated after every epoch).")
        self.note.setWordWrap(True)
        self.model = LayerStatsModel()
        self.table = QTableView()
        self.table.setModel(self.model)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.verticalHeader().setVisible(False)
        # The layer names keep their width; the figures share the rest and wrap at their spaces in a
        # narrow pane (rows grow a line), so no column is ever cut off behind a scroll bar.
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.Stretch)
        for column in (0, 1):  # names and shapes have no space to wrap at
            header.setSectionResizeMode(column, QHeaderView.ResizeMode.ResizeToContents)
        self.table.verticalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self.table.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.table.selectionModel().currentRowChanged.connect(lambda current, _prev: self._show_row(current.row()))
        self.table.horizontalHeader().setDefaultAlignment(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter)
        self.table.setWordWrap(True)
        self.table.setTextElideMode(Qt.TextElideMode.ElideNone)
        self.weights_plot = pg.PlotWidget(background="w")
        self.outputs_plot = pg.PlotWidget(background="w")
        # Headings are labels above the plots, not plot titles: a label wraps where a title is cut off.
        self.weights_title = QLabel("weights")
        self.outputs_title = QLabel("outputs")
        for plot, title, x_label in ((self.weights_plot, self.weights_title, "weight value"),
                                     (self.outputs_plot, self.outputs_title, "output value")):
            plot.setMenuEnabled(False)
            plain_numbers(plot)
            plot.getPlotItem().setLabels(left="count", bottom=x_label)
            title.setWordWrap(True)
            title.setAlignment(Qt.AlignmentFlag.AlignHCenter)
            title.setStyleSheet("color: #444; font-weight: 600;")
        self.log_box = QCheckBox("Log scale counts")
        self.log_box.setToolTip("Heights as log10(1 + count): zeros of a ReLU no longer flatten the rest")
        self.log_box.setChecked(True)
        self.log_box.toggled.connect(lambda _on: self._show_row(self._row))
        weights = QWidget()
        weights_layout = QVBoxLayout(weights)
        weights_layout.setContentsMargins(0, 0, 0, 0)
        weights_layout.addWidget(self.weights_title)
        weights_layout.addWidget(self.weights_plot, 1)
        outputs = QWidget()
        outputs_layout = QVBoxLayout(outputs)
        outputs_layout.setContentsMargins(0, 0, 0, 0)
        outputs_layout.addWidget(self.outputs_title)
        outputs_layout.addWidget(self.outputs_plot, 1)
        outputs_layout.addWidget(self.log_box)
        plots = QSplitter()
        plots.addWidget(weights)
        plots.addWidget(outputs)
        splitter = QSplitter()
        splitter.setOrientation(pg.QtCore.Qt.Orientation.Vertical)
        splitter.addWidget(self.table)
        splitter.addWidget(plots)
        splitter.setSizes([260, 240])
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.note)
        layout.addWidget(splitter, 1)
        self._row = 0

    @property
    def statistics(self) -> list[LayerStatistics]:
        return list(self.model.stats)

    def set_statistics(self, stats: list[LayerStatistics], note: str = "") -> None:
        row = max(0, self.table.currentIndex().row())
        self.model.set_statistics(stats)
        if note:
            self.note.setText(note)
        if stats:
            self.table.selectRow(min(row, len(stats) - 1))
            self._show_row(min(row, len(stats) - 1))

    def clear(self, note: str) -> None:
        self.model.set_statistics([])
        self.note.setText(note)
        self.weights_plot.clear()
        self.outputs_plot.clear()
        self.weights_title.setText("weights")
        self.outputs_title.setText("outputs")

    def select_layer(self, name: str) -> None:
        for row, s in enumerate(self.model.stats):
            if s.name == name:
                self.table.selectRow(row)
                self._show_row(row)
                return

    def _show_row(self, row: int) -> None:
        stats = self.model.stats
        if not 0 <= row < len(stats):
            return
        self._row = row
        s = stats[row]
        label = f"{s.name} ({s.type}) {s.weight_label}" if s.weights is not None else f"{s.name}: no weights"
        self.weights_title.setText(label)
        _draw_histogram(self.weights_plot, s.weights, (70, 100, 170))
        zeros = f" \u00b7 {100 * s.zero_fraction:.0f}% exactly 0" if s.zero_fraction else ""
        self.outputs_title.setText(f"{s.name} outputs on {s.samples} images{zeros}")
        _draw_histogram(self.outputs_plot, s.activations, (220, 120, 30), self.log_box.isChecked())

    def histogram_counts(self) -> tuple[np.ndarray | None, np.ndarray | None]:
        """The (weights, outputs) counts drawn now, for checks."""
        s = self.model.stats[self._row] if self.model.stats else None
        if s is None:
            return None, None
        return (s.weights.counts if s.weights else None), s.activations.counts
