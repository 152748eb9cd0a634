"""Loads a dataset on a worker thread so that a big folder never freezes the window."""

from __future__ import annotations

import logging
import traceback

from PySide6.QtCore import QObject, QThread, Signal, Slot

from cnn_studio.training.thread_warnings import warnings_to
from cnn_studio.training.training_worker import describe_exception
from engine.data import load_dataset

log = logging.getLogger(__name__)


class DatasetLoader(QObject):
    """Lives in a worker thread; ``run()`` (connected to the thread's ``started``) loads ``ref`` there.

    Signals: loaded(ref, Dataset), failed(ref, message), warning(text); skipped files and other
    loader warnings arrive as ``warning`` lines instead of going to stderr.
    """

    loaded = Signal(str, object)
    failed = Signal(str, str)
    warning = Signal(str)

    def __init__(self, ref: str) -> None:
        super().__init__()
        self.ref = ref

    @Slot()
    def run(self) -> None:
        ref = self.ref
        try:
            with warnings_to(self.warning.emit):
                dataset = load_dataset(ref)
        except Exception as exc:  # every failure becomes a message naming the dataset
            log.info("dataset %s failed to load:\n%s", ref, traceback.format_exc())
            self.failed.emit(ref, describe_exception(exc))
        else:
            self.loaded.emit(ref, dataset)
        finally:
            # One load per thread: end it from inside, so it never waits for the GUI thread to tell it.
            QThread.currentThread().quit()
