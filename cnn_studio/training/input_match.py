"""The network's input follows the dataset's images: one undoable edit, and the words that explain it."""

from __future__ import annotations

from PySide6.QtGui import QUndoCommand

from cnn_studio.document import ProjectDocument
from engine.data import Dataset


def shape_text(shape: tuple[int, ...]) -> str:
    return "×".join(str(v) for v in shape)


class MatchInputCommand(QUndoCommand):
    """Set the network's input shape to the dataset's image shape (undo restores the old one)."""

    def __init__(self, document: ProjectDocument, dataset: Dataset) -> None:
        self._doc = document
        self.old = tuple(document.input_shape)
        self.new = tuple(int(v) for v in dataset.input_shape)
        super().__init__(f"Match input to {dataset.name} ({shape_text(self.new)}, was {shape_text(self.old)})")

    def redo(self) -> None:
        self._doc.set_input_shape(self.new)

    def undo(self) -> None:
        self._doc.set_input_shape(self.old)


def match_input(document: ProjectDocument, dataset: Dataset) -> tuple[str, str]:
    """Give the network the dataset's image shape through the undo stack.

    Returns (explanation, short status line), both "" when nothing changed (same shape, or the document
    is locked).
    """
    if tuple(document.input_shape) == tuple(dataset.input_shape) or document.locked:
        return "", ""
    command = MatchInputCommand(document, dataset)
    if not document.push(command):
        return "", ""
    old, new = shape_text(command.old), shape_text(command.new)
    explanation = (f"The network's input is now {new} to match the {new} images of {dataset.name} "
                   f"(it was {old}). To train it as designed, choose a dataset of {old} images; "
                   "Edit > Undo restores the old input.")
    status = f"Input is now {new} to match {dataset.name} (was {old}; Ctrl+Z restores it)."
    return explanation, status
