"""The training workspace: the "Train" tab (curves, run history, test results), the "Training" dock
(settings and Start / Pause / Resume / Stop / +1 epoch), the Train menu and the status-bar progress.

``TrainingPanel`` builds those widgets and puts together the pieces that drive them, each with one job:

    TrainingSettingsBinding  the form's settings <-> the project's                  settings_binding.py
    DatasetChoice            the chosen dataset: loading it, the input following it  dataset_choice.py
    TrainingControls         Start / Pause / Stop / +1 epoch and the lock             controls.py
    RunRecorder              the runner's reports -> the project's run history        run_history.py
    RunMonitor               curves, progress, results and end-of-run messages       monitor.py
    TrainingCloser           what happens to a run when the window closes             closing.py

It is handed the window's ``TrainingSession`` (see session.py) by whoever builds the window.
"""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import QObject, Qt, Signal
from PySide6.QtWidgets import (
    QGridLayout,
    QGroupBox,
    QLabel,
    QScrollArea,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from cnn_studio.messages import show_message
from cnn_studio.training.closing import TrainingCloser
from cnn_studio.training.confusion_view import ResultsView
from cnn_studio.training.controls import TrainingControls
from cnn_studio.training.dataset_choice import DatasetChoice
from cnn_studio.training.monitor import RunMonitor, status_echo
from cnn_studio.training.notices import Notices
from cnn_studio.training.plots import TrainingPlots
from cnn_studio.training.progress import TrainingProgress
from cnn_studio.training.run_history import RunRecord, RunRecorder
from cnn_studio.training.run_list import RunHistoryList
from cnn_studio.training.session import TrainingSession
from cnn_studio.training.settings_binding import TrainingSettingsBinding
from cnn_studio.training.settings_form import TrainingSettingsForm
from cnn_studio.turning_splitter import TurningSplitter, vertically_scrolling
from engine.data import Dataset

TAB_TITLE = "Train"
DOCK_TITLE = "Training"


class TrainingPanel(QObject):
    """The Train tab and the Training dock in ``window``, following ``session``.

    Signal ``run_ended(str)`` carries the finished reason ("completed", "stopped", "diverged" or
    "failed") after the panel has updated itself (tests and scripts wait on it).
    """

    run_ended = Signal(str)

    def __init__(self, window: Any, session: TrainingSession) -> None:
        super().__init__(window)
        self.window = window
        self.document = window.document
        self.session = session
        self.history = session.runs

        self.form = TrainingSettingsForm()
        self.plots = TrainingPlots()
        self.history_list = RunHistoryList(session.runs)
        self.results = ResultsView()
        self.dock_progress = TrainingProgress(vertical=True)
        self.status_progress = TrainingProgress(bar_width=160)
        self.message = QLabel("")
        self.notices_board = Notices(self.message, status_echo(window))

        self.settings = TrainingSettingsBinding(self.document, self.form, self)
        self.datasets = DatasetChoice(self.document, self.form, session.datasets, session.runner,
                                      self.dock_progress, self.notices_board, self.notify, self)
        self.recorder = RunRecorder(session.runs, session.runner, session.trained, self)
        self.monitor = RunMonitor(session, self.plots, self.results, self.dock_progress, self.status_progress,
                                  self.notices_board, self.notify, self)
        self.controls = TrainingControls(self.document, session, self.form, self.datasets, self.notices_board,
                                         self.notify, self._show_curves_if_designing, self)
        self.closer = TrainingCloser(window, session, self.notify, self._closing)
        self.monitor.run_ended.connect(self.run_ended)
        self.controls.stop_action.triggered.connect(self.monitor.stopping)
        self.history_list.overlays_changed.connect(self.plots.set_overlays)

        c = self.controls
        self.start_action, self.pause_action = c.start_action, c.pause_action
        self.stop_action, self.continue_action = c.stop_action, c.continue_action
        self.start_button, self.pause_button, self.resume_button = c.start_button, c.pause_button, c.resume_button
        self.stop_button, self.continue_button = c.stop_button, c.continue_button
        self.lock_notice, self.problem_notice = c.lock_notice, c.problem_notice

        self.tab = self._make_tab()
        self.dock_widget = self._make_dock()
        window.tabs.addTab(self.tab, TAB_TITLE)
        self.dock = window.add_dock(self.dock_widget, DOCK_TITLE, Qt.DockWidgetArea.RightDockWidgetArea)
        # The Training dock shares the block Properties dock's place: each gets the full height, and
        # switching between the Design and Train tabs brings the matching one forward.
        self._design_dock = window.docks["Properties"]
        window.tabifyDockWidget(self._design_dock, self.dock)
        window.statusBar().addPermanentWidget(self.status_progress)
        self._install_menu()
        window.close_guards.append(self.close_guard)
        window.tabs.currentChanged.connect(self._on_tab_changed)

    # -- building -----------------------------------------------------------------------------------------------
    def _make_tab(self) -> QWidget:
        # The hint wraps under a short title: a long group-box title would set the tab's narrowest width.
        runs_box = QGroupBox("Runs")
        runs_hint = QLabel("Tick an earlier run to overlay its curves.")
        runs_hint.setWordWrap(True)
        runs_hint.setStyleSheet("color: #555;")
        runs_layout = QVBoxLayout(runs_box)
        runs_layout.setContentsMargins(4, 4, 4, 4)
        runs_layout.setSpacing(2)
        runs_layout.addWidget(runs_hint)
        runs_layout.addWidget(self.history_list)
        self.history_list.setMinimumHeight(70)
        left = QSplitter(Qt.Orientation.Vertical)
        left.addWidget(self.plots)
        left.addWidget(runs_box)
        left.setStretchFactor(0, 5)
        left.setStretchFactor(1, 1)
        results_box = QGroupBox("Test results")
        results_layout = QVBoxLayout(results_box)
        results_layout.setContentsMargins(4, 4, 4, 4)
        results_layout.addWidget(self.results)
        # Curves beside the results where the tab is wide; beside the docks of a 1100-pixel window the
        # results go under the curves and the tab scrolls, rather than squeezing the curves to a sliver.
        splitter = TurningSplitter(side_by_side_from=760, shares=(3, 2), stacked_heights=(560, 480))
        splitter.addWidget(left)
        splitter.addWidget(results_box)
        splitter.setStretchFactor(0, 3)
        splitter.setStretchFactor(1, 2)
        splitter.setObjectName("training_tab")
        self.tab_splitter = splitter
        return vertically_scrolling(splitter)

    def _make_dock(self) -> QWidget:
        buttons = QGridLayout()
        buttons.addWidget(self.start_button, 0, 0, 1, 2)
        buttons.addWidget(self.stop_button, 0, 2)
        buttons.addWidget(self.pause_button, 1, 0)
        buttons.addWidget(self.resume_button, 1, 1)
        buttons.addWidget(self.continue_button, 1, 2)
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setWidget(self.form)
        scroll.setFrameShape(QScrollArea.Shape.NoFrame)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        dock = QWidget()
        layout = QVBoxLayout(dock)
        layout.setContentsMargins(6, 6, 6, 6)
        layout.addLayout(buttons)
        layout.addWidget(self.dock_progress)
        layout.addWidget(self.lock_notice)
        layout.addWidget(self.problem_notice)
        layout.addWidget(self.message)
        layout.addWidget(scroll, 1)
        dock.setMinimumWidth(300)
        return dock

    def _install_menu(self) -> None:
        menu = self.window.menus["Train"]
        self.menu = menu
        for action in (self.start_action, self.pause_action, self.stop_action):
            menu.addAction(action)
        menu.addSeparator()
        menu.addAction(self.continue_action)
        menu.addSeparator()
        show = menu.addAction("Show training curves")
        show.triggered.connect(lambda: self.window.tabs.setCurrentWidget(self.tab))

    # -- reactions ---------------------------------------------------------------------------------------------
    def _on_tab_changed(self, _index: int) -> None:
        current = self.window.tabs.currentWidget()
        if current is self.tab:
            self.dock.show()
            self.dock.raise_()
            self.datasets.ensure_loaded()
        elif current is self.window.design_tab:
            self._design_dock.raise_()

    def _show_curves_if_designing(self) -> None:
        if self.window.tabs.currentWidget() is self.window.design_tab:
            self.window.tabs.setCurrentWidget(self.tab)  # started from the Design tab: show the curves

    def _closing(self) -> None:
        self.monitor.closing = True

    def notify(self, kind: str, title: str, text: str) -> None:
        show_message(self.window, kind, title, text)

    # -- the surface scripts and tests use ------------------------------------------------------------------------
    @property
    def notices(self) -> list[str]:
        """Every notice shown in the dock so far, oldest first."""
        return self.notices_board.said

    @property
    def dataset(self) -> Dataset | None:
        return self.datasets.dataset

    @property
    def current_run(self) -> RunRecord | None:
        return self.history.current

    def use_dataset(self, dataset: Dataset, ref: str | None = None) -> None:
        """Use a dataset already in memory (scripts, tests) as if it had been chosen and loaded from ``ref``."""
        self.datasets.use(dataset, ref)

    def load_dataset(self, ref: str | None = None) -> None:
        """Load the project's dataset (or ``ref``) in the background."""
        self.datasets.load(ref)

    def start(self) -> None:
        self.controls.start()

    def stop(self) -> None:
        self.stop_action.trigger()

    def toggle_pause(self) -> None:
        self.controls.toggle_pause()

    def continue_one_epoch(self) -> None:
        self.controls.continue_one_epoch()

    def confirm_close(self) -> bool:
        """Asked first when the window closes: False when the user wants training to go on."""
        return self.closer.confirm()

    def close_guard(self) -> bool:
        """Called when the window closes: stop any run (as answered) and join every thread."""
        closed = self.closer.close()
        if closed:
            self.controls.update()
        return closed

    def shutdown(self) -> None:
        """Stop everything without asking (the application is quitting)."""
        self._closing()
        self.session.shutdown()
