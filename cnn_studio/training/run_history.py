"""The project's run history: each run's curves, settings and outcome, and the recorder that fills it.

``RunHistory`` is owned by the project document (``ProjectDocument.runs``) and cleared with it when the
project is replaced. ``RunRecorder`` writes what a ``TrainingRunner`` reports into the history's
current run; views (plots, the run list) only read the history and follow its signals.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from PySide6.QtCore import QObject, Signal

from cnn_studio.training.run_colors import run_color
from cnn_studio.training.series import GrowingSeries, SmoothedSeries
from engine.architecture import analyze
from engine.training import BatchEnd, EpochEnd, TrainConfig, TrainingFinished, TrainingStarted

# Layer kinds a network is summed up by, in this order ("2 conv, 2 dense, 225k params").
SUMMARY_KINDS = (("Conv2D", "conv"), ("BatchNorm", "batch norm"), ("Dense", "dense"))


def describe_network(architecture: dict[str, Any]) -> str:
    """A short name for a network: its main layers and parameter count, e.g. '2 conv, 2 dense, 225k params'."""
    counts = Counter(spec.get("type") for spec in architecture.get("layers", []) if isinstance(spec, dict))
    parts = [f"{counts[kind]} {word}" for kind, word in SUMMARY_KINDS if counts[kind]]
    analysis = analyze(architecture)
    params = analysis.trainable_params + analysis.non_trainable_params
    if params:
        parts.append(f"{_compact(params)} params")
    return ", ".join(parts) or "empty network"


def _compact(n: int) -> str:
    for scale, suffix in ((1e6, "M"), (1e3, "k")):
        if n >= scale:
            return f"{n / scale:.3g}{suffix}"
    return str(n)


@dataclass
class RunRecord:
    """One training run (including any "+1 epoch" continuations) as the plots and the list show it."""

    number: int
    config: TrainConfig
    dataset_name: str
    network: str = ""  # what was trained, in a few words (describe_network)
    batch_loss: GrowingSeries = field(default_factory=GrowingSeries)
    smoothed_loss: SmoothedSeries = field(default_factory=SmoothedSeries)
    epochs: list[EpochEnd] = field(default_factory=list)
    rate_changes: list[tuple[int, str, float]] = field(default_factory=list)  # (step, "lr"/"momentum", value)
    outcome: str = "running"  # or "paused" (while the runner is paused), a TrainingFinished reason, or "failed"
    message: str = ""
    test_accuracy: float | None = None
    run_id: str = ""  # its run folder in the project's runs folder ("" when the run was not kept)

    @property
    def label(self) -> str:
        """'run 2: sgd lr 0.05 bs 32'; a learning rate changed during the run reads 'lr 0.05→0.005'."""
        c = self.config
        lr = f"{c.learning_rate:g}"
        changed = [value for _step, kind, value in self.rate_changes if kind == "lr"]
        if changed and changed[-1] != c.learning_rate:
            lr += f"→{changed[-1]:g}"
        return f"run {self.number}: {c.optimizer} lr {lr} bs {c.batch_size}"

    @property
    def color(self) -> str:
        """The run's hue in every Train-tab plot and the run list, current or overlaid (run_colors)."""
        return run_color(self.number)

    def describe(self) -> str:
        """The label, the network and what the run reached, for the history list."""
        parts = [self.label]
        if self.network:
            parts.append(self.network)
        parts.append(f"{len(self.epochs)} epoch{'s' if len(self.epochs) != 1 else ''}")
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
    """Every run of the project, oldest first.

    Signals: run_added(RunRecord), run_changed(RunRecord) (outcome, epochs, accuracy or label changed),
    batches_added(RunRecord) (new points on its loss curve), cleared() (the project was replaced).
    """

    run_added = Signal(object)
    run_changed = Signal(object)
    batches_added = Signal(object)
    cleared = Signal()

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.runs: list[RunRecord] = []

    @property
    def current(self) -> RunRecord | None:
        return self.runs[-1] if self.runs else None

    def new_run(self, config: TrainConfig, dataset_name: str, network: str = "") -> RunRecord:
        record = RunRecord(len(self.runs) + 1, config, dataset_name, network)
        self.runs.append(record)
        self.run_added.emit(record)
        return record

    def changed(self, record: RunRecord) -> None:
        self.run_changed.emit(record)

    def restore(self, records: list[RunRecord]) -> None:
        """Put back runs kept on disk (a project was opened), oldest first, as if they had just run."""
        for record in records:
            record.number = len(self.runs) + 1
            self.runs.append(record)
            self.run_added.emit(record)

    def by_run_id(self, run_id: str) -> RunRecord | None:
        return next((r for r in self.runs if run_id and r.run_id == run_id), None)

    def clear(self) -> None:
        self.runs.clear()
        self.cleared.emit()


class RunRecorder(QObject):
    """Writes what a TrainingRunner reports into the history: a new record for each fresh run, then its
    batches, epochs, rate changes, outcome and (from the trained network) test accuracy."""

    def __init__(self, history: RunHistory, runner: Any, trained: Any, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.history = history
        self.runner = runner
        self.trained = trained
        self._recording = False
        runner.began.connect(self._on_began)
        runner.started.connect(self._on_started)
        runner.batches.connect(self._on_batches)
        runner.epoch_end.connect(self._on_epoch_end)
        runner.rate_changed.connect(self._on_rate_changed)
        runner.finished.connect(self._on_finished)
        runner.failed.connect(self._on_failed)
        runner.state_changed.connect(self._on_state_changed)
        trained.evaluation_changed.connect(self._on_evaluation)
        trained.replaced.connect(self._stop_recording)

    def _on_began(self, fresh: bool) -> None:
        record = self.history.current
        run_id = getattr(self.runner, "run_id", "")
        if record is not None and not fresh and record.run_id != run_id:
            fresh = True  # a kept run resumed whose record is not the newest: it gets a record of its own
        if fresh or record is None:
            dataset = self.runner.dataset
            architecture = self.trained.architecture() or {}
            record = self.history.new_run(self.runner.config, dataset.name if dataset is not None else "",
                                          describe_network(architecture))
            record.run_id = run_id
        else:  # "+1 epoch" (or a kept run resumed): the current run goes on
            record.outcome = "running"
            self.history.changed(record)
        self._recording = True

    def _current(self) -> RunRecord | None:
        return self.history.current if self._recording else None

    def _stop_recording(self) -> None:
        self._recording = False

    def _on_started(self, event: TrainingStarted) -> None:
        record = self._current()
        if record is not None:
            record.set_smoothing(event.batches_per_epoch)

    def _on_batches(self, events: tuple[BatchEnd, ...]) -> None:
        record = self._current()
        if record is not None:
            record.add_batches(events)
            self.history.batches_added.emit(record)

    def _on_epoch_end(self, event: EpochEnd) -> None:
        record = self._current()
        if record is not None:
            record.epochs.append(event)
            self.history.changed(record)

    def _on_rate_changed(self, kind: str, value: float, step: int) -> None:
        record = self._current()
        if record is not None:
            record.rate_changes.append((step, kind, value))
            self.history.changed(record)

    def _on_state_changed(self) -> None:
        # Pause and resume change no event stream, only the runner's state: mirror it into the outcome so the
        # run list says "paused" instead of "running". An ended run's outcome (stopped, completed) stays.
        record = self._current()
        if record is None or record.outcome not in ("running", "paused"):
            return
        outcome = "paused" if self.runner.paused else "running"
        if outcome != record.outcome:
            record.outcome = outcome
            self.history.changed(record)

    def _on_finished(self, event: TrainingFinished) -> None:
        record = self._current()
        if record is not None:
            record.outcome, record.message = event.reason, event.message
            self.history.changed(record)

    def _on_failed(self, message: str) -> None:
        record = self._current()
        if record is not None:
            record.outcome, record.message = "failed", message
            self.history.changed(record)

    def _on_evaluation(self) -> None:
        record = self._current()
        evaluation = self.trained.evaluation()
        if record is not None and evaluation is not None:
            record.test_accuracy = evaluation.accuracy
            self.history.changed(record)
