"""Sweeps in the studio: define a grid or random search over training settings and numeric layer fields,
run its points one after another on the training worker (each a kept run, shown live like any other), and
watch a table with the best run marked and a parallel-coordinates plot of settings against validation
accuracy."""

from __future__ import annotations

import datetime
import math
from typing import Any

import pyqtgraph as pg
from PySide6.QtCore import QObject, Qt, QTimer, Signal
from PySide6.QtGui import QColor, QFont
from PySide6.QtWidgets import (
    QComboBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QPushButton,
    QSpinBox,
    QSplitter,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from cnn_studio.runs.recording import RunRecording
from engine.architecture import analyze
from engine.data import Dataset
from engine.errors import EngineError
from engine.layers import LAYER_TYPES
from engine.optimizers import DEFAULT_LEARNING_RATES
from engine.runs import RunFolder, RunSummary
from engine.runs.sweep import Sweep, SweepRun, label, parse_axis, sweep_points
from engine.training import TrainConfig, TrainingFinished

TRAINING_KEYS = ("lr", "batch_size", "optimizer", "weight_decay", "label_smoothing", "momentum")
SHORT = {"learning_rate": "lr", "batch_size": "batch", "weight_decay": "decay", "label_smoothing": "smoothing"}
EXAMPLES = {"lr": "0.1, 0.03, 0.01", "batch_size": "32, 64", "optimizer": "sgd, adam", "weight_decay": "0, 0.0005",
            "label_smoothing": "0, 0.1", "momentum": "0.8, 0.9"}


def sweepable_keys(architecture: dict[str, Any]) -> list[str]:
    """The settings a sweep may vary: the main training settings, then every numeric layer field."""
    keys = list(TRAINING_KEYS)
    analysis = analyze(architecture)
    for info, spec in zip(analysis.layers, architecture.get("layers", [])):
        cls = LAYER_TYPES.get(spec.get("type") if isinstance(spec, dict) else None)
        if cls is None:
            continue
        keys += [f"{info.name}.{f.name}" for f in cls.fields if f.kind in ("int", "float")]
    return keys


class SweepController(QObject):
    """Runs a Sweep's points one after another through the training runner.

    Signals: started(Sweep), run_started(SweepRun), run_finished(SweepRun), finished(str) (how it ended:
    "completed", "stopped" or a failure), changed() (the table's data moved).
    """

    started = Signal(object)
    run_started = Signal(object)
    run_finished = Signal(object)
    finished = Signal(str)
    changed = Signal()

    def __init__(self, runner: Any, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.runner = runner
        self.sweep: Sweep | None = None
        self.dataset: Dataset | None = None
        self.dataset_spec = ""
        self.retention = "best"
        self.index = -1
        self._stopping = False
        runner.finished.connect(self._on_run_finished)
        runner.failed.connect(self._on_run_failed)

    @property
    def running(self) -> bool:
        return self.sweep is not None and 0 <= self.index < len(self.sweep.runs)

    def start(self, sweep: Sweep, dataset: Dataset, dataset_spec: str, retention: str = "best") -> None:
        self.sweep, self.dataset, self.dataset_spec, self.retention = sweep, dataset, dataset_spec, retention
        self._stopping = False
        sweep.write_manifest()
        self.index = -1
        self.started.emit(sweep)
        self._next()

    def stop(self) -> None:
        """End the sweep after stopping the run in progress (its run stays, resumable)."""
        if not self.running:
            return
        self._stopping = True
        self.runner.stop()

    def _next(self) -> None:
        sweep = self.sweep
        assert sweep is not None and self.dataset is not None
        self.index += 1
        if self.index >= len(sweep.runs):
            self._end("completed")
            return
        run = sweep.runs[self.index]
        doc, config = sweep.plans[self.index]
        recording = RunRecording(run.path, self.dataset_spec, self.retention, name=f"sweep: {label(run.point)}",
                                 architecture_name=sweep.architecture_name)
        try:
            self.runner.start(doc, self.dataset, config, recording=recording)
        except (EngineError, ValueError) as exc:
            run.error = str(exc)
            self.run_finished.emit(run)
            self.changed.emit()
            self._next()
            return
        self.run_started.emit(run)
        self.changed.emit()

    def _current(self) -> SweepRun | None:
        return self.sweep.runs[self.index] if self.running and self.sweep is not None else None

    def _on_run_finished(self, event: TrainingFinished) -> None:
        run = self._current()
        if run is None:
            return
        self._read(run)
        self.run_finished.emit(run)
        self.changed.emit()
        if self._stopping or event.reason == "stopped":
            self._end("stopped")
        else:
            QTimer.singleShot(0, self._next)  # after everyone else has heard that this run ended

    def _on_run_failed(self, message: str) -> None:
        run = self._current()
        if run is None:
            return
        run.error = message
        self.run_finished.emit(run)
        self.changed.emit()
        if self._stopping:
            self._end("stopped")
        else:
            QTimer.singleShot(0, self._next)

    def _read(self, run: SweepRun) -> None:
        try:
            run.summary = RunSummary.of(RunFolder.open(run.path))
        except EngineError as exc:
            run.error = str(exc)

    def _end(self, how: str) -> None:
        self.index = -1
        self._stopping = False
        self.finished.emit(how)


class ParallelCoordinates(pg.PlotWidget):
    """One vertical axis per swept setting and a last one for the best validation accuracy; one line per
    run, coloured from red (worst) to green (best), the best run drawn thick."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent, background="w")
        self.setMinimumHeight(200)
        self.getPlotItem().hideAxis("left")
        self.setMouseEnabled(x=False, y=False)
        self.getPlotItem().hideButtons()
        self.lines: list[pg.PlotDataItem] = []

    def show_sweep(self, keys: list[str], runs: list[SweepRun]) -> None:
        self.clear()
        self.lines = []
        axes = [SHORT.get(k, k) for k in keys] + ["best val. acc."]
        columns: list[list[Any]] = [[r.point[k] for r in runs] for k in keys]
        columns.append([r.best_val_accuracy for r in runs])
        scaled = [self._scale(column) for column in columns]
        bottom = self.getPlotItem().getAxis("bottom")
        bottom.setTicks([[(i, name) for i, name in enumerate(axes)]])
        self.setXRange(-0.45, len(axes) - 0.55, padding=0)
        self.setYRange(-0.08, 1.08, padding=0)
        for i, column in enumerate(columns):
            self.addItem(pg.InfiniteLine(pos=i, angle=90, pen=pg.mkPen("#9aa5b1")))
            last = i == len(columns) - 1
            for value, y in self._labels(column, percent=last):
                # Labels sit right of their axis, the last axis's on its left (inside the plot).
                text = pg.TextItem(value, color="#555", anchor=(1, 0.5) if last else (0, 0.5))
                text.setPos(i - 0.03 if last else i + 0.03, y)
                self.addItem(text)
        accuracies = [r.best_val_accuracy for r in runs]
        finite = [a for a in accuracies if not math.isnan(a)]
        low, high = (min(finite), max(finite)) if finite else (0.0, 1.0)
        best = max(range(len(runs)), key=lambda j: -1 if math.isnan(accuracies[j]) else accuracies[j]) \
            if finite else -1
        for j, run in enumerate(runs):
            ys = [column[j] for column in scaled]
            if any(y is None for y in ys):
                continue
            a = accuracies[j]
            t = 0.5 if math.isnan(a) or high == low else (a - low) / (high - low)
            color = QColor.fromHsvF(0.33 * t, 0.85, 0.8)
            pen = pg.mkPen(color, width=4 if j == best else 1.6)
            line = self.plot(list(range(len(axes))), ys, pen=pen, symbol="o", symbolSize=6, symbolBrush=color)
            line.setToolTip(f"{label(run.point)}: best val. accuracy "
                            f"{'–' if math.isnan(a) else f'{a:.2%}'}")
            self.lines.append(line)

    @staticmethod
    def _scale(column: list[Any]) -> list[float | None]:
        """Values to [0, 1]: numbers linearly (log for positive ones spanning 10x or more), others by rank."""
        numbers = [v for v in column if isinstance(v, (int, float)) and not isinstance(v, bool)]
        if len(numbers) == len(column):
            finite = [float(v) for v in numbers if math.isfinite(float(v))]
            if not finite:
                return [None] * len(column)
            low, high = min(finite), max(finite)
            log = low > 0 and high / low >= 10
            f = (lambda v: math.log(v)) if log else (lambda v: v)  # noqa: E731
            span = f(high) - f(low)
            return [None if not math.isfinite(float(v)) else (0.5 if span == 0 else (f(float(v)) - f(low)) / span)
                    for v in column]
        order = list(dict.fromkeys(str(v) for v in column))
        return [0.5 if len(order) == 1 else order.index(str(v)) / (len(order) - 1) for v in column]

    @staticmethod
    def _labels(column: list[Any], percent: bool = False) -> list[tuple[str, float]]:
        values = [v for v in column if not (isinstance(v, float) and math.isnan(v))]
        if not values:
            return []
        if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
            low, high = min(values), max(values)

            def text(v: float) -> str:
                return f"{v:.1%}" if percent else f"{v:.4g}"

            return [(text(low), 0.0), (text(high), 1.0)] if low != high else [(text(low), 0.5)]
        order = list(dict.fromkeys(str(v) for v in values))
        return [(name, 0.5 if len(order) == 1 else i / (len(order) - 1)) for i, name in enumerate(order)]


class SweepView(QWidget):
    """The sweep's definition (axes, grid or random, epochs), Start / Stop, the live table and the plot."""

    start_requested = Signal()
    stop_requested = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.axes = QTableWidget(0, 2)
        self.axes.setHorizontalHeaderLabels(["Setting", "Values"])
        self.axes.horizontalHeaderItem(1).setToolTip("Comma-separated values; or LOW..HIGH, drawn by random search")
        self.axes.horizontalHeader().setSectionResizeMode(0, QHeaderView.ResizeMode.ResizeToContents)
        self.axes.horizontalHeader().setSectionResizeMode(1, QHeaderView.ResizeMode.Stretch)
        self.axes.verticalHeader().setVisible(False)
        self.axes.setMinimumHeight(110)
        self.add_button = QPushButton("Add setting")
        self.add_button.setToolTip("Sweep one more setting (every combination of the values is trained)")
        self.remove_button = QPushButton("Remove")
        self.remove_button.setToolTip("Remove the selected setting from the sweep")
        self.mode = QComboBox()
        self.mode.addItem("Grid (every combination)", "grid")
        self.mode.addItem("Random search", "random")
        self.mode.setToolTip("Grid trains every combination; random search draws the given number of points")
        self.count = QSpinBox()
        self.count.setRange(1, 1000)
        self.count.setValue(6)
        self.count.setToolTip("Runs to draw for random search")
        self.epochs = QSpinBox()
        self.epochs.setRange(1, 1000)
        self.epochs.setValue(3)
        self.epochs.setToolTip("Epochs of every run (the other settings come from the Training dock)")
        self.points = QLabel("")
        self.points.setWordWrap(True)
        self.points.setStyleSheet("color: #555;")
        self.start_button = QPushButton("Start sweep")
        self.start_button.setToolTip("Train every point one after another (Training dock settings for the rest)")
        self.stop_button = QPushButton("Stop sweep")
        self.stop_button.setEnabled(False)
        self.message = QLabel("")
        self.message.setWordWrap(True)
        self.table = QTableWidget(0, 0)
        self.table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.table.verticalHeader().setVisible(False)
        self.table.setSortingEnabled(False)
        self.plot = ParallelCoordinates()

        self.start_button.clicked.connect(self.start_requested)
        self.mode.currentIndexChanged.connect(lambda _i: self.count_points())
        self.count.valueChanged.connect(lambda _v: self.count_points())
        self.stop_button.clicked.connect(self.stop_requested)
        self.mode.currentIndexChanged.connect(lambda _i: self.count.setEnabled(self.mode.currentData() == "random"))
        self.count.setEnabled(False)

        definition = QGroupBox("Sweep")
        definition.setMaximumWidth(340)
        definition.setMinimumWidth(310)  # the values column keeps room beside the setting names
        form = QVBoxLayout(definition)
        form.addWidget(self.axes, 1)
        row = QHBoxLayout()
        row.addWidget(self.add_button)
        row.addWidget(self.remove_button)
        row.addStretch(1)
        form.addLayout(row)
        options = QFormLayout()
        options.setRowWrapPolicy(QFormLayout.RowWrapPolicy.WrapLongRows)  # a narrow pane: boxes under labels
        options.addRow("Search", self.mode)
        options.addRow("Random runs", self.count)
        options.addRow("Epochs per run", self.epochs)
        form.addLayout(options)
        form.addWidget(self.points)
        buttons = QHBoxLayout()
        buttons.addWidget(self.start_button)
        buttons.addWidget(self.stop_button)
        form.addLayout(buttons)
        form.addWidget(self.message)
        results = QGroupBox("Runs of the sweep")
        results_hint = QLabel("★ marks the best validation accuracy.")
        results_hint.setWordWrap(True)
        results_hint.setStyleSheet("color: #555;")
        results_layout = QVBoxLayout(results)
        results_layout.addWidget(results_hint)
        results_layout.addWidget(self.table, 2)
        results_layout.addWidget(self.plot, 3)
        splitter = QSplitter(Qt.Orientation.Horizontal)
        splitter.addWidget(definition)
        splitter.addWidget(results)
        splitter.setStretchFactor(0, 1)
        splitter.setStretchFactor(1, 3)
        splitter.setSizes([300, 800])
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(splitter)

    # -- the definition -------------------------------------------------------------------------------------
    def add_axis(self, keys: list[str], key: str = "", values: str = "") -> None:
        row = self.axes.rowCount()
        self.axes.insertRow(row)
        box = QComboBox()
        box.setEditable(True)
        box.addItems(keys)
        box.setToolTip("A training setting, or LAYER.FIELD for a numeric layer setting")
        if key:
            box.setCurrentText(key)
        self.axes.setCellWidget(row, 0, box)
        edit = QLineEdit(values or EXAMPLES.get(box.currentText(), ""))
        edit.setPlaceholderText("e.g. 0.1, 0.03 — or 0.001..0.1 for random search")
        self.axes.setCellWidget(row, 1, edit)
        box.currentTextChanged.connect(lambda text, e=edit: e.setText(EXAMPLES.get(text, e.text())))
        edit.textChanged.connect(lambda _t: self.count_points())
        self.count_points()

    def remove_axis(self) -> None:
        row = self.axes.currentRow()
        if row < 0:
            row = self.axes.rowCount() - 1
        if row >= 0:
            self.axes.removeRow(row)
        self.count_points()

    def count_points(self) -> None:
        """Say how many runs the definition makes (a grid: the product of the value counts)."""
        if self.mode.currentData() == "random":
            self.points.setText(f"{self.count.value()} runs drawn at random")
            return
        total = 1
        for text in self.axis_texts():
            values = text.partition("=")[2]
            if ".." in values:
                self.points.setText("A range (low..high) needs random search")
                return
            total *= len([v for v in values.split(",") if v])
        self.points.setText(f"{total} run{'s' if total != 1 else ''} (every combination)")

    def axis_texts(self) -> list[str]:
        texts = []
        for row in range(self.axes.rowCount()):
            key = self.axes.cellWidget(row, 0).currentText().strip()
            values = self.axes.cellWidget(row, 1).text().strip()
            if key and values:
                texts.append(f"{key}={values.replace(' ', '')}")
        return texts

    # -- the results ----------------------------------------------------------------------------------------
    def show_runs(self, sweep: Sweep, current: int = -1) -> None:
        keys = list(sweep.points[0]) if sweep.points else []
        headers = ["#", *(SHORT.get(k, k) for k in keys), "best val.", "test", "status"]
        self.table.setColumnCount(len(headers))
        self.table.setHorizontalHeaderLabels(headers)
        self.table.setRowCount(len(sweep.runs))
        ranked = sweep.ranked()
        best = ranked[0] if ranked and ranked[0].summary is not None and not math.isnan(
            ranked[0].best_val_accuracy) else None
        for row, run in enumerate(sweep.runs):
            s = run.summary
            status = ("training…" if row == current else run.error and f"failed: {run.error}"
                      or (s.status if s else "waiting"))
            cells = [str(row + 1), *(_short(run.point[k]) for k in keys),
                     "–" if s is None or math.isnan(s.best_val_accuracy) else f"{s.best_val_accuracy:.2%}",
                     "–" if s is None or math.isnan(s.test_accuracy) else f"{s.test_accuracy:.2%}", status]
            if run is best:
                cells[-3] += " ★"
            for column, text in enumerate(cells):
                item = QTableWidgetItem(text)
                if run is best:
                    font = QFont()
                    font.setBold(True)
                    item.setFont(font)
                if row == current:
                    item.setBackground(QColor("#eaf2fd"))
                self.table.setItem(row, column, item)
        self.table.resizeColumnsToContents()
        done = [r for r in sweep.runs if r.summary is not None]
        self.plot.show_sweep(keys, done)

    def set_running(self, running: bool) -> None:
        self.start_button.setEnabled(not running)
        self.stop_button.setEnabled(running)
        for widget in (self.axes, self.add_button, self.remove_button, self.mode, self.count, self.epochs):
            widget.setEnabled(not running)
        if not running:
            self.count.setEnabled(self.mode.currentData() == "random")


def _short(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def plan_sweep(view: SweepView, architecture: dict[str, Any], config: TrainConfig, out: Any,
               architecture_name: str = "") -> Sweep:
    """The sweep the view defines; RunError (one line) when its axes or points cannot work."""
    axes = [parse_axis(text, architecture) for text in view.axis_texts()]
    random = view.count.value() if view.mode.currentData() == "random" else None
    points = sweep_points(axes, random, seed=config.seed)
    base = TrainConfig.from_dict({**config.to_dict(), "epochs": view.epochs.value()})
    return Sweep(out, architecture, base, axes, points, architecture_name=architecture_name, retention="best",
                 lr_defaults=optimizer_rates(axes, config))


def optimizer_rates(axes: list[Any], config: TrainConfig) -> dict[str, float] | None:
    """Each optimizer's usual learning rate for a sweep over optimizers that leaves the rate alone, when the
    Training dock's rate is the usual one of its optimizer (SGD's 0.01 would be far too high for Adam); a
    rate the user chose applies to every optimizer."""
    swept = {axis.key for axis in axes}
    if "optimizer" in swept and "learning_rate" not in swept \
            and config.learning_rate == DEFAULT_LEARNING_RATES.get(config.optimizer):
        return DEFAULT_LEARNING_RATES
    return None


def sweep_folder_name() -> str:
    return "sweep-" + datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
