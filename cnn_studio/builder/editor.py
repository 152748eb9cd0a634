"""The builder's edit operations: each builds an undo command and pushes it through the document.

Views (palette, canvas, inspector, problems list, menus) call these instead of touching the
document; a locked document refuses them and says why (``ProjectDocument.edit_refused``).
"""

from __future__ import annotations

import copy
from typing import Any

from PySide6.QtCore import QObject

from cnn_studio.builder.commands import (
    InsertLayerCommand,
    MoveLayerCommand,
    RemoveLayerCommand,
    SetLayerCommand,
    duplicate_spec,
)
from cnn_studio.builder.fixes import make_fix_command
from cnn_studio.builder.selection import BlockSelection
from cnn_studio.document import ProjectDocument
from engine.errors import ArchitectureError
from engine.layers import LAYER_TYPES

# What a fresh layer from the palette starts with, besides the engine's defaults: convolution and
# dense layers are almost always followed by a non-linearity, so new ones come with ReLU.
PALETTE_PRESETS: dict[str, dict[str, Any]] = {
    "Conv2D": {"filters": 32, "kernel_size": 3, "activation": "relu"},
    "Dense": {"units": 128, "activation": "relu"},
}


def new_layer_spec(type_name: str) -> dict[str, Any]:
    """The spec a palette entry inserts: the type, every default written out, and the preset."""
    cls = LAYER_TYPES[type_name]
    spec: dict[str, Any] = {"type": type_name}
    spec.update({f.name: f.default for f in cls.fields})
    spec.update(PALETTE_PRESETS.get(type_name, {}))
    return spec


class ArchitectureEditor(QObject):
    def __init__(self, document: ProjectDocument, selection: BlockSelection, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.document = document
        self.selection = selection

    @property
    def num_classes(self) -> int | None:
        """The dataset's class count, when the training workspace has told the document."""
        return self.document.num_classes

    # -- inserting -----------------------------------------------------------------------------------
    def insert_layer(self, type_name: str, index: int | None = None) -> str | None:
        """Insert a new layer of ``type_name`` at ``index`` (0-based; None = append). Returns its id."""
        if type_name not in LAYER_TYPES:
            return None
        return self.insert_spec(new_layer_spec(type_name), index)

    def insert_spec(self, spec: dict[str, Any], index: int | None = None) -> str | None:
        count = len(self.document.layers())
        index = count if index is None else max(0, min(index, count))
        command = InsertLayerCommand(self.document, index, spec)
        if not self.document.push(command):
            return None
        self.selection.select(command.layer_id)
        return command.layer_id

    def append_layer(self, type_name: str) -> str | None:
        return self.insert_layer(type_name, None)

    def duplicate(self, layer_id: str | None = None) -> str | None:
        """Insert a copy right after the layer (default: the selected one)."""
        layer_id = layer_id or self.selection.layer_id
        if layer_id is None:
            return None
        index = self.document.index_of(layer_id)
        return self.insert_spec(duplicate_spec(self.document.layer(index)), index + 1)

    # -- removing and moving -----------------------------------------------------------------------
    def remove(self, layer_id: str | None = None) -> bool:
        layer_id = layer_id or self.selection.layer_id
        if layer_id is None:
            return False
        index = self.document.index_of(layer_id)
        if not self.document.push(RemoveLayerCommand(self.document, layer_id)):
            return False
        # Keep a selection so Delete can be pressed repeatedly: the block that took its place.
        layers = self.document.layers()
        if layers:
            self.selection.select(layers[min(index, len(layers) - 1)]["id"])
        return True

    def move(self, layer_id: str, target: int) -> bool:
        """Move a layer to 0-based position ``target`` (its index after the move)."""
        count = len(self.document.layers())
        target = max(0, min(target, count - 1))
        if self.document.index_of(layer_id) == target:
            return False
        if not self.document.push(MoveLayerCommand(self.document, layer_id, target)):
            return False
        self.selection.select(layer_id)
        return True

    def move_to_gap(self, layer_id: str, gap: int) -> bool:
        """Move a layer into the gap before position ``gap`` (0 = first, count = after the last)."""
        source = self.document.index_of(layer_id)
        return self.move(layer_id, gap - 1 if gap > source else gap)

    def move_by(self, delta: int, layer_id: str | None = None) -> bool:
        layer_id = layer_id or self.selection.layer_id
        if layer_id is None:
            return False
        return self.move(layer_id, self.document.index_of(layer_id) + delta)

    # -- settings --------------------------------------------------------------------------------------
    def set_field(self, layer_id: str, field: str, value: Any) -> bool:
        """Set one setting; quick successive changes of the same field merge into one undo step."""
        spec = self.document.layer(self.document.index_of(layer_id))
        if field in spec and spec[field] == value and type(spec[field]) is type(value):
            return False
        new = copy.deepcopy(spec)
        new[field] = value
        return self.document.push(SetLayerCommand(self.document, layer_id, new, field=field))

    def set_name(self, layer_id: str, name: str) -> bool:
        """Give a layer a custom name (used for its weight names); an empty name restores the default."""
        spec = self.document.layer(self.document.index_of(layer_id))
        name = name.strip()
        if name == spec.get("name", ""):
            return False
        new = {k: v for k, v in spec.items() if k != "name"}
        if name:
            new["name"] = name
        # Not merged: a rename is finished when the field loses focus, so each one is its own step.
        return self.document.push(SetLayerCommand(self.document, layer_id, new,
                                                  text=f"Rename {spec.get('type', 'layer')}"))

    # -- fixes -------------------------------------------------------------------------------------------
    def apply_fix(self, problem: ArchitectureError, num_classes: int | None = None) -> bool:
        command = make_fix_command(self.document, problem, num_classes or self.num_classes)
        if command is None:
            return False
        return self.document.push(command)
