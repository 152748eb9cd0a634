"""What was trained for a project: the network's architecture, its latest weights, the dataset they were
trained on and their test evaluation.

A ``TrainedNetwork`` belongs to the project document (``ProjectDocument.trained``): replacing the
project (New, Open, New from Template) clears it, so nothing trained for one project is shown, continued
or started from in another. The training runner writes it; the Train and Inside tabs and the exports read it.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

import numpy as np
from PySide6.QtCore import QObject, Signal

from engine.data import Dataset
from engine.errors import EngineError
from engine.metrics import Evaluation
from engine.model import Model


@dataclass(frozen=True)
class WeightSnapshot:
    """A copy of every tensor after ``epochs_completed`` epochs, with the preprocessing used."""

    weights: dict[str, np.ndarray]
    preprocessing: dict[str, Any]
    epochs_completed: int


def same_design(a: dict[str, Any] | None, b: dict[str, Any] | None) -> bool:
    """True when two architecture documents describe the same network (the studio's block ids aside)."""
    if a is None or b is None:
        return False

    def core(doc: dict[str, Any]) -> Any:
        return doc.get("input"), [{k: v for k, v in layer.items() if k != "id"} for layer in doc.get("layers", [])]

    return core(a) == core(b)


def same_dataset(a: Dataset | None, b: Dataset | None) -> bool:
    """True when ``a`` and ``b`` hold the same images: the same object, or the same source loaded again."""
    if a is None or b is None:
        return False
    if a is b:
        return True
    return (bool(a.source) and a.source == b.source and tuple(a.input_shape) == tuple(b.input_shape)
            and list(a.class_names) == list(b.class_names) and len(a.y_train) == len(b.y_train)
            and len(a.y_test) == len(b.y_test))


class TrainedNetwork(QObject):
    """The network trained (or imported) for one project, as the GUI thread sees it.

    Signals:
      model_changed()       new weights (a run's snapshot, imported weights) or none any more
      evaluation_changed()  a test evaluation arrived, or the last one no longer applies
      replaced()            a different network, or none, took the place of the trained one (imported
                            weights, another project): earlier results and "+1 epoch" no longer apply
    """

    model_changed = Signal()
    evaluation_changed = Signal()
    replaced = Signal()

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._architecture: dict[str, Any] | None = None
        self._seed = 0
        self._dataset: Dataset | None = None
        self._snapshot: WeightSnapshot | None = None
        self._model: Model | None = None  # built from the snapshot on first use, on the GUI thread
        self._evaluation: Evaluation | None = None
        self._epochs_completed = 0
        # Imported weights nothing has trained from yet: the next Start begins from them.
        self._imported: Model | None = None
        self._class_names: list[str] = []  # of weights restored from a run, before any dataset is loaded
        self.run_id = ""  # the run folder the weights belong to ("" when not kept)

    # -- reading ----------------------------------------------------------------------------------------
    @property
    def empty(self) -> bool:
        """True when nothing was trained or imported for this project (or its run has no weights yet)."""
        return self._snapshot is None and self._model is None

    @property
    def imported(self) -> bool:
        """True while the weights are imported ones that no run has trained on."""
        return self._imported is not None

    @property
    def epochs_completed(self) -> int:
        return self._epochs_completed

    def architecture(self) -> dict[str, Any] | None:
        """The architecture the weights belong to (a copy), or None."""
        return copy.deepcopy(self._architecture)

    def dataset(self) -> Dataset | None:
        """The dataset the weights were trained (and evaluated) on; None for imported weights."""
        return self._dataset

    def evaluation(self) -> Evaluation | None:
        return self._evaluation

    def class_names(self) -> list[str]:
        """The class names of the weights' dataset (known from a restored run before its dataset loads)."""
        return list(self._dataset.class_names) if self._dataset is not None else list(self._class_names)

    def weights(self) -> dict[str, np.ndarray] | None:
        """A copy of the latest weights (None when there are none)."""
        if self._snapshot is not None:
            return {k: v.copy() for k, v in self._snapshot.weights.items()}
        return None if self._model is None else self._model.get_weights()

    def model(self) -> Model | None:
        """A GUI-thread Model of the latest weights; never the training worker's live model."""
        if self._model is None and self._snapshot is not None and self._architecture is not None:
            model = Model.from_architecture(self._architecture, seed=self._seed)
            model.set_weights(self._snapshot.weights)
            model.preprocessing = copy.deepcopy(self._snapshot.preprocessing)
            self._model = model
        return self._model

    def start_weights_for(self, architecture: dict[str, Any]) -> dict[str, np.ndarray] | None:
        """A copy of the imported weights when they fit ``architecture`` (same tensors), else None."""
        if self._imported is None:
            return None
        try:
            shapes = {k: v.shape for k, v in Model.from_architecture(architecture).tensors().items()}
        except EngineError:
            return None
        weights = self._imported.get_weights()
        return weights if {k: v.shape for k, v in weights.items()} == shapes else None

    def imported_preprocessing(self) -> dict[str, Any] | None:
        """The imported weights' record of the inputs they were trained on (None: nothing imported):
        training from them normalises the data with its mean and std."""
        return None if self._imported is None else copy.deepcopy(self._imported.preprocessing)

    # -- writing: the training runner ----------------------------------------------------------------------
    def begin_run(self, architecture: dict[str, Any], dataset: Dataset, seed: int) -> None:
        """A fresh run of ``architecture`` on ``dataset`` starts: its first snapshot brings the weights.

        Views keep showing the previous weights until then (no flicker to "nothing trained").
        """
        self._architecture = copy.deepcopy(architecture)
        self._dataset, self._seed = dataset, seed
        self._snapshot = self._model = self._evaluation = self._imported = None
        self._epochs_completed = 0
        self._class_names, self.run_id = list(dataset.class_names), ""

    def record_snapshot(self, snapshot: WeightSnapshot) -> None:
        self._snapshot, self._model = snapshot, None
        self._epochs_completed = snapshot.epochs_completed
        self.model_changed.emit()

    def set_evaluation(self, evaluation: Evaluation | None) -> None:
        self._evaluation = evaluation
        self.evaluation_changed.emit()

    # -- writing: from outside a run ---------------------------------------------------------------------------
    def restore(self, architecture: dict[str, Any], seed: int, snapshot: WeightSnapshot,
                evaluation: Evaluation | None, class_names: list[str], run_id: str = "") -> None:
        """Show the weights a kept run ended with (a project was opened): no run to continue, no dataset
        until one is loaded."""
        self._architecture = copy.deepcopy(architecture)
        self._dataset, self._seed, self._imported = None, seed, None
        self._snapshot, self._model, self._evaluation = snapshot, None, evaluation
        self._epochs_completed = snapshot.epochs_completed
        self._class_names, self.run_id = list(class_names), run_id
        self._announce_replacement()

    def adopt(self, model: Model, dataset: Dataset | None = None) -> None:
        """Take ``model`` as the project's network (e.g. File > Import Weights); the next Start trains on
        from its weights."""
        self._architecture = copy.deepcopy(model.architecture)
        self._dataset, self._seed = dataset, 0
        self._snapshot, self._model, self._imported, self._evaluation = None, model, model, None
        self._epochs_completed = 0
        self._class_names, self.run_id = list(dataset.class_names) if dataset is not None else [], ""
        self._announce_replacement()

    def clear(self) -> None:
        """Nothing trained any more (the project was replaced)."""
        self._architecture = self._dataset = self._snapshot = self._model = self._imported = None
        self._evaluation = None
        self._epochs_completed = 0
        self._class_names, self.run_id = [], ""
        self._announce_replacement()

    def _announce_replacement(self) -> None:
        self.replaced.emit()
        self.model_changed.emit()
        self.evaluation_changed.emit()
