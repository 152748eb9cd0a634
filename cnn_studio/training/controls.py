"""Start, Pause / Resume, Stop and +1 epoch: the actions, their buttons, and what each is offered for.

Each control is enabled exactly when it can work, with a tooltip saying why not otherwise. While a run
goes on the architecture is locked (the reason says whether training runs or is paused).
"""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import QObject, Qt
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QLabel, QPushButton

from cnn_studio.document import ProjectDocument
from cnn_studio.training.dataset_choice import DatasetChoice
from cnn_studio.training.input_match import match_input
from cnn_studio.training.notices import Notices
from cnn_studio.training.session import TrainingSession
from cnn_studio.training.settings_form import TrainingSettingsForm
from cnn_studio.training.trained import same_dataset, same_design
from engine.architecture import analyze
from engine.data import Dataset
from engine.errors import ArchitectureError, EngineError, InputShapeError, NoTrainingImagesError, SettingError
from engine.preflight import training_problems

CLASSIFIER_FIXES = ("append_classifier", "set_output_units")
LOCK_RUNNING = "Training is running"
LOCK_PAUSED = "Training is paused"
LOCK_NOTICE = "{reason}: the architecture is locked until it stops. Learning rate and momentum can still be changed."
START_TIP = "Train the current architecture from scratch (F5)"
CONTINUE_TIP = "Train one more epoch, continuing the last run's weights (F7)"


class TrainingControls(QObject):
    """The training actions (menu, shortcuts) and buttons, driving the session's runner."""

    def __init__(self, document: ProjectDocument, session: TrainingSession, form: TrainingSettingsForm,
                 datasets: DatasetChoice, notices: Notices,
                 notify: Callable[[str, str, str], None], on_run_started: Callable[[], None],
                 parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.document = document
        self.session = session
        self.runner = session.runner
        self.trained = session.trained
        self.form = form
        self.datasets = datasets
        self.notices = notices
        self.notify = notify
        self.on_run_started = on_run_started
        self.pending_start = False
        self._lock_reason = ""

        self.start_action = self._action("Start training", "F5", START_TIP, self.start)
        self.pause_action = self._action("Pause", "F6", "Pause or resume training (F6)", self.toggle_pause)
        self.stop_action = self._action("Stop", "Shift+F5", "Stop training after the current batch (Shift+F5)",
                                        self.stop)
        self.continue_action = self._action("+1 epoch", "F7", CONTINUE_TIP, self.continue_one_epoch)
        self.start_button = self._button("Start", self.start_action)
        self.start_button.setDefault(True)
        self.stop_button = self._button("Stop", self.stop_action)
        self.continue_button = self._button("+1 epoch", self.continue_action)
        self.pause_button = QPushButton("Pause")
        self.pause_button.clicked.connect(self.runner.pause)
        self.pause_button.setToolTip("Pause after the current batch (F6)")
        self.resume_button = QPushButton("Resume")
        self.resume_button.clicked.connect(self.runner.resume)
        self.resume_button.setToolTip("Go on training (F6)")
        self.lock_notice = QLabel("")
        self.lock_notice.setWordWrap(True)
        self.lock_notice.setStyleSheet("background: #fff4ce; border: 1px solid #e0c060; padding: 4px; color: #5c4400;")
        self.lock_notice.setVisible(False)
        self.problem_notice = QLabel("")
        self.problem_notice.setWordWrap(True)
        self.problem_notice.setStyleSheet("color: #b00020;")

        self.runner.state_changed.connect(self.update)
        self.trained.replaced.connect(self.update)
        self.document.changed.connect(self.update)
        self.document.project_replaced.connect(self._on_project_replaced)
        self.datasets.source.loading.connect(lambda _ref: self.update())
        self.datasets.source.changed.connect(self.update)
        self.datasets.ready.connect(self._on_dataset_ready)
        self.datasets.failed.connect(self._on_dataset_failed)
        form.live_rate_changed.connect(self._on_live_rate)
        self.update()

    def _action(self, text: str, shortcut: str, tip: str, slot: Callable[[], None]) -> QAction:
        action = QAction(text, self)
        action.setShortcut(QKeySequence(shortcut))
        action.setShortcutContext(Qt.ShortcutContext.ApplicationShortcut)
        action.setToolTip(tip)
        action.setStatusTip(tip)
        action.triggered.connect(lambda _checked=False: slot())
        return action

    @staticmethod
    def _button(text: str, action: QAction) -> QPushButton:
        button = QPushButton(text)
        button.clicked.connect(action.trigger)
        button.setToolTip(action.toolTip())
        return button

    # -- what can be done now ----------------------------------------------------------------------------------
    def continue_refusal(self) -> str:
        """Why "+1 epoch" cannot work now, in words ("" when it can)."""
        if self.runner.running:
            return "Training is running."
        if self.pending_start:
            return "A run is about to start."
        kept = self.runner.kept_continuation
        if not self.runner.can_continue and kept is not None and kept.available():
            # A kept run of a reopened project goes on from its last checkpoint, on its own dataset.
            if not same_design(self.trained.architecture(), self.document.architecture()):
                return "The architecture changed since the last run: Start trains the new one."
            return ""
        if not self.runner.can_continue:
            if self.trained.imported:
                return "Imported weights have no run to continue: Start trains on from them."
            return "There is no run to continue yet: press Start first."
        if not same_design(self.trained.architecture(), self.document.architecture()):
            return "The architecture changed since the last run: Start trains the new one."
        chosen = self.datasets.dataset
        if self.datasets.loading or not same_dataset(self.runner.dataset, chosen):
            return "Another dataset is chosen since the last run: Start trains on it."
        return ""

    def update(self) -> None:
        runner = self.runner
        running, paused = runner.running, runner.paused
        problems = self.document.analysis().problems
        busy = running or self.pending_start
        can_start = not busy and not problems
        self.start_action.setEnabled(can_start)
        tip = START_TIP if not problems else f"Fix the architecture first: {problems[0].message}"
        self.start_action.setToolTip(tip)
        self.start_button.setEnabled(can_start)
        self.start_button.setToolTip(self.start_action.toolTip())
        self.problem_notice.setText("" if not problems or running else f"Start is disabled: {problems[0].message}")
        self.problem_notice.setVisible(bool(problems) and not running)
        self.pause_action.setEnabled(running)
        self.pause_action.setText("Resume" if paused else "Pause")
        self.pause_button.setEnabled(running and not paused)
        self.resume_button.setEnabled(running and paused)
        self.stop_action.setEnabled(running)
        self.stop_button.setEnabled(running)
        refusal = self.continue_refusal()
        self.continue_action.setEnabled(not refusal)
        self.continue_action.setToolTip(CONTINUE_TIP if not refusal else f"+1 epoch is not available: {refusal}")
        self.continue_button.setEnabled(not refusal)
        self.continue_button.setToolTip(self.continue_action.toolTip())
        self.form.set_running(busy)
        reason = LOCK_PAUSED if paused else LOCK_RUNNING if running else ""
        self.lock_notice.setText(LOCK_NOTICE.format(reason=reason))
        self.lock_notice.setVisible(running)
        self._sync_lock(reason)

    def _sync_lock(self, reason: str) -> None:
        if reason != self._lock_reason:
            self._lock_reason = reason
            self.document.set_locked(bool(reason), reason)

    # -- commands ---------------------------------------------------------------------------------------------------
    def start(self) -> None:
        """Start a fresh run: load the chosen dataset first if needed, check the network fits it, go."""
        if self.runner.running or self.pending_start:
            return
        # A network that does not fit the dataset's classes is explained below, once the dataset is loaded.
        problems = [p for p in self.document.analysis().problems if p.fix not in CLASSIFIER_FIXES]
        if problems:
            self.notify("warning", "Cannot start training",
                        f"The architecture has {len(problems)} problem(s); fix them first:\n\n{problems[0].message}")
            return
        dataset = self.datasets.dataset
        if dataset is None:
            self.pending_start = True
            self.datasets.load()
            self.update()
            return
        self._start_with(dataset)

    def _on_dataset_ready(self, dataset: Dataset, input_change: str) -> None:
        if self.pending_start:
            self.pending_start = False
            self._start_with(dataset, input_change)
        else:
            self.update()

    def _on_dataset_failed(self, _message: str) -> None:
        self.pending_start = False
        self.update()

    def _start_with(self, dataset: Dataset, input_change: str = "") -> None:
        """``input_change``: the input shape was just adapted to the dataset (loaded for this start), in words."""
        explanation, status = match_input(self.document, dataset)
        input_change = explanation or input_change
        config = self.form.config()
        architecture = self.document.architecture()
        problems = training_problems(analyze(architecture), dataset, config)
        if problems:
            self._refuse(problems[0], dataset, input_change)
            self.notices.say(input_change, status=status or None, timeout_ms=10000)
            self.update()
            return
        imported = self.trained.start_weights_for(architecture)
        preprocessing = self.trained.imported_preprocessing() if imported is not None else None
        try:
            self.runner.start(architecture, dataset, config, initial_weights=imported,
                              initial_preprocessing=preprocessing)
        except (EngineError, ValueError) as exc:
            self.notify("error", "Cannot start training", str(exc))
            self.update()
            return
        self.on_run_started()
        self.notices.clear()
        origin = " from the imported weights" if imported is not None else ""
        if input_change:
            self.notices.say(input_change, status=status or None, timeout_ms=10000)
        else:
            what = f"{config.optimizer} lr {config.learning_rate:g} bs {config.batch_size}"
            self.notices.status(f"Training ({what}) on {dataset.name}{origin}", 4000)

    def _refuse(self, problem: EngineError, dataset: Dataset, input_change: str) -> None:
        """Say why ``problem`` keeps training from starting, with the engine's advice."""
        before = f"{input_change}\n\n" if input_change else ""
        hint = getattr(problem, "hint", "")
        hint = f"\n\n{hint}" if hint else ""
        message = problem.message if isinstance(problem, ArchitectureError) else str(problem)
        if isinstance(problem, SettingError):
            title, text = "A training setting is out of range", f"Cannot start training: {message}"
        elif isinstance(problem, (ArchitectureError, InputShapeError, NoTrainingImagesError)):
            title = "The network does not fit the dataset"
            text = f"Cannot train on {dataset.name} ({dataset.num_classes} classes): {message}"
        else:
            title, text = "Cannot start training", message
        self.notify("warning", title, f"{before}{text}{hint}")

    def toggle_pause(self) -> None:
        if self.runner.paused:
            self.runner.resume()
        else:
            self.runner.pause()

    def stop(self) -> None:
        self.runner.stop()

    def continue_one_epoch(self) -> None:
        if self.continue_refusal():
            return
        self.notices.clear()  # "Stopped during epoch 3. Press +1 epoch…" is about to be out of date
        if self.runner.can_continue:
            self.runner.continue_training(1)
        else:
            self.runner.kept_continuation.continue_run(1)

    def _on_live_rate(self, kind: str, value: float) -> None:
        if not self.runner.running:
            return
        try:
            if kind == "lr":
                self.runner.set_learning_rate(value)
            else:
                self.runner.set_momentum(value)
        except ValueError as exc:
            self.notify("warning", "Rate not changed", str(exc))

    def _on_project_replaced(self) -> None:
        self.pending_start = False
        self.update()
