"""The training workspace: the "Train" tab (curves, run history, test results), the "Training" dock
(settings and Start / Pause / Resume / Stop / +1 epoch), the Train menu, the status-bar progress and
the close guard. ``TrainingPanel`` is the controller between the document, the form and the session.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, Qt, QTimer, Signal
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import (
    QFileDialog,
    QGridLayout,
    QGroupBox,
    QLabel,
    QMenu,
    QMessageBox,
    QPushButton,
    QScrollArea,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from cnn_studio.messages import headless, show_message
from cnn_studio.training.confusion_view import ResultsView
from cnn_studio.training.plots import TrainingPlots
from cnn_studio.training.progress import TrainingProgress, format_duration
from cnn_studio.training.run_history import RunHistory, RunHistoryList, RunRecord
from cnn_studio.training.session import TrainingSession
from cnn_studio.training.settings_form import TrainingSettingsForm, dataset_title
from engine.architecture import check_classifier
from engine.data import Dataset, known_datasets
from engine.errors import ArchitectureError, EngineError
from engine.training import BatchEnd, EpochEnd, TrainConfig, TrainingFinished, TrainingStarted
from engine.weights import save_weights

log = logging.getLogger(__name__)

TAB_TITLE = "Train"
DOCK_TITLE = "Training"
CLASSIFIER_FIXES = ("append_classifier", "set_output_units")
LOCK_REASON = "Training is running — stop it to edit the architecture"
KEEP, DISCARD, CANCEL = "keep", "discard", "cancel"
# Curves and progress text are redrawn at this rate while a run goes on, however fast batches arrive:
# the GUI's share of the CPU stays small and fixed, and the engine keeps the cores.
LIVE_REDRAWS_PER_SECOND = 5
TEXT_EVERY_TICKS = 3  # the progress readout line: about twice a second


# -- dialogs: module-level so tests (and scripts) can answer them without a modal loop --------------------------
def ask_stop_training(parent: QWidget) -> str:
    """Training runs and the window is closing: KEEP (stop, save the weights), DISCARD or CANCEL.

    Headless, nobody can answer: the run is stopped and its weights are not saved.
    """
    if headless():
        return DISCARD
    box = QMessageBox(QMessageBox.Icon.Question, "Stop training?",
                      "Training is still running. Stop it and close?\n\nKeep the trained weights? "
                      "They can be saved to a weight file before the window closes.", parent=parent)
    keep = box.addButton("Stop && &keep weights…", QMessageBox.ButtonRole.AcceptRole)
    discard = box.addButton("Stop && &discard", QMessageBox.ButtonRole.DestructiveRole)
    box.addButton(QMessageBox.StandardButton.Cancel)
    box.setDefaultButton(keep)
    box.exec()  # the window is closing: this answer is needed before anything else happens
    clicked = box.clickedButton()
    return KEEP if clicked is keep else DISCARD if clicked is discard else CANCEL


def ask_weights_path(parent: QWidget, suggested: str) -> str | None:
    if headless():
        return None
    path, _ = QFileDialog.getSaveFileName(parent, "Save the trained weights", suggested, "Weight files (*.npz)")
    if path and not path.lower().endswith(".npz"):
        path += ".npz"
    return path or None


class TrainingPanel(QObject):
    """Wires the settings form, the controls, the plots and the results to ``window.training_session``.

    Signal ``run_ended(str)`` carries the finished reason ("completed", "stopped", "diverged" or
    "failed") after the panel has updated itself (tests and scripts wait on it).
    """

    run_ended = Signal(str)

    def __init__(self, window: Any) -> None:
        super().__init__(window)
        self.window = window
        self.document = window.document
        self.session = TrainingSession(window)
        self.history = RunHistory(self)
        self._dataset: Dataset | None = None
        self._epochs_before_run = 0  # epochs done before the current run started ("+1 epoch" continues)
        self._dataset_ref_loaded: str | None = None
        self._loading_ref: str | None = None
        self._pending_start = False
        self._locked_by_training = False
        self._writing_settings = False
        self._closing = False
        self.notices: list[str] = []
        self._latest_batch: BatchEnd | None = None
        self._live_ticks = 0
        self._live_timer = QTimer(self)
        self._live_timer.setInterval(1000 // LIVE_REDRAWS_PER_SECOND)
        self._live_timer.timeout.connect(self._refresh_live)

        self.form = TrainingSettingsForm()
        self.plots = TrainingPlots()
        self.history_list = RunHistoryList(self.history)
        self.results = ResultsView()
        self.dock_progress = TrainingProgress(vertical=True)
        self.status_progress = TrainingProgress(bar_width=160)
        self.status_progress.setVisible(False)
        self._make_actions()
        self.tab = self._make_tab()
        self.dock_widget = self._make_dock()
        window.tabs.addTab(self.tab, TAB_TITLE)
        self.dock = window.add_dock(self.dock_widget, DOCK_TITLE, Qt.DockWidgetArea.RightDockWidgetArea)
        self._design_dock = self._share_dock_space()
        window.statusBar().addPermanentWidget(self.status_progress)
        self._install_menu()
        window.close_guards.append(self.close_guard)

        self.form.set_datasets(known_datasets())
        self._load_settings_from_document()
        self._connect()
        self._update_controls()

    # -- building -----------------------------------------------------------------------------------------------
    def _make_actions(self) -> None:
        def action(text: str, shortcut: str | None, tip: str, slot: Any) -> QAction:
            act = QAction(text, self)
            if shortcut:
                act.setShortcut(QKeySequence(shortcut))
                act.setShortcutContext(Qt.ShortcutContext.ApplicationShortcut)
            act.setToolTip(tip + (f" ({shortcut})" if shortcut else ""))
            act.setStatusTip(tip)
            act.triggered.connect(slot)
            return act

        self.start_action = action("Start training", "F5", "Train the current architecture from scratch",
                                   self.start)
        self.pause_action = action("Pause", "F6", "Pause or resume training", self.toggle_pause)
        self.stop_action = action("Stop", "Shift+F5", "Stop training after the current batch", self.stop)
        self.continue_action = action("+1 epoch", "F7", "Train one more epoch, continuing the last run's weights",
                                      self.continue_one_epoch)

    def _make_tab(self) -> QWidget:
        runs_box = QGroupBox("Runs (tick an earlier run to overlay its curves)")
        runs_layout = QVBoxLayout(runs_box)
        runs_layout.setContentsMargins(4, 4, 4, 4)
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
        splitter = QSplitter(Qt.Orientation.Horizontal)
        splitter.addWidget(left)
        splitter.addWidget(results_box)
        splitter.setStretchFactor(0, 3)
        splitter.setStretchFactor(1, 2)
        splitter.setSizes([600, 430])  # the confusion matrix needs room for ten class names
        splitter.setObjectName("training_tab")
        return splitter

    def _make_dock(self) -> QWidget:
        self.start_button = QPushButton("Start")
        self.pause_button = QPushButton("Pause")
        self.resume_button = QPushButton("Resume")
        self.stop_button = QPushButton("Stop")
        self.continue_button = QPushButton("+1 epoch")
        self.start_button.setDefault(True)
        for button, act in ((self.start_button, self.start_action), (self.stop_button, self.stop_action),
                            (self.continue_button, self.continue_action)):
            button.clicked.connect(act.trigger)
            button.setToolTip(act.toolTip())
        self.pause_button.clicked.connect(self.session.pause)
        self.pause_button.setToolTip("Pause after the current batch (F6)")
        self.resume_button.clicked.connect(self.session.resume)
        self.resume_button.setToolTip("Go on training (F6)")
        buttons = QGridLayout()
        buttons.addWidget(self.start_button, 0, 0, 1, 2)
        buttons.addWidget(self.stop_button, 0, 2)
        buttons.addWidget(self.pause_button, 1, 0)
        buttons.addWidget(self.resume_button, 1, 1)
        buttons.addWidget(self.continue_button, 1, 2)

        self.lock_notice = QLabel(LOCK_REASON + ". Learning rate and momentum can still be changed.")
        self.lock_notice.setWordWrap(True)
        self.lock_notice.setStyleSheet("background: #fff4ce; border: 1px solid #e0c060; padding: 4px; color: #5c4400;")
        self.lock_notice.setVisible(False)
        self.problem_notice = QLabel("")
        self.problem_notice.setWordWrap(True)
        self.problem_notice.setStyleSheet("color: #b00020;")
        self.message = QLabel("")
        self.message.setWordWrap(True)
        self.message.setVisible(False)

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

    def _share_dock_space(self) -> Any:
        """Stack the Training dock with the block Properties dock (if the window has one): each gets the
        full height, and switching between the Design and Train tabs brings the matching one forward."""
        docks = getattr(self.window, "docks", None)
        properties = docks.get("Properties") if isinstance(docks, dict) else None
        if properties is not None and hasattr(self.window, "tabifyDockWidget"):
            self.window.tabifyDockWidget(properties, self.dock)  # the window brings properties forward
        return properties

    def _install_menu(self) -> None:
        menus = getattr(self.window, "menus", None)
        menu = menus.get("Train") if isinstance(menus, dict) else None
        if menu is None:
            menu = QMenu("&Train", self.window)
            self.window.menuBar().addMenu(menu)
            if isinstance(menus, dict):
                menus["Train"] = menu
        self.menu = menu
        for act in (self.start_action, self.pause_action, self.stop_action):
            menu.addAction(act)
        menu.addSeparator()
        menu.addAction(self.continue_action)
        menu.addSeparator()
        show = menu.addAction("Show training curves")
        show.triggered.connect(lambda: self.window.tabs.setCurrentWidget(self.tab))

    def _connect(self) -> None:
        s = self.session
        s.started.connect(self._on_started)
        s.batches.connect(self._on_batches)
        s.epoch_end.connect(self._on_epoch_end)
        s.finished.connect(self._on_finished)
        s.failed.connect(self._on_failed)
        s.evaluation_ready.connect(self._on_evaluation)
        s.model_adopted.connect(self._on_model_adopted)
        s.state_changed.connect(self._update_controls)
        s.rate_changed.connect(self._on_rate_changed)
        s.warning.connect(self._on_warning)
        s.status.connect(self._on_status)
        s.dataset_loaded.connect(self._on_dataset_loaded)
        s.dataset_failed.connect(self._on_dataset_failed)
        self.form.config_changed.connect(self._on_config_edited)
        self.form.dataset_chosen.connect(self._on_dataset_chosen)
        self.form.live_rate_changed.connect(self._on_live_rate)
        self.history_list.overlays_changed.connect(self.plots.set_overlays)
        self.document.changed.connect(self._update_controls)
        self.document.settings_changed.connect(self._on_document_settings)
        self.window.tabs.currentChanged.connect(self._on_tab_changed)

    def _on_model_adopted(self) -> None:
        self.results.mark_stale("These results belong to the last run, not to the imported weights: "
                                "Start trains on from the imported weights.")

    # -- settings <-> document ----------------------------------------------------------------------------------
    def _load_settings_from_document(self) -> None:
        self.form.set_config(TrainingSettingsForm.config_from_settings(self.document.training or {}))
        self.form.set_dataset_ref(self.document.dataset_ref)

    def _on_document_settings(self) -> None:
        if self._writing_settings:
            return
        # A project was opened (or settings came from elsewhere): show them. Its dataset loads now if the
        # Train tab is in view, else when it is needed.
        self._load_settings_from_document()
        ref = self.form.dataset_ref
        if (ref and ref != self._dataset_ref_loaded and ref != self._loading_ref and not self.session.running
                and self.window.tabs.currentWidget() is self.tab):
            self.load_dataset(ref)

    def _on_config_edited(self, config: TrainConfig) -> None:
        self._writing_settings = True
        try:
            self.document.set_training(config.to_dict())
        finally:
            self._writing_settings = False

    def _on_dataset_chosen(self, ref: str) -> None:
        self._writing_settings = True
        try:
            self.document.set_dataset_ref(ref)
        finally:
            self._writing_settings = False
        self.load_dataset(ref)

    def _on_tab_changed(self, _index: int) -> None:
        current = self.window.tabs.currentWidget()
        if current is self.tab:
            self.dock.show()
            self.dock.raise_()
        elif self._design_dock is not None and current is getattr(self.window, "design_tab", None):
            self._design_dock.raise_()
        if current is self.tab and self._dataset is None and self._loading_ref is None:
            self.load_dataset(self.form.dataset_ref or self.document.dataset_ref)

    # -- dataset ---------------------------------------------------------------------------------------------------
    @property
    def dataset(self) -> Dataset | None:
        return self._dataset

    def load_dataset(self, ref: str) -> None:
        """Load ``ref`` in the background (the form shows a busy indicator meanwhile)."""
        self._loading_ref = ref
        self.form.set_dataset_loading(True)
        self.dock_progress.busy(f"Loading {dataset_title(ref)}…")
        self.session.load_dataset(ref)
        self._update_controls()

    def use_dataset(self, dataset: Dataset, ref: str | None = None) -> None:
        """Use a dataset already in memory (scripts, tests) as if it had been loaded from ``ref``."""
        ref = ref or dataset.name
        self._loading_ref = ref
        self.form.set_dataset_ref(ref)
        self._on_dataset_loaded(ref, dataset)

    def _on_dataset_loaded(self, ref: str, dataset: Dataset) -> None:
        if ref != self._loading_ref:
            return  # the user picked another dataset meanwhile
        self._loading_ref = None
        self._dataset, self._dataset_ref_loaded = dataset, ref
        self.document.set_num_classes(dataset.num_classes)
        self.form.set_dataset_loading(False)
        h, w, c = dataset.input_shape
        self.form.set_dataset_info(f"{len(dataset.y_train):,} training and {len(dataset.y_test):,} test images · "
                                   f"{h}×{w}×{c} · {dataset.num_classes} classes")
        self.dock_progress.done(f"Dataset ready: {dataset.name}", complete=False)
        input_change = ""
        if not self.session.running:
            if not self.document.locked:
                input_change = self._match_input(dataset)
                self._announce_input_change(input_change)
            self.session.set_dataset(dataset)
        self._update_controls()
        if self._pending_start:
            self._pending_start = False
            self._start_with_dataset(input_change)

    def _on_dataset_failed(self, ref: str, message: str) -> None:
        if ref != self._loading_ref:
            return
        self._loading_ref = None
        self._pending_start = False
        self.form.set_dataset_loading(False)
        self.form.set_dataset_info(message, error=True)
        self.dock_progress.done("Dataset not loaded", complete=False)
        self._update_controls()
        self.notify("error", "Dataset not loaded", f"Could not load the dataset {dataset_title(ref)}:\n\n{message}")

    # -- controls -----------------------------------------------------------------------------------------------------
    def start(self) -> None:
        """Start a fresh run: load the chosen dataset first if needed, check the network fits it, go."""
        if self.session.running or self._pending_start:
            return
        # A network that does not fit the dataset's classes is explained below, once the dataset is loaded.
        problems = [p for p in self.document.analysis().problems if p.fix not in CLASSIFIER_FIXES]
        if problems:
            self.notify("warning", "Cannot start training",
                        f"The architecture has {len(problems)} problem(s); fix them first:\n\n{problems[0].message}")
            return
        ref = self.form.dataset_ref or self.document.dataset_ref
        if self._dataset is None or self._dataset_ref_loaded != ref:
            self._pending_start = True
            if self._loading_ref != ref:
                self.load_dataset(ref)
            self._update_controls()
            return
        self._start_with_dataset()

    def _match_input(self, dataset: Dataset) -> str:
        """Give the network the dataset's image shape; returns what changed, in words ("" when nothing did)."""
        old, new = tuple(self.document.input_shape), tuple(dataset.input_shape)
        if old == new:
            return ""
        self.document.set_input_shape(new)
        return (f"The network's input is now {_shape(new)} to match the {_shape(new)} images of {dataset.name} "
                f"(it was {_shape(old)}). To train it as designed, choose a dataset of {_shape(old)} images.")

    def _announce_input_change(self, text: str) -> None:
        if text:
            self.notices.append(text)
            self._set_message(text)
            self.window.statusBar().showMessage(text, 10000)

    def _start_with_dataset(self, input_change: str = "") -> None:
        """``input_change``: the input shape was just adapted to the dataset (loaded for this start), in words."""
        dataset = self._dataset
        assert dataset is not None
        input_change = self._match_input(dataset) or input_change
        analysis = self.document.analysis()
        try:
            if analysis.problems:
                raise analysis.problems[0]
            check_classifier(analysis, dataset.num_classes)
        except ArchitectureError as exc:
            hint = f"\n\n{exc.hint}" if exc.hint else ""
            before = f"{input_change}\n\n" if input_change else ""
            self.notify("warning", "The network does not fit the dataset",
                        f"{before}Cannot train on {dataset.name} ({dataset.num_classes} classes): {exc.message}{hint}")
            self._announce_input_change(input_change)
            self._update_controls()
            return
        config = self.form.config()
        architecture = self.document.architecture()
        imported = self.session.adopted_weights_for(architecture)
        try:
            self.session.start(architecture, dataset, config, initial_weights=imported)
        except (EngineError, ValueError) as exc:
            self.notify("error", "Cannot start training", str(exc))
            self._update_controls()
            return
        record = self.history.new_run(config, dataset.name)
        if self.window.tabs.currentWidget() is getattr(self.window, "design_tab", None):
            self.window.tabs.setCurrentWidget(self.tab)  # started from the Design tab: show the curves
        self.plots.begin_run(record)
        if self.results.evaluation is not None and len(self.history.runs) > 1:
            previous = self.history.runs[-2]
            self.results.mark_stale(f"Run {previous.number}'s results (run {record.number} is training)")
        else:
            self.results.clear()
        self._set_message(input_change)
        self.status_progress.setVisible(True)
        self.status_progress.begin(0, config.epochs, 1)
        self.dock_progress.begin(0, config.epochs, 1)
        origin = " from the imported weights" if imported is not None else ""
        if input_change:
            self.notices.append(input_change)
            self.window.statusBar().showMessage(input_change, 10000)
        else:
            self.window.statusBar().showMessage(f"Training {record.label} on {dataset.name}{origin}", 4000)

    def toggle_pause(self) -> None:
        if self.session.paused:
            self.session.resume()
        else:
            self.session.pause()

    def stop(self) -> None:
        self.session.stop()
        if self.session.running:
            self.dock_progress.label.setText("Stopping after the current batch…")

    def continue_one_epoch(self) -> None:
        if not self.session.can_continue:
            return
        record = self.history.current
        if record is not None:
            record.outcome = "running"
            self.plots.begin_run(record)
            self.history.changed(record)
        self.session.continue_training(1)
        self.status_progress.setVisible(True)

    def _on_live_rate(self, kind: str, value: float) -> None:
        if not self.session.running:
            return
        try:
            if kind == "lr":
                self.session.set_learning_rate(value)
            else:
                self.session.set_momentum(value)
        except ValueError as exc:
            self.notify("warning", "Rate not changed", str(exc))

    def _update_controls(self) -> None:
        s = self.session
        running, paused = s.running, s.paused
        problems = self.document.analysis().problems
        busy = running or self._pending_start
        can_start = not busy and not problems
        self.start_action.setEnabled(can_start)
        self.start_button.setEnabled(can_start)
        self.start_action.setToolTip("Train the current architecture from scratch (F5)" if not problems else
                                     f"Fix the architecture first: {problems[0].message}")
        self.start_button.setToolTip(self.start_action.toolTip())
        self.problem_notice.setText(
            "" if not problems or running else f"Start is disabled: {problems[0].message}")
        self.problem_notice.setVisible(bool(problems) and not running)
        self.pause_action.setEnabled(running)
        self.pause_action.setText("Resume" if paused else "Pause")
        self.pause_button.setEnabled(running and not paused)
        self.resume_button.setEnabled(running and paused)
        self.stop_action.setEnabled(running)
        self.stop_button.setEnabled(running)
        can_continue = s.can_continue and not self._pending_start
        self.continue_action.setEnabled(can_continue)
        self.continue_button.setEnabled(can_continue)
        self.form.set_running(busy)
        self.lock_notice.setVisible(running)
        self._sync_lock(running)
        if running:
            for progress in (self.dock_progress, self.status_progress):
                progress.set_paused(paused)

    def _sync_lock(self, running: bool) -> None:
        if running and not self._locked_by_training:
            self._locked_by_training = True
            self.document.set_locked(True, LOCK_REASON)
        elif not running and self._locked_by_training:
            self._locked_by_training = False
            self.document.set_locked(False)

    # -- from the session --------------------------------------------------------------------------------------------
    def _on_started(self, event: TrainingStarted) -> None:
        record = self.history.current
        if record is not None:
            record.set_smoothing(event.batches_per_epoch)
        done = self.session.epochs_completed
        self._epochs_before_run = done
        first_step = self.session.last_batch.step if self.session.last_batch is not None else 0
        self.plots.expect(first_step + event.epochs * event.batches_per_epoch, done + event.epochs)
        for progress in (self.dock_progress, self.status_progress):
            progress.begin(done, event.epochs, event.batches_per_epoch)
        self._latest_batch = None
        self._live_timer.start()

    def _on_batches(self, events: tuple[BatchEnd, ...]) -> None:
        record = self.history.current
        if record is None:
            return
        record.add_batches(events)
        self.plots.data_changed()
        self._latest_batch = events[-1]

    def _refresh_live(self, final: bool = False) -> None:
        self.plots.refresh()
        self._live_ticks += 1
        if self._latest_batch is not None:
            # The bars move at every tick; the readout text (speed, ETA) changes less often, which is
            # easier to read and spares a re-layout of the status bar and the dock.
            text = final or self._live_ticks % TEXT_EVERY_TICKS == 0
            for progress in (self.dock_progress, self.status_progress):
                progress.show_batch(self._latest_batch, self.session.paused, text=text)
            if text:
                self._latest_batch = None

    def _on_epoch_end(self, event: EpochEnd) -> None:
        record = self.history.current
        if record is None:
            return
        record.epochs.append(event)
        self.history.changed(record)
        self.plots.data_changed()
        val = "" if math.isnan(event.val_loss) else f", validation loss {event.val_loss:.4f} " \
                                                   f"({event.val_accuracy:.1%})"
        self.window.statusBar().showMessage(
            f"Epoch {event.epoch}/{event.epochs}: training loss {event.train_loss:.4f} "
            f"({event.train_accuracy:.1%}){val}", 5000)

    def _on_rate_changed(self, kind: str, value: float, step: int) -> None:
        record = self.history.current
        if record is not None:
            record.rate_changes.append((step, kind, value))
        self.plots.mark_rate_change(step, kind, value)
        name = "learning rate" if kind == "lr" else "momentum"
        self.window.statusBar().showMessage(f"{name} set to {value:g} from batch {step}", 4000)

    def _end_live(self) -> None:
        self._live_timer.stop()
        self._refresh_live(final=True)
        self.plots.end_run()

    def _on_finished(self, event: TrainingFinished) -> None:
        self._end_live()
        record = self.history.current
        if record is not None:
            record.outcome, record.message = event.reason, event.message
            self.history.changed(record)
        elapsed = self.session.last_batch.elapsed if self.session.last_batch is not None else float("nan")
        text = {"completed": "Finished", "stopped": "Stopped", "diverged": "Diverged"}.get(event.reason, event.reason)
        total = event.epochs_completed
        this_run = total - self._epochs_before_run
        summary = f"{text} after {total} epoch{'s' if total != 1 else ''} · {format_duration(elapsed)}"
        if this_run != total:  # "+1 epoch": the time covers only this part
            summary = (f"{text} at epoch {total} · {format_duration(elapsed)} for the last "
                       f"{this_run} epoch{'s' if this_run != 1 else ''}")
        for progress in (self.dock_progress, self.status_progress):
            progress.done(summary, complete=event.reason == "completed")
        if event.reason == "diverged":
            self._set_message(event.message, error=True)
            if not self._closing:
                self.notify("warning", "Training diverged", event.message)
        elif event.reason == "stopped":
            said = event.message[:1].upper() + event.message[1:] if event.message else "Stopped"
            self._set_message(f"{said}. Press +1 epoch to go on from these weights.")
        self._update_controls()
        self.run_ended.emit(event.reason)

    def _on_failed(self, message: str) -> None:
        self._end_live()
        record = self.history.current
        if record is not None:
            record.outcome, record.message = "failed", message
            self.history.changed(record)
        for progress in (self.dock_progress, self.status_progress):
            progress.done("Training failed", complete=False)
        self._set_message(f"Training failed: {message}", error=True)
        self._update_controls()
        if not self._closing:
            self.notify("error", "Training failed", message)
        self.run_ended.emit("failed")

    def _on_evaluation(self, evaluation: Any) -> None:
        dataset = self.session.dataset()
        names = dataset.class_names if dataset is not None else [str(i) for i in range(len(evaluation.confusion))]
        self.results.show_evaluation(evaluation, names)
        record = self.history.current
        if record is not None:
            record.test_accuracy = evaluation.accuracy
            self.history.changed(record)

    def _on_warning(self, text: str) -> None:
        self.notices.append(text)
        self._set_message(text)
        self.window.statusBar().showMessage(text, 6000)

    def _on_status(self, text: str) -> None:
        self.dock_progress.label.setText(text)

    def _set_message(self, text: str, error: bool = False) -> None:
        self.message.setText(text)
        self.message.setStyleSheet("color: #b00020;" if error else "color: #5c4400;")
        self.message.setVisible(bool(text))

    def notify(self, kind: str, title: str, text: str) -> None:
        show_message(self.window, kind, title, text)

    # -- closing ---------------------------------------------------------------------------------------------------
    def close_guard(self) -> bool:
        """Called when the window closes: ask about a running run, stop it and join every thread."""
        if self.session.running:
            answer = ask_stop_training(self.window)
            if answer == CANCEL:
                return False
            self._closing = True
            self.session.shutdown()
            if answer == KEEP:
                self.keep_weights()
        else:
            self._closing = True
            self.session.shutdown()
        self._update_controls()
        return True

    def keep_weights(self) -> Path | None:
        """Ask where to save the session's latest weights and save them; returns the path written."""
        model = self.session.model()
        if model is None:
            return None
        suggested = str(Path.home() / "trained-weights.npz")
        path = ask_weights_path(self.window, suggested)
        if not path:
            return None
        try:
            return save_weights(model, path)
        except OSError as exc:
            self.notify("error", "Weights not saved", f"Could not write {path}: {exc.strerror or exc}")
            return None

    @property
    def current_run(self) -> RunRecord | None:
        return self.history.current

    def shutdown(self) -> None:
        """Stop everything without asking (the application is quitting)."""
        self._closing = True
        self.session.shutdown()


def _shape(shape: tuple[int, ...]) -> str:
    return "×".join(str(v) for v in shape)
