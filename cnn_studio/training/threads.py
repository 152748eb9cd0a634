"""Every QThread the training workspace starts is registered here while it runs.

A running QThread must never be garbage-collected, so the registry keeps a strong reference; and a
test fixture reads ``live_threads()`` to fail any test that leaves one running.
"""

from __future__ import annotations

import threading

import shiboken6
from PySide6.QtCore import QObject, QThread

_registry_lock = threading.Lock()
_THREADS: set[QThread] = set()


def register(thread: QThread) -> None:
    with _registry_lock:
        _THREADS.add(thread)


def live_threads() -> list[QThread]:
    """Registered QThreads that are still running (finished ones are forgotten)."""
    with _registry_lock:
        for thread in list(_THREADS):
            if not shiboken6.isValid(thread) or not thread.isRunning():
                _THREADS.discard(thread)
        return list(_THREADS)


def new_thread(name: str, worker: QObject) -> QThread:
    """A registered (not yet started) thread named ``name`` that ``worker`` has been moved to."""
    thread = QThread()
    thread.setObjectName(name)
    worker.moveToThread(thread)
    register(thread)
    return thread
