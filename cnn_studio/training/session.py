"""TrainingSession: the GUI thread's handle on training, wrapping a worker QThread.

Every signal is emitted on the GUI thread and carries copies, so any widget can connect to it
directly. The worker thread runs only while a run (or a dataset load) is in progress; between
runs the trainer is kept, so "+1 epoch" continues the same weights and optimizer state.

Threads started here are registered in a module-level registry (``live_threads()``) so a test
fixture can fail any test that leaves one running.
"""

from __future__ import annotations

import copy
import math
import threading
from typing import Any

import numpy as np
import shiboken6
from PySide6.QtCore import QObject, QThread, QTimer, Signal, Slot

from cnn_studio.training.dataset_loader import DatasetLoader
from cnn_studio.training.training_worker import ProbeResult, TrainingWorker, WeightSnapshot, compute_probe
from engine.architecture import analyze, check_classifier
from engine.data import Dataset
from engine.errors import EngineError, TrainingError
from engine.metrics import Evaluation
from engine.model import Model
from engine.training import BatchEnd, TrainConfig, TrainingFinished

__all__ = ["ProbeResult", "TrainingSession", "live_threads", "WeightSnapshot"]

_registry_lock = threading.Lock()
_THREADS: set[QThread] = set()  # strong references: a running QThread must never be garbage-collected


def _register(thread: QThread) -> None:
    with _registry_lock:
        _THREADS.add(thread)


def live_threads() -> list[QThread]:
    """QThreads started by any TrainingSession that are still running (finished ones are forgotten)."""
    with _registry_lock:
        for thread in list(_THREADS):
            if not shiboken6.isValid(thread) or not thread.isRunning():
                _THREADS.discard(thread)
        return list(_THREADS)


def _new_thread(name: str, worker: QObject) -> QThread:
    thread = QThread()
    thread.setObjectName(name)
    worker.moveToThread(thread)
    _register(thread)
    return thread


class TrainingSession(QObject):
    """Starts, steers and stops training runs; keeps the latest weights, evaluation and dataset.

    Contract signals (GUI thread, payloads are copies):
      started(TrainingStarted), batch_end(BatchEnd) (coalesced, <= ~10/s), epoch_end(EpochEnd),
      finished(TrainingFinished), failed(str), model_changed(), evaluation_ready(Evaluation),
      probe_ready(ProbeResult).
    Further signals:
      batches(tuple[BatchEnd, ...])  every batch since the previous update (for per-batch plots)
      state_changed()                running / paused / can_continue changed
      model_adopted()                set_model replaced the weights (e.g. File > Import Weights)
      rate_changed(str, float, int)  "lr" or "momentum" changed to a value, effective at a step
      warning(str), status(str)      warnings raised in the worker, what the worker is doing
      dataset_loading(str), dataset_loaded(str, Dataset), dataset_failed(str, str), dataset_changed()
    """

    started = Signal(object)
    batch_end = Signal(object)
    batches = Signal(object)
    epoch_end = Signal(object)
    finished = Signal(object)
    failed = Signal(str)
    model_changed = Signal()
    model_adopted = Signal()
    evaluation_ready = Signal(object)
    probe_ready = Signal(object)
    state_changed = Signal()
    rate_changed = Signal(str, float, int)
    warning = Signal(str)
    status = Signal(str)
    dataset_loading = Signal(str)
    dataset_loaded = Signal(str, object)
    dataset_failed = Signal(str, str)
    dataset_changed = Signal()

    _run_requested = Signal(int)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._thread: QThread | None = None
        self._worker: TrainingWorker | None = None
        self._loads: list[tuple[QThread, DatasetLoader]] = []
        self._active_runs = 0
        self._paused = False
        self._thread_quitting = False
        self._architecture: dict[str, Any] | None = None
        self._config: TrainConfig | None = None
        self._dataset: Dataset | None = None
        self._snapshot: WeightSnapshot | None = None
        self._model: Model | None = None
        # Weights adopted through set_model (e.g. File > Import Weights): the next start() begins from them.
        self._adopted: Model | None = None
        self._evaluation: Evaluation | None = None
        self._last_batch: BatchEnd | None = None
        self._epochs_completed = 0
        self._probe_x: np.ndarray | None = None
        self._idle_probe_timer = QTimer(self)
        self._idle_probe_timer.setSingleShot(True)
        self._idle_probe_timer.timeout.connect(self._compute_idle_probe)

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
    def epochs_completed(self) -> int:
        return self._epochs_completed

    @property
    def last_batch(self) -> BatchEnd | None:
        return self._last_batch

    @property
    def loading_dataset(self) -> bool:
        return any(thread.isRunning() for thread, _ in self._loads)

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

    def dataset(self) -> Dataset | None:
        return self._dataset

    def evaluation(self) -> Evaluation | None:
        return self._evaluation

    def architecture(self) -> dict[str, Any] | None:
        """The architecture the current weights belong to (a copy)."""
        return copy.deepcopy(self._architecture)

    def weights(self) -> dict[str, np.ndarray] | None:
        """A copy of the latest weights (None when there is no model)."""
        if self._snapshot is not None:
            return {k: v.copy() for k, v in self._snapshot.weights.items()}
        return None if self._model is None else self._model.get_weights()

    def model(self) -> Model | None:
        """A GUI-thread Model built from the latest snapshot; never the worker's live model."""
        if self._model is None and self._snapshot is not None and self._architecture is not None:
            seed = self._config.seed if self._config is not None else 0
            model = Model.from_architecture(self._architecture, seed=seed)
            model.set_weights(self._snapshot.weights)
            model.preprocessing = copy.deepcopy(self._snapshot.preprocessing)
            self._model = model
        return self._model

    # -- runs ---------------------------------------------------------------------------------------------
    def adopted_weights_for(self, architecture: dict[str, Any]) -> dict[str, np.ndarray] | None:
        """A copy of the adopted model's weights when they fit ``architecture`` (same tensors), else None."""
        if self._adopted is None:
            return None
        try:
            shapes = {k: v.shape for k, v in Model.from_architecture(architecture).tensors().items()}
        except EngineError:
            return None
        weights = self._adopted.get_weights()
        return weights if {k: v.shape for k, v in weights.items()} == shapes else None

    def start(self, architecture: dict[str, Any], dataset: Dataset, config: TrainConfig,
              initial_weights: dict[str, np.ndarray] | None = None) -> None:
        """Train a network built from a copy of ``architecture`` on ``dataset``.

        It starts from ``initial_weights`` when given (e.g. imported ones), else from a fresh seeded
        initialisation.

        Raises ArchitectureError or TrainingError at once for problems that can be seen without
        training (invalid architecture, wrong number of classes, input shape mismatch).
        """
        if self.running:
            raise TrainingError("training is already running; stop it first")
        architecture = copy.deepcopy(architecture)
        analysis = analyze(architecture)
        if analysis.problems:
            raise analysis.problems[0]
        check_classifier(analysis, dataset.num_classes)
        if tuple(analysis.input_shape) != tuple(dataset.input_shape):
            raise TrainingError(
                f"the network's input is {'x'.join(map(str, analysis.input_shape))} but the dataset "
                f"{dataset.name!r} has {'x'.join(map(str, dataset.input_shape))} images")
        self._retire_worker()
        worker = TrainingWorker(architecture, dataset, config, initial_weights=initial_weights)
        thread = _new_thread("training", worker)
        worker.started.connect(self._on_started)
        worker.batches.connect(self._on_batches)
        worker.epoch_end.connect(self._on_epoch_end)
        worker.snapshot.connect(self._on_snapshot)
        worker.evaluation_ready.connect(self._on_evaluation)
        worker.probe_ready.connect(self._on_probe)
        worker.status.connect(self._on_status)
        worker.warning.connect(self._on_warning)
        worker.finished.connect(self._on_finished)
        worker.failed.connect(self._on_failed)
        self._run_requested.connect(worker.run)
        if self._probe_x is not None:
            worker.set_probe(self._probe_x)
        self._worker, self._thread = worker, thread
        self._architecture, self._config = architecture, config
        self._adopted = None
        self._set_dataset(dataset)
        self._snapshot, self._model, self._evaluation = None, None, None
        self._epochs_completed, self._last_batch = 0, None
        self._begin_run(0)

    def continue_training(self, epochs: int = 1) -> None:
        """Train ``epochs`` more epochs with the last run's weights and optimizer state."""
        if self.running:
            raise TrainingError("training is already running")
        if not self.can_continue:
            raise TrainingError("there is no finished run to continue; press Start first")
        if epochs < 1:
            raise ValueError(f"epochs must be at least 1, got {epochs}")
        self._begin_run(int(epochs))

    def _begin_run(self, epochs: int) -> None:
        assert self._worker is not None and self._thread is not None
        if self._thread.isRunning() and self._thread_quitting:
            self._thread.wait()  # a quit thread would drop the run request; let it end, then restart it
        self._thread_quitting = False
        self._worker.prepare_run()
        self._active_runs += 1
        self._paused = False
        if not self._thread.isRunning():
            _register(self._thread)
            self._thread.start()
        self._run_requested.emit(epochs)
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
        lr = _positive(lr, "learning rate")
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

    # -- models and data from elsewhere -----------------------------------------------------------------
    def set_model(self, model: Model, dataset: Dataset | None = None) -> None:
        """Adopt a model (e.g. imported weights): model() returns it; "+1 epoch" is no longer offered."""
        if self.running:
            raise TrainingError("stop training before replacing the model")
        self._retire_worker()
        self._model, self._snapshot, self._evaluation = model, None, None
        self._adopted = model
        self._architecture = copy.deepcopy(model.architecture)
        self._epochs_completed = 0
        if dataset is not None:
            self._set_dataset(dataset)
        self.model_changed.emit()
        self.model_adopted.emit()
        self.state_changed.emit()
        self._schedule_idle_probe()

    def set_dataset(self, dataset: Dataset) -> None:
        """The dataset other views (e.g. inspection) should use while no run is going on."""
        if self.running:
            raise TrainingError("stop training before changing the dataset")
        self._set_dataset(dataset)

    def _set_dataset(self, dataset: Dataset) -> None:
        if dataset is not self._dataset:
            self._dataset = dataset
            self.dataset_changed.emit()

    def load_dataset(self, ref: str) -> None:
        """Load ``ref`` (a known name or a path) on a worker thread; dataset_loaded or dataset_failed follows."""
        loader = DatasetLoader(ref)
        thread = _new_thread("dataset-loader", loader)
        thread.started.connect(loader.run)
        loader.loaded.connect(self._on_dataset_loaded)
        loader.failed.connect(self._on_dataset_failed)
        loader.warning.connect(self._on_warning)
        # Each load gets its own short-lived thread: the loader ends it as soon as the job is done.
        self._loads = [(t, w) for t, w in self._loads if t.isRunning()] + [(thread, loader)]
        thread.start()
        self.dataset_loading.emit(ref)

    # -- probe ----------------------------------------------------------------------------------------------
    def set_probe(self, x: np.ndarray | None) -> None:
        """One normalised (H, W, C) sample whose layer outputs ``probe_ready`` reports, or None."""
        self._probe_x = None if x is None else np.array(x, dtype=np.float32, copy=True)
        if self._worker is not None:
            self._worker.set_probe(self._probe_x)
        if not self.running:
            self._schedule_idle_probe()

    def _schedule_idle_probe(self) -> None:
        if self._probe_x is not None:
            self._idle_probe_timer.start(0)

    @Slot()
    def _compute_idle_probe(self) -> None:
        model = self.model()
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
        """Stop any run (no test evaluation) and join every thread; True when all of them ended.

        The weights reached before the stop stay available through ``model()``.
        """
        if self._worker is not None:
            self._worker.stop(skip_evaluation=True)
        threads = [t for t, _ in self._loads] + ([self._thread] if self._thread is not None else [])
        for thread in threads:
            thread.quit()
        ok = all(thread.wait(max(0, int(timeout_ms))) for thread in threads)
        if self._worker is not None and ok:
            final = self._worker.last_snapshot
            if final is not None and final is not self._snapshot:
                self._on_snapshot_from(final)
        self._loads = [(t, w) for t, w in self._loads if t.isRunning()]
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
        self._thread, self._worker = None, None

    # -- from the worker (queued onto the GUI thread) ------------------------------------------------------------
    def _from_current_worker(self) -> bool:
        # Events still queued from a retired worker (or after shutdown) are dropped.
        return self._worker is not None and self.sender() is self._worker

    @Slot(object)
    def _on_started(self, event: Any) -> None:
        if self._from_current_worker():
            self.started.emit(event)

    @Slot(object)
    def _on_batches(self, events: tuple[BatchEnd, ...]) -> None:
        if self._from_current_worker() and events:
            self._last_batch = events[-1]
            self.batches.emit(events)
            self.batch_end.emit(events[-1])

    @Slot(object)
    def _on_epoch_end(self, event: Any) -> None:
        if self._from_current_worker():
            self.epoch_end.emit(event)

    @Slot(object)
    def _on_snapshot(self, snapshot: WeightSnapshot) -> None:
        if self._from_current_worker():
            self._on_snapshot_from(snapshot)

    def _on_snapshot_from(self, snapshot: WeightSnapshot) -> None:
        self._snapshot, self._model = snapshot, None
        self._epochs_completed = snapshot.epochs_completed
        self.model_changed.emit()

    @Slot(object)
    def _on_evaluation(self, evaluation: Evaluation) -> None:
        if self._from_current_worker():
            self._evaluation = evaluation
            self.evaluation_ready.emit(evaluation)

    @Slot(object)
    def _on_probe(self, result: ProbeResult) -> None:
        if self._from_current_worker():
            self.probe_ready.emit(result)

    @Slot(str)
    def _on_status(self, text: str) -> None:
        if self._from_current_worker():
            self.status.emit(text)

    @Slot(str)
    def _on_warning(self, text: str) -> None:
        self.warning.emit(text)

    @Slot(object)
    def _on_finished(self, event: TrainingFinished) -> None:
        if self._from_current_worker() and self._end_run():
            self.finished.emit(event)
            self.state_changed.emit()

    @Slot(str)
    def _on_failed(self, message: str) -> None:
        if self._from_current_worker() and self._end_run():
            self.failed.emit(message)
            self.state_changed.emit()

    def _end_run(self) -> bool:
        if self._active_runs == 0:  # already accounted for by shutdown()
            return False
        self._active_runs -= 1
        self._paused = False
        if self._active_runs == 0 and self._thread is not None:
            self._thread_quitting = True
            self._thread.quit()  # the thread ends once the worker's run returns; restarted by the next run
        return True

    @Slot(str, object)
    def _on_dataset_loaded(self, ref: str, dataset: Dataset) -> None:
        self.dataset_loaded.emit(ref, dataset)

    @Slot(str, str)
    def _on_dataset_failed(self, ref: str, message: str) -> None:
        self.dataset_failed.emit(ref, message)


def _positive(value: float, what: str) -> float:
    value = float(value)
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"{what} must be a positive number, got {value}")
    return value
