"""Every question and message the window puts to the user, in one replaceable object.

Errors and notices open window-modal boxes without blocking the event loop (``open()``), so the
app keeps running; only the save-changes question and file choosers wait for an answer.
"""

from __future__ import annotations

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
