"""Turns a problem's ``fix`` into an undoable command that repairs the design."""

from __future__ import annotations

from PySide6.QtGui import QUndoCommand

from cnn_studio.builder.commands import CompositeCommand, InsertLayerCommand, SetLayerCommand
from cnn_studio.document import ProjectDocument
from engine.errors import ArchitectureError

DEFAULT_CLASSES = 10


def make_fix_command(document: ProjectDocument, problem: ArchitectureError,
                     num_classes: int | None = None) -> QUndoCommand | None:
    """The command for ``problem.fix``, or None when the problem has no automatic fix.

    ``num_classes`` (the dataset's class count) sizes the classifier for append_classifier and
    set_output_units; it defaults to 10.
    """
    layers = document.layers()
    index = (problem.layer_index or 0) - 1  # 0-based position of the culprit
    if problem.fix is None or not 0 <= index < len(layers):
        return None
    spec = layers[index]
    where = f"{problem.layer_type} {problem.layer_index}"
    classes = num_classes or DEFAULT_CLASSES
    if problem.fix == "insert_flatten_before":
        return InsertLayerCommand(document, index, {"type": "Flatten"}, text=f"Fix: insert Flatten before {where}")
    if problem.fix == "padding_same":
        return SetLayerCommand(document, spec["id"], {**spec, "padding": "same"},
                               text=f"Fix: padding 'same' on {where}")
    if problem.fix == "set_output_units":
        dense = _last_dense_at_or_before(layers, index)
        if dense is None:
            return None
        target = layers[dense]
        return SetLayerCommand(document, target["id"], {**target, "units": classes},
                               text=f"Fix: {classes} output units")
    if problem.fix == "append_classifier":
        analysis = document.analysis()
        out = analysis.layers[-1].output_shape if analysis.layers else analysis.input_shape
        steps = []
        if out is not None and len(out) != 1:
            steps.append(InsertLayerCommand(document, len(layers), {"type": "Flatten"}))
        steps.append(InsertLayerCommand(document, len(layers) + len(steps),
                                        {"type": "Dense", "units": classes, "activation": "softmax"}))
        return CompositeCommand(f"Fix: append a {classes}-class classifier", steps)
    return None


def _last_dense_at_or_before(layers: list[dict], index: int) -> int | None:
    for i in range(index, -1, -1):
        if layers[i].get("type") == "Dense":
            return i
    return None
