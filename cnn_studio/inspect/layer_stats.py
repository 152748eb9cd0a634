"""Per-layer statistics: a table of every layer and histograms of the selected one's weights and outputs.

"Dead ReLU" is the share of a ReLU layer's units (channels or features) that stayed at zero for
every image of the batch: they pass no gradient and have stopped learning.
"""

from __future__ import annotations

import math

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QAbstractTableModel, QEvent, QModelIndex, QObject, QPersistentModelIndex, Qt
from PySide6.QtGui import QBrush, QColor, QFontMetrics
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

# Short headings; the tooltips say more. The layer's type is in the tooltip of its cell and the histogram
# headings. A wide pane gets a column each and one line a cell; a narrow one (the Inside tab of a 1100 px
# window leaves it about 300 px) a compact table: the shape under the name, the deviation under the mean,
# so no column is cut off behind a scroll bar.
HEADINGS = {
    "layer": "Layer",
    "shape": "Output",
    "weights": "Weights\n\u03bc \u00b1 \u03c3",
    "outputs": "Outputs\n\u03bc \u00b1 \u03c3",
    "dead": "Dead\nReLU",
}
TIPS = {
    "layer": "The layer's name (its type in the tooltip of each cell)",
    "shape": "The shape of one image's output: height \u00d7 width \u00d7 channels, or features",
    "weights": ("\u03bc \u00b1 \u03c3: mean and standard deviation of the layer's weights (kernel or matrix; "
                "biases left out)"),
    "outputs": "\u03bc \u00b1 \u03c3: mean and standard deviation of the layer's outputs over the measured images",
    "dead": "Units (channels or features) of a ReLU layer that output zero for every measured image",
}
WIDE_COLUMNS = ("layer", "shape", "weights", "outputs", "dead")
COMPACT_COLUMNS = ("layer", "weights", "outputs", "dead")
COMPACT_TIPS = {"layer": "The layer's name and the shape of one image's output (its type in the tooltip of each cell)"}
DEAD_WARNING = 0.5  # above this share of dead units the cell turns red
CELL_PADDING = 12  # pixels a cell adds to its text (margins, grid line)


def statistics_note(count: int, part: str, all_of_them: bool, weights: str = "") -> str:
    """The heading above the table: which images were measured and with which weights. ``weights`` names
    pinned weights as the Inside tab does ("Epoch 1 of run 2", "Run 3 after 5 epochs"); "" for the latest
    weights of the trained network, which are measured again after every epoch."""
    where = "all" if all_of_them else "the first"
    if weights:
        whose = f"the weights of {weights[:1].lower()}{weights[1:]}"
    else:
        whose = "the latest weights (updated after every epoch)"
    return (f"Measured on {where} {count} {part} images with {whose}. "
            "Dead ReLU units output zero for every one of these images.")


def _mean_std(mean: float, std: float, separator: str = " ") -> str:
    return "" if math.isnan(mean) else f"{mean:+.3f}{separator}\u00b1 {std:.3f}"


class LayerStatsModel(QAbstractTableModel):
    """Rows: layers; columns: WIDE_COLUMNS, or COMPACT_COLUMNS when ``compact``."""

    def __init__(self) -> None:
        super().__init__()
        self.stats: list[LayerStatistics] = []
        self.compact = False

    @property
    def columns(self) -> tuple[str, ...]:
        return COMPACT_COLUMNS if self.compact else WIDE_COLUMNS

    def column(self, kind: str) -> int:
        """The index of the column showing ``kind`` (a key of HEADINGS), or -1 when none does."""
        return self.columns.index(kind) if kind in self.columns else -1

    def set_statistics(self, stats: list[LayerStatistics]) -> None:
        self.beginResetModel()
        self.stats = list(stats)
        self.endResetModel()

    def set_compact(self, compact: bool) -> None:
        if compact != self.compact:
            self.beginResetModel()
            self.compact = compact
            self.endResetModel()

    def rowCount(self, parent: QModelIndex | QPersistentModelIndex = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self.stats)

    def columnCount(self, parent: QModelIndex | QPersistentModelIndex = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self.columns)

    def headerData(self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole):
        if orientation != Qt.Orientation.Horizontal or not 0 <= section < len(self.columns):
            return None
        kind = self.columns[section]
        if role == Qt.ItemDataRole.DisplayRole:
            return HEADINGS[kind]
        if role == Qt.ItemDataRole.ToolTipRole:
            return COMPACT_TIPS.get(kind, TIPS[kind]) if self.compact else TIPS[kind]
        return None

    def text(self, s: LayerStatistics, kind: str, compact: bool) -> str:
        """What the cell of ``kind`` shows for layer ``s`` (``compact``: on two lines)."""
        shape = "\u00d7".join(map(str, s.output_shape))
        if kind == "layer":
            return f"{s.name}\n{shape}" if compact else s.name
        if kind == "shape":
            return shape
        if kind == "weights":
            return _mean_std(s.weight_mean, s.weight_std, "\n" if compact else " ")
        if kind == "outputs":
            return _mean_std(s.activation_mean, s.activation_std, "\n" if compact else " ")
        fraction = s.dead_fraction
        if fraction is None:
            return ""
        return f"{100 * fraction:.0f}%{chr(10) if compact else ' '}({s.dead_units}/{s.units})"

    def data(self, index: QModelIndex | QPersistentModelIndex, role: int = Qt.ItemDataRole.DisplayRole):
        if not index.isValid():
            return None
        s = self.stats[index.row()]
        kind = self.columns[index.column()]
        if role == Qt.ItemDataRole.DisplayRole:
            return self.text(s, kind, self.compact)
        if role == Qt.ItemDataRole.BackgroundRole and kind == "dead":
            fraction = s.dead_fraction
            if fraction is not None and fraction > DEAD_WARNING:
                return QBrush(QColor(250, 205, 200))
        if role == Qt.ItemDataRole.ToolTipRole:
            return self._tip(s, kind)
        return None

    @staticmethod
    def _tip(s: LayerStatistics, kind: str) -> str | None:
        # Every cell's tooltip says in words what it shows, so a name elided in a narrow pane is never lost.
        if kind == "layer":
            return f"{s.name} ({s.type}): output " + "\u00d7".join(map(str, s.output_shape))
        if kind == "weights" and not math.isnan(s.weight_mean):
            return f"Weights of {s.name}: mean {s.weight_mean:+.4g}, standard deviation {s.weight_std:.4g}"
        if kind == "outputs" and not math.isnan(s.activation_mean):
            return (f"Outputs of {s.name} on {s.samples} images: mean {s.activation_mean:+.4g}, "
                    f"standard deviation {s.activation_std:.4g}")
        if kind == "dead" and s.relu:
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
    # A short label: a low plot in a narrow pane cuts a long one. The tooltip says what "log" means.
    plot.getPlotItem().setLabel("left", "log count" if log_counts else "count")
    plot.setToolTip("Bar heights are log10(1 + count): a huge bar (such as a ReLU's zeros) does not flatten the "
                    "rest" if log_counts else "")
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
        self.table.verticalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self.table.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.table.selectionModel().currentRowChanged.connect(lambda current, _prev: self._show_row(current.row()))
        self.table.horizontalHeader().setDefaultAlignment(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter)
        self.table.installEventFilter(self)  # its width decides between the wide and the compact columns
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
            title.installEventFilter(self)  # a wrapped heading makes the other as tall (see _align_titles)
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
        plots = QSplitter()
        plots.addWidget(weights)
        plots.addWidget(outputs)
        # The check box below both plots, not under one: the two plots then keep the same height.
        histograms = QWidget()
        histograms_layout = QVBoxLayout(histograms)
        histograms_layout.setContentsMargins(0, 0, 0, 0)
        histograms_layout.addWidget(plots, 1)
        histograms_layout.addWidget(self.log_box, 0, Qt.AlignmentFlag.AlignRight)
        splitter = QSplitter()
        splitter.setOrientation(pg.QtCore.Qt.Orientation.Vertical)
        splitter.addWidget(self.table)
        splitter.addWidget(histograms)
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
        self._fit_columns()
        if stats:
            self.table.selectRow(min(row, len(stats) - 1))
            self._show_row(min(row, len(stats) - 1))

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:  # noqa: N802 (Qt's name)
        if watched is self.table and event.type() == QEvent.Type.Resize:
            self._fit_columns()
        elif watched in (self.weights_title, self.outputs_title) and event.type() == QEvent.Type.Resize:
            self._align_titles()
        return super().eventFilter(watched, event)

    def _align_titles(self) -> None:
        """Both headings as tall as the taller, so the two histograms start at the same height."""
        titles = (self.weights_title, self.outputs_title)
        height = max(t.heightForWidth(max(1, t.width())) for t in titles)
        for title in titles:
            if title.minimumHeight() != height:
                title.setMinimumHeight(height)

    def one_line_width(self) -> int:
        """The width the wide table needs to show every heading and figure on one line."""
        cells, headings = QFontMetrics(self.table.font()), QFontMetrics(self.table.horizontalHeader().font())
        total = 0
        for kind in WIDE_COLUMNS:
            texts = [self.model.text(s, kind, compact=False) for s in self.model.stats]
            widest = max([cells.horizontalAdvance(t) for t in texts]
                         + [headings.horizontalAdvance(line) for line in HEADINGS[kind].splitlines()])
            total += widest + CELL_PADDING
        return total

    def _fit_columns(self) -> None:
        """A column each where one line of every figure fits; else the compact table (two lines a row)."""
        room = (self.table.width() - 2 * self.table.frameWidth()
                - self.table.verticalScrollBar().sizeHint().width())  # as if it scrolled: no flip-flopping
        compact = self.one_line_width() > room
        if compact != self.model.compact:
            row = self._row
            self.model.set_compact(compact)
            if self.model.stats:
                self.table.selectRow(min(row, len(self.model.stats) - 1))
        header = self.table.horizontalHeader()
        for column, kind in enumerate(self.model.columns):
            # Compact: the figures take the width they need and the name the rest (elided in the middle,
            # whole in its tooltip). Wide: everything fits, the figures share what is left over.
            stretch = kind == "layer" if compact else kind in ("weights", "outputs", "dead")
            header.setSectionResizeMode(column, QHeaderView.ResizeMode.Stretch if stretch
                                        else QHeaderView.ResizeMode.ResizeToContents)
        self.table.setWordWrap(False)
        self.table.setTextElideMode(Qt.TextElideMode.ElideMiddle)

    def clear(self, note: str) -> None:
        self.model.set_statistics([])
        self.note.setText(note)
        self.weights_plot.clear()
        self.outputs_plot.clear()
        for title, text in ((self.weights_title, "weights"), (self.outputs_title, "outputs")):
            title.setText(text)
            title.setToolTip("")  # the old network's layer must not linger in a tooltip
        self._fit_columns()

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
        # The layer's type goes in the tooltips: short headings wrap less in a narrow pane.
        label = f"{s.name}: {s.weight_label}" if s.weights is not None else f"{s.name}: no weights"
        self.weights_title.setText(label)
        self.weights_title.setToolTip(f"{s.name} ({s.type}): histogram of its {s.weight_label}"
                                      if s.weights is not None else f"{s.name} ({s.type}) has no weights")
        _draw_histogram(self.weights_plot, s.weights, (70, 100, 170))
        zeros = f" \u00b7 {100 * s.zero_fraction:.0f}% exactly 0" if s.zero_fraction else ""
        self.outputs_title.setText(f"{s.name} outputs on {s.samples} images{zeros}")
        self.outputs_title.setToolTip(f"{s.name} ({s.type}): histogram of its outputs on {s.samples} test images")
        self._align_titles()
        _draw_histogram(self.outputs_plot, s.activations, (220, 120, 30), self.log_box.isChecked())

    def histogram_counts(self) -> tuple[np.ndarray | None, np.ndarray | None]:
        """The (weights, outputs) counts drawn now, for checks."""
        s = self.model.stats[self._row] if self.model.stats else None
        if s is None:
            return None, None
        return (s.weights.counts if s.weights else None), s.activations.counts
