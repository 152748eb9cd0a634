"""Undoable edits of the architecture. Each calls the document's primitive mutators.

Commands address layers by their stable id, never by a remembered index, so they stay correct
however the undo stack is replayed. Rapid edits of one field of one layer (a spin box being
scrolled) merge into one undo step.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Sequence
from typing import Any

from PySide6.QtGui import QUndoCommand

from cnn_studio.document import ProjectDocument, new_layer_id

SET_FIELD_ID = 4101  # QUndoCommand.id() shared by mergeable field edits
MERGE_SECONDS = 1.5


class InsertLayerCommand(QUndoCommand):
    """Insert one layer at ``index`` (0-based). The spec gets a fresh id unless it has one."""

    def __init__(self, document: ProjectDocument, index: int, spec: dict[str, Any], text: str = "") -> None:
        self._spec = copy.deepcopy(spec)
        self._spec.setdefault("id", new_layer_id())
        super().__init__(text or f"Insert {self._spec.get('type', 'layer')}")
        self._doc = document
        self._index = index

    @property
    def layer_id(self) -> str:
        return self._spec["id"]

    def redo(self) -> None:
        self._doc.insert_layer(min(self._index, len(self._doc.layers())), self._spec)

    def undo(self) -> None:
        self._doc.remove_layer(self._doc.index_of(self.layer_id))


class RemoveLayerCommand(QUndoCommand):
    def __init__(self, document: ProjectDocument, layer_id: str) -> None:
        self._doc = document
        self._index = document.index_of(layer_id)
        self._spec = document.layer(self._index)
        super().__init__(f"Delete {self._spec.get('type', 'layer')} {self._index + 1}")

    def redo(self) -> None:
        self._doc.remove_layer(self._doc.index_of(self._spec["id"]))

    def undo(self) -> None:
        self._doc.insert_layer(self._index, self._spec)


class MoveLayerCommand(QUndoCommand):
    """Move a layer so that it ends up at ``target`` (0-based position after the move)."""

    def __init__(self, document: ProjectDocument, layer_id: str, target: int) -> None:
        self._doc = document
        self._id = layer_id
        self._source = document.index_of(layer_id)
        self._target = target
        spec = document.layer(self._source)
        super().__init__(f"Move {spec.get('type', 'layer')} to position {target + 1}")

    def redo(self) -> None:
        self._doc.move_layer(self._doc.index_of(self._id), self._target)

    def undo(self) -> None:
        self._doc.move_layer(self._doc.index_of(self._id), self._source)


class SetLayerCommand(QUndoCommand):
    """Replace one layer's settings. With ``field`` set, quick successive edits of it merge."""

    def __init__(self, document: ProjectDocument, layer_id: str, new_spec: dict[str, Any],
                 field: str | None = None, text: str = "") -> None:
        self._doc = document
        self._id = layer_id
        self._old = document.layer(document.index_of(layer_id))
        self._new = copy.deepcopy(new_spec)
        self._new["id"] = layer_id
        self._field = field
        self._stamp = time.monotonic()
        label = text or (f"Set {self._old.get('type', 'layer')} {field}" if field else
                         f"Change {self._old.get('type', 'layer')}")
        super().__init__(label)

    def id(self) -> int:
        return SET_FIELD_ID if self._field else -1

    def mergeWith(self, other: QUndoCommand) -> bool:  # noqa: N802 (Qt override)
        if not isinstance(other, SetLayerCommand) or other._id != self._id or other._field != self._field:
            return False
        if other._stamp - self._stamp > MERGE_SECONDS:
            return False
        self._new = other._new
        self._stamp = other._stamp
        self.setObsolete(self._new == self._old)
        return True

    def redo(self) -> None:
        self._doc.set_layer(self._doc.index_of(self._id), self._new)

    def undo(self) -> None:
        self._doc.set_layer(self._doc.index_of(self._id), self._old)


class CompositeCommand(QUndoCommand):
    """Several commands as one undo step (e.g. a fix that appends Flatten and Dense)."""

    def __init__(self, text: str, commands: Sequence[QUndoCommand]) -> None:
        super().__init__(text)
        self._commands = list(commands)

    def redo(self) -> None:
        for command in self._commands:
            command.redo()

    def undo(self) -> None:
        for command in reversed(self._commands):
            command.undo()


def duplicate_spec(spec: dict[str, Any]) -> dict[str, Any]:
    """A copy of a layer for Ctrl+D: a new id, and no custom name (weight names must stay unique)."""
    clone = {k: copy.deepcopy(v) for k, v in spec.items() if k not in ("id", "name")}
    clone["id"] = new_layer_id()
    return clone
