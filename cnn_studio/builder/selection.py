"""Which block is selected: shared by the canvas, the inspector and the problems list."""

from __future__ import annotations

from PySide6.QtCore import QObject, Signal

from cnn_studio.document import ProjectDocument
from cnn_studio.graph import INPUT


class BlockSelection(QObject):
    """Holds the selected layer id, ``INPUT`` for the Input block, or None. ``changed(str)`` carries
    the id (``INPUT`` for the Input block), "" for none.

    The Input block is not a layer: ``layer_id`` and ``index()`` stay None while it is selected, so
    layer edits (duplicate, move, the inspector's form) leave it alone; it is selectable so that the
    canvas shows it selected and Delete can explain why it stays.

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
        """The selected layer's id; None when nothing or the Input block is selected."""
        return None if self._id == INPUT else self._id

    @property
    def input_selected(self) -> bool:
        return self._id == INPUT

    def index(self) -> int | None:
        """0-based position of the selected layer, or None."""
        if self.layer_id is None:
            return None
        try:
            return self._document.index_of(self.layer_id)
        except KeyError:
            return None

    def select(self, layer_id: str | None) -> None:
        """Select a layer by id, the Input block by ``INPUT``, or nothing (None or "")."""
        layer_id = layer_id or None
        if layer_id == self._id:
            return
        self._id = layer_id
        self.changed.emit(layer_id or "")

    def _drop_if_gone(self) -> None:
        if self.layer_id is not None and self.index() is None:
            self.select(None)
