"""Two runs side by side: what changed in the network and the settings, their curves overlaid, how the
confusion matrix moved, and the test images one run gets right and the other wrong."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QSize, Qt, Signal
from PySide6.QtGui import QBrush, QColor, QIcon, QImage, QPixmap
from PySide6.QtWidgets import (
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from cnn_studio.plot_legend import LegendAbove
from cnn_studio.runs.class_header import ClassNameHeader
from engine.architecture_diff import diff_architectures
from engine.runs import RunFolder

A_COLOR, B_COLOR = "#1f77b4", "#d62728"
THUMB = 44
MAX_FLIPS = 200  # thumbnails listed per direction


@dataclass(frozen=True)
class Flip:
    """A test image one run gets right and the other wrong."""

    index: int
    label: int
    before: int  # run A's prediction
    after: int  # run B's prediction


def settings_diff(a: dict[str, Any], b: dict[str, Any]) -> list[tuple[str, Any, Any]]:
    """(setting, A's value, B's value) for every training setting that differs, then the dataset."""
    rows = [(key, a["config"].get(key), b["config"].get(key))
            for key in dict.fromkeys([*a.get("config", {}), *b.get("config", {})])
            if a["config"].get(key) != b["config"].get(key)]
    da, db = a.get("dataset") or {}, b.get("dataset") or {}
    if da.get("fingerprint") != db.get("fingerprint"):
        def name(d: dict[str, Any]) -> str:
            return f"{d.get('spec') or d.get('name')} ({d.get('train_size', '?')} training images)"

        rows.append(("dataset", name(da), name(db)))
    return rows


def flips(a: RunFolder, b: RunFolder) -> tuple[list[Flip], list[Flip]] | None:
    """(right in A, wrong in B; wrong in A, right in B), or None when the two were not tested on the same images."""
    ea, eb = a.load_evaluation(), b.load_evaluation()
    if ea is None or eb is None or len(ea.labels) != len(eb.labels) or not np.array_equal(ea.labels, eb.labels):
        return None
    right_a, right_b = ea.predictions == ea.labels, eb.predictions == eb.labels
    worse = [Flip(int(i), int(ea.labels[i]), int(ea.predictions[i]), int(eb.predictions[i]))
             for i in np.flatnonzero(right_a & ~right_b)]
    better = [Flip(int(i), int(ea.labels[i]), int(ea.predictions[i]), int(eb.predictions[i]))
              for i in np.flatnonzero(~right_a & right_b)]
    return worse, better


def flip_summary(worse: int, better: int) -> str:
    """How many test images flipped, each way, saying which run got them right."""
    images = "test image" if worse == 1 else "test images"
    return f"{worse} {images} right in A but wrong in B; {better} wrong in A but right in B"


def _empty_plot(plot: pg.PlotWidget) -> None:
    """No curves and the axes an empty plot starts with: another comparison's ranges would read as data."""
    plot.clear()
    plot.getAxis("bottom").setTickSpacing()  # (automatic ticks again)
    plot.setRange(xRange=(0, 1), yRange=(0, 1), padding=0)
    plot.enableAutoRange()


def thumbnail(image: np.ndarray) -> QPixmap:
    """A small picture of one (H, W, C) uint8 or [0, 1] float image."""
    a = np.asarray(image)
    if a.dtype != np.uint8:
        a = np.clip(a * (255 if a.max() <= 1.0 else 1), 0, 255).astype(np.uint8)
    if a.ndim == 3 and a.shape[2] == 1:
        a = a[..., 0]
    a = np.ascontiguousarray(a)
    if a.ndim == 2:
        q = QImage(a.data, a.shape[1], a.shape[0], a.strides[0], QImage.Format.Format_Grayscale8)
    else:
        rgb = np.ascontiguousarray(a[..., :3])
        q = QImage(rgb.data, rgb.shape[1], rgb.shape[0], rgb.strides[0], QImage.Format.Format_RGB888)
    return QPixmap.fromImage(q.copy()).scaled(THUMB, THUMB, Qt.AspectRatioMode.KeepAspectRatio,
                                             Qt.TransformationMode.FastTransformation)


TWO_COLUMNS_FROM = 760  # narrower than this, the comparison's parts stack (plots would be slivers side by side)
ROW_HEIGHT = 260  # the least height of one row of parts


class RunComparison(QWidget):
    """Signal ``image_chosen(str, int)``: (run folder, test image index) to look at in the Inside tab."""

    image_chosen = Signal(str, int)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.a: RunFolder | None = None
        self.b: RunFolder | None = None
        self.title = QLabel("")  # the two runs compared; hidden otherwise (the Runs tab's hint says what to do)
        self.title.setWordWrap(True)
        self.architecture = QLabel("")
        self.architecture.setWordWrap(True)
        self.architecture.setTextFormat(Qt.TextFormat.RichText)
        self.settings = QTableWidget(0, 3)
        self.settings.setHorizontalHeaderLabels(["Setting", "A", "B"])
        self.settings.verticalHeader().setVisible(False)
        self.settings.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Stretch)
        self.settings.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.accuracy_plot = pg.PlotWidget(background="w")
        self.loss_plot = pg.PlotWidget(background="w")
        for plot, name in ((self.accuracy_plot, "validation accuracy (%)"), (self.loss_plot, "validation loss")):
            plot.setMinimumHeight(140)
            plot.setLabel("bottom", "epoch")
            plot.setLabel("left", name)
            plot.showGrid(x=True, y=True, alpha=0.25)
            LegendAbove(plot.getPlotItem())  # the legend in a row of its own: it hides no curve
            plot.getAxis("left").enableAutoSIPrefix(False)
        self.confusion = QTableWidget(0, 0)
        self.confusion.setHorizontalHeader(ClassNameHeader(self.confusion))  # whole class names, upright if need be
        self.confusion.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.confusion.setStyleSheet("QTableWidget { font-size: 8pt; } QHeaderView { font-size: 8pt; }")
        self.confusion.setTextElideMode(Qt.TextElideMode.ElideNone)
        self.confusion.setWordWrap(False)
        self.confusion.horizontalHeader().setMinimumSectionSize(16)
        self.confusion.verticalHeader().setMinimumSectionSize(14)
        self.confusion.setMinimumHeight(260)
        self.confusion.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Stretch)
        self.confusion.verticalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Stretch)
        self.confusion.setToolTip("Test counts of run B minus run A: true class in rows, predicted in columns. "
                                  "Green: more right answers (diagonal) or fewer mistakes; red: the opposite.")
        self.flip_note = QLabel("")
        self.flip_note.setWordWrap(True)
        self.worse = self._flip_list("Right in A, wrong in B")
        self.better = self._flip_list("Wrong in A, right in B")

        top = QGroupBox("Network and settings")
        top_layout = QVBoxLayout(top)
        top_layout.addWidget(self.architecture)
        top_layout.addWidget(self.settings, 1)
        curves = QGroupBox("Curves (A solid, B dashed)")
        curves_layout = QHBoxLayout(curves)
        curves_layout.addWidget(self.accuracy_plot)
        curves_layout.addWidget(self.loss_plot)
        confusion = QGroupBox("Confusion matrix, B − A")
        confusion_layout = QVBoxLayout(confusion)
        confusion_layout.addWidget(self.confusion)
        flipped = QGroupBox("Test images that flipped (click one to look inside with B's weights)")
        flipped_layout = QVBoxLayout(flipped)
        flipped_layout.addWidget(self.flip_note)
        lists = QHBoxLayout()
        for label, widget in (("Right in A, wrong in B", self.worse), ("Wrong in A, right in B", self.better)):
            column = QVBoxLayout()
            column.addWidget(QLabel(label))
            column.addWidget(widget, 1)
            lists.addLayout(column)
        flipped_layout.addLayout(lists, 1)
        self._grid = QGridLayout()
        self._boxes = (top, curves, confusion, flipped)
        self._columns = 0
        self._arrange(2)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.title)
        layout.addLayout(self._grid, 1)
        self.clear()

    @property
    def columns(self) -> int:
        """2: the four parts in a 2x2 grid; 1: one above the other (a narrow pane, which then scrolls)."""
        return self._columns

    def _arrange(self, columns: int) -> None:
        if columns == self._columns:
            return
        self._columns = columns
        for box in self._boxes:
            self._grid.removeWidget(box)
        for i, box in enumerate(self._boxes):
            self._grid.addWidget(box, i // columns, i % columns)
        for column in range(2):
            self._grid.setColumnStretch(column, 1 if column < columns else 0)
        self.setMinimumHeight(ROW_HEIGHT * (len(self._boxes) // columns))

    def resizeEvent(self, event) -> None:  # noqa: N802 (Qt override)
        self._arrange(2 if event.size().width() >= TWO_COLUMNS_FROM else 1)
        super().resizeEvent(event)

    def _flip_list(self, tip: str) -> QListWidget:
        widget = QListWidget()
        widget.setViewMode(QListWidget.ViewMode.IconMode)
        widget.setIconSize(QSize(THUMB, THUMB))
        widget.setResizeMode(QListWidget.ResizeMode.Adjust)
        widget.setMovement(QListWidget.Movement.Static)
        widget.setSpacing(2)
        widget.setToolTip(tip)
        widget.itemActivated.connect(self._on_flip_chosen)
        widget.itemClicked.connect(self._on_flip_chosen)
        return widget

    def clear(self, text: str = "") -> None:
        """Compare nothing; ``text`` (e.g. why two runs cannot be compared) shows where the title was, else none."""
        self.a = self.b = None
        self.title.setText(text)
        self.title.setVisible(bool(text))
        self.architecture.setText("")
        self.settings.setRowCount(0)
        for plot in (self.accuracy_plot, self.loss_plot):
            _empty_plot(plot)
        self.confusion.clear()
        self.confusion.setRowCount(0)
        self.confusion.setColumnCount(0)
        self.worse.clear()
        self.better.clear()
        self.flip_note.setText("")

    def compare(self, a: RunFolder, b: RunFolder, names: tuple[str, str], dataset: Any = None) -> None:
        """Run ``a`` against run ``b`` (labelled ``names``); ``dataset`` gives the flipped images' pictures."""
        self.a, self.b = a, b
        ra, rb = a.record, b.record
        self.title.setText(f"<b>A</b> = {names[0]} &nbsp; vs &nbsp; <b>B</b> = {names[1]}")
        self.title.setVisible(True)
        self._show_architecture(ra, rb)
        rows = settings_diff(ra, rb)
        self.settings.setRowCount(len(rows))
        for i, (key, va, vb) in enumerate(rows):
            for j, value in enumerate((key, va, vb)):
                item = QTableWidgetItem("–" if value is None else str(value))
                item.setToolTip(item.text())
                self.settings.setItem(i, j, item)
        if not rows:
            self.settings.setRowCount(1)
            self.settings.setItem(0, 0, QTableWidgetItem("(the same settings)"))
        self._show_curves(ra, rb, names)
        self._show_confusion(ra, rb)
        self._show_flips(a, b, dataset)

    def _show_architecture(self, ra: dict[str, Any], rb: dict[str, Any]) -> None:
        diff = diff_architectures(ra["architecture"], rb["architecture"])
        if diff.same:
            self.architecture.setText("<b>Network</b>: the same in both runs "
                                      f"({diff.params_before:,} parameters).")
            return
        items = "".join(f"<li>{change.describe()}</li>" for change in diff.changes)
        if diff.input_before != diff.input_after:
            items = f"<li>input {diff.input_before} → {diff.input_after}</li>" + items
        self.architecture.setText(f"<b>Network</b>: {diff.params_before:,} → {diff.params_after:,} parameters "
                                  f"({diff.params_delta:+,})<ul style='margin:0'>{items}</ul>")

    def _show_curves(self, ra: dict[str, Any], rb: dict[str, Any], names: tuple[str, str]) -> None:
        self.accuracy_plot.clear()
        self.loss_plot.clear()
        for record, color, style, name in ((ra, A_COLOR, Qt.PenStyle.SolidLine, "A"),
                                           (rb, B_COLOR, Qt.PenStyle.DashLine, "B")):
            history = record.get("history") or []
            epochs = np.array([e["epoch"] for e in history], dtype=float)
            pen = pg.mkPen(color, width=2, style=style)
            for plot, key, scale in ((self.accuracy_plot, "val_accuracy", 100.0), (self.loss_plot, "val_loss", 1.0)):
                values = np.array([math.nan if e.get(key) is None else e[key] * scale for e in history], dtype=float)
                keep = np.isfinite(values)
                plot.plot(epochs[keep], values[keep], pen=pen, symbol="o", symbolSize=5, symbolBrush=color,
                          name=name)
        last = max((e["epoch"] for r in (ra, rb) for e in (r.get("history") or [])), default=1)
        step = max(1, math.ceil(last / 10))  # whole epochs only, at most about ten labels
        for plot in (self.accuracy_plot, self.loss_plot):
            plot.getAxis("bottom").setTickSpacing(major=step, minor=step)

    def _show_confusion(self, ra: dict[str, Any], rb: dict[str, Any]) -> None:
        ca, cb = (ra.get("results") or {}).get("confusion"), (rb.get("results") or {}).get("confusion")
        if not ca or not cb or np.shape(ca) != np.shape(cb):
            self.confusion.clear()
            self.confusion.setRowCount(1)
            self.confusion.setColumnCount(1)
            self.confusion.setItem(0, 0, QTableWidgetItem("Both runs need test results on the same classes."))
            return
        delta = np.array(cb) - np.array(ca)
        names = (rb.get("results") or {}).get("class_names") or [str(i) for i in range(len(delta))]
        k = len(delta)
        self.confusion.setRowCount(k)
        self.confusion.setColumnCount(k)
        self.confusion.setHorizontalHeaderLabels(list(names))
        self.confusion.setVerticalHeaderLabels(list(names))
        for j, name in enumerate(names):
            self.confusion.horizontalHeaderItem(j).setToolTip(f"predicted {name}")
            self.confusion.verticalHeaderItem(j).setToolTip(f"true {name}")
        scale = max(1, int(np.abs(delta).max()))
        for i in range(k):
            for j in range(k):
                value = int(delta[i, j])
                item = QTableWidgetItem(f"{value:+d}" if value else "")
                item.setTextAlignment(Qt.AlignmentFlag.AlignCenter)
                good = value > 0 if i == j else value < 0
                strength = abs(value) / scale
                if value:
                    base = (46, 160, 67) if good else (214, 39, 40)
                    color = QColor(*[int(255 - (255 - c) * (0.25 + 0.75 * strength)) for c in base])
                    item.setBackground(QBrush(color))
                item.setToolTip(f"true {names[i]}, predicted {names[j]}: {value:+d} images in B")
                self.confusion.setItem(i, j, item)

    def _show_flips(self, a: RunFolder, b: RunFolder, dataset: Any) -> None:
        self.worse.clear()
        self.better.clear()
        found = flips(a, b)
        if found is None:
            self.flip_note.setText("Both runs need test results on the same test images.")
            return
        worse, better = found
        names = (b.record.get("results") or {}).get("class_names") or []
        pictures = dataset.x_test if dataset is not None and len(dataset.y_test) == len(
            a.load_evaluation().labels) else None  # type: ignore[union-attr]
        self.flip_note.setText(flip_summary(len(worse), len(better))
                               + ("" if pictures is not None else " (load the dataset to see the pictures)"))
        for widget, items in ((self.worse, worse), (self.better, better)):
            for flip in items[:MAX_FLIPS]:
                def name(k: int) -> str:
                    return names[k] if k < len(names) else str(k)

                item = QListWidgetItem(str(flip.index))
                item.setData(Qt.ItemDataRole.UserRole, flip.index)
                item.setToolTip(f"Test image {flip.index + 1}, a {name(flip.label)}: A said {name(flip.before)}, "
                                f"B said {name(flip.after)}")
                if pictures is not None:
                    item.setIcon(QIcon(thumbnail(pictures[flip.index])))
                widget.addItem(item)

    def _on_flip_chosen(self, item: QListWidgetItem) -> None:
        if self.b is not None:
            self.image_chosen.emit(str(self.b.path), int(item.data(Qt.ItemDataRole.UserRole)))
