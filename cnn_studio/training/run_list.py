"""The run list under the training curves: newest run first, earlier runs with a box to tick for an overlay."""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QColor, QIcon, QPixmap
from PySide6.QtWidgets import QListWidget, QListWidgetItem, QWidget

from cnn_studio.training.run_history import RunHistory, RunRecord


def _swatch(color: str) -> QIcon:
    pixmap = QPixmap(14, 14)
    pixmap.fill(QColor(color))
    return QIcon(pixmap)


def _current_tip(record: RunRecord) -> str:
    return f"The current run (always drawn, with thicker lines): {record.label} on {record.dataset_name}"


class RunHistoryList(QListWidget):
    """Runs with check boxes; checked earlier runs are overlaid on the plots (overlays_changed)."""

    overlays_changed = Signal(list)

    def __init__(self, history: RunHistory, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.history = history
        self.setToolTip("Each training run of this project. Tick an earlier run to overlay its curves.")
        self.setWordWrap(True)  # a run's line names its settings, network and results: wrap, never cut
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        history.run_added.connect(self._on_run_added)
        history.run_changed.connect(self._refresh_item)
        history.cleared.connect(self._on_cleared)
        self.itemChanged.connect(self._on_item_changed)

    def _item_for(self, record: RunRecord) -> QListWidgetItem | None:
        for i in range(self.count()):
            item = self.item(i)
            if item.data(Qt.ItemDataRole.UserRole) == record.number:
                return item
        return None

    def _on_run_added(self, record: RunRecord) -> None:
        self.blockSignals(True)
        # The runs before the new one become overlay candidates; the newest is always drawn. An item shows
        # a check box only once it has a check state, so each earlier run gets one explicitly.
        for i in range(self.count()):
            item = self.item(i)
            item.setFlags(item.flags() | Qt.ItemFlag.ItemIsUserCheckable | Qt.ItemFlag.ItemIsEnabled)
            if item.data(Qt.ItemDataRole.CheckStateRole) is None:
                item.setCheckState(Qt.CheckState.Unchecked)
        item = QListWidgetItem(record.describe())
        item.setData(Qt.ItemDataRole.UserRole, record.number)
        item.setIcon(_swatch(record.color))  # the run's own colour, kept when a later run starts
        item.setFlags(Qt.ItemFlag.ItemIsEnabled)
        item.setToolTip(_current_tip(record))
        self.insertItem(0, item)
        self.blockSignals(False)
        for i in range(1, self.count()):
            self._refresh_item(self._record(self.item(i)))
        self.overlays_changed.emit(self.overlays())

    def _on_cleared(self) -> None:
        self.blockSignals(True)
        self.clear()
        self.blockSignals(False)
        self.overlays_changed.emit([])

    def _record(self, item: QListWidgetItem) -> RunRecord:
        number = item.data(Qt.ItemDataRole.UserRole)
        return self.history.runs[number - 1]

    def _refresh_item(self, record: RunRecord) -> None:
        item = self._item_for(record)
        if item is None:
            return
        self.blockSignals(True)
        item.setText(record.describe())
        item.setIcon(_swatch(record.color))
        if record is not self.history.current:
            item.setToolTip(f"{record.label} on {record.dataset_name}; tick to overlay its curves in this colour")
        else:
            item.setToolTip(_current_tip(record))
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
