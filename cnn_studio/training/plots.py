"""Live training curves: loss per batch (raw and smoothed, rate-change markers) and per-epoch loss/accuracy.

The plot items are made once and fed with ``setData`` from growing buffers; the owner calls ``refresh``
on a timer, so the redraw rate does not depend on how fast batches arrive. Earlier runs can be overlaid.

Every run is drawn in its own colour (run_colors: fixed by its number), training solid and validation
dashed; the current run has thicker lines and larger points. So a run looks the same hue before and after
a later run starts, and the epoch plots' legends name each run drawn (plus a key to the two line styles).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QPointF, Qt
from PySide6.QtGui import QColor, QPen
from PySide6.QtWidgets import QHBoxLayout, QVBoxLayout, QWidget

from cnn_studio.plot_axes import DecadeAxis, plain_numbers
from cnn_studio.plot_legend import LegendAbove
from cnn_studio.training.run_colors import run_color
from cnn_studio.training.run_history import RunRecord

RAW_ALPHA = 70  # the current run's raw per-batch loss is drawn faint (in its colour) under its smoothed curve
# Rate changes and the time machine's epoch: a neutral grey, so no marker reads as one of the runs' hues.
MARKER_COLOR = "#555555"
KEY_COLOR = "#444444"  # the legend's key to the line styles, which stand for no run in particular
CURRENT_WIDTH, OVERLAY_WIDTH = 2.5, 1.5  # the current run stands out by its weight, not by another hue
CURRENT_POINTS, OVERLAY_POINTS = 7, 5
KINDS = ("train", "validation")
SYMBOLS = {"train": "o", "validation": "s"}
# The hover readout names a point only when the mouse is this close to it (steps, epochs): where nothing
# is drawn (past the last batch so far, between runs' ends) it says nothing.
STEP_REACH = 1.0
EPOCH_REACH = 0.5


def make_plot(title: str, x_label: str, y_label: str, legend_above: bool = False, grid: bool = True,
              log_y: bool = False) -> pg.PlotWidget:
    """A white plot with dark axes, a light grid and a legend in the top-right corner, or (``legend_above``)
    in a row of its own above the data, where it hides no point however the curves run.

    pyqtgraph draws the grid as part of the axes, so every curve update repaints them: a plot that is
    redrawn several times a second goes without (``grid=False``) to keep the GUI thread's work small.
    """
    widget = pg.PlotWidget(background="w", axisItems={"left": DecadeAxis("left")} if log_y else None)
    plot = widget.getPlotItem()
    if log_y:
        plot.setLogMode(y=True)
    plot.setTitle(title, color="#222222", size="10pt")
    plot.setLabel("bottom", x_label, color="#333333")
    plot.setLabel("left", y_label, color="#333333")
    if grid:
        plot.showGrid(x=True, y=True, alpha=0.2)
    for name in ("left", "bottom"):
        axis = plot.getAxis(name)
        axis.setPen(pg.mkPen("#666666"))
        axis.setTextPen(pg.mkPen("#222222"))
    if legend_above:
        LegendAbove(plot)
        plot.layout.setRowFixedHeight(0, 22)  # the title's row: pyqtgraph's 30 px less the legend's row below
    else:
        legend = plot.addLegend(offset=(-8, 8), labelTextColor="#222222", brush=pg.mkBrush(255, 255, 255, 210),
                                pen=pg.mkPen("#cccccc"))
        legend.setLabelTextSize("8pt")
    plot.setMenuEnabled(False)
    plain_numbers(plot)
    # Room on the right: a plot beside a splitter or a dock would otherwise end its data at the very edge.
    left, top, _right, bottom = plot.layout.getContentsMargins()
    plot.layout.setContentsMargins(left, top, 12, bottom)
    widget.setMinimumHeight(160)
    return widget


def run_pen(color: str, kind: str = "train", current: bool = True) -> QPen:
    """A run's line: solid for training, dashed for validation, thicker for the current run."""
    style = Qt.PenStyle.SolidLine if kind == "train" else Qt.PenStyle.DashLine
    return pg.mkPen(color, width=CURRENT_WIDTH if current else OVERLAY_WIDTH, style=style)


def style_epoch_curve(curve: pg.PlotDataItem, color: str, kind: str, current: bool) -> None:
    """Draw ``curve`` (a run's ``kind`` of epoch values) in the run's colour, as the current run or an overlay."""
    curve.setPen(run_pen(color, kind, current))
    curve.setSymbol(SYMBOLS[kind])
    curve.setSymbolSize(CURRENT_POINTS if current else OVERLAY_POINTS)
    curve.setSymbolBrush(color)
    curve.setSymbolPen(pg.mkPen(color))


class RunSample(pg.ItemSample):
    """A legend entry for a whole run: drawn like its training curve; a click hides or shows all its curves."""

    def __init__(self, curves: list[pg.PlotDataItem]) -> None:
        super().__init__(curves[0])
        self.curves = curves

    def mouseClickEvent(self, event) -> None:  # noqa: N802 (Qt override)
        if event.button() == Qt.MouseButton.LeftButton:
            shown = not self.item.isVisible()
            for curve in self.curves:
                curve.setVisible(shown)
        event.accept()
        self.update()
        self.sigClicked.emit(self.item)


class KeySample(pg.ItemSample):
    """A legend entry that explains a line style; it stands for no curve, so a click changes nothing."""

    def mouseClickEvent(self, event) -> None:  # noqa: N802 (Qt override)
        event.accept()


def style_key(kind: str) -> pg.PlotDataItem:
    """A curve never added to a plot, which the legend draws as the key to ``kind``'s line style."""
    key = pg.PlotDataItem(name=kind)
    style_epoch_curve(key, KEY_COLOR, kind, current=False)
    return key


class HoverReadout:
    """A vertical guide and a text box that follow the mouse, describing the nearest data point.

    ``describe(x)`` returns (x to snap the guide to, text) or None when there is nothing there.
    """

    def __init__(self, widget: pg.PlotWidget, describe: Callable[[float], tuple[float, str] | None]) -> None:
        self.widget = widget
        self.plot = widget.getPlotItem()
        self.describe = describe
        self.line = pg.InfiniteLine(angle=90, movable=False, pen=pg.mkPen("#888888", style=Qt.PenStyle.DotLine))
        self.text = pg.TextItem(color="#111111", fill=pg.mkBrush(255, 255, 255, 230), border=pg.mkPen("#999999"))
        self.text.setZValue(100)
        for item in (self.line, self.text):
            item.setVisible(False)
            self.plot.addItem(item, ignoreBounds=True)
        self._proxy = pg.SignalProxy(widget.scene().sigMouseMoved, rateLimit=30, slot=self._moved)

    @property
    def visible(self) -> bool:
        return self.text.isVisible()

    def hide(self) -> None:
        self.line.setVisible(False)
        self.text.setVisible(False)

    def _moved(self, args: tuple[QPointF]) -> None:
        pos = args[0]
        if not self.plot.vb.sceneBoundingRect().contains(pos):
            self.hide()
            return
        point = self.plot.vb.mapSceneToView(pos)
        self.show_at(point.x(), point.y())

    def show_at(self, x: float, y: float | None = None) -> str | None:
        """Show the readout for data x (text placed at y, or mid-height); returns the text shown."""
        found = self.describe(x)
        if found is None:
            self.hide()
            return None
        snap_x, text = found
        (x0, x1), (y0, y1) = self.plot.vb.viewRange()
        y = (y0 + y1) / 2 if y is None else y
        # Keep the box inside the view: it opens towards the side with more room.
        self.text.setAnchor((1.0 if snap_x > (x0 + x1) / 2 else 0.0, 0.0 if y > (y0 + y1) / 2 else 1.0))
        self.text.setText(text)
        self.text.setPos(snap_x, y)
        self.line.setPos(snap_x)
        self.line.setVisible(True)
        self.text.setVisible(True)
        return text


class TrainingPlots(QWidget):
    """Batch-loss plot on top; epoch loss and epoch accuracy (train vs validation) side by side below."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.record: RunRecord | None = None
        self._overlays: dict[int, list[pg.PlotDataItem]] = {}
        self._markers: list[pg.InfiniteLine] = []
        self._dirty = False
        self._drawn = (0, 0)  # (batch points, epochs) the curves were last fed
        self._loss_top: float | None = None
        self._epoch_lines: list[pg.InfiniteLine] = []  # the time machine's epoch, on both epoch plots

        self.batch_plot = make_plot("Training loss per batch", "batch (step)", "loss", grid=False)
        # Epoch curves go anywhere in these small plots (accuracy up to the top, losses across the corners):
        # their legends sit above the data.
        self.loss_plot = make_plot("Loss per epoch", "epoch", "loss", legend_above=True)
        self.accuracy_plot = make_plot("Accuracy per epoch", "epoch", "accuracy (%)", legend_above=True)
        # The current run's curves: made once, coloured for whichever run is current (_color_current).
        self.raw_curve = self.batch_plot.plot()
        self.smooth_curve = self.batch_plot.plot()
        for curve in (self.raw_curve, self.smooth_curve):
            curve.setClipToView(True)
            curve.setDownsampling(auto=True, method="peak")
        self.train_loss_curve, self.val_loss_curve = self.loss_plot.plot(), self.loss_plot.plot()
        self.train_acc_curve, self.val_acc_curve = self.accuracy_plot.plot(), self.accuracy_plot.plot()
        self._keys = [style_key(kind) for kind in KINDS]
        self._color_current(run_color(1))
        self._label_plots()
        self.accuracy_plot.getPlotItem().setYRange(0, 100, padding=0.02)
        self.accuracy_plot.getPlotItem().vb.setLimits(yMin=-5, yMax=105)

        self.batch_readout = HoverReadout(self.batch_plot, self._describe_batch)
        self.loss_readout = HoverReadout(self.loss_plot, lambda x: self._describe_epoch(x, "loss"))
        self.accuracy_readout = HoverReadout(self.accuracy_plot, lambda x: self._describe_epoch(x, "accuracy"))

        bottom = QHBoxLayout()
        bottom.setContentsMargins(0, 0, 0, 0)
        bottom.addWidget(self.loss_plot)
        bottom.addWidget(self.accuracy_plot)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.batch_plot, 3)
        layout.addLayout(bottom, 2)

    @property
    def current_curves(self) -> list[pg.PlotDataItem]:
        """The current run's curves: raw and smoothed batch loss, then train/validation loss and accuracy."""
        return [self.raw_curve, self.smooth_curve, self.train_loss_curve, self.val_loss_curve,
                self.train_acc_curve, self.val_acc_curve]

    def _color_current(self, color: str) -> None:
        """The current run's curves in its colour (the same hue it keeps as an overlay), drawn heavier."""
        raw = QColor(color)
        raw.setAlpha(RAW_ALPHA)
        self.raw_curve.setPen(pg.mkPen(raw, width=1))
        self.smooth_curve.setPen(run_pen(color))
        for curve, kind in zip(self.current_curves[2:], KINDS * 2):
            style_epoch_curve(curve, color, kind, current=True)

    # -- the current run -------------------------------------------------------------------------------
    def begin_run(self, record: RunRecord) -> None:
        """Show ``record`` as the current run (its curves restart empty; earlier overlays stay)."""
        if record is not self.record:
            for curve in self.current_curves:
                curve.setVisible(True)  # a click on the last run's legend entry may have hidden them
        self.record = record
        self._color_current(record.color)
        self._label_plots()
        self._loss_top = None
        for line in self._markers:
            self.batch_plot.removeItem(line)
        self._markers.clear()
        for step, kind, value in record.rate_changes:  # a continued run keeps its earlier markers
            self.mark_rate_change(step, kind, value)
        self.redraw()

    def expect(self, last_step: int, last_epoch: int) -> None:
        """Fix the x axes to where this run will end, so they do not rescale (and repaint) every batch."""
        steps = max([last_step] + [int(o.batch_loss.x[-1]) for o in self._overlay_records() if len(o.batch_loss)])
        epochs = max([last_epoch] + [len(o.epochs) for o in self._overlay_records()])
        self.batch_plot.getPlotItem().setXRange(0, max(steps, 1), padding=0.01)
        for widget in (self.loss_plot, self.accuracy_plot):
            widget.getPlotItem().setXRange(0.5, max(epochs, 1) + 0.5, padding=0)
        spacing = max(1, math.ceil(epochs / 10))
        for widget in (self.loss_plot, self.accuracy_plot):
            widget.getPlotItem().getAxis("bottom").setTickSpacing(spacing, spacing)

    def end_run(self) -> None:
        self.redraw()

    def clear(self) -> None:
        """No run at all (the project was replaced): empty curves, no markers, no overlays."""
        self.record = None
        for number in list(self._overlays):
            for item in self._overlays.pop(number):
                self._remove(item)
        for line in self._markers:
            self.batch_plot.removeItem(line)
        self._markers.clear()
        self.mark_epoch(None)
        for curve in self.current_curves:
            curve.setData([], [])
            curve.setVisible(True)
        self._color_current(run_color(1))  # the next project's first run
        self._label_plots()
        self._drawn, self._loss_top, self._dirty = (0, 0), None, False
        for readout in (self.batch_readout, self.loss_readout, self.accuracy_readout):
            readout.hide()
        # Axes as before the first run: nothing of the previous project's scale remains.
        for widget in (self.batch_plot, self.loss_plot):
            widget.getPlotItem().setRange(xRange=(0, 1), yRange=(0, 1), padding=0)
        self.accuracy_plot.getPlotItem().setXRange(0, 1, padding=0)
        # Setting a range fixes it: the epoch losses' axis follows the next run's values again.
        self.loss_plot.getPlotItem().enableAutoRange(axis="y")
        for widget in (self.loss_plot, self.accuracy_plot):
            widget.getPlotItem().getAxis("bottom").setTickSpacing()  # automatic again, as before any run

    def data_changed(self) -> None:
        """New batches or epochs were added to the current record: ``refresh`` draws them."""
        self._dirty = True

    def mark_rate_change(self, step: int, kind: str, value: float) -> None:
        """A labelled vertical line where a learning-rate (or momentum) change took effect."""
        label = f"lr {value:g}" if kind == "lr" else f"momentum {value:g}"
        line = pg.InfiniteLine(pos=step, angle=90, movable=False,
                               pen=pg.mkPen(MARKER_COLOR, width=1.5, style=Qt.PenStyle.DashLine), label=label,
                               labelOpts={"position": 0.92 - 0.08 * (len(self._markers) % 4), "color": MARKER_COLOR,
                                          "fill": pg.mkBrush(255, 255, 255, 220), "anchors": [(0, 0.5), (0, 0.5)]})
        line.setToolTip(f"{label} from step {step}")
        self.batch_plot.addItem(line)
        self._markers.append(line)

    def mark_epoch(self, epoch: int | None) -> None:
        """A line on the epoch plots at the epoch the time machine shows (None: the latest, no line)."""
        for widget, line in zip((self.loss_plot, self.accuracy_plot), self._epoch_lines):
            widget.removeItem(line)
        self._epoch_lines = []
        if epoch is None:
            return
        for widget in (self.loss_plot, self.accuracy_plot):
            line = pg.InfiniteLine(pos=epoch, angle=90, movable=False,
                                   pen=pg.mkPen(MARKER_COLOR, width=2, style=Qt.PenStyle.DotLine),
                                   label=f"epoch {epoch}",
                                   labelOpts={"position": 0.5, "color": MARKER_COLOR,
                                              "fill": pg.mkBrush(255, 255, 255, 220)})
            line.setToolTip(f"The time machine shows the network after epoch {epoch}")
            widget.addItem(line)
            self._epoch_lines.append(line)

    @property
    def marked_epoch(self) -> int | None:
        """The epoch marked on the epoch plots, or None."""
        return int(self._epoch_lines[0].value()) if self._epoch_lines else None

    @property
    def markers(self) -> list[tuple[float, str]]:
        """(step, label) of every rate-change marker on the batch plot."""
        return [(float(line.value()), line.label.toPlainText()) for line in self._markers]

    def redraw(self) -> None:
        """Feed every current curve from the record (the items stay; only their data is replaced)."""
        self._dirty = False
        r = self.record
        if r is None:
            return
        self.raw_curve.setData(r.batch_loss.x, r.batch_loss.y)
        self.smooth_curve.setData(r.smoothed_loss.x, r.smoothed_loss.y)
        self._set_epoch_data(r, (self.train_loss_curve, self.val_loss_curve, self.train_acc_curve,
                                 self.val_acc_curve))
        self._drawn = (len(r.batch_loss), len(r.epochs))
        self._rename_current()
        self._fit_loss_axis()
        x_max = self.batch_plot.getPlotItem().vb.viewRange()[0][1]
        if len(r.batch_loss) and r.batch_loss.x[-1] > x_max:  # ran past the expected end: let the axis follow
            self.batch_plot.getPlotItem().enableAutoRange(axis="x")

    def refresh(self) -> None:
        """Draw what arrived since the last call; only the curves that changed get new data."""
        r = self.record
        if not self._dirty or r is None:
            return
        self._dirty = False
        batches, epochs = self._drawn
        if len(r.epochs) != epochs:
            self.redraw()
            return
        if len(r.batch_loss) != batches:
            self.raw_curve.setData(r.batch_loss.x, r.batch_loss.y)
            self.smooth_curve.setData(r.smoothed_loss.x, r.smoothed_loss.y)
            self._fit_loss_axis(since=batches)
            self._drawn = (len(r.batch_loss), epochs)

    def _fit_loss_axis(self, since: int = 0) -> None:
        """Loss axis from 0 to just above the highest loss so far; it moves only when a loss goes higher.

        An axis that followed every new minimum would re-label (and repaint) itself at each refresh.
        """
        r = self.record
        assert r is not None
        parts = [r.batch_loss.y[since:]] + ([] if since else [o.smoothed_loss.y for o in self._overlay_records()])
        finite = [p[np.isfinite(p)] for p in parts]
        top = max((float(p.max()) for p in finite if len(p)), default=None)
        if top is not None and (self._loss_top is None or top * 1.05 > self._loss_top):
            self._loss_top = max(top * 1.05, 1e-6)
            self.batch_plot.getPlotItem().setYRange(0, self._loss_top, padding=0)

    @staticmethod
    def _set_epoch_data(record: RunRecord, curves: tuple[pg.PlotDataItem, ...]) -> None:
        epochs = np.array([e.epoch for e in record.epochs], dtype=np.float64)
        columns = [
            [e.train_loss for e in record.epochs], [e.val_loss for e in record.epochs],
            [100 * e.train_accuracy for e in record.epochs], [100 * e.val_accuracy for e in record.epochs],
        ]
        for curve, values in zip(curves, columns):
            y = np.array(values, dtype=np.float64)
            keep = np.isfinite(y)  # no validation split: NaN values, so no validation curve
            curve.setData(epochs[keep], y[keep])

    # -- overlays of earlier runs ------------------------------------------------------------------------
    def _overlay_records(self) -> list[RunRecord]:
        return [items[0].record for items in self._overlays.values()]  # type: ignore[attr-defined]

    def set_overlays(self, records: list[RunRecord]) -> None:
        """Overlay exactly these earlier runs (each in its own colour, thinner than the current run)."""
        wanted = {r.number: r for r in records if r is not self.record}
        for number in list(self._overlays):
            if number not in wanted:
                for item in self._overlays.pop(number):
                    self._remove(item)
        for number, record in wanted.items():
            if number not in self._overlays:
                self._overlays[number] = self._make_overlay(record)
        self._label_plots()
        self._loss_top = None
        self.redraw()

    def _remove(self, item: pg.PlotDataItem) -> None:
        for widget in (self.batch_plot, self.loss_plot, self.accuracy_plot):
            plot = widget.getPlotItem()
            if item in plot.items:
                plot.removeItem(item)  # (the callers relabel the legends after)

    @property
    def overlay_numbers(self) -> list[int]:
        return sorted(self._overlays)

    def overlay_curves(self, number: int) -> list[pg.PlotDataItem]:
        """Overlaid run ``number``'s curves, in the order of ``current_curves`` less the raw batch loss."""
        return list(self._overlays.get(number, []))

    def _make_overlay(self, record: RunRecord) -> list[pg.PlotDataItem]:
        """The run's curves drawn as when it was current, in its colour and line styles, only thinner:
        its smoothed batch loss, then train/validation loss, then train/validation accuracy."""
        smooth = self.batch_plot.plot(record.smoothed_loss.x.copy(), record.smoothed_loss.y.copy(),
                                      pen=run_pen(record.color, current=False), name=record.label)
        curves = [smooth]
        for widget in (self.loss_plot, self.accuracy_plot):
            for kind in KINDS:
                curve = widget.plot()
                style_epoch_curve(curve, record.color, kind, current=False)
                curves.append(curve)
        self._set_epoch_data(record, (curves[1], curves[2], curves[3], curves[4]))
        for item in curves:
            item.record = record  # type: ignore[attr-defined]
            item.setZValue(-1)
        return curves

    # -- legends ---------------------------------------------------------------------------------------------
    def _label_plots(self) -> None:
        """Legend entries for the runs drawn now: the current run first, then the overlays by number."""
        self._label_batch_plot()
        runs: list[tuple[int, list[pg.PlotDataItem]]] = []
        if self.record is not None:
            runs.append((self.record.number, self.current_curves[2:]))
        runs += [(number, items[1:]) for number, items in sorted(self._overlays.items())]
        for i, widget in enumerate((self.loss_plot, self.accuracy_plot)):
            legend = widget.getPlotItem().legend
            legend.clear()
            # One entry a run (its colour) and a key to the two line styles: short names, so the legend
            # stays a row or two above these small plots however many runs are overlaid.
            for number, curves in runs:
                legend.addItem(RunSample(curves[2 * i:2 * i + 2]), f"run {number}")
            for key in self._keys:
                legend.addItem(KeySample(key), key.name())

    def _label_batch_plot(self) -> None:
        legend = self.batch_plot.getPlotItem().legend
        legend.clear()
        if self.record is not None:
            legend.addItem(self.raw_curve, "loss (raw)")
            legend.addItem(self.smooth_curve, self.record.label)
        for _number, items in sorted(self._overlays.items()):
            legend.addItem(items[0], items[0].record.label)  # type: ignore[attr-defined]
        legend.setVisible(bool(legend.items))  # no empty box before the first run

    def _rename_current(self) -> None:
        """The current run's batch-loss entry follows its label ("lr 0.05→0.01" once the rate is changed)."""
        label = self.batch_plot.getPlotItem().legend.getLabel(self.smooth_curve)
        if self.record is not None and label is not None and label.text != self.record.label:
            label.setText(self.record.label)

    # -- hover text ------------------------------------------------------------------------------------------
    def _describe_batch(self, x: float) -> tuple[float, str] | None:
        step: float | None = None
        lines: list[str] = []
        r = self.record
        i = r.batch_loss.nearest(x) if r is not None else None
        if r is not None and i is not None and abs(r.batch_loss.x[i] - x) <= STEP_REACH:
            step = float(r.batch_loss.x[i])
            lines = [f"step {step:.0f}", f"loss {r.batch_loss.y[i]:.4f}", f"smoothed {r.smoothed_loss.y[i]:.4f}"]
        for other in self._overlay_records():
            j = other.smoothed_loss.nearest(x if step is None else step)
            if j is None or abs(other.smoothed_loss.x[j] - (x if step is None else step)) > STEP_REACH:
                continue
            if step is None:  # past the current run's end, only earlier runs are drawn here
                step = float(other.smoothed_loss.x[j])
                lines.append(f"step {step:.0f}")
            lines.append(f"run {other.number}: {other.smoothed_loss.y[j]:.4f}")
        return None if step is None else (step, "\n".join(lines))

    def _describe_epoch(self, x: float, what: str) -> tuple[float, str] | None:
        r = self.record
        if r is None or not r.epochs:
            return None
        e = min(r.epochs, key=lambda ev: abs(ev.epoch - x))
        if abs(e.epoch - x) > EPOCH_REACH:
            return None
        if what == "loss":
            train, val, fmt = e.train_loss, e.val_loss, "{:.4f}"
        else:
            train, val, fmt = 100 * e.train_accuracy, 100 * e.val_accuracy, "{:.2f}%"
        lines = [f"epoch {e.epoch}", "train " + fmt.format(train)]
        if math.isfinite(val):
            lines.append("validation " + fmt.format(val))
        lines.append(f"lr {e.learning_rate:g}")
        return float(e.epoch), "\n".join(lines)
