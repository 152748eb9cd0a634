"""The "Runs" tab: every run of the project in a table (sort by any column, filter by text or status),
actions on the selected run, and the comparison of two selected runs."""

from __future__ import annotations

from PySide6.QtCore import QItemSelectionModel, Qt, Signal
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QPushButton,
    QScrollArea,
    QSplitter,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from cnn_studio.runs.compare import RunComparison
from cnn_studio.runs.runs_table import RunsFilter, RunsTableModel
from engine.runs import RunSummary

STATUSES = (("Every status", ""), ("Completed", "completed"), ("Interrupted", "interrupted"),
            ("Stopped", "stopped"), ("Diverged", "diverged"), ("Running", "running"))


class RunsView(QWidget):
    """Signals: inspect_requested(str) (a run folder whose weights to look inside), resume_requested(str),
    delete_requested(list[str]), selection_changed(list[str]) (the selected run folders, in table order)."""

    inspect_requested = Signal(str)
    resume_requested = Signal(str)
    delete_requested = Signal(list)
    selection_changed = Signal(list)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.model = RunsTableModel(self)
        self.proxy = RunsFilter(self)
        self.proxy.setSourceModel(self.model)
        self.filter_box = QLineEdit()
        self.filter_box.setPlaceholderText("Filter runs (any column: optimizer, status, network, …)")
        self.filter_box.setClearButtonEnabled(True)
        self.filter_box.textChanged.connect(self.proxy.setFilterFixedString)
        self.status_box = QComboBox()
        for text, key in STATUSES:
            self.status_box.addItem(text, key)
        self.status_box.setToolTip("Show only runs that ended this way")
        self.status_box.currentIndexChanged.connect(lambda _i: self.proxy.set_status(self.status_box.currentData()))
        self.count = QLabel("")

        self.table = QTableView()
        self.table.setModel(self.proxy)
        self.table.setSortingEnabled(True)
        self.table.sortByColumn(0, Qt.SortOrder.AscendingOrder)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.table.setAlternatingRowColors(True)
        self.table.verticalHeader().setVisible(False)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(1, QHeaderView.ResizeMode.Stretch)  # the network's words give way first
        self.table.setTextElideMode(Qt.TextElideMode.ElideRight)
        self.table.setWordWrap(False)
        self.table.setToolTip("Click a run for its actions; Ctrl+click a second one to compare the two")
        self.table.doubleClicked.connect(lambda _index: self._inspect())
        self.table.selectionModel().selectionChanged.connect(lambda *_args: self._on_selection())

        self.inspect_button = QPushButton("Look inside")
        self.inspect_button.setToolTip("Show the selected run's final weights in the Inside tab")
        self.inspect_button.clicked.connect(self._inspect)
        self.resume_button = QPushButton("Resume")
        self.resume_button.setToolTip("Go on training the selected interrupted run from its last checkpoint")
        self.resume_button.clicked.connect(lambda: self.resume_requested.emit(str(self.selected()[0].path)))
        self.delete_button = QPushButton("Delete…")
        self.delete_button.setToolTip("Delete the selected runs' folders (checkpoints, weights, record)")
        self.delete_button.clicked.connect(lambda: self.delete_requested.emit([str(r.path) for r in self.selected()]))
        self.hint = QLabel("")
        self.hint.setStyleSheet("color: #555;")
        self.hint.setWordWrap(True)  # beside the buttons: it wraps in a narrow window rather than widen it

        self.comparison = RunComparison()
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setWidget(self.comparison)
        scroll.setFrameShape(QScrollArea.Shape.NoFrame)

        bar = QHBoxLayout()
        bar.addWidget(self.filter_box, 3)
        bar.addWidget(self.status_box, 1)
        bar.addWidget(self.count)
        actions = QHBoxLayout()
        for button in (self.inspect_button, self.resume_button, self.delete_button):
            actions.addWidget(button)
        actions.addWidget(self.hint, 1)
        top = QWidget()
        top_layout = QVBoxLayout(top)
        top_layout.setContentsMargins(0, 0, 0, 0)
        top_layout.addLayout(bar)
        top_layout.addWidget(self.table, 1)
        top_layout.addLayout(actions)
        splitter = QSplitter(Qt.Orientation.Vertical)
        splitter.addWidget(top)
        splitter.addWidget(scroll)
        splitter.setStretchFactor(0, 2)
        splitter.setStretchFactor(1, 3)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(6, 6, 6, 6)
        layout.addWidget(splitter)
        self._on_selection()

    # -- contents ---------------------------------------------------------------------------------------------
    def set_runs(self, runs: list[RunSummary]) -> None:
        """Show these runs, keeping the selection where the same runs are still there."""
        kept = [str(r.path) for r in self.selected()]
        self.model.set_runs(runs)
        self.count.setText(f"{len(runs)} run{'s' if len(runs) != 1 else ''}")
        self.select_paths(kept)
        self._on_selection()

    def select_paths(self, paths: list[str]) -> None:
        selection = self.table.selectionModel()
        selection.clearSelection()
        flags = QItemSelectionModel.SelectionFlag.Select | QItemSelectionModel.SelectionFlag.Rows
        for row, summary in enumerate(self.model.runs):
            if str(summary.path) in paths:
                index = self.proxy.mapFromSource(self.model.index(row, 0))
                if index.isValid():
                    selection.select(index, flags)

    def selected(self) -> list[RunSummary]:
        rows = sorted({self.proxy.mapToSource(i).row() for i in self.table.selectionModel().selectedRows()})
        return [self.model.summary(row) for row in rows]

    def number_of(self, summary: RunSummary) -> int:
        return self.model.runs.index(summary) + 1

    # -- reactions --------------------------------------------------------------------------------------------
    def _on_selection(self) -> None:
        chosen = self.selected()
        one = len(chosen) == 1
        self.inspect_button.setEnabled(one and chosen[0].record.get("weights") is not None or
                                       one and bool(chosen[0].record.get("checkpoints")))
        self.resume_button.setEnabled(one and chosen[0].status == "interrupted" and (
            chosen[0].epochs_completed < chosen[0].epochs_planned or not chosen[0].record.get("results")))
        self.delete_button.setEnabled(bool(chosen) and all(r.status != "running" for r in chosen))
        if not chosen:
            self.hint.setText("Select a run; select two (Ctrl+click) to compare them.")
        elif one:
            self.hint.setText("Ctrl+click a second run to compare the two.")
        elif len(chosen) == 2:
            self.hint.setText("Comparing the two selected runs below.")
        else:
            self.hint.setText("Select exactly two runs to compare them.")
        self.selection_changed.emit([str(r.path) for r in chosen])

    def _inspect(self) -> None:
        chosen = self.selected()
        if len(chosen) == 1:
            self.inspect_requested.emit(str(chosen[0].path))

    def describe(self, summary: RunSummary) -> str:
        return f"run {self.number_of(summary)} ({summary.optimizer} lr {summary.learning_rate:g} " \
               f"bs {summary.batch_size}, {summary.status})"

    def comparison_names(self, chosen: list[RunSummary]) -> tuple[str, str]:
        return self.describe(chosen[0]), self.describe(chosen[1])

    def runs(self) -> list[RunSummary]:
        return list(self.model.runs)
