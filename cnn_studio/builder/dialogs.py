"""Every question and message the window puts to the user, in one replaceable object.

Errors and notices open window-modal boxes without blocking the event loop (``open()``), so the
app keeps running; only the save-changes question and file choosers wait for an answer.
"""

from __future__ import annotations

import time

from PySide6.QtWidgets import QFileDialog, QMessageBox, QWidget

from cnn_studio.messages import headless, show_message
from cnn_studio.project_file import PROJECT_SUFFIX

PROJECT_FILTER = f"CNN Studio projects (*{PROJECT_SUFFIX});;Architecture files (*.json);;All files (*)"

class Dialogs:
    def __init__(self, parent: QWidget) -> None:
        self.parent = parent
        self.last_error: tuple[str, str] | None = None

    def ask_save_changes(self, project_name: str) -> str:
        """'save', 'discard' or 'cancel'. Headless, nobody can answer: the changes are discarded."""
        if headless():
            return "discard"
        box = QMessageBox(QMessageBox.Icon.Warning, "Unsaved changes",
                          f"The project “{project_name}” has changes that are not saved.", parent=self.parent)
        box.setInformativeText("Save them before continuing?")
        box.setStandardButtons(QMessageBox.StandardButton.Save | QMessageBox.StandardButton.Discard
                               | QMessageBox.StandardButton.Cancel)
        box.setDefaultButton(QMessageBox.StandardButton.Save)
        answer = box.exec()
        return {QMessageBox.StandardButton.Save: "save",
                QMessageBox.StandardButton.Discard: "discard"}.get(QMessageBox.StandardButton(answer), "cancel")

    def ask_restore(self, project_name: str, saved_at: float) -> bool | None:
        """After a crash: True to restore the unsaved changes, False to discard them, None when nobody can
        answer (headless: they are kept for the next launch)."""
        if headless():
            return None
        when = time.strftime("%H:%M on %d %B", time.localtime(saved_at))
        box = QMessageBox(QMessageBox.Icon.Question, "Restore unsaved changes?",
                          f"CNN Studio did not close properly. The project “{project_name}” had changes that "
                          f"were not saved (kept at {when}).", parent=self.parent)
        box.setInformativeText("Restore them? Otherwise they are discarded.")
        box.setStandardButtons(QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.Discard)
        box.button(QMessageBox.StandardButton.Yes).setText("Restore")
        box.setDefaultButton(QMessageBox.StandardButton.Yes)
        return QMessageBox.StandardButton(box.exec()) == QMessageBox.StandardButton.Yes

    def open_project_path(self, directory: str) -> str | None:
        if headless():
            return None
        path, _ = QFileDialog.getOpenFileName(self.parent, "Open project", directory, PROJECT_FILTER)
        return path or None

    def save_project_path(self, suggested: str) -> str | None:
        if headless():
            return None
        path, _ = QFileDialog.getSaveFileName(self.parent, "Save project as", suggested,
                                              f"CNN Studio projects (*{PROJECT_SUFFIX})")
        if not path:
            return None
        return path if path.endswith(PROJECT_SUFFIX) else path + PROJECT_SUFFIX

    def error(self, title: str, text: str, details: str = "") -> None:
        """Show an error without blocking; the app keeps running."""
        self.last_error = (title, text)
        show_message(self.parent, "error", title, text, details=details)

    def info(self, title: str, text: str) -> None:
        show_message(self.parent, "info", title, text)
