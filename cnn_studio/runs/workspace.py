"""The project's runs in the window: every run is kept on disk as it trains, opening a project brings its
runs back (curves, results, the last run's weights), and an interrupted run is offered for resuming.

``RunsWorkspace`` is installed by the window (panels.install_panels) with the window's training session;
it tells the session's runner where each run goes (``runner.recording_for``) and restores the document's
run history and trained network from the project's runs folder whenever a project is opened.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from PySide6.QtCore import QCoreApplication, QObject, Qt, Signal
from PySide6.QtGui import QAction
from PySide6.QtWidgets import QMessageBox, QTabWidget

from cnn_studio.messages import headless
from cnn_studio.runs.recording import RunRecording
from cnn_studio.runs.restore import final_weights, restore_history, restore_trained
from cnn_studio.runs.runs_view import RunsView
from cnn_studio.runs.sweep_panel import SweepController, SweepView, plan_sweep, sweep_folder_name, sweepable_keys
from cnn_studio.runs.time_machine import EpochScrubber, TimeMachine
from cnn_studio.training.session import TrainingSession
from cnn_studio.training.settings_binding import KEEP_CHECKPOINTS
from engine.data import Dataset
from engine.errors import EngineError
from engine.runs import RunFolder
from engine.runs.folder import remove_run
from engine.runs.sweep import label
from engine.training import TrainConfig
from engine.weights import build_model

log = logging.getLogger(__name__)


def run_label(config: TrainConfig) -> str:
    """A run folder's name: when, and its main settings."""
    import datetime

    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    return f"{stamp}-{config.optimizer}-lr{config.learning_rate:g}-bs{config.batch_size}"


class RunsWorkspace(QObject):
    """Signals: restored() (a project's runs are back), resume_offered(str) (the run id of an interrupted run
    the user may resume), resumed(str)."""

    restored = Signal()
    resume_offered = Signal(str)
    resumed = Signal(str)

    def __init__(self, window: Any, session: TrainingSession) -> None:
        super().__init__(window)
        self.window = window
        self.document = window.document
        self.store = self.document.run_store
        self.session = session
        self.runner = session.runner
        self.offer: str = ""  # the interrupted run offered for resuming ("" when none)
        self._offer_box: QMessageBox | None = None
        self._resume_pending: tuple[RunFolder, str] | None = None  # waiting for its dataset to load
        self._more = 0  # epochs beyond a kept run's last checkpoint ("+1 epoch"), 0: to its planned end

        self.runner.recording_for = self._recording_for
        self.runner.kept_continuation = self
        self.runner.began.connect(self._on_began)
        window.close_guards.append(self._on_window_closing)
        self.runner.finished.connect(lambda _event: self.store.notify_changed())
        self.runner.failed.connect(lambda _message: self.store.notify_changed())
        self.document.project_replaced.connect(self.restore)
        self.store.warning.connect(lambda text: self.window.statusBar().showMessage(text, 10000))
        session.datasets.loaded.connect(self._on_dataset_loaded)
        session.datasets.failed.connect(self._on_dataset_failed)

        self.time_machine = TimeMachine(self.store, session.datasets, self)
        self.time_machine.describe_latest = self._describe_latest
        # The words for the latest weights follow the run's outcome and the trained network.
        self.document.runs.run_changed.connect(lambda _record: self.time_machine.position_changed.emit())
        self.document.trained.replaced.connect(self.time_machine.position_changed)
        self.time_machine.shown.connect(self._show_epoch)
        self.time_machine.released.connect(self._show_latest)
        self.time_machine.failed.connect(lambda text: self.window.statusBar().showMessage(
            f"Time machine: {text}", 8000))
        self.runner.began.connect(lambda _fresh: self.time_machine.set_enabled(False))
        self.runner.finished.connect(lambda _event: self._after_run())
        self.runner.failed.connect(lambda _message: self._after_run())
        app = QCoreApplication.instance()
        if app is not None:  # quitting without closing the window must still end the loader's thread
            app.aboutToQuit.connect(self.time_machine.shutdown)
        self.inside_scrubber = EpochScrubber(self.time_machine)
        self.train_scrubber = EpochScrubber(self.time_machine)
        self._install_scrubbers()

        self.runs_view = RunsView()
        self.sweep_view = SweepView()
        self.sweeps = SweepController(self.runner, self)
        self.runs_tab = QTabWidget()
        self.runs_tab.setDocumentMode(True)
        self.runs_tab.addTab(self.runs_view, "All runs")
        self.runs_tab.addTab(self.sweep_view, "Sweep")
        self.runs_tab.setTabToolTip(1, "Train a grid or random search of settings, one run after another")
        window.tabs.addTab(self.runs_tab, "Runs")
        window.tabs.setTabToolTip(window.tabs.indexOf(self.runs_tab),
                                  "Every run of the project: sort, filter, compare two, look inside, resume; sweeps")
        self.sweep_view.add_button.clicked.connect(
            lambda: self.sweep_view.add_axis(sweepable_keys(self.document.architecture())))
        self.sweep_view.remove_button.clicked.connect(self.sweep_view.remove_axis)
        self.sweep_view.start_requested.connect(self.start_sweep)
        self.sweep_view.stop_requested.connect(self.sweeps.stop)
        self.sweeps.changed.connect(self._show_sweep)
        self.sweeps.finished.connect(self._on_sweep_finished)
        self._sweep_pending = False
        for key in ("lr", "batch_size"):
            self.sweep_view.add_axis(sweepable_keys(self.document.architecture()), key)
        self.store.changed.connect(self.refresh_runs)
        self.runner.started.connect(lambda _event: self.store.notify_changed())
        self.runs_view.selection_changed.connect(self._on_runs_selected)
        self.runs_view.inspect_requested.connect(self.inspect_run)
        self.runs_view.resume_requested.connect(self.resume_run)
        self.runs_view.delete_requested.connect(self.delete_runs)
        self.runs_view.comparison.image_chosen.connect(self.inspect_image)

        self.resume_action = QAction("Resume Interrupted Run", self)
        self.resume_action.setToolTip("Go on training the run that was interrupted, from its last checkpoint")
        self.resume_action.triggered.connect(lambda _checked=False: self.resume_offered_run())
        self.resume_action.setEnabled(False)
        menu = window.menus.get("Train")
        if menu is not None:
            menu.addSeparator()
            menu.addAction(self.resume_action)
        self.restore()

    # -- keeping runs -----------------------------------------------------------------------------------------
    def _recording_for(self, architecture: dict[str, Any], dataset: Dataset, config: TrainConfig) -> RunRecording:
        try:
            path = self.store.new_run_path(run_label(config))
        except OSError as exc:
            self.window.statusBar().showMessage(f"This run is not kept on disk: {exc.strerror or exc}", 10000)
            path = None
        keep = str((self.document.training or {}).get(KEEP_CHECKPOINTS, "all"))
        spec = self.session.datasets.current_ref or self.document.dataset_ref
        name = self.document.display_name
        return None if path is None else RunRecording(Path(path), spec, keep, architecture_name=name)

    def _on_began(self, _fresh: bool) -> None:
        if self.store.temporary and self.runner.run_id:
            # The run lives in a temporary folder until the project is saved: there is something to save.
            self.document.mark_modified()

    def _on_window_closing(self) -> bool:
        """The window closes (the user saved or discarded): an untitled project's runs go with it."""
        self._close_offer()
        self.time_machine.shutdown()
        self.store.discard_temporary()
        return True

    # -- opening a project ------------------------------------------------------------------------------------
    def folders(self) -> list[RunFolder]:
        """The project's run folders, oldest first (unreadable ones left out)."""
        found = []
        for summary in self.store.runs():
            try:
                found.append(RunFolder.open(summary.path))
            except EngineError as exc:
                log.info("run skipped: %s", exc)
        return found

    def restore(self) -> None:
        """Bring the project's kept runs back: the history's curves and outcomes, the newest run's weights
        and results as the trained network. Offers to resume the newest run when it was interrupted."""
        self._close_offer()
        self.time_machine.release()
        if self.runner.running or self.document.runs.runs:
            return  # (a project with live runs in memory already shows them)
        folders = self.folders()
        self.refresh_runs()
        if not folders:
            self.time_machine.refresh()
            self.restored.emit()
            return
        records = restore_history(self.document.runs, folders)
        panel = self._panel
        if panel is not None and records:
            # The curves' axes span the newest run, as they would at the end of a live one.
            newest = records[-1]
            panel.plots.expect(int(newest.batch_loss.x[-1]) if len(newest.batch_loss) else 1,
                               max(len(newest.epochs), 1))
            panel.plots.redraw()
        for folder in reversed(folders):
            if restore_trained(self.document.trained, folder):
                break
        if panel is not None and not self.document.trained.empty:
            panel.datasets.ensure_loaded()  # the test images the Inside tab looks at, in the background
        self.time_machine.refresh(prefer=self.document.trained.run_id)
        newest = folders[-1]
        if newest.status == "interrupted" and newest.resumable:
            self._offer(newest)
        self.restored.emit()

    # -- the Runs tab --------------------------------------------------------------------------------------------
    def refresh_runs(self) -> None:
        self.runs_view.set_runs(self.store.runs())

    def _on_runs_selected(self, paths: list[str]) -> None:
        chosen = self.runs_view.selected()
        if len(chosen) != 2:
            self.runs_view.comparison.clear()  # (the hint beside the run actions says what to select)
            return
        try:
            a, b = RunFolder.open(chosen[0].path), RunFolder.open(chosen[1].path)
        except EngineError as exc:
            self.runs_view.comparison.clear(f"Cannot compare: {exc}")
            return
        self.runs_view.comparison.compare(a, b, self.runs_view.comparison_names(chosen), self.session.datasets.current)

    def inspect_run(self, path: str) -> bool:
        """Look inside a run's final (or latest kept) weights in the Inside tab."""
        try:
            folder = RunFolder.open(path)
        except EngineError as exc:
            self.window.statusBar().showMessage(f"Cannot open the run: {exc}", 8000)
            return False
        found = final_weights(folder)
        if found is None or self._inside is None:
            self.window.statusBar().showMessage("This run has no weights to look at yet", 8000)
            return False
        architecture, preprocessing, tensors, epochs = found
        try:
            model = build_model(architecture, preprocessing, tensors, source=folder.id)
        except EngineError as exc:
            self.window.statusBar().showMessage(f"Cannot load the run's weights: {exc}", 8000)
            return False
        number = next((self.runs_view.number_of(r) for r in self.runs_view.runs() if str(r.path) == str(path)), 0)
        self.time_machine.release()
        self._inside.pin_model(model, f"Run {number or folder.id} after {epochs} epochs",
                               self.session.datasets.current, folder.load_evaluation())
        self.window.tabs.setCurrentWidget(self._inside)
        return True

    def inspect_image(self, path: str, index: int) -> None:
        """A flipped test image: look at it inside the run whose weights got it (B)."""
        if self.inspect_run(path) and self._inside is not None:
            self._inside.open_test_image(index)

    def resume_run(self, path: str) -> bool:
        self.offer = Path(path).name if Path(path).parent == self.store.folder else ""
        try:
            folder = RunFolder.open(path)
        except EngineError as exc:
            self.window.statusBar().showMessage(f"Cannot resume the run: {exc}", 10000)
            return False
        return self._resume_folder(folder)

    def delete_runs(self, paths: list[str]) -> None:
        if not paths or self.runner.running:
            return
        if not headless():
            answer = QMessageBox.question(
                self.window, "Delete runs?",
                f"Delete {len(paths)} run{'s' if len(paths) > 1 else ''} with {'their' if len(paths) > 1 else 'its'} "
                "checkpoints and weights? This cannot be undone.")
            if answer != QMessageBox.StandardButton.Yes:
                return
        for path in paths:
            try:
                remove_run(path)
            except (EngineError, OSError) as exc:
                self.window.statusBar().showMessage(f"Could not delete {Path(path).name}: {exc}", 10000)
        self.store.notify_changed()
        self.time_machine.refresh(prefer=self.document.trained.run_id)

    # -- the time machine ------------------------------------------------------------------------------------
    def _install_scrubbers(self) -> None:
        # (built before the window keeps its workspaces in attributes: found among its children)
        self._inside = self._find_inside()
        self._panel = self._find_training_panel()
        if self._inside is not None:
            self._inside.layout().insertWidget(1, self.inside_scrubber)
            self._inside.pin_changed.connect(lambda text: self.time_machine.release() if not text else None)
        if self._panel is not None:
            self._panel.results.layout().insertWidget(0, self.train_scrubber)

    def _find_inside(self) -> Any:
        from cnn_studio.inspect.panel import InsidePanel

        found = self.window.findChildren(InsidePanel)
        return found[0] if found else None

    def _find_training_panel(self) -> Any:
        from cnn_studio.training.panel import TrainingPanel

        found = self.window.findChildren(TrainingPanel)
        return found[0] if found else None

    def _describe_latest(self) -> str:
        """Whose the trained network's weights are: "run 3 · 2 epochs", "run 4 · 0 epochs · stopped",
        "imported weights"; "" when nothing is trained."""
        trained = self.document.trained
        if trained.empty:
            return ""
        if trained.imported:
            return "imported weights"
        epochs = trained.epochs_completed
        said = f"{epochs} epoch{'s' if epochs != 1 else ''}"
        record = self.document.runs.by_run_id(trained.run_id) if trained.run_id else None
        if record is None:
            return said
        outcome = "" if record.outcome in ("completed", "running") else f" · {record.outcome}"
        return f"run {record.number} · {said}{outcome}"

    def _after_run(self) -> None:
        folder = self.runner.kept_run
        if folder is not None and str(folder.path) in self.store.moved:
            # The run moved beside the project (it was saved while the run trained): "+1 epoch" writes there.
            folder.relocate(self.store.moved[str(folder.path)])
        self.time_machine.set_enabled(True)
        self.time_machine.refresh(prefer=self.document.trained.run_id)

    def _class_names(self, k: int) -> list[str]:
        dataset = self.session.datasets.current
        names = list(dataset.class_names) if dataset is not None else self.document.trained.class_names()
        return names if len(names) == k else [str(i) for i in range(k)]

    def _show_epoch(self, view: Any) -> None:
        inside = self._inside
        dataset = self.session.datasets.current
        if inside is not None:
            inside.pin_model(view.model, view.label, dataset, view.evaluation)
        panel = self._panel
        if panel is not None:
            shown = panel.plots.record
            # The epoch is marked on the curves when they are that run's (another run's curves may be shown).
            panel.plots.mark_epoch(view.epoch if shown is not None and shown.run_id == Path(view.run_id).name else None)
            results = panel.results
            if view.evaluation is not None:
                results.show_evaluation(view.evaluation, self._class_names(len(view.evaluation.confusion)))
                results.headline.setText(f"{view.label}: test accuracy {view.evaluation.accuracy:.2%}")
            else:
                results.clear(f"{view.label}: load the dataset to see its test results")

    def _show_latest(self) -> None:
        inside = self._inside
        if inside is not None:
            inside.unpin()
        panel = self._panel
        if panel is not None:
            panel.plots.mark_epoch(None)
            evaluation = self.document.trained.evaluation()
            if evaluation is not None:
                panel.results.show_evaluation(evaluation, self._class_names(len(evaluation.confusion)))
            else:
                panel.results.clear("No test results yet: they appear when a run ends.")

    # -- resuming ---------------------------------------------------------------------------------------------
    def _offer(self, folder: RunFolder) -> None:
        self.offer = folder.id
        self.resume_action.setEnabled(True)
        self.resume_action.setText(f"Resume Interrupted Run ({folder.epochs_completed}/{folder.epochs_planned} "
                                   "epochs)")
        self.resume_offered.emit(folder.id)
        if headless():
            return  # nobody could answer: the Train menu keeps the offer
        box = QMessageBox(QMessageBox.Icon.Question, "Resume the interrupted run?",
                          f"The last run of this project was interrupted after epoch {folder.epochs_completed} of "
                          f"{folder.epochs_planned}.", parent=self.window)
        box.setInformativeText("Resume it from its last checkpoint? It ends exactly as if it had never stopped. "
                               "(Train > Resume Interrupted Run offers it later too.)")
        resume = box.addButton("Resume", QMessageBox.ButtonRole.AcceptRole)
        box.addButton("Not now", QMessageBox.ButtonRole.RejectRole)
        box.setDefaultButton(resume)
        box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        box.setWindowModality(Qt.WindowModality.WindowModal)
        box.buttonClicked.connect(lambda button: self.resume_offered_run() if button is resume else None)
        box.finished.connect(lambda _result: setattr(self, "_offer_box", None))
        self._offer_box = box
        box.open()

    def _close_offer(self) -> None:
        self.offer = ""
        self.resume_action.setEnabled(False)
        self.resume_action.setText("Resume Interrupted Run")
        box, self._offer_box = self._offer_box, None
        if box is not None:
            box.close()

    # -- "+1 epoch" on a kept run (the project was reopened) ------------------------------------------------------
    def available(self) -> bool:
        """Whether the trained network's kept run can train on from its last checkpoint."""
        run_id = self.document.trained.run_id
        if not run_id or self.runner.running or self._resume_pending is not None:
            return False
        folder = self.store.folder / run_id
        try:
            kept = RunFolder.open(folder)
        except EngineError:
            return False
        return kept.status != "running" and bool(kept.checkpoints()) and bool((kept.record.get("dataset") or {})
                                                                               .get("spec"))

    def continue_run(self, epochs: int = 1) -> bool:
        """Train the trained network's kept run ``epochs`` more epochs (its dataset loads first if needed)."""
        if not self.available():
            return False
        folder = RunFolder.open(self.store.folder / self.document.trained.run_id)
        return self._resume_folder(folder, more=epochs)

    def resume_offered_run(self) -> bool:
        """Resume the offered run: its dataset loads if needed, then it trains on. False when not possible."""
        if not self.offer or self.runner.running:
            return False
        try:
            folder = RunFolder.open(self.store.folder / self.offer)
        except EngineError as exc:
            self.window.statusBar().showMessage(f"Cannot resume the run: {exc}", 10000)
            return False
        return self._resume_folder(folder)

    def _resume_folder(self, folder: RunFolder, more: int = 0) -> bool:
        """Train ``folder``'s run on from its last checkpoint: to its planned epochs, or ``more`` epochs
        beyond the last one it kept."""
        if self.runner.running:
            return False
        self._more = more
        spec = (folder.record.get("dataset") or {}).get("spec")
        if not spec:
            self.window.statusBar().showMessage("Cannot resume the run: its dataset was not loaded from a file", 10000)
            return False
        self._close_offer()
        datasets = self.session.datasets
        if datasets.has(spec):
            self._resume(folder, datasets.current)
        else:
            self._resume_pending = (folder, spec)
            datasets.request(spec)
        return True

    # -- sweeps ------------------------------------------------------------------------------------------------
    def start_sweep(self) -> bool:
        """Start the sweep the Sweep page defines (after loading the dataset if needed)."""
        view = self.sweep_view
        if self.runner.running or self.sweeps.running:
            view.message.setText("A run is training: stop it first.")
            return False
        datasets = self.session.datasets
        ref = self.document.dataset_ref
        if not datasets.has(ref):
            self._sweep_pending = True
            view.message.setText("Loading the dataset…")
            datasets.request(ref)
            return True
        panel = self._panel
        config = panel.form.config() if panel is not None else TrainConfig()
        try:
            sweep = plan_sweep(view, self.document.architecture(), config, self.store.folder / sweep_folder_name(),
                               self.document.display_name)
        except (EngineError, ValueError) as exc:
            view.message.setText(f"<span style='color:#b00020'>{exc}</span>")
            return False
        view.message.setText(f"Sweep of {len(sweep.runs)} runs: each trains in turn (watch it live on the Train "
                             "tab); the table and the plot fill as runs end.")
        view.set_running(True)
        keep = str((self.document.training or {}).get(KEEP_CHECKPOINTS, "best"))
        self.sweeps.start(sweep, datasets.current, datasets.current_ref or ref, keep)
        return True

    def _show_sweep(self) -> None:
        sweep = self.sweeps.sweep
        if sweep is not None:
            self.sweep_view.show_runs(sweep, self.sweeps.index)

    def _on_sweep_finished(self, how: str) -> None:
        view = self.sweep_view
        view.set_running(False)
        self._show_sweep()
        sweep = self.sweeps.sweep
        best = sweep.ranked()[0] if sweep is not None and sweep.runs else None
        if best is not None and best.summary is not None:
            view.message.setText(f"Sweep {how}. Best: {label(best.point)}, validation accuracy "
                                 f"{best.best_val_accuracy:.2%} (in bold in the table).")
        else:
            view.message.setText(f"Sweep {how}.")
        self.store.notify_changed()

    def _on_dataset_loaded(self, ref: str, dataset: Dataset) -> None:
        if self._sweep_pending and ref == self.document.dataset_ref:
            self._sweep_pending = False
            self.start_sweep()
        pending = self._resume_pending
        if pending is not None and pending[1] == ref:
            self._resume_pending = None
            self._resume(pending[0], dataset)

    def _on_dataset_failed(self, ref: str, message: str) -> None:
        if self._sweep_pending:
            self._sweep_pending = False
            self.sweep_view.message.setText(f"The dataset did not load: {message}")
        pending = self._resume_pending
        if pending is not None and pending[1] == ref:
            self._resume_pending = None
            self.window.statusBar().showMessage(f"Cannot resume the run: {message}", 10000)

    def _resume(self, folder: RunFolder, dataset: Dataset) -> None:
        record = folder.record
        planned = folder.epochs_planned
        if self._more:
            kept = [e for e, _ in folder.checkpoints()]
            planned = (kept[-1] if kept else folder.epochs_completed) + self._more
        config = TrainConfig.from_dict({**record["config"], "epochs": planned})
        recording = RunRecording(folder.path, resume=True)
        try:
            self.runner.start(record["architecture"], dataset, config, recording=recording)
        except (EngineError, ValueError) as exc:
            self.window.statusBar().showMessage(f"Cannot resume the run: {exc}", 10000)
            return
        self.window.statusBar().showMessage(
            f"Training the run on from epoch {folder.epochs_completed} to {planned}", 6000)
        self.resumed.emit(folder.id)


def install_runs(window: Any, session: TrainingSession) -> RunsWorkspace:
    return RunsWorkspace(window, session)
