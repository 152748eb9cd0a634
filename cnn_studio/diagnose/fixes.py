"""The training doctor's one-click fixes as undoable edits of the project.

Each engine ``Fix`` (engine.doctor.records) becomes one QUndoCommand: a change of the training
settings (learning rate, early stopping, augmentation) or of the architecture (BatchNorm inserted,
an activation switched, Dropout added). Layers are named as the trained network named them; the
command finds them in the document by that name, so a design edited since the run is handled (or
refused with the reason).
"""

from __future__ import annotations

import copy
from typing import Any

from PySide6.QtGui import QUndoCommand

from cnn_studio import graph
from cnn_studio.builder.commands import GraphEditCommand
from cnn_studio.builder.editor import new_layer_spec
from cnn_studio.document import ProjectDocument, new_layer_id
from cnn_studio.graph import keep_names
from engine.doctor import Fix

# The layer type that applies each activation on its own, for activation layers and split-off ones.
ACTIVATION_LAYERS = {"relu": "ReLU", "leaky_relu": "LeakyReLU", "elu": "ELU", "sigmoid": "Sigmoid", "tanh": "Tanh"}
ACTIVATION_OF_LAYER = {v: k for k, v in ACTIVATION_LAYERS.items()}
SETTING_FIXES = {"set_learning_rate": "learning_rate", "set_early_stopping": "early_stopping",
                 "set_augmentation": "augment_shift"}


class FixError(Exception):
    """The fix cannot be applied to the project as it is now (the reason is the message)."""


class SettingsCommand(QUndoCommand):
    """Change some training settings of the project (undo restores the previous ones)."""

    def __init__(self, document: ProjectDocument, changes: dict[str, Any], text: str) -> None:
        super().__init__(text)
        self._doc = document
        self._old = copy.deepcopy(document.training)
        self._new = {**copy.deepcopy(document.training), **copy.deepcopy(changes)}

    def redo(self) -> None:
        self._doc.set_training(self._new)

    def undo(self) -> None:
        self._doc.set_training(self._old)


def layer_ids_by_name(document: ProjectDocument) -> dict[str, str]:
    """Engine layer name (as a trained network names it) -> the document's layer id."""
    return {info.name: str(info.id) for info in document.analysis().layers if info.id is not None}


def _find(document: ProjectDocument, name: str) -> str:
    ids = layer_ids_by_name(document)
    if name not in ids:
        raise FixError(f"the network has no layer {name!r} any more (it was changed after the run)")
    return ids[name]


def _with_new_layers(before: list[dict[str, Any]], after: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``after`` (``before`` plus new layers) with the earlier layers keeping their names, so their
    weights keep theirs; the new layers take free names."""
    return keep_names(before, after)


def _spec(type_name: str, **settings: Any) -> dict[str, Any]:
    spec = new_layer_spec(type_name)
    spec.update(settings)
    spec["id"] = new_layer_id()
    return spec


def insert_batch_norm(document: ProjectDocument, name: str) -> list[dict[str, Any]]:
    """BatchNorm right after the linear part of ``name``: a Conv2D or Dense with its own activation
    loses it to a separate activation layer after the BatchNorm."""
    layer_id = _find(document, name)
    layers = document.layers()
    spec = graph.spec_by_id(layers, layer_id)
    if spec.get("type") not in ("Conv2D", "Dense"):
        raise FixError(f"{name} is a {spec.get('type')}, not a convolution or Dense layer")
    group = [_spec("BatchNorm")]
    activation = spec.get("activation")
    if activation:
        if activation not in ACTIVATION_LAYERS:
            raise FixError(f"{name}'s activation {activation!r} cannot be moved after a BatchNorm")
        group.append(_spec(ACTIVATION_LAYERS[activation]))
        spec["activation"] = None
    new = graph.insert_after(layers, group, layer_id)
    return _with_new_layers(layers, new)


def set_activation(document: ProjectDocument, names: list[str], activation: str) -> list[dict[str, Any]]:
    layers = document.layers()
    for name in names:
        spec = graph.spec_by_id(layers, _find(document, name))
        if spec.get("type") in ("Conv2D", "Dense"):
            spec["activation"] = activation
        elif spec.get("type") in ACTIVATION_OF_LAYER:
            replacement = new_layer_spec(ACTIVATION_LAYERS[activation])
            keep = {k: spec[k] for k in ("id", "name", "inputs", "trainable") if k in spec}
            spec.clear()
            spec.update({**replacement, **keep})
        else:
            raise FixError(f"{name} is a {spec.get('type')}: it has no activation to switch")
    return layers


def add_dropout(document: ProjectDocument, before: str, rate: float) -> list[dict[str, Any]]:
    layers = document.layers()
    target = _find(document, before)
    dropout = _spec("Dropout", rate=rate)
    new = graph.insert_before(layers, [dropout], target)
    return _with_new_layers(layers, new)


def fix_command(document: ProjectDocument, fix: Fix) -> QUndoCommand:
    """The undoable edit that applies ``fix`` to ``document``; FixError when it cannot be applied."""
    data = fix.data
    if fix.kind in SETTING_FIXES:
        key = SETTING_FIXES[fix.kind]
        return SettingsCommand(document, {key: data[key]}, fix.label)
    if fix.kind == "insert_batch_norm":
        return GraphEditCommand(document, fix.label, insert_batch_norm(document, data["layer"]))
    if fix.kind == "set_activation":
        names = list(data.get("layers") or [data["layer"]])
        return GraphEditCommand(document, fix.label, set_activation(document, names, data["activation"]))
    if fix.kind == "add_dropout":
        return GraphEditCommand(document, fix.label, add_dropout(document, data["before"], float(data["rate"])))
    raise FixError(f"unknown fix {fix.kind!r}")
