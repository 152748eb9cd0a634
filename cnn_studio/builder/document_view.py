"""The scroll area the builder's side panels (inspector, problems) are: a view of the document."""

from __future__ import annotations

from PySide6.QtWidgets import QFrame, QScrollArea, QWidget

from cnn_studio.builder.editor import ArchitectureEditor
from cnn_studio.document import ProjectDocument


class DocumentScrollView(QScrollArea):
    """A frameless, resizable scroll area showing part of the document; subclasses fill ``body``
    and edit through ``editor`` (every edit an undoable command)."""

    def __init__(self, document: ProjectDocument, editor: ArchitectureEditor, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.document = document
        self.editor = editor
        self.setWidgetResizable(True)
        self.setFrameShape(QFrame.Shape.NoFrame)
        self.body = QWidget(self)
        self.setWidget(self.body)
