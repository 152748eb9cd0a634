"""The project's runs as a sortable, filterable table (one row per run folder)."""

from __future__ import annotations

import math
from typing import Any

from PySide6.QtCore import QAbstractTableModel, QModelIndex, QPersistentModelIndex, QSortFilterProxyModel, Qt
from PySide6.QtGui import QBrush, QColor, QFont

from engine.runs import RunSummary

COLUMNS = ("Run", "Network", "Params", "Optimizer", "LR", "Batch", "Epochs", "Best val.", "Test", "Time", "Status")
HEADER_TIPS = ("The run's number (oldest first, as in the Train tab)", "What was trained",
               "Parameters of the network", "Optimizer", "Learning rate", "Batch size",
               "Epochs trained / planned", "The best validation accuracy of any epoch (★ marks the best run)",
               "Test accuracy of the weights the run ended with", "Training time", "How the run ended")
STATUS_COLORS = {"completed": "#1e7b34", "running": "#1a5fb4", "interrupted": "#b35900", "stopped": "#6b6b6b",
                 "diverged": "#b00020"}
SORT_ROLE = Qt.ItemDataRole.UserRole + 1  # raw values (numbers sort as numbers)
Index = QModelIndex | QPersistentModelIndex


def duration(seconds: float) -> str:
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


def percent(value: float) -> str:
    return "–" if math.isnan(value) else f"{value:.2%}"


class RunsTableModel(QAbstractTableModel):
    """Rows: RunSummary objects, numbered as the Train tab's run list numbers them (oldest first)."""

    def __init__(self, parent: Any = None) -> None:
        super().__init__(parent)
        self.runs: list[RunSummary] = []
        self.best: str = ""  # the run with the best validation accuracy (marked)
        self._described: dict[str, str] = {}

    def set_runs(self, runs: list[RunSummary]) -> None:
        self.beginResetModel()
        self.runs = list(runs)
        self._described = {}
        scored = [r for r in self.runs if not math.isnan(r.best_val_accuracy)]
        self.best = str(max(scored, key=lambda r: r.best_val_accuracy).path) if scored else ""
        self.endResetModel()

    def rowCount(self, parent: Index | None = None) -> int:  # noqa: N802 (Qt override)
        return 0 if parent is not None and parent.isValid() else len(self.runs)

    def columnCount(self, parent: Index | None = None) -> int:  # noqa: N802 (Qt override)
        return 0 if parent is not None and parent.isValid() else len(COLUMNS)

    def headerData(self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole) -> Any:  # noqa: N802
        if orientation == Qt.Orientation.Horizontal and role == Qt.ItemDataRole.DisplayRole:
            return COLUMNS[section]
        if orientation == Qt.Orientation.Horizontal and role == Qt.ItemDataRole.ToolTipRole:
            return HEADER_TIPS[section]
        return None

    def summary(self, row: int) -> RunSummary:
        return self.runs[row]

    def _network(self, r: RunSummary) -> str:
        text = self._described.get(str(r.path))
        if text is None:
            from cnn_studio.training.run_history import describe_network

            text = describe_network(r.record.get("architecture") or {})
            if r.architecture_name and r.architecture_name != "Untitled":
                text = f"{r.architecture_name}: {text}"
            self._described[str(r.path)] = text
        return text

    def _values(self, row: int) -> tuple[tuple[str, Any], ...]:
        r = self.runs[row]
        star = " ★" if str(r.path) == self.best else ""
        return (
            (f"{row + 1}", row + 1),
            (self._network(r), self._network(r)),
            (f"{r.parameters:,}", r.parameters),
            (r.optimizer, r.optimizer),
            (f"{r.learning_rate:g}", r.learning_rate),
            (str(r.batch_size), r.batch_size),
            (f"{r.epochs_completed}/{r.epochs_planned}", r.epochs_completed),
            (percent(r.best_val_accuracy) + star, -1.0 if math.isnan(r.best_val_accuracy) else r.best_val_accuracy),
            (percent(r.test_accuracy), -1.0 if math.isnan(r.test_accuracy) else r.test_accuracy),
            (duration(r.seconds), r.seconds),
            (r.status, r.status),
        )

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid():
            return None
        row, column = index.row(), index.column()
        text, raw = self._values(row)[column]
        r = self.runs[row]
        if role == Qt.ItemDataRole.DisplayRole:
            return text
        if role == SORT_ROLE:
            return raw
        if role == Qt.ItemDataRole.ToolTipRole:
            note = f"\n{r.record.get('message')}" if r.record.get("message") else ""
            return f"{r.path}\nstarted {r.created}{note}"
        if role == Qt.ItemDataRole.ForegroundRole and column == 10:
            return QBrush(QColor(STATUS_COLORS.get(r.status, "#1f2933")))
        if role == Qt.ItemDataRole.FontRole and str(r.path) == self.best:
            font = QFont()
            font.setBold(True)
            return font
        if role == Qt.ItemDataRole.TextAlignmentRole and column in (0, 2, 4, 5, 6, 7, 8, 9):
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        return None


class RunsFilter(QSortFilterProxyModel):
    """Sorts by raw values; keeps rows whose text contains the filter text and whose status is chosen."""

    def __init__(self, parent: Any = None) -> None:
        super().__init__(parent)
        self.setSortRole(SORT_ROLE)
        self.setFilterCaseSensitivity(Qt.CaseSensitivity.CaseInsensitive)
        self.setFilterKeyColumn(-1)
        self.status = ""  # "" for every status

    def set_status(self, status: str) -> None:
        self.beginFilterChange()
        self.status = status
        self.endFilterChange()

    def filterAcceptsRow(self, source_row: int, source_parent: Index) -> bool:  # noqa: N802 (Qt override)
        model = self.sourceModel()
        if self.status and model.summary(source_row).status != self.status:
            return False
        return super().filterAcceptsRow(source_row, source_parent)
