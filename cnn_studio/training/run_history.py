"""The session's run history: each run's curves and outcome, and a list view to overlay earlier runs."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from PySide6.QtCore import QObject, Qt, Signal
from PySide6.QtGui import QColor, QIcon, QPixmap
from PySide6.QtWidgets import QListWidget, QListWidgetItem, QWidget

from cnn_studio.training.series import GrowingSeries, SmoothedSeries
from engine.training import BatchEnd, EpochEnd, TrainConfig

# Colours for earlier runs' overlay curves (the current run uses the plots' own blue/orange).
OVERLAY_COLORS = ("#8e44ad", "#16a085", "#c0392b", "#7f8c8d", "#d35400", "#2c3e50", "#27ae60", "#b7950b")


@dataclass
class RunRecord:
    """One training run (including any "+1 epoch" continuations) as the plots and the list show it."""

    number: int
    config: TrainConfig
    dataset_name: str
    batch_loss: GrowingSeries = field(default_factory=GrowingSeries)
    smoothed_loss: SmoothedSeries = field(default_factory=SmoothedSeries)
    epochs: list[EpochEnd] = field(default_factory=list)
    rate_changes: list[tuple[int, str, float]] = field(default_factory=list)  # (step, "lr"/"momentum", value)
    outcome: str = "running"  # or a TrainingFinished reason, or "failed"
    message: str = ""
    test_accuracy: float | None = None

    @property
    def label(self) -> str:
        c = self.config
        return f"run {self.number}: {c.optimizer} lr {c.learning_rate:g} bs {c.batch_size}"

    @property
    def color(self) -> str:
        return OVERLAY_COLORS[(self.number - 1) % len(OVERLAY_COLORS)]

    def describe(self) -> str:
        """The label plus what the run reached, for the history list."""
        parts = [self.label, f"{len(self.epochs)} epoch{'s' if len(self.epochs) != 1 else ''}"]
        if self.epochs and not math.isnan(self.epochs[-1].val_accuracy):
            parts.append(f"val {self.epochs[-1].val_accuracy:.1%}")
        if self.test_accuracy is not None:
            parts.append(f"test {self.test_accuracy:.1%}")
        if self.outcome != "completed":
            parts.append(self.outcome)
        return " · ".join(parts)

    def set_smoothing(self, batches_per_epoch: int) -> None:
        """Average over about a tenth of an epoch (between 5 and 50 batches) for the smoothed curve."""
        span = min(50.0, max(5.0, batches_per_epoch / 10))
        self.smoothed_loss.beta = 1.0 - 1.0 / span

    def add_batches(self, events: tuple[BatchEnd, ...] | list[BatchEnd]) -> None:
        for e in events:
            self.batch_loss.append(e.step, e.loss)
            self.smoothed_loss.add(e.step, e.loss)


class RunHistory(QObject):
    """Every run of this session, oldest first. Signals: run_added(RunRecord), run_changed(RunRecord)."""

    run_added = Signal(object)
    run_changed = Signal(object)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.runs: list[RunRecord] = []

    @property
    def current(self) -> RunRecord | None:
        return self.runs[-1] if self.runs else None

    def new_run(self, config: TrainConfig, dataset_name: str) -> RunRecord:
        record = RunRecord(len(self.runs) + 1, config, dataset_name)
        self.runs.append(record)
        self.run_added.emit(record)
        return record

    def changed(self, record: RunRecord) -> None:
        self.run_changed.emit(record)


def _swatch(color: str) -> QIcon:
    pixmap = QPixmap(14, 14)
    pixmap.fill(QColor(color))
    return QIcon(pixmap)


class RunHistoryList(QListWidget):
    """Runs with check boxes; checked earlier runs are overlaid on the plots (overlays_changed)."""

    overlays_changed = Signal(list)

    def __init__(self, history: RunHistory, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.history = history
        self.setToolTip("Each training run of this session. Tick an earlier run to overlay its curves.")
        history.run_added.connect(self._on_run_added)
        history.run_changed.connect(self._refresh_item)
        self.itemChanged.connect(self._on_item_changed)

    def _item_for(self, record: RunRecord) -> QListWidgetItem | None:
        for i in range(self.count()):
            item = self.item(i)
            if item.data(Qt.ItemDataRole.UserRole) == record.number:
                return item
        return None

    def _on_run_added(self, record: RunRecord) -> None:
        self.blockSignals(True)
        # The run before the new one becomes an overlay candidate; the newest is always drawn.
        for i in range(self.count()):
            item = self.item(i)
            item.setFlags(item.flags() | Qt.ItemFlag.ItemIsUserCheckable | Qt.ItemFlag.ItemIsEnabled)
            if item.checkState() not in (Qt.CheckState.Checked, Qt.CheckState.Unchecked):
                item.setCheckState(Qt.CheckState.Unchecked)
        item = QListWidgetItem(record.describe())
        item.setData(Qt.ItemDataRole.UserRole, record.number)
        item.setIcon(_swatch("#1f77b4"))
        item.setFlags(Qt.ItemFlag.ItemIsEnabled)
        item.setToolTip("The current run (always drawn)")
        self.insertItem(0, item)
        self.blockSignals(False)
        for i in range(1, self.count()):
            self._refresh_item(self._record(self.item(i)))
        self.overlays_changed.emit(self.overlays())

    def _record(self, item: QListWidgetItem) -> RunRecord:
        number = item.data(Qt.ItemDataRole.UserRole)
        return self.history.runs[number - 1]

    def _refresh_item(self, record: RunRecord) -> None:
        item = self._item_for(record)
        if item is None:
            return
        self.blockSignals(True)
        item.setText(record.describe())
        if record is not self.history.current:
            item.setIcon(_swatch(record.color))
            item.setToolTip(f"{record.label} on {record.dataset_name}; tick to overlay its curves")
        self.blockSignals(False)

    def _on_item_changed(self, _item: QListWidgetItem) -> None:
        self.overlays_changed.emit(self.overlays())

    def overlays(self) -> list[RunRecord]:
        """The earlier runs that are ticked, oldest first."""
        out = []
        for i in range(self.count()):
            item = self.item(i)
            record = self._record(item)
            if record is not self.history.current and item.checkState() == Qt.CheckState.Checked:
                out.append(record)
        return sorted(out, key=lambda r: r.number)

    def set_overlay(self, record: RunRecord, shown: bool) -> None:
        item = self._item_for(record)
        if item is not None and record is not self.history.current:
            item.setCheckState(Qt.CheckState.Checked if shown else Qt.CheckState.Unchecked)
