"""Undoable edits of the architecture. Each calls the document's primitive mutators.

Commands address layers by their stable id, never by a remembered index, so they stay correct
however the undo stack is replayed. Structural edits (``GraphEditCommand``: insert, delete,
connect, ...) keep only what they change. Rapid edits of one field of one layer (a spin box being
scrolled) merge into one undo step.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from PySide6.QtGui import QUndoCommand

from cnn_studio import graph
from cnn_studio.builder.selection import BlockSelection
from cnn_studio.document import ProjectDocument, new_layer_id

SET_FIELD_ID = 4101  # QUndoCommand.id() shared by mergeable field edits
MERGE_SECONDS = 1.5


@dataclass(frozen=True)
class LayersChange:
    """What a structural edit changes: the order of layer ids, and the specs that differ (None: absent)."""

    order_before: tuple[str, ...]
    order_after: tuple[str, ...]
    before: dict[str, Any]
    after: dict[str, Any]

    @classmethod
    def between(cls, old: Sequence[dict[str, Any]], new: Sequence[dict[str, Any]]) -> LayersChange:
        old_by_id = {spec["id"]: spec for spec in old}
        new_by_id = {spec["id"]: spec for spec in new}
        changed = [key for key in {**old_by_id, **new_by_id} if old_by_id.get(key) != new_by_id.get(key)]
        return cls(tuple(old_by_id), tuple(new_by_id),
                   {key: copy.deepcopy(old_by_id.get(key)) for key in changed},
                   {key: copy.deepcopy(new_by_id.get(key)) for key in changed})

    def apply(self, current: Sequence[dict[str, Any]], forward: bool = True) -> list[dict[str, Any]]:
        by_id = {spec["id"]: spec for spec in current}
        for key, spec in (self.after if forward else self.before).items():
            if spec is None:
                by_id.pop(key, None)
            else:
                by_id[key] = copy.deepcopy(spec)
        return [by_id[key] for key in (self.order_after if forward else self.order_before)]


class GraphEditCommand(QUndoCommand):
    """A structural edit of the network (insert, delete, connect, ...): the document's layers become
    ``new_layers``. Only the difference is kept, addressed by layer id.

    Given a ``selection``, redoing selects ``select_after`` and undoing selects ``select_before``
    (e.g. undoing a delete selects the restored block), where they are set.
    """

    def __init__(self, document: ProjectDocument, text: str, new_layers: Sequence[dict[str, Any]],
                 selection: BlockSelection | None = None, select_after: str | None = None,
                 select_before: str | None = None) -> None:
        super().__init__(text)
        self._doc = document
        self._change = LayersChange.between(document.layers(), new_layers)
        self._selection = selection
        self._select_after = select_after
        self._select_before = select_before

    @property
    def change(self) -> LayersChange:
        return self._change

    def redo(self) -> None:
        self._doc.set_layers(self._change.apply(self._doc.layers(), forward=True))
        if self._selection is not None and self._select_after:
            self._selection.select(self._select_after)

    def undo(self) -> None:
        self._doc.set_layers(self._change.apply(self._doc.layers(), forward=False))
        if self._selection is not None and self._select_before:
            self._selection.select(self._select_before)


class InsertLayerCommand(GraphEditCommand):
    """Insert one layer before the layer now at ``index`` (0-based; at the end: after the output).

    The spec gets a fresh id unless it has one.
    """

    def __init__(self, document: ProjectDocument, index: int, spec: dict[str, Any], text: str = "") -> None:
        spec = copy.deepcopy(spec)
        spec.setdefault("id", new_layer_id())
        self._id = spec["id"]
        super().__init__(document, text or f"Insert {spec.get('type', 'layer')}",
                         graph.insert_at(document.layers(), [spec], index))

    @property
    def layer_id(self) -> str:
        return self._id


class RemoveLayerCommand(GraphEditCommand):
    """Delete a layer; the layers it fed take its input instead."""

    def __init__(self, document: ProjectDocument, layer_id: str) -> None:
        index = document.index_of(layer_id)
        spec = document.layer(index)
        super().__init__(document, f"Delete {spec.get('type', 'layer')} {index + 1}",
                         graph.remove(document.layers(), layer_id))


class MoveLayerCommand(GraphEditCommand):
    """Chain-style move: take a layer out and put it before the layer at ``target`` of the rest (0-based)."""

    def __init__(self, document: ProjectDocument, layer_id: str, target: int) -> None:
        spec = document.layer(document.index_of(layer_id))
        super().__init__(document, f"Move {spec.get('type', 'layer')} to position {target + 1}",
                         graph.move_to_index(document.layers(), layer_id, target))


class SetLayerCommand(QUndoCommand):
    """Replace one layer's settings. With ``field`` set, quick successive edits of it merge."""

    def __init__(self, document: ProjectDocument, layer_id: str, new_spec: dict[str, Any],
                 field: str | None = None, text: str = "") -> None:
        self._doc = document
        self._id = layer_id
        self._old = document.layer(document.index_of(layer_id))
        self._new = copy.deepcopy(new_spec)
        self._new["id"] = layer_id
        if "inputs" in self._old:  # a settings edit never rewires the layer
            self._new["inputs"] = copy.deepcopy(self._old["inputs"])
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
    """Several commands as one undo step. Structural commands compute their result when created, so
    only the first of them may be structural (or combine the structural edits in one GraphEditCommand)."""

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
    """A copy of a layer for Ctrl+D: a new id, no custom name (weight names must stay unique), and no
    wiring (the editor places it)."""
    clone = {k: copy.deepcopy(v) for k, v in spec.items() if k not in ("id", "name", "inputs")}
    clone["id"] = new_layer_id()
    return clone
