"""Shows runs as they go: the curves (redrawn at a fixed rate), the progress readouts, the test results and
what happened at the end of a run. It only reads the session's pieces; the run itself is steered elsewhere.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from PySide6.QtCore import QObject, QTimer, Signal
from PySide6.QtWidgets import QWidget

from cnn_studio.training.confusion_view import ResultsView
from cnn_studio.training.notices import Notices
from cnn_studio.training.plots import TrainingPlots
from cnn_studio.training.progress import TrainingProgress, format_duration
from cnn_studio.training.run_history import RunRecord
from cnn_studio.training.session import TrainingSession
from engine.training import BatchEnd, EpochEnd, TrainingFinished, TrainingStarted

# Curves and progress text are redrawn at this rate while a run goes on, however fast batches arrive:
# the GUI's share of the CPU stays small and fixed, and the engine keeps the cores.
LIVE_REDRAWS_PER_SECOND = 5
TEXT_EVERY_TICKS = 3  # the progress readout line: about twice a second
NO_RESULTS = "No test results yet: they appear when a run ends."
IMPORTED_RESULTS = ("These results belong to the last run, not to the imported weights: Start trains on from "
                    "the imported weights.")
NO_RESULTS_IMPORTED = "No test results for the imported weights: Start trains on from them, then tests them."


class RunMonitor(QObject):
    """Signal ``run_ended(str)`` carries the finished reason ("completed", "stopped", "diverged" or "failed")
    after every view has been updated (tests and scripts wait on it)."""

    run_ended = Signal(str)

    def __init__(self, session: TrainingSession, plots: TrainingPlots, results: ResultsView,
                 dock_progress: TrainingProgress, status_progress: TrainingProgress, notices: Notices,
                 notify: Callable[[str, str, str], None], parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.session = session
        self.runner = session.runner
        self.trained = session.trained
        self.runs = session.runs
        self.plots = plots
        self.results = results
        self.dock_progress = dock_progress
        self.status_progress = status_progress
        self.notices = notices
        self.notify = notify
        self.closing = False  # the window is closing: end-of-run messages would pop up over nothing
        self._epochs_before_run = 0  # epochs done before the current run started ("+1 epoch" continues)
        self._epoch_elapsed = 0.0  # the trainer's elapsed seconds at the current run's last epoch end
        self._latest_batch: BatchEnd | None = None
        self._live_ticks = 0
        self._live_timer = QTimer(self)
        self._live_timer.setInterval(1000 // LIVE_REDRAWS_PER_SECOND)
        self._live_timer.timeout.connect(self._refresh_live)
        status_progress.setVisible(False)

        runner, runs, trained = self.runner, self.runs, self.trained
        runs.run_added.connect(self._on_run_added)
        runs.batches_added.connect(self._on_batches_added)
        runs.run_changed.connect(lambda _record: self.plots.data_changed())
        runs.cleared.connect(self._on_runs_cleared)
        runner.started.connect(self._on_started)
        runner.epoch_end.connect(self._on_epoch_end)
        runner.rate_changed.connect(self._on_rate_changed)
        runner.status.connect(self.dock_progress.label.setText)
        runner.warning.connect(self.notices.say)
        runner.state_changed.connect(self._on_state_changed)
        runner.finished.connect(self._on_finished)
        runner.failed.connect(self._on_failed)
        trained.evaluation_changed.connect(self._on_evaluation)
        trained.replaced.connect(self._on_trained_replaced)

    def _status(self, text: str, timeout_ms: int) -> None:
        self.notices.status(text, timeout_ms)

    @property
    def progresses(self) -> tuple[TrainingProgress, TrainingProgress]:
        return self.dock_progress, self.status_progress

    # -- a run begins --------------------------------------------------------------------------------------------
    def _on_run_added(self, record: RunRecord) -> None:
        self.plots.begin_run(record)
        if not self.runner.running:  # a run kept with the project, put back as the project opened
            self._show_kept_run(record)
            return
        if self.results.evaluation is not None and len(self.runs.runs) > 1:
            previous = self.runs.runs[-2]
            self.results.mark_stale(f"Run {previous.number}'s results (run {record.number} is training)")
        else:
            self.results.clear()
        for progress in self.progresses:
            progress.begin(0, record.config.epochs, 1)

    def _show_kept_run(self, record: RunRecord) -> None:
        """The progress line of a project opened with its runs: how its latest run ended."""
        epochs = len(record.epochs)
        outcome = {"completed": "finished", "running": "interrupted"}.get(record.outcome, record.outcome)
        text = f"Run {record.number} {outcome} after {epochs} epoch{'s' if epochs != 1 else ''}"
        for progress in self.progresses:
            progress.reset()
            progress.done(text, complete=record.outcome == "completed")
        self.status_progress.setVisible(False)

    def _on_started(self, event: TrainingStarted) -> None:
        record = self.runs.current
        if record is not None:
            self.plots.begin_run(record)  # a continued run keeps its curves and rate markers
        done = self.trained.epochs_completed
        self._epochs_before_run = done
        last = self.runner.last_batch
        first_step = last.step if last is not None else 0
        self.plots.expect(first_step + event.epochs * event.batches_per_epoch, done + event.epochs)
        self._epoch_elapsed = 0.0
        for progress in self.progresses:
            progress.begin(done, event.epochs, event.batches_per_epoch)
        self._latest_batch = None
        self._live_timer.start()

    def _on_state_changed(self) -> None:
        if self.runner.running:
            self.status_progress.setVisible(True)
            for progress in self.progresses:
                progress.set_paused(self.runner.paused)

    def stopping(self) -> None:
        """Stop was asked for: the run ends after the current batch."""
        if self.runner.running:
            self.dock_progress.label.setText("Stopping after the current batch…")

    # -- while it runs -----------------------------------------------------------------------------------------
    def _on_batches_added(self, record: RunRecord) -> None:
        if record is self.plots.record:
            self.plots.data_changed()
        self._latest_batch = self.runner.last_batch

    def _refresh_live(self, final: bool = False) -> None:
        self.plots.refresh()
        self._live_ticks += 1
        if self._latest_batch is not None:
            # The bars move at every tick; the readout text (speed, ETA) changes less often, which is
            # easier to read and spares a re-layout of the status bar and the dock.
            text = final or self._live_ticks % TEXT_EVERY_TICKS == 0
            for progress in self.progresses:
                progress.show_batch(self._latest_batch, self.runner.paused, text=text)
            if text:
                self._latest_batch = None

    def _on_epoch_end(self, event: EpochEnd) -> None:
        self._epoch_elapsed = event.elapsed
        val = "" if math.isnan(event.val_loss) else f", validation loss {event.val_loss:.4f} " \
                                                   f"({event.val_accuracy:.1%})"
        self._status(f"Epoch {event.epoch}/{event.epochs}: training loss {event.train_loss:.4f} "
                     f"({event.train_accuracy:.1%}){val}", 5000)
        if event.note:  # e.g. the plateau schedule lowered the learning rate
            self.notices.say(f"After epoch {event.epoch}: {event.note}.", timeout_ms=8000)

    def _on_rate_changed(self, kind: str, value: float, step: int) -> None:
        self.plots.mark_rate_change(step, kind, value)
        name = "learning rate" if kind == "lr" else "momentum"
        self._status(f"{name} set to {value:g} from batch {step}", 4000)

    # -- a run ends ----------------------------------------------------------------------------------------------
    def _end_live(self) -> None:
        self._live_timer.stop()
        self._refresh_live(final=True)
        self.plots.end_run()

    def _on_finished(self, event: TrainingFinished) -> None:
        self._end_live()
        last = self.runner.last_batch
        # The trainer's clock (pauses left out), through the last epoch's validation: the training
        # time the run's record and the Runs table show.
        elapsed = max(last.elapsed, self._epoch_elapsed) if last is not None else float("nan")
        text = {"completed": "Finished", "stopped": "Stopped", "diverged": "Diverged"}.get(event.reason, event.reason)
        total = event.epochs_completed
        this_run = total - self._epochs_before_run
        summary = f"{text} after {total} epoch{'s' if total != 1 else ''} · {format_duration(elapsed)}"
        if this_run != total:  # "+1 epoch": the time covers only this part
            summary = (f"{text} at epoch {total} · {format_duration(elapsed)} for the last "
                       f"{this_run} epoch{'s' if this_run != 1 else ''}")
        for progress in self.progresses:
            progress.done(summary, complete=event.reason == "completed")
        if event.reason == "diverged":
            self.notices.show(event.message, error=True)
            if not self.closing:
                self.notify("warning", "Training diverged", event.message)
        elif event.reason == "completed" and event.message:  # stopped early, or ended on its best epoch
            self.notices.show(event.message[:1].upper() + event.message[1:] + ".")
        elif event.reason == "stopped":
            said = event.message[:1].upper() + event.message[1:] if event.message else "Stopped"
            self.notices.show(f"{said}. Press +1 epoch to go on from these weights.")
        self.run_ended.emit(event.reason)

    def _on_failed(self, message: str) -> None:
        self._end_live()
        for progress in self.progresses:
            progress.done("Training failed", complete=False)
        self.notices.show(f"Training failed: {message}", error=True)
        if not self.closing:
            self.notify("error", "Training failed", message)
        self.run_ended.emit("failed")

    def _on_evaluation(self) -> None:
        evaluation = self.trained.evaluation()
        if evaluation is None:
            return  # dropped with the weights it belonged to: _on_trained_replaced says what now
        k = len(evaluation.confusion)
        known = self.trained.class_names()
        names = known if len(known) == k else [str(i) for i in range(k)]
        self.results.show_evaluation(evaluation, names)

    # -- another network, another project ---------------------------------------------------------------------------
    def _on_trained_replaced(self) -> None:
        if self.trained.empty:
            self.results.clear(NO_RESULTS)
        elif self.results.evaluation is not None:
            self.results.mark_stale(IMPORTED_RESULTS)
        else:
            self.results.clear(NO_RESULTS_IMPORTED)

    def _on_runs_cleared(self) -> None:
        self._live_timer.stop()
        self._latest_batch = None
        self.plots.clear()
        for progress in self.progresses:
            progress.reset()
        self.status_progress.setVisible(False)


def status_echo(window: QWidget) -> Callable[[str, int], None]:
    """A status-bar writer for ``Notices``."""
    return lambda text, timeout_ms: window.statusBar().showMessage(text, timeout_ms)
