"""A progress dialog with Cancel for a dataset that takes a while to load (a large folder of images)."""

from __future__ import annotations

from PySide6.QtCore import QObject, Qt
from PySide6.QtWidgets import QProgressDialog, QWidget

from cnn_studio.training.datasets import DatasetSource
from cnn_studio.training.settings_form import dataset_title

STAGES = {"scanning": "Reading the image headers of", "decoding": "Decoding the images of"}


class DatasetProgress(QObject):
    """Follows ``source``'s loads: a load still going after SHOW_AFTER_MS shows a dialog with how far it
    is and a Cancel button, which stops the load (nothing is kept; the previous dataset stays)."""

    SHOW_AFTER_MS = 1000

    def __init__(self, source: DatasetSource, window: QWidget) -> None:
        super().__init__(window)
        self.source = source
        self.window = window
        self.dialog: QProgressDialog | None = None
        self._advancing = False
        self._ended: QProgressDialog | None = None  # a dialog whose load ended inside _advance
        source.loading.connect(self._start)
        source.progressed.connect(self._advance)
        for finished in (source.loaded, source.failed, source.cancelled):
            finished.connect(self._finish)

    def _start(self, ref: str) -> None:
        self._finish()
        dialog = QProgressDialog(f"Loading {dataset_title(ref)}…", "Cancel", 0, 0, self.window.window())
        dialog.setWindowTitle("Loading the dataset")
        dialog.setWindowModality(Qt.WindowModality.WindowModal)
        dialog.setMinimumDuration(self.SHOW_AFTER_MS)
        dialog.setAutoClose(False)
        dialog.setAutoReset(False)
        dialog.setMinimumWidth(420)
        dialog.canceled.connect(self.source.abort)
        dialog.setValue(0)
        self.dialog = dialog

    def _advance(self, ref: str, stage: str, done: int, total: int) -> None:
        dialog = self.dialog
        if dialog is None or self._advancing:
            return
        # A modal dialog's setValue runs the event loop: the load may end (and _finish run) inside it,
        # and the dialog must not be deleted while its own setValue is still on the stack.
        self._advancing = True
        try:
            what = STAGES.get(stage)
            if what is not None:
                dialog.setLabelText(f"{what} {dataset_title(ref)}: {done:,} of {total:,}")
            dialog.setMaximum(max(total, 1))
            dialog.setValue(min(done, max(total, 1)))
        finally:
            self._advancing = False
        if self._ended is not None:
            ended, self._ended = self._ended, None
            self._close(ended)

    def _finish(self, *_args: object) -> None:
        dialog, self.dialog = self.dialog, None
        if dialog is not None and self._advancing:
            self._ended = dialog  # closed once setValue has returned
            return
        self._close(dialog)

    def _close(self, dialog: QProgressDialog | None) -> None:
        if dialog is not None:
            dialog.canceled.disconnect(self.source.abort)
            dialog.close()
            dialog.deleteLater()
