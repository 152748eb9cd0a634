"""A folder picker that also takes the name of a folder that does not exist yet.

Qt's folder mode refuses a typed name that is not an existing folder ("Directory not found"), so
exporting into a new folder meant creating it first. Here a new name is accepted as it is; whoever
writes into it creates it (and any missing parent folders).
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QDialog, QDialogButtonBox, QFileDialog, QLineEdit, QPushButton, QWidget

from cnn_studio.messages import show_message


class NewFolderChooser(QFileDialog):
    def __init__(self, parent: QWidget | None, title: str, suggested: Path, accept_label: str = "Choose") -> None:
        super().__init__(parent, title, str(suggested.parent))
        self.setFileMode(QFileDialog.FileMode.Directory)
        self.setOption(QFileDialog.Option.ShowDirsOnly, True)
        # The platform's own dialog would not come back through accept() below.
        self.setOption(QFileDialog.Option.DontUseNativeDialog, True)
        self.setLabelText(QFileDialog.DialogLabel.FileName, "Folder:")
        self.setLabelText(QFileDialog.DialogLabel.Accept, accept_label)
        self._new_folder: Path | None = None
        # Qt greys out the accept button while the name is not an existing folder: enable it again
        # after each of its updates.
        self._name_field = self.findChild(QLineEdit, "fileNameEdit")
        if self._name_field is not None:
            self._name_field.textChanged.connect(self._enable_accept_later)
        self.directoryEntered.connect(self._enable_accept_later)
        self.currentChanged.connect(self._enable_accept_later)
        self.selectFile(suggested.name)
        self._enable_accept_later()

    def accept_button(self) -> QPushButton | None:
        box = self.findChild(QDialogButtonBox, "buttonBox")
        return box.buttons()[0] if box is not None and box.buttons() else None

    def _enable_accept_later(self, *_args: object) -> None:
        QTimer.singleShot(0, self._enable_accept)

    def _enable_accept(self) -> None:
        button = self.accept_button()
        if button is not None and self._name_field is not None and self._name_field.text().strip():
            button.setEnabled(True)

    def typed_path(self) -> Path | None:
        """What the name field names, relative to the folder shown."""
        files = self.selectedFiles()
        return Path(files[0]) if files else None

    def accept(self) -> None:
        path = self.typed_path()
        self._new_folder = None
        if path is not None and not path.exists():
            self._new_folder = path  # created, with any missing parents, by the export
            QDialog.accept(self)
            return
        if path is not None and not path.is_dir():
            show_message(self, "warning", self.windowTitle(),
                         f"{path.name} is a file: choose a folder, or type a new folder's name.")
            return
        super().accept()

    def chosen(self) -> Path | None:
        """The folder chosen (possibly one still to be created), once the dialog was accepted."""
        if self.result() != QDialog.DialogCode.Accepted:
            return None
        if self._new_folder is not None:
            return self._new_folder
        return self.typed_path()


def choose_folder(parent: QWidget | None, title: str, suggested: Path, accept_label: str = "Choose") -> Path | None:
    """Ask for a folder, existing or new (``suggested`` is preselected); None when cancelled."""
    dialog = NewFolderChooser(parent, title, suggested, accept_label)
    dialog.exec()
    return dialog.chosen()
