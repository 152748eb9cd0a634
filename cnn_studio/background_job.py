"""One piece of slow work at a time (reading, converting, writing files) on a pool thread, its outcome
delivered on the GUI thread.

The work runs on the pool's thread and must not touch widgets; ``succeeded`` or ``failed`` (with a
one-line message) is then called on the GUI thread through a relay object that lives there.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QObject, QRunnable, QThreadPool, Signal

from engine.errors import EngineError


class _Relay(QObject):
    """Lives on the GUI thread; the job emits through it so the receivers run there."""

    succeeded = Signal(object)
    failed = Signal(str)


class _Job(QRunnable):
    def __init__(self, work: Callable[[], Any], relay: _Relay) -> None:
        super().__init__()
        self.work, self.relay = work, relay

    def run(self) -> None:
        try:
            result = self.work()
        except (EngineError, OSError, ValueError) as exc:
            self.relay.failed.emit(str(exc))
        except Exception as exc:  # a bug must not take the window down; the user still sees what happened
            self.relay.failed.emit(f"unexpected {type(exc).__name__}: {exc}")
        else:
            self.relay.succeeded.emit(result)


class BackgroundJob(QObject):
    """Runs one job at a time; ``busy`` while one runs. ``finished()`` is emitted (GUI thread) when a job
    ended, before its ``succeeded`` or ``failed`` callback runs."""

    finished = Signal()

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.pool = QThreadPool(self)
        self.pool.setMaxThreadCount(1)
        self._relays: list[_Relay] = []

    @property
    def busy(self) -> bool:
        return bool(self._relays)

    def wait(self, timeout_ms: int = 30000) -> bool:
        """Block until the running job's thread is done (tests, closing)."""
        return self.pool.waitForDone(timeout_ms)

    def start(self, work: Callable[[], Any], succeeded: Callable[[Any], None],
              failed: Callable[[str], None]) -> None:
        relay = _Relay(self)
        self._relays.append(relay)

        def end() -> None:
            self._relays.remove(relay)
            relay.deleteLater()
            self.finished.emit()

        def on_success(result: Any) -> None:
            end()
            succeeded(result)

        def on_failure(message: str) -> None:
            end()
            failed(message)

        relay.succeeded.connect(on_success)
        relay.failed.connect(on_failure)
        self.pool.start(_Job(work, relay))
