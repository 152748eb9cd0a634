"""Loads a dataset on a worker thread so that a big folder never freezes the window."""

from __future__ import annotations

import logging
import threading
import time
import traceback

from PySide6.QtCore import QObject, QThread, Signal, Slot

from cnn_studio.training.thread_warnings import forget_shown_warnings, warnings_to
from cnn_studio.training.training_worker import describe_exception
from engine.data import load_dataset
from engine.errors import LoadCancelled

log = logging.getLogger(__name__)


class DatasetLoader(QObject):
    """Lives in a worker thread; ``run()`` (connected to the thread's ``started``) loads ``ref`` there.

    Signals: loaded(ref, Dataset, warnings), failed(ref, message), cancelled(ref), progressed(ref, stage,
    done, total) (at most every PROGRESS_SECONDS, and at the end of each stage: "scanning" headers,
    "decoding" pixels of an image folder). ``warnings`` is a tuple of one-line texts: the files the
    loader skipped and anything else it warned about, every time it loads. ``cancel()`` may be called
    from any thread: the load stops at the next file.
    """

    PROGRESS_SECONDS = 0.1

    loaded = Signal(str, object, object)
    failed = Signal(str, str)
    cancelled = Signal(str)
    progressed = Signal(str, str, int, int)

    def __init__(self, ref: str) -> None:
        super().__init__()
        self.ref = ref
        self._stop = threading.Event()
        self._last_report = 0.0

    def cancel(self) -> None:
        self._stop.set()

    def _report(self, stage: str, done: int, total: int) -> None:
        now = time.monotonic()
        if done == total or now - self._last_report >= self.PROGRESS_SECONDS:
            self._last_report = now
            self.progressed.emit(self.ref, stage, done, total)

    @Slot()
    def run(self) -> None:
        ref = self.ref
        said: list[str] = []
        try:
            # Python shows a warning once per place in the code: a folder loaded again must list its skipped
            # files again.
            forget_shown_warnings()
            with warnings_to(said.append):
                dataset = load_dataset(ref, progress=self._report, cancel=self._stop.is_set)
        except LoadCancelled:
            self.cancelled.emit(ref)
        except Exception as exc:  # every failure becomes a message naming the dataset
            log.info("dataset %s failed to load:\n%s", ref, traceback.format_exc())
            self.failed.emit(ref, describe_exception(exc))
        else:
            self.loaded.emit(ref, dataset, tuple(said))
        finally:
            # One load per thread: end it from inside, so it never waits for the GUI thread to tell it.
            QThread.currentThread().quit()
