"""Which block is selected: shared by the canvas, the inspector and the problems list."""

from __future__ import annotations

from PySide6.QtCore import QObject, Signal

from cnn_studio.document import ProjectDocument


class BlockSelection(QObject):
    """Holds the selected layer id (or None). ``changed(str)`` carries the id, "" for none.

    A selection whose layer disappears (deleted, undone) clears itself.
    """

    changed = Signal(str)

    def __init__(self, document: ProjectDocument, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._document = document
        self._id: str | None = None
        document.changed.connect(self._drop_if_gone)

    @property
    def layer_id(self) -> str | None:
        return self._id

    def index(self) -> int | None:
        """0-based position of the selected layer, or None."""
        if self._id is None:
            return None
        try:
            return self._document.index_of(self._id)
        except KeyError:
            return None

    def select(self, layer_id: str | None) -> None:
        layer_id = layer_id or None
        if layer_id == self._id:
            return
        self._id = layer_id
        self.changed.emit(layer_id or "")

    def _drop_if_gone(self) -> None:
        if self._id is not None and self.index() is None:
            self.select(None)
