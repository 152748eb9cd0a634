"""New, Open, Save and Save As for the project document, with the unsaved-changes question.

Opening validates the whole file first (``project_file.read_project``): a broken or foreign file
is refused with a message naming it, and the current document stays exactly as it was.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QObject

from cnn_studio.builder.dialogs import Dialogs
from cnn_studio.builder.recent import RecentFiles
from cnn_studio.builder.templates import Template, load_template, seed_architecture
from cnn_studio.document import DEFAULT_DATASET, ProjectDocument
from cnn_studio.project_file import PROJECT_SUFFIX, ProjectData, ProjectFileError, read_project, write_project
from engine.errors import EngineError


class ProjectController(QObject):
    def __init__(self, document: ProjectDocument, dialogs: Dialogs, recent: RecentFiles,
                 parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.document = document
        self.dialogs = dialogs
        self.recent = recent

    # -- guards -------------------------------------------------------------------------------------------
    def confirm_discard(self) -> bool:
        """True when the current project may be replaced or closed (saved, discarded or unchanged)."""
        if not self.document.is_modified():
            return True
        answer = self.dialogs.ask_save_changes(self.document.display_name)
        if answer == "save":
            return self.save()
        return answer == "discard"

    def _unlocked(self, what: str) -> bool:
        if self.document.locked:
            reason = self.document.lock_reason or "the project is locked"
            self.dialogs.error(f"Cannot {what}", f"Cannot {what} now: {reason}.")
            return False
        return True

    # -- new and open -------------------------------------------------------------------------------------------
    def new_project(self, template: Template | None = None) -> bool:
        """A fresh, untitled project: the seed network, or the given template."""
        if not self._unlocked("start a new project") or not self.confirm_discard():
            return False
        try:
            architecture = load_template(template.path) if template else seed_architecture()
        except EngineError as exc:
            self.dialogs.error("Cannot load the template", f"Template “{template.name}”: {exc}")
            return False
        self.document.load_project(architecture, DEFAULT_DATASET, {}, None)
        return True

    def open_project(self, path: str | Path | None = None) -> bool:
        if not self._unlocked("open a project") or not self.confirm_discard():
            return False
        if path is None:
            start = str(self.document.file_path.parent) if self.document.file_path else str(Path.home())
            path = self.dialogs.open_project_path(start)
            if path is None:
                return False
        try:
            data = read_project(path)
        except ProjectFileError as exc:
            if not Path(path).exists():
                self.recent.remove(path)
            self.dialogs.error("Cannot open the project", str(exc))
            return False
        # An architecture file opens as a new untitled project, so Save does not overwrite it with a project.
        self.document.load_project(data.architecture, data.dataset, data.training,
                                   None if data.architecture_only else path)
        if not data.architecture_only:
            self.recent.add(path)
        return True

    # -- save -----------------------------------------------------------------------------------------------------
    def save(self) -> bool:
        if self.document.file_path is None:
            return self.save_as()
        return self._write(self.document.file_path)

    def save_as(self, path: str | Path | None = None) -> bool:
        if path is None:
            current = self.document.file_path
            suggested = str(current) if current else str(Path.home() / f"{self.document.display_name}{PROJECT_SUFFIX}")
            path = self.dialogs.save_project_path(suggested)
            if path is None:
                return False
        return self._write(Path(path))

    def _write(self, path: Path) -> bool:
        data = ProjectData(self.document.architecture(), self.document.dataset_ref, self.document.training)
        try:
            write_project(path, data)
        except ProjectFileError as exc:
            self.dialogs.error("Cannot save the project", str(exc))
            return False
        before = self.document.file_path
        self.document.set_file_path(path)
        self.document.mark_saved()
        self.recent.add(path)
        self.document.saved.emit(str(before) if before else "", str(path))  # its runs follow it
        return True
