"""A background thread that runs inspection jobs (feature maps, attribution, statistics) off the GUI thread.

It owns its own copy of the model, rebuilt from a weight snapshot, so the GUI's model and the
training worker's live model are never touched from here. Jobs of the same kind coalesce: only
the latest request of each kind runs. Results come back through Qt signals on the GUI thread.

Long jobs (SmoothGrad, occlusion, a filter atlas, an embedding) are submitted with ``progress=True``:
they are called as ``job(model, task)`` and report through ``task.progress(fraction)``; they stop at
``task.cancelled()`` (engine.explain raises Cancelled) once a newer job of their kind is waiting, the
model changed, ``cancel(kind)`` was called or the worker is shutting down.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import numpy as np
from PySide6.QtCore import QObject, Qt, Signal

from engine.explain import Cancelled
from engine.model import Model

CANCELLED = "\x00cancelled"  # sent through the failure relay: a job that stopped because it was not wanted

Job = Callable[..., Any]
IDLE_LINGER_S = 0.5  # an idle worker thread waits this long for another job before it ends
PROGRESS_EVERY_S = 0.1  # progress reaches the GUI at most this often per job


class _Relay(QObject):
    """Lives on the GUI thread; emitting from the worker thread queues delivery to the GUI thread."""

    done = Signal(str, int, object)
    failed = Signal(str, int, str)
    progressed = Signal(str, int, float)


class Task:
    """What a long job is handed besides the model: where to report progress, and whether to stop."""

    def __init__(self, worker: InspectionWorker, kind: str, version: int, serial: int) -> None:
        self._worker, self.kind, self._version, self._serial = worker, kind, version, serial
        self._last = 0.0

    def cancelled(self) -> bool:
        return self._worker._stale(self.kind, self._version, self._serial)

    def progress(self, fraction: float) -> None:
        now = time.monotonic()
        if now - self._last >= PROGRESS_EVERY_S or fraction >= 1.0:
            self._last = now
            self._worker._emit(self._worker._relay.progressed, self.kind, self._version, float(fraction))


class InspectionWorker(QObject):
    """Signals (emitted on the GUI thread):
    result_ready(str kind, object result)   a job finished for the current model
    job_failed(str kind, str message)        a job raised; the message names the job
    job_progress(str kind, float fraction)   a long job's progress (0..1)
    job_cancelled(str kind)                  a long job stopped early, no longer wanted
    """

    result_ready = Signal(str, object)
    job_failed = Signal(str, str)
    job_progress = Signal(str, float)
    job_cancelled = Signal(str)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._cond = threading.Condition()
        self._pending: dict[str, tuple[int, Job, bool]] = {}
        self._serials: dict[str, int] = {}  # per kind: bumped by every submission and cancel()
        self._snapshot: tuple[dict, Any, dict[str, np.ndarray], dict] | None = None
        self._version = 0
        self._running_jobs = 0
        self._undelivered = 0  # results emitted by the worker, not yet handled on the GUI thread
        self._closing = False
        self._thread: threading.Thread | None = None
        # The worker's own model: touched only by the (single) worker thread alive at a time.
        self._built_model: Model | None = None
        self._built_version = -1
        self._relay = _Relay()
        self._relay.done.connect(self._deliver, Qt.ConnectionType.QueuedConnection)
        self._relay.failed.connect(self._deliver_failure, Qt.ConnectionType.QueuedConnection)
        self._relay.progressed.connect(self._deliver_progress, Qt.ConnectionType.QueuedConnection)

    # -- GUI-thread API ----------------------------------------------------------------------------
    def set_model(self, model: Model | None) -> None:
        """Snapshot ``model`` (architecture + copies of its tensors); pending and running jobs go stale."""
        snapshot = None
        if model is not None:
            snapshot = (model.architecture, model.dtype, model.get_weights(), dict(model.preprocessing))
        with self._cond:
            self._snapshot = snapshot
            self._version += 1
            self._pending.clear()

    @property
    def has_model(self) -> bool:
        return self._snapshot is not None

    @property
    def busy(self) -> bool:
        """True while a job is queued, running, or its result is on its way to the GUI thread."""
        with self._cond:
            return bool(self._pending) or self._running_jobs > 0 or self._undelivered > 0

    def submit(self, kind: str, job: Job, progress: bool = False) -> None:
        """Queue ``job(model)`` (``job(model, task)`` with ``progress``) to run on the worker's model copy,
        replacing a pending job of this kind and cancelling a running one."""
        if self._snapshot is None or self._closing:
            return
        with self._cond:
            self._pending.pop(kind, None)
            self._serials[kind] = self._serials.get(kind, 0) + 1
            self._pending[kind] = (self._version, job, progress)
            if self._thread is None:
                self._thread = threading.Thread(target=self._loop, name="inspection", daemon=True)
                self._thread.start()
            self._cond.notify()

    def cancel(self, kind: str) -> None:
        """Drop a pending job of ``kind`` and ask a running one to stop."""
        with self._cond:
            self._pending.pop(kind, None)
            self._serials[kind] = self._serials.get(kind, 0) + 1

    def _stale(self, kind: str, version: int, serial: int) -> bool:
        with self._cond:
            return self._closing or version != self._version or self._serials.get(kind, 0) != serial

    def shutdown(self, timeout_s: float = 2.0) -> None:
        """Drop pending jobs and wait for a running one to end; later submissions are ignored."""
        with self._cond:
            self._closing = True
            self._pending.clear()
            thread = self._thread
            self._cond.notify_all()
        if thread is not None:
            thread.join(timeout_s)

    # -- worker thread -------------------------------------------------------------------------------
    def _loop(self) -> None:
        # The thread lives only while there is work (plus a short linger for the next click), so an
        # idle tab holds no thread at all; ``submit`` starts a new one when needed.
        while True:
            with self._cond:
                if not self._pending and not self._closing:
                    self._cond.wait(IDLE_LINGER_S)
                if self._closing or not self._pending:
                    self._thread = None
                    return
                kind = next(iter(self._pending))
                version, job, with_task = self._pending.pop(kind)
                serial = self._serials.get(kind, 0)
                snapshot = self._snapshot
                if version != self._version or snapshot is None:
                    continue
                self._running_jobs += 1
            try:
                if self._built_version != version:
                    self._built_model = _build(snapshot)
                    self._built_version = version
                if with_task:
                    result = job(self._built_model, Task(self, kind, version, serial))
                else:
                    result = job(self._built_model)
            except Cancelled:
                self._emit(self._relay.failed, kind, version, CANCELLED)
            except Exception as exc:  # a job's failure must reach the user, not kill the thread
                self._emit(self._relay.failed, kind, version, f"{type(exc).__name__}: {exc}")
            else:
                self._emit(self._relay.done, kind, version, result)
            finally:
                with self._cond:
                    self._running_jobs -= 1

    def _emit(self, signal: Any, *args: Any) -> None:
        with self._cond:
            self._undelivered += 1
        try:
            signal.emit(*args)
        except RuntimeError:  # the relay was deleted while the app closed
            with self._cond:
                self._undelivered -= 1

    # -- back on the GUI thread ----------------------------------------------------------------------
    def _deliver(self, kind: str, version: int, result: object) -> None:
        with self._cond:
            self._undelivered -= 1
        if version == self._version:
            self.result_ready.emit(kind, result)

    def _deliver_failure(self, kind: str, version: int, message: str) -> None:
        with self._cond:
            self._undelivered -= 1
        if version != self._version:
            return
        if message == CANCELLED:
            self.job_cancelled.emit(kind)
        else:
            self.job_failed.emit(kind, message)

    def _deliver_progress(self, kind: str, version: int, fraction: float) -> None:
        with self._cond:
            self._undelivered -= 1
        if version == self._version:
            self.job_progress.emit(kind, fraction)


def _build(snapshot: tuple[dict, Any, dict[str, np.ndarray], dict]) -> Model:
    architecture, dtype, weights, preprocessing = snapshot
    model = Model(architecture, dtype=dtype)
    model.set_weights(weights)
    model.preprocessing = dict(preprocessing)
    return model
