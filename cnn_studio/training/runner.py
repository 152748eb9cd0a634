"""TrainingRunner: starts, steers and stops training runs on a worker QThread, from the GUI thread.

What a run trains (its weight snapshots and test evaluation) is written into a ``TrainedNetwork``, the
project's record of what was trained for it; the run's own progress (batches, epochs, its end) is
announced with the runner's signals. Between runs the worker and its trainer are kept, so "+1 epoch"
continues the same weights and optimizer state, until the trained network is replaced (imported
weights, another project) or a new run starts.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from typing import Any

import numpy as np
from PySide6.QtCore import QObject, QThread, QTimer, Signal, Slot

from cnn_studio.runs.recording import RunRecording
from cnn_studio.training.threads import new_thread, register
from cnn_studio.training.trained import TrainedNetwork, WeightSnapshot
from cnn_studio.training.training_worker import (
    Batches,
    ProbeResult,
    RunFailed,
    Status,
    TrainingWorker,
    WorkerWarning,
    compute_probe,
)
from engine.architecture import analyze
from engine.data import Dataset
from engine.doctor import DoctorReport
from engine.errors import TrainingError
from engine.metrics import Evaluation
from engine.preflight import check_training
from engine.training import BatchEnd, EpochEnd, TrainConfig, TrainingFinished, TrainingStarted


class TrainingRunner(QObject):
    """One training run at a time, on a worker thread; payloads of its signals are copies or immutable events.

    Signals (GUI thread):
      began(bool)                       a run was asked for: True for a fresh run, False for "+1 epoch"
      started(TrainingStarted)          the worker began it
      batches(tuple[BatchEnd, ...])     every batch since the previous update, at most ~10 updates a second
      epoch_end(EpochEnd)               after the epoch's snapshot reached the trained network
      finished(TrainingFinished)        the run ended (completed, stopped, diverged)
      failed(str)                       the run ended with an error, in one line
      state_changed()                   running / paused / can_continue changed
      rate_changed(str, float, int)     "lr" or "momentum" set to a value, effective from a step
      probe_ready(ProbeResult)          the probe sample's layer outputs (live while training; on demand idle)
      diagnosed(DoctorReport)           the training doctor's records and diagnoses, after each epoch
      status(str), warning(str)         what the worker is doing; a warning raised while training
    """

    began = Signal(bool)
    started = Signal(object)
    batches = Signal(object)
    epoch_end = Signal(object)
    finished = Signal(object)
    failed = Signal(str)
    state_changed = Signal()
    rate_changed = Signal(str, float, int)
    probe_ready = Signal(object)
    diagnosed = Signal(object)
    status = Signal(str)
    warning = Signal(str)

    _run_requested = Signal(int)

    def __init__(self, trained: TrainedNetwork, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.trained = trained
        self._thread: QThread | None = None
        self._worker: TrainingWorker | None = None
        self._active_runs = 0
        self._paused = False
        self._thread_quitting = False
        self._config: TrainConfig | None = None
        self._last_batch: BatchEnd | None = None
        self._recorded: WeightSnapshot | None = None  # the last snapshot handed to the trained network
        self._probe_x: np.ndarray | None = None
        self._idle_probe_timer = QTimer(self)
        self._idle_probe_timer.setSingleShot(True)
        self._idle_probe_timer.timeout.connect(self._compute_idle_probe)
        trained.replaced.connect(self._on_trained_replaced)
        # Where a fresh run is kept on disk: set by whoever owns the project's runs folder; called with
        # (architecture, dataset, config), it returns a RunRecording or None (the run is not kept).
        self.recording_for: Callable[[dict[str, Any], Dataset, TrainConfig], RunRecording | None] | None = None
        # Continues a kept run whose trainer is gone (a project reopened): an object with available() and
        # continue_run(epochs), set by whoever owns the project's runs; None when there is none.
        self.kept_continuation: Any = None
        self._recording: RunRecording | None = None

    # -- state ------------------------------------------------------------------------------------------
    @property
    def running(self) -> bool:
        return self._active_runs > 0

    @property
    def paused(self) -> bool:
        return self.running and self._paused

    @property
    def can_continue(self) -> bool:
        """True when a finished run's trainer is kept, so ``continue_training`` can go on with it."""
        return not self.running and self._worker is not None and self._worker.trainer is not None

    @property
    def config(self) -> TrainConfig | None:
        """The settings of the current (or last) run."""
        return self._config

    @property
    def dataset(self) -> Dataset | None:
        """The dataset of the current (or last) run, while its trainer is kept."""
        return None if self._worker is None else self._worker.dataset

    @property
    def kept_run(self) -> Any:
        """The RunFolder the kept trainer records into (None when the run is not kept)."""
        session = self._worker.run_session if self._worker is not None else None
        return None if session is None else session.folder

    @property
    def run_id(self) -> str:
        """The run folder the current (or last) run is kept in ("" when it is not kept)."""
        return self._recording.run_id if self._recording is not None else ""

    @property
    def last_batch(self) -> BatchEnd | None:
        return self._last_batch

    @property
    def learning_rate(self) -> float | None:
        """The rate the optimizer used last (None before any run)."""
        if self._worker is not None and self._worker.trainer is not None:
            return float(self._worker.trainer.optimizer.lr)
        return None if self._config is None else self._config.learning_rate

    @property
    def momentum(self) -> float | None:
        """The optimizer's momentum (Adam's beta1) as it stands (None before any run)."""
        if self._worker is not None and self._worker.trainer is not None:
            return float(self._worker.trainer.optimizer.momentum)
        return None if self._config is None else self._config.momentum

    # -- runs ---------------------------------------------------------------------------------------------
    def start(self, architecture: dict[str, Any], dataset: Dataset, config: TrainConfig,
              initial_weights: dict[str, np.ndarray] | None = None, recording: RunRecording | None = None,
              initial_preprocessing: dict[str, Any] | None = None) -> None:
        """Train a network built from a copy of ``architecture`` on ``dataset``.

        It starts from ``initial_weights`` when given (e.g. imported ones), else from a fresh seeded
        initialisation; ``initial_preprocessing`` (their record of the inputs they were trained on)
        then normalises the data as they expect. The run is kept on disk as ``recording`` says (by
        default as ``recording_for`` says); a recording with ``resume`` continues the interrupted run
        in its folder from its last checkpoint, up to its planned epochs.

        Raises the engine's typed errors (engine.preflight) at once, before any thread starts, for
        whatever can be seen without training: a setting out of range, an invalid architecture, the
        wrong number of classes, another input shape, no training images left.
        """
        if self.running:
            raise TrainingError("training is already running; stop it first")
        architecture = copy.deepcopy(architecture)
        check_training(analyze(architecture), dataset, config)  # the worker builds through prepare()
        if recording is None and self.recording_for is not None:
            recording = self.recording_for(architecture, dataset, config)
        self._retire_worker()
        worker = TrainingWorker(architecture, dataset, config, initial_weights=initial_weights,
                                initial_preprocessing=initial_preprocessing, recording=recording)
        self._recording = recording
        thread = new_thread("training", worker)
        worker.event.connect(self._on_worker_event)
        self._run_requested.connect(worker.run)
        if self._probe_x is not None:
            worker.set_probe(self._probe_x)
        self._worker, self._thread, self._config = worker, thread, config
        self._last_batch, self._recorded = None, None
        self.trained.begin_run(architecture, dataset, config.seed)
        self.trained.run_id = self.run_id
        self._begin_run(0, fresh=recording is None or not recording.resume)

    def continue_training(self, epochs: int = 1) -> None:
        """Train ``epochs`` more epochs with the last run's weights and optimizer state."""
        if self.running:
            raise TrainingError("training is already running")
        if not self.can_continue:
            raise TrainingError("there is no finished run to continue; press Start first")
        if epochs < 1:
            raise ValueError(f"epochs must be at least 1, got {epochs}")
        self._begin_run(int(epochs), fresh=False)

    def _begin_run(self, epochs: int, fresh: bool) -> None:
        assert self._worker is not None and self._thread is not None
        if self._thread.isRunning() and self._thread_quitting:
            self._thread.wait()  # a quit thread would drop the run request; let it end, then restart it
        self._thread_quitting = False
        self._worker.prepare_run()
        self._active_runs += 1
        self._paused = False
        if not self._thread.isRunning():
            register(self._thread)
            self._thread.start()
        self._run_requested.emit(epochs)
        self.began.emit(fresh)
        self.state_changed.emit()

    def pause(self) -> None:
        if self.running and not self._paused and self._worker is not None:
            self._worker.pause()
            self._paused = True
            self.state_changed.emit()

    def resume(self) -> None:
        if self.running and self._paused and self._worker is not None:
            self._worker.resume()
            self._paused = False
            self.state_changed.emit()

    def stop(self) -> None:
        """Ask the run to stop before its next batch; ``finished`` (reason 'stopped') follows."""
        if self.running and self._worker is not None:
            self._worker.stop()
            self._paused = False
            self.state_changed.emit()

    def set_learning_rate(self, lr: float) -> None:
        """Change the learning rate of the running (or next continued) run from its next batch on."""
        lr = float(lr)
        if not (math.isfinite(lr) and lr > 0):
            raise ValueError(f"learning rate must be a positive number, got {lr}")
        if self._worker is None:
            return
        self._worker.set_learning_rate(lr)
        self.rate_changed.emit("lr", lr, self._next_step())

    def set_momentum(self, momentum: float) -> None:
        momentum = float(momentum)
        if not (math.isfinite(momentum) and 0.0 <= momentum < 1.0):
            raise ValueError(f"momentum must be in [0, 1), got {momentum}")
        if self._worker is None:
            return
        self._worker.set_momentum(momentum)
        self.rate_changed.emit("momentum", momentum, self._next_step())

    def _next_step(self) -> int:
        return (self._last_batch.step if self._last_batch is not None else 0) + 1

    # -- probe ----------------------------------------------------------------------------------------------
    def set_probe(self, x: np.ndarray | None) -> None:
        """One normalised (H, W, C) sample whose layer outputs ``probe_ready`` reports, or None."""
        self._probe_x = None if x is None else np.array(x, dtype=np.float32, copy=True)
        if self._worker is not None:
            self._worker.set_probe(self._probe_x)
        if not self.running and self._probe_x is not None:
            self._idle_probe_timer.start(0)

    @Slot()
    def _compute_idle_probe(self) -> None:
        model = self.trained.model()
        if self.running or model is None or self._probe_x is None:
            return
        try:
            result = compute_probe(model, self._probe_x)
        except ValueError as exc:
            self.warning.emit(f"probe sample skipped: {exc}")
            return
        self.probe_ready.emit(result)

    # -- shutting down ------------------------------------------------------------------------------------------
    def shutdown(self, timeout_ms: int = 30000) -> bool:
        """Stop any run (no test evaluation) and join the thread; True when it ended.

        The weights reached before the stop are recorded in the trained network.
        """
        if self._worker is not None:
            self._worker.stop(skip_evaluation=True)
        ok = True
        if self._thread is not None:
            self._thread.quit()
            ok = self._thread.wait(max(0, int(timeout_ms)))
        if self._worker is not None and ok:
            final = self._worker.last_snapshot
            if final is not None and final is not self._recorded:
                self._record(final)
        if self._active_runs and ok:
            self._active_runs, self._paused = 0, False
            self.state_changed.emit()
        return ok

    def _retire_worker(self) -> None:
        if self._thread is not None:
            self._thread.quit()
            self._thread.wait()
        self._thread_quitting = False
        if self._worker is not None:
            self._run_requested.disconnect(self._worker.run)
            if self._worker.run_session is not None:
                self._worker.run_session.close()  # its thread has ended: nothing writes the run any more
        self._thread, self._worker = None, None

    @Slot()
    def _on_trained_replaced(self) -> None:
        # Imported weights or another project: the kept trainer belongs to a network that is gone, and so
        # does anything a run still in progress would report.
        if self._worker is not None:
            self._worker.stop(skip_evaluation=True)
        self._retire_worker()
        self._active_runs, self._paused = 0, False
        self._config, self._last_batch, self._recorded = None, None, None
        self.state_changed.emit()

    # -- from the worker (queued onto the GUI thread) ------------------------------------------------------------
    @Slot(object, object)
    def _on_worker_event(self, worker: TrainingWorker, event: Any) -> None:
        if worker is not self._worker or worker is None:
            return  # still queued from a retired worker (or after shutdown)
        if isinstance(event, Batches):
            if event.events:
                self._last_batch = event.events[-1]
                self.batches.emit(event.events)
        elif isinstance(event, WeightSnapshot):
            self._record(event)
        elif isinstance(event, EpochEnd):
            self.epoch_end.emit(event)
        elif isinstance(event, ProbeResult):
            self.probe_ready.emit(event)
        elif isinstance(event, DoctorReport):
            self.diagnosed.emit(event)
        elif isinstance(event, Evaluation):
            self.trained.set_evaluation(event)
        elif isinstance(event, TrainingStarted):
            self.started.emit(event)
        elif isinstance(event, Status):
            self.status.emit(event.text)
        elif isinstance(event, WorkerWarning):
            self.warning.emit(event.text)
        elif isinstance(event, TrainingFinished):
            if self._end_run():
                self.finished.emit(event)
                self.state_changed.emit()
        elif isinstance(event, RunFailed):
            if self._end_run():
                self.failed.emit(event.message)
                self.state_changed.emit()

    def _record(self, snapshot: WeightSnapshot) -> None:
        self._recorded = snapshot
        self.trained.record_snapshot(snapshot)

    def _end_run(self) -> bool:
        if self._active_runs == 0:  # already accounted for by shutdown()
            return False
        self._active_runs -= 1
        self._paused = False
        if self._active_runs == 0 and self._thread is not None:
            self._thread_quitting = True
            self._thread.quit()  # the thread ends once the worker's run returns; restarted by the next run
        return True
