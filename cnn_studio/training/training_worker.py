"""The object that runs the engine's trainer on a worker QThread.

It lives in the worker thread (``moveToThread``); the runner starts a run by a queued signal to
``run``. While the loop runs, the worker thread is busy, so the controls (pause, resume, stop, rates,
probe sample) are plain thread-safe methods called from the GUI thread; they forward to the trainer's
own thread-safe methods. Everything sent out goes through one signal, ``event``, as a copy or an
immutable event: the GUI never sees the live arrays the optimizer is updating.
"""

from __future__ import annotations

import copy
import logging
import threading
import time
import traceback
from dataclasses import dataclass
from typing import Any

import numpy as np
from PySide6.QtCore import QObject, Signal, Slot

from cnn_studio.runs.recording import RunRecording, start_recording
from cnn_studio.training.thread_warnings import warnings_to
from cnn_studio.training.trained import WeightSnapshot
from engine.data import Dataset
from engine.doctor import TrainingDoctor
from engine.errors import EngineError
from engine.layers.activations import softmax
from engine.model import Model
from engine.runs.session import RunSession
from engine.training import BatchEnd, EpochEnd, TrainConfig, Trainer, TrainingFinished, prepare

log = logging.getLogger(__name__)

# At most this many batch updates per second reach the GUI; the rest are bundled with them. Each
# update costs the engine's threads some GIL time: 10 a second kept 94-95 % of the bare engine's
# speed with the window open (benchmarks/gui_latency.py), 20 a second 90 %.
BATCH_EMITS_PER_SECOND = 10.0
# Feature-map probes are computed at most this often while training runs.
PROBES_PER_SECOND = 3.0


@dataclass(frozen=True)
class ProbeResult:
    """Every layer's output for the probe sample, and the class probabilities (K,)."""

    layer_outputs: list[tuple[str, np.ndarray]]
    probabilities: np.ndarray


@dataclass(frozen=True)
class Batches:
    """Every batch since the previous bundle (bundles reach the GUI at most ~10 times a second)."""

    events: tuple[BatchEnd, ...]


@dataclass(frozen=True)
class Status:
    """What the worker is doing now, in words ("Evaluating on the test set…")."""

    text: str


@dataclass(frozen=True)
class WorkerWarning:
    """A warning raised while training, as one line."""

    text: str


@dataclass(frozen=True)
class RunFailed:
    """The run ended with an error, as one line for a message box."""

    message: str


def compute_probe(model: Model, x: np.ndarray) -> ProbeResult:
    """Layer outputs (copies) and class probabilities for one normalised (H, W, C) sample."""
    outputs = model.layer_outputs(np.asarray(x, dtype=np.float32))
    last = outputs[-1][1]
    probabilities = last if model.softmax_head else softmax(last[None])[0]
    return ProbeResult(outputs, np.array(probabilities, dtype=np.float32))


def describe_exception(exc: BaseException) -> str:
    """One line for a message box: the engine's own messages stand alone, others name their type."""
    if isinstance(exc, EngineError):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"


class TrainingWorker(QObject):
    """Builds the model and trainer from a snapshot of the architecture and runs epochs on request.

    Signal ``event(worker, object)`` (emitted on the worker thread; connect with a queued connection)
    names the worker and carries, in order: TrainingStarted, Batches, EpochEnd, DoctorReport (the
    training doctor's, after each epoch), WeightSnapshot (the untrained network, then one per epoch),
    ProbeResult, Status, WorkerWarning, Evaluation (test set, after the run), and last either
    TrainingFinished or RunFailed.
    """

    event = Signal(object, object)  # (this worker, the event): receivers tell workers apart without sender()

    def __init__(self, architecture: dict[str, Any], dataset: Dataset, config: TrainConfig,
                 *, batch_emit_interval: float = 1.0 / BATCH_EMITS_PER_SECOND,
                 probe_interval: float = 1.0 / PROBES_PER_SECOND,
                 initial_weights: dict[str, np.ndarray] | None = None,
                 initial_preprocessing: dict[str, Any] | None = None,
                 recording: RunRecording | None = None) -> None:
        super().__init__()
        self.architecture = copy.deepcopy(architecture)
        self.initial_weights = initial_weights
        self.initial_preprocessing = initial_preprocessing
        # Where the run is kept on disk (None: not kept); its session writes from this thread.
        self.recording = recording
        self.run_session: RunSession | None = None
        self.dataset = dataset
        self.config = config
        self.batch_emit_interval = batch_emit_interval
        self.probe_interval = probe_interval
        self.trainer: Trainer | None = None
        self.doctor: TrainingDoctor | None = None  # records and diagnoses the run (engine.doctor)
        self.last_snapshot: WeightSnapshot | None = None
        self._lock = threading.Lock()
        self._stop_requested = False
        self._pause_requested = False
        self._skip_evaluation = False
        self._pending_rates: dict[str, float] = {}
        self._probe_x: np.ndarray | None = None
        self._probe_dirty = False
        self._warnings_sent: set[str] = set()

    # -- controls: called from the GUI thread ---------------------------------------------------------
    def prepare_run(self) -> None:
        """Clear a previous run's stop request; called before each queued run."""
        with self._lock:
            self._stop_requested = False
            self._skip_evaluation = False

    def pause(self) -> None:
        with self._lock:
            self._pause_requested = True
            if self.trainer is not None:
                self.trainer.pause()

    def resume(self) -> None:
        with self._lock:
            self._pause_requested = False
            if self.trainer is not None:
                self.trainer.resume()

    def stop(self, skip_evaluation: bool = False) -> None:
        with self._lock:
            self._stop_requested = True
            self._pause_requested = False
            self._skip_evaluation = self._skip_evaluation or skip_evaluation
            if self.trainer is not None:
                self.trainer.stop()

    def set_learning_rate(self, lr: float) -> None:
        with self._lock:
            if self.trainer is not None:
                self.trainer.set_learning_rate(lr)
            else:
                self._pending_rates["lr"] = float(lr)

    def set_momentum(self, momentum: float) -> None:
        with self._lock:
            if self.trainer is not None:
                self.trainer.set_momentum(momentum)
            else:
                self._pending_rates["momentum"] = float(momentum)

    def set_probe(self, x: np.ndarray | None) -> None:
        with self._lock:
            self._probe_x = None if x is None else np.array(x, dtype=np.float32, copy=True)
            self._probe_dirty = True

    def _send(self, event: object) -> None:
        self.event.emit(self, event)

    # -- the run: executes on the worker thread ----------------------------------------------------------
    @Slot(int)
    def run(self, epochs: int) -> None:
        """Train ``epochs`` more epochs (0: the configured number); the last event is TrainingFinished or
        RunFailed, whatever happened."""
        try:
            with warnings_to(self._send_warning):
                self._run(epochs or None)
        except Exception as exc:  # anything at all must reach the GUI as a message, not kill the thread
            if isinstance(exc, EngineError):
                log.info("training stopped by a user-fixable problem: %s", exc)
            else:
                log.error("training failed:\n%s", traceback.format_exc())
            if self.run_session is not None:
                self.run_session.end(None, error=describe_exception(exc))
            self._send(RunFailed(describe_exception(exc)))

    def _build_trainer(self) -> Trainer:
        self._send(Status("Building the network…"))
        preprocessing = self.initial_preprocessing if self.initial_weights is not None else None
        _model, trainer = prepare(self.architecture, self.dataset, self.config, weights=self.initial_weights,
                                  preprocessing=preprocessing)
        from_weights, self.initial_weights = self.initial_weights is not None, None
        if self.recording is not None:
            self.run_session = start_recording(self.recording, trainer, self.dataset, self._send_warning,
                                               from_weights=from_weights)
        self.doctor = TrainingDoctor(trainer)
        with self._lock:
            self.trainer = trainer
            if self._pause_requested:
                trainer.pause()
            if "lr" in self._pending_rates:
                trainer.set_learning_rate(self._pending_rates["lr"])
            if "momentum" in self._pending_rates:
                trainer.set_momentum(self._pending_rates["momentum"])
            self._pending_rates.clear()
        return trainer

    def _run(self, epochs: int | None) -> None:
        trainer = self.trainer
        if trainer is None:
            trainer = self._build_trainer()
            self._emit_snapshot(trainer)  # the untrained network: views can show it while epoch 1 runs
        if epochs is None and self.recording is not None and self.recording.resume:
            epochs = max(self.config.epochs - trainer.epoch, 0)  # a resumed run goes on to its planned end
        session = self.run_session
        if session is not None:
            session.begin(epochs)
        pending: list[BatchEnd] = []

        def flush() -> None:
            # A pause asked for after the last batch was looked at would otherwise hold that batch back.
            if pending:
                self._send(Batches(tuple(pending)))
                pending.clear()

        trainer.pause_hooks = [flush]
        last_emit = last_probe = time.perf_counter()
        finished: TrainingFinished | None = None
        for event in trainer.run(epochs):
            if session is not None:
                session.observe(event)
            if self._stop_requested:
                # Trainer.run clears its stop flag when it starts, so a stop that came earlier is re-sent.
                trainer.stop()
            if isinstance(event, BatchEnd):
                pending.append(event)
                now = time.perf_counter()
                if (now - last_emit >= self.batch_emit_interval or event.batch == event.batches
                        or trainer.paused or self._stop_requested):
                    flush()
                    last_emit = now
                if self._probe_x is not None and (self._probe_dirty or now - last_probe >= self.probe_interval):
                    self._emit_probe(trainer.model)
                    last_probe = time.perf_counter()
                # Hand the GIL over between batches so the GUI thread never waits long for it.
                time.sleep(0)
            elif isinstance(event, TrainingFinished):
                finished = event
                self._diagnose(event)
            else:
                if isinstance(event, EpochEnd):
                    self._emit_snapshot(trainer)  # the weights first: views showing the epoch find them
                self._send(event)
                if isinstance(event, EpochEnd):
                    self._diagnose(event)
        flush()
        if finished is None:  # the engine always finishes with an event; guard against a silent end
            finished = TrainingFinished("stopped", trainer.epoch, "training ended without a final event")
        if finished.reason != "completed" or self.last_snapshot is None or finished.best_epoch \
                or self.last_snapshot.epochs_completed != trainer.epoch:
            # Stopped mid-epoch, restored after divergence or to the best epoch (early stopping): the
            # weights the user keeps are these.
            self._emit_snapshot(trainer)
        if self._probe_x is not None:
            self._emit_probe(trainer.model)
        evaluation = None
        if not self._skip_evaluation and len(self.dataset.y_test):
            self._send(Status("Evaluating on the test set…"))
            evaluation = trainer.evaluate("test")
            self._send(evaluation)
        if session is not None:
            if self._skip_evaluation and finished.reason == "stopped":
                # Stopped because the studio closed: the run was interrupted, not ended by the user.
                session.end(None, error="the studio closed while the run was training")
            else:
                session.end(finished, evaluation)
        self._send(finished)

    def _diagnose(self, event: Any) -> None:
        """Hand the training doctor's records and diagnoses to the GUI after each epoch (and a divergence)."""
        doctor = self.doctor
        if doctor is None:
            return
        doctor.observe(event)
        if isinstance(event, EpochEnd) or (isinstance(event, TrainingFinished) and event.reason == "diverged"):
            self._send(doctor.report())

    def _emit_snapshot(self, trainer: Trainer) -> None:
        snap = WeightSnapshot(trainer.model.get_weights(), copy.deepcopy(trainer.model.preprocessing), trainer.epoch)
        self.last_snapshot = snap
        self._send(snap)

    def _emit_probe(self, model: Model) -> None:
        with self._lock:
            x, self._probe_dirty = self._probe_x, False
        if x is None:
            return
        try:
            self._send(compute_probe(model, x))
        except (ValueError, EngineError) as exc:  # a sample of the wrong shape must not end the run
            self._send_warning(f"probe sample skipped: {exc}")
            with self._lock:
                if self._probe_x is x:
                    self._probe_x = None

    def _send_warning(self, text: str) -> None:
        if text not in self._warnings_sent:  # the same warning each batch would flood the GUI
            self._warnings_sent.add(text)
            self._send(WorkerWarning(text))
