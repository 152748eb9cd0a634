"""Closing the window while training runs: ask first (before anything else is asked), then stop the run,
join every thread and, if the user wants, save the weights reached."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from PySide6.QtWidgets import QFileDialog, QMessageBox, QWidget

from cnn_studio.messages import headless
from cnn_studio.training.session import TrainingSession
from engine.weights import save_weights

KEEP, DISCARD, CANCEL = "keep", "discard", "cancel"


# -- dialogs: module-level so tests (and scripts) can answer them without a modal loop --------------------------
def ask_stop_training(parent: QWidget) -> str:
    """Training runs and the window is closing: KEEP (stop, save the weights), DISCARD or CANCEL.

    Headless, nobody can answer: the run is stopped and its weights are not saved.
    """
    if headless():
        return DISCARD
    box = QMessageBox(QMessageBox.Icon.Question, "Stop training?",
                      "Training is still running. Stop it and close?\n\nKeep the trained weights? "
                      "They can be saved to a weight file before the window closes.", parent=parent)
    keep = box.addButton("Stop && &keep weights…", QMessageBox.ButtonRole.AcceptRole)
    discard = box.addButton("Stop && &discard", QMessageBox.ButtonRole.DestructiveRole)
    box.addButton(QMessageBox.StandardButton.Cancel)
    box.setDefaultButton(keep)
    box.exec()  # the window is closing: this answer is needed before anything else happens
    clicked = box.clickedButton()
    return KEEP if clicked is keep else DISCARD if clicked is discard else CANCEL


def ask_weights_path(parent: QWidget, suggested: str) -> str | None:
    if headless():
        return None
    path, _ = QFileDialog.getSaveFileName(parent, "Save the trained weights", suggested, "Weight files (*.npz)")
    if path and not path.lower().endswith(".npz"):
        path += ".npz"
    return path or None


class TrainingCloser:
    """``confirm()`` asks about a running run (the first question when the window closes); ``close()`` then
    stops it, joins the threads and keeps the weights if that was the answer."""

    def __init__(self, window: QWidget, session: TrainingSession, notify: Callable[[str, str, str], None],
                 on_closing: Callable[[], None]) -> None:
        self.window = window
        self.session = session
        self.notify = notify
        self.on_closing = on_closing
        self._answer: str | None = None

    def confirm(self) -> bool:
        """False when the user wants training to go on (the window stays open)."""
        self._answer = ask_stop_training(self.window) if self.session.runner.running else None
        return self._answer != CANCEL

    def close(self) -> bool:
        """Stop and join everything; asks first if ``confirm`` was not called while the run was going on."""
        answer, self._answer = self._answer, None
        if answer is None and self.session.runner.running:
            answer = ask_stop_training(self.window)
        if answer == CANCEL:
            return False
        self.on_closing()
        self.session.shutdown()
        if answer == KEEP:
            self.keep_weights()
        return True

    def keep_weights(self) -> Path | None:
        """Ask where to save the latest weights and save them; returns the path written."""
        model = self.session.trained.model()
        if model is None:
            return None
        path = ask_weights_path(self.window, str(Path.home() / "trained-weights.npz"))
        if not path:
            return None
        try:
            return save_weights(model, path)
        except OSError as exc:
            self.notify("error", "Weights not saved", f"Could not write {path}: {exc.strerror or exc}")
            return None
