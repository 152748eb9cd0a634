"""The builder's edit operations: each builds an undo command and pushes it through the document.

Views (palette, canvas, inspector, problems list, menus) call these instead of touching the
document; a locked document refuses them and says why (``ProjectDocument.edit_refused``); an edit
the graph does not allow (a loop, a layer's last input) is refused with ``notice(str)``.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from PySide6.QtCore import QObject, Signal

from cnn_studio import graph
from cnn_studio.builder import composites
from cnn_studio.builder.commands import GraphEditCommand, SetLayerCommand, duplicate_spec
from cnn_studio.builder.fixes import Fix, fixes_for, make_fix_command
from cnn_studio.builder.selection import BlockSelection
from cnn_studio.document import ProjectDocument, new_layer_id
from cnn_studio.graph import INPUT, OUTPUT, GraphEditError, Wire
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


# Said when Delete meets the Input block: it is not a layer, and its shape is set by the dataset (the
# inspector only describes it), so the words point there.
INPUT_KEPT = ("The Input block can't be deleted: every network starts with it. Its shape follows the "
              "dataset chosen in the Train tab.")


@dataclass(frozen=True)
class DropTarget:
    """Where new layers go: on ``wire``, or "before"/"after" the node ``node``."""

    kind: str  # "wire", "before" or "after"
    wire: Wire | None = None
    node: str | None = None


class ArchitectureEditor(QObject):
    """Signals: ``notice(str)`` when an edit cannot be made, saying why (for the status bar)."""

    notice = Signal(str)

    def __init__(self, document: ProjectDocument, selection: BlockSelection, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.document = document
        self.selection = selection

    @property
    def num_classes(self) -> int | None:
        """The dataset's class count, when the training workspace has told the document."""
        return self.document.num_classes

    # -- the one way structural edits are made ------------------------------------------------------------
    def _edit(self, text: str, edit: Callable[[list[dict[str, Any]]], list[dict[str, Any]]],
              select: str | None = None, select_on_undo: str | None = None) -> bool:
        """Push ``edit`` (layers -> new layers) as one undo step, then select ``select``; with
        ``select_on_undo``, undoing selects that layer and redoing ``select`` again."""
        if self.document.locked:
            self.document.edit_refused.emit(self.document.lock_reason or "the architecture is locked")
            return False
        layers = self.document.layers()
        try:
            after = edit(layers)
        except GraphEditError as problem:
            self.notice.emit(f"{text}: not possible, {problem}.")
            return False
        if after == layers:
            return False
        command = (GraphEditCommand(self.document, text, after, self.selection, select, select_on_undo)
                   if select_on_undo else GraphEditCommand(self.document, text, after))
        if not self.document.push(command):
            return False
        if select is not None:
            self.selection.select(select)
        return True

    def _name(self, node: str) -> str:
        return graph.label(self.document.layers(), node)

    # -- inserting -----------------------------------------------------------------------------------
    def insert_layer(self, type_name: str, index: int | None = None) -> str | None:
        """A new layer of ``type_name`` before the layer at ``index`` (0-based; None: append). Returns its id."""
        if type_name not in LAYER_TYPES:
            return None
        return self.insert_spec(new_layer_spec(type_name), index)

    def insert_spec(self, spec: dict[str, Any], index: int | None = None) -> str | None:
        spec = copy.deepcopy(spec)
        spec["id"] = spec.get("id") or new_layer_id()
        count = len(self.document.layers())
        index = count if index is None else max(0, min(index, count))
        done = self._edit(f"Insert {spec.get('type', 'layer')}",
                          lambda layers: graph.keep_names(layers, graph.insert_at(layers, [spec], index)),
                          select=spec["id"])
        return spec["id"] if done else None

    def append_layer(self, type_name: str) -> str | None:
        return self.insert_layer(type_name, None)

    def insert_after_selection(self, type_name: str) -> str | None:
        """A new layer after the selected block (between it and everything it feeds), else at the end."""
        target = self._after_selection()
        if target is None or type_name not in LAYER_TYPES:
            return self.append_layer(type_name)
        return self.insert_at_target(type_name, target)

    def insert_composite_after_selection(self, key: str) -> str | None:
        """A composite block after the selected block, else at the end (as the palette appends it)."""
        target = self._after_selection()
        if target is None:
            return self.append_composite(key)
        return self.insert_composite(key, target)

    def _after_selection(self) -> DropTarget | None:
        """Right after the selected block (the Input block too: the new layers come first); None: nothing selected."""
        node = INPUT if self.selection.input_selected else self.selection.layer_id
        return DropTarget("after", node=node) if node is not None else None

    def insert_at_target(self, type_name: str, target: DropTarget) -> str | None:
        """A new layer of ``type_name`` where ``target`` says (on a wire, before or after a block)."""
        if type_name not in LAYER_TYPES:
            return None
        spec = new_layer_spec(type_name)
        spec["id"] = new_layer_id()
        return self.insert_group([spec], target, f"Insert {type_name}")

    def insert_composite(self, key: str, target: DropTarget) -> str | None:
        """A composite block (see ``composites.COMPOSITES``) as one edit; returns its first layer's id."""
        composite = composites.COMPOSITES.get(key)
        if composite is None:
            return None
        group = composite.build(self._incoming_shape(target))
        return self.insert_group(group, target, f"Insert {composite.title}")

    def append_composite(self, key: str) -> str | None:
        layers = self.document.layers()
        return self.insert_composite(key, DropTarget("after", node=graph.output_id(layers) or INPUT))

    def insert_group(self, group: list[dict[str, Any]], target: DropTarget, text: str) -> str | None:
        def edit(layers: list[dict[str, Any]]) -> list[dict[str, Any]]:
            if target.kind == "wire":
                return graph.keep_names(layers, graph.insert_on_wire(layers, group, target.wire))
            if target.kind == "before":
                return graph.keep_names(layers, graph.insert_before(layers, group, target.node))
            return graph.keep_names(layers, graph.insert_after(layers, group, target.node))

        first = group[0]["id"]
        return first if self._edit(text, edit, select=first) else None

    def _incoming_shape(self, target: DropTarget) -> tuple[int, ...] | None:
        """The shape of the tensor a block inserted at ``target`` would receive."""
        layers = self.document.layers()
        if target.kind == "wire":
            source = target.wire.source
        elif target.kind == "after":
            source = target.node
        else:
            inputs = graph.inputs_of(graph.spec_by_id(layers, target.node))
            source = inputs[0] if inputs else INPUT
        analysis = self.document.analysis()
        if source == INPUT:
            return analysis.input_shape
        for info in analysis.layers:
            if info.id == source:
                return info.output_shape
        return None

    def duplicate(self, layer_id: str | None = None) -> str | None:
        """Insert a copy right after the layer (default: the selected one), feeding what it fed."""
        layer_id = layer_id or self.selection.layer_id
        if layer_id is None:
            return None
        spec = duplicate_spec(self.document.layer(self.document.index_of(layer_id)))
        done = self._edit(f"Duplicate {spec.get('type', 'layer')}",
                          lambda layers: graph.keep_names(layers, graph.insert_after(layers, [spec], layer_id)),
                          select=spec["id"])
        return spec["id"] if done else None

    # -- removing and moving -----------------------------------------------------------------------
    def remove(self, layer_id: str | None = None) -> bool:
        """Delete a layer (default: the selected one); what it fed takes its input instead. The Input
        block is kept, with a notice saying why (a silent Delete looks broken)."""
        if layer_id == INPUT or (layer_id is None and self.selection.input_selected):
            self.notice.emit(INPUT_KEPT)
            return False
        layer_id = layer_id or self.selection.layer_id
        if layer_id is None:
            return False
        layers = self.document.layers()
        index = self.document.index_of(layer_id)
        spec = layers[index]
        heirs = graph.consumers(layers).get(layer_id, [])
        inputs = graph.inputs_of(spec)
        text = f"Delete {spec.get('type', 'layer')} {index + 1}"
        try:
            remaining = [s["id"] for s in graph.remove(layers, layer_id)]
        except GraphEditError:
            remaining = []
        # Keep a selection so Delete can be pressed repeatedly: the block that took its place.
        tail = remaining[min(index, len(remaining) - 1):] if remaining else []
        heir = next((c for c in [*heirs, *inputs, *tail] if c in remaining), None)
        # Undoing the delete selects the restored block.
        return self._edit(text, lambda current: graph.remove(current, layer_id), select=heir,
                          select_on_undo=layer_id)

    def move(self, layer_id: str, target: int) -> bool:
        """Chain-style move: take the layer out and put it before the layer at ``target`` of the rest."""
        count = len(self.document.layers())
        target = max(0, min(target, count - 1))
        if self.document.index_of(layer_id) == target:
            return False
        spec = self.document.layer(self.document.index_of(layer_id))
        return self._edit(f"Move {spec.get('type', 'layer')} to position {target + 1}",
                          lambda layers: graph.move_to_index(layers, layer_id, target), select=layer_id)

    def move_to_gap(self, layer_id: str, gap: int) -> bool:
        """Move a layer into the gap before position ``gap`` (0 = first, count = after the last)."""
        source = self.document.index_of(layer_id)
        return self.move(layer_id, gap - 1 if gap > source else gap)

    def move_by(self, delta: int, layer_id: str | None = None) -> bool:
        """Alt+Up/Down: swap the layer with its neighbour on its path."""
        layer_id = layer_id or self.selection.layer_id
        if layer_id is None:
            return False
        spec = self.document.layer(self.document.index_of(layer_id))
        direction = "up" if delta < 0 else "down"
        return self._edit(f"Move {spec.get('type', 'layer')} {direction}",
                          lambda layers: graph.move_in_chain(layers, layer_id, delta), select=layer_id)

    def move_onto_wire(self, layer_id: str, wire: Wire) -> bool:
        """Take a layer out (reconnecting around it) and insert it on ``wire``."""
        name = self._name(layer_id)
        return self._edit(f"Move {name}", lambda layers: graph.move_onto_wire(layers, layer_id, wire),
                          select=layer_id)

    def move_next_to(self, layer_id: str, where: str, node: str) -> bool:
        """Take a layer out and put it "before" or "after" ``node``."""
        if node == layer_id:
            return False

        def edit(layers: list[dict[str, Any]]) -> list[dict[str, Any]]:
            spec = {k: v for k, v in graph.spec_by_id(layers, layer_id).items() if k != "inputs"}
            rest = graph.remove(layers, layer_id)
            return (graph.insert_before if where == "before" else graph.insert_after)(rest, [spec], node)

        return self._edit(f"Move {self._name(layer_id)}", edit, select=layer_id)

    # -- wiring ------------------------------------------------------------------------------------------
    def connect(self, source: str, target: str) -> bool:
        """Wire ``source``'s output to ``target`` (OUTPUT: make ``source`` the network's output)."""
        if target == OUTPUT:
            text = f"Make {self._name(source)} the output"
        else:
            text = f"Connect {self._name(source)} to {self._name(target)}"
        replaced = self._replaced_input(source, target)
        done = self._edit(text, lambda layers: graph.connect(layers, source, target))
        if done and replaced is not None:
            # A one-input layer's input is replaced, not added to: say so, the old branch may now lead nowhere.
            self.notice.emit(f"{self._name(target)} now takes {self._name(source)} instead of {self._name(replaced)} "
                             "(a one-input layer; Ctrl+Z puts the old wire back).")
        return done

    def _replaced_input(self, source: str, target: str) -> str | None:
        """The input ``target`` would lose if ``source`` were connected to it (None: it keeps them all)."""
        if target == OUTPUT:
            return None
        try:
            spec = graph.spec_by_id(self.document.layers(), target)
        except GraphEditError:
            return None
        inputs = graph.inputs_of(spec)
        if graph.takes_many(spec) or not inputs or source in inputs:
            return None
        return inputs[0]

    def disconnect(self, wire: Wire) -> bool:
        text = f"Disconnect {self._name(wire.source)} from {self._name(wire.target)}"
        return self._edit(text, lambda layers: graph.disconnect(layers, wire))

    # -- settings --------------------------------------------------------------------------------------
    def set_field(self, layer_id: str, field: str, value: Any) -> bool:
        """Set one setting; quick successive changes of the same field merge into one undo step."""
        spec = self.document.layer(self.document.index_of(layer_id))
        if field in spec and spec[field] == value and type(spec[field]) is type(value):
            return False
        new = copy.deepcopy(spec)
        new[field] = value
        return self.document.push(SetLayerCommand(self.document, layer_id, new, field=field))

    def set_trainable(self, layer_id: str, trainable: bool) -> bool:
        """Freeze a layer ("trainable": false: training leaves its parameters alone) or let it learn again."""
        spec = self.document.layer(self.document.index_of(layer_id))
        if (spec.get("trainable", True) is not False) == trainable:
            return False
        new = {k: v for k, v in spec.items() if k != "trainable"}
        if not trainable:
            new["trainable"] = False
        name = spec.get("name") or self.document.analysis().layers[self.document.index_of(layer_id)].name
        return self.document.push(SetLayerCommand(self.document, layer_id, new,
                                                  text=f"{'Unfreeze' if trainable else 'Freeze'} {name}"))

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
    def fixes(self, problem: ArchitectureError) -> list[Fix]:
        """The fixes on offer for ``problem`` (buttons and menus show them in this order)."""
        return fixes_for(self.document, problem, self.num_classes)

    def apply_fix(self, problem: ArchitectureError, num_classes: int | None = None, fix: Fix | None = None) -> bool:
        """Apply ``fix`` (default: the problem's own) as one undoable step."""
        command = make_fix_command(self.document, problem, num_classes or self.num_classes, fix)
        if command is None:
            return False
        return self.document.push(command)
