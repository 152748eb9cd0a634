"""Replace head: the last Dense layer gets one unit per class of the chosen dataset, as one undoable edit.

The trained (or imported) network follows: when its architecture is the design being edited, it is
replaced by the same network with a fresh head (``engine.fine_tuning.replace_head``), so Start trains
on from the kept weights; undo brings the old head and the old network back.
"""

from __future__ import annotations

import copy
from typing import Any

from PySide6.QtGui import QUndoCommand

from cnn_studio.document import ProjectDocument
from cnn_studio.training.trained import TrainedNetwork
from engine.errors import EngineError
from engine.fine_tuning import head_index, replace_head, replace_head_document
from engine.model import Model


class ReplaceHeadCommand(QUndoCommand):
    def __init__(self, document: ProjectDocument, trained: TrainedNetwork | None, num_classes: int) -> None:
        self._doc = document
        self._trained = trained
        before = document.architecture()
        after = replace_head_document(before, num_classes)  # raises ArchitectureError when there is no head
        index = head_index(before)
        self._id = before["layers"][index]["id"]
        self._old = copy.deepcopy(before["layers"][index])
        self._new = copy.deepcopy(after["layers"][index])
        self._old_model: Model | None = None
        self._new_model: Model | None = None
        model = trained.model() if trained is not None else None
        if model is not None and _fits(model, before):
            self._old_model = model
            new_model = replace_head(model, num_classes)
            # The trained network takes the design's own document (its ids, frozen layers) with the new head.
            self._new_model = Model(after, seed=new_model.seed, dtype=new_model.dtype)
            self._new_model.set_weights(new_model.tensors())
            self._new_model.preprocessing = copy.deepcopy(new_model.preprocessing)
        name = document.analysis().layers[index].name
        super().__init__(f"Replace head {name} ({num_classes} classes)")

    @property
    def keeps_weights(self) -> bool:
        """True when the trained network's other weights are kept for the next Start."""
        return self._new_model is not None

    def redo(self) -> None:
        self._doc.set_layer(self._doc.index_of(self._id), self._new)
        if self._new_model is not None and self._trained is not None:
            self._trained.adopt(self._new_model)

    def undo(self) -> None:
        self._doc.set_layer(self._doc.index_of(self._id), self._old)
        if self._old_model is not None and self._trained is not None:
            self._trained.adopt(self._old_model)



def _fits(model: Model, architecture: dict[str, Any]) -> bool:
    """Whether ``model``'s weights fit ``architecture`` tensor for tensor (frozen flags aside)."""
    try:
        shapes = {k: v.shape for k, v in Model(architecture).tensors().items()}
    except EngineError:
        return False
    return {k: v.shape for k, v in model.tensors().items()} == shapes
