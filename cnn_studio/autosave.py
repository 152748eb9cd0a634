"""Autosave: every 30 seconds the open project (design, dataset, training settings, an untitled project's
runs folder) goes to this studio's recovery file, atomically, while it has unsaved changes."""

from __future__ import annotations

import logging
import os

from PySide6.QtCore import QObject, QTimer, Signal

from cnn_studio.document import ProjectDocument
from cnn_studio.project_file import ProjectData
from cnn_studio.recovery import discard, recovery_file, write_recovery

log = logging.getLogger(__name__)
INTERVAL_ENV = "CNN_STUDIO_AUTOSAVE_SECONDS"
INTERVAL_SECONDS = 30.0


def interval_ms() -> int:
    try:
        seconds = float(os.environ.get(INTERVAL_ENV, "") or INTERVAL_SECONDS)
    except ValueError:
        seconds = INTERVAL_SECONDS
    return max(50, int(seconds * 1000))


class Autosave(QObject):
    """Writes ``document`` to the recovery file on a timer while it is modified; removes the file once
    the project is saved or the studio closes cleanly. Signal: ``failed(message)`` once per failure run
    (e.g. the recovery folder cannot be written), so the window can say so without repeating it."""

    failed = Signal(str)

    def __init__(self, document: ProjectDocument, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.document = document
        self.file = recovery_file()
        self._failing = False
        self.timer = QTimer(self)
        self.timer.setInterval(interval_ms())
        self.timer.timeout.connect(self.save_now)
        self.timer.start()
        document.modified_changed.connect(self._modified_changed)

    def save_now(self) -> bool:
        """Write the recovery file if there are unsaved changes (else remove it); True when written."""
        document = self.document
        if not document.is_modified():
            self.clear()
            return False
        store = document.run_store
        runs = store.folder if store.temporary and store.folder.is_dir() else None
        data = ProjectData(document.architecture(), document.dataset_ref, document.training)
        try:
            write_recovery(self.file, data, document.file_path, runs)
        except (OSError, ValueError, TypeError) as exc:
            log.info("autosave failed: %s", exc)
            if not self._failing:
                self.failed.emit(f"Autosave failed: {self.file.parent}: {getattr(exc, 'strerror', None) or exc}")
            self._failing = True
            return False
        self._failing = False
        return True

    def clear(self) -> None:
        discard(self.file)

    def stop(self) -> None:
        """The studio closes cleanly: nothing to recover."""
        self.timer.stop()
        self.clear()

    def _modified_changed(self, modified: bool) -> None:
        if not modified:  # saved (or replaced by a saved project): nothing left to recover
            self.clear()
