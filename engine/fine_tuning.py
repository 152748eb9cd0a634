"""Transfer learning: freeze layers and give a trained network a new head for another dataset.

    from engine.fine_tuning import freeze_all_but_head, replace_head
    model = load_weights("imported.npz")
    model = replace_head(model, dataset.num_classes)        # a fresh last Dense layer, the rest kept
    model = with_architecture(model, freeze_all_but_head(model.architecture))

A frozen layer (``"trainable": false`` in the document) gets no updates in training, and a frozen
batch norm normalises with its running statistics and keeps them.
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np

from engine.errors import ArchitectureError
from engine.model import Model

HEAD_TYPE = "Dense"
# Layers that may follow the head: they keep its shape (a final Softmax, Dropout, an activation).
_SHAPE_KEEPING = {"Softmax", "Dropout", "ReLU", "LeakyReLU", "ELU", "Sigmoid", "Tanh"}


def head_index(architecture: dict[str, Any]) -> int:
    """Position of the network's last Dense layer: the classifier head."""
    layers = architecture.get("layers", [])
    for index in range(len(layers) - 1, -1, -1):
        if isinstance(layers[index], dict) and layers[index].get("type") == HEAD_TYPE:
            return index
    raise ArchitectureError("the network has no Dense layer to replace as its head",
                            hint="Replace head swaps the last Dense layer for one with a unit per class; add a "
                            "Dense layer at the end first.")


def replace_head_document(architecture: dict[str, Any], num_classes: int) -> dict[str, Any]:
    """The document with its last Dense layer given ``num_classes`` units (trainable, and a softmax
    unless one follows), so the network classifies a dataset of that many classes."""
    if isinstance(num_classes, bool) or not isinstance(num_classes, (int, np.integer)) or num_classes < 1:
        raise ArchitectureError(f"the new head needs a whole number of classes >= 1, not {num_classes!r}")
    doc = copy.deepcopy(architecture)
    index = head_index(doc)
    after = doc["layers"][index + 1 :]
    odd = next((spec for spec in after if spec.get("type") not in _SHAPE_KEEPING), None)
    if odd is not None:
        raise ArchitectureError(f"the last Dense layer is followed by a {odd.get('type')} layer, so it is not the "
                                "network's head")
    head = doc["layers"][index]
    head["units"] = int(num_classes)
    head.pop("trainable", None)  # a new head is there to be trained
    if not any(spec.get("type") == "Softmax" for spec in after):
        head["activation"] = "softmax"
    return doc


def replace_head(model: Model, num_classes: int, seed: int = 0) -> Model:
    """A new Model whose last Dense layer has ``num_classes`` units and fresh weights (initialised
    with ``seed``); every other tensor and the preprocessing are the given model's."""
    doc = replace_head_document(model.architecture, num_classes)
    fresh = Model(doc, seed=seed, dtype=model.dtype)
    head = fresh.names[head_index(doc)]
    kept = {name: value for name, value in model.tensors().items() if not name.startswith(f"{head}.")}
    own = fresh.tensors()
    for name, value in kept.items():
        own[name][...] = value
    fresh.preprocessing = copy.deepcopy(model.preprocessing)
    return fresh


def set_trainable(architecture: dict[str, Any], layers: list[str], trainable: bool) -> dict[str, Any]:
    """The document with the named layers (names or ids) made trainable or frozen."""
    doc = copy.deepcopy(architecture)
    wanted = set(layers)
    from engine.architecture import layer_names

    found = set()
    for spec, name in zip(doc["layers"], layer_names(doc)):
        if name in wanted or spec.get("id") in wanted:
            found |= {name, spec.get("id")}
            if trainable:
                spec.pop("trainable", None)
            else:
                spec["trainable"] = False
    missing = sorted(wanted - found)
    if missing:
        raise ArchitectureError(f"the network has no layer named {missing[0]!r}")
    return doc


def freeze_all_but_head(architecture: dict[str, Any]) -> dict[str, Any]:
    """Every layer before the head frozen; the head and what follows it trainable."""
    from engine.architecture import layer_names

    index = head_index(architecture)
    names = layer_names(architecture)
    doc = set_trainable(architecture, names[:index], False)
    return set_trainable(doc, names[index:], True)


def with_architecture(model: Model, architecture: dict[str, Any]) -> Model:
    """A Model of ``architecture`` (same layers, e.g. other trainable flags) holding ``model``'s tensors."""
    other = Model(architecture, seed=model.seed, dtype=model.dtype)
    other.set_weights(model.tensors())
    other.preprocessing = copy.deepcopy(model.preprocessing)
    return other
