"""The project document: the one object that owns the architecture, the project's settings and what
was trained for it.

Palette, canvas, inspector, problems list, totals bar and training panel are views of it. Edits
go through QUndoCommands on ``undo_stack`` that call the primitive mutators below; each mutator
emits ``changed``. Layers carry a stable ``id`` so views can address blocks across edits, and an
explicit ``inputs`` list (the network is a graph; see ``cnn_studio.graph``). Documents of the first
format (chains) are read as chains and kept in the current format from then on.
What was trained belongs to the project: ``trained`` (the latest weights and their evaluation) and
``runs`` (every run's curves and outcome) are cleared when the project is replaced.
"""

from __future__ import annotations

import copy
import dataclasses
import uuid
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, Signal
from PySide6.QtGui import QUndoCommand, QUndoStack
from shiboken6 import isValid

from cnn_studio.builder.memory_fit import memory_problem
from cnn_studio.graph import with_explicit_inputs
from cnn_studio.runs.store import ProjectRuns
from cnn_studio.training.run_history import RunHistory
from cnn_studio.training.trained import TrainedNetwork
from engine.architecture import FORMAT, Analysis, analyze, check_classifier, upgrade
from engine.errors import ArchitectureError

DEFAULT_DATASET = "fashion-mnist-mini"


def new_layer_id() -> str:
    return uuid.uuid4().hex[:8]


def empty_architecture(input_shape: tuple[int, int, int] = (28, 28, 1)) -> dict[str, Any]:
    return {"format": FORMAT, "input": {"shape": list(input_shape)}, "layers": []}


class ProjectDocument(QObject):
    """Architecture + dataset reference + training settings, with undo and a modified flag.

    Signals:
      changed()                 the architecture or input shape changed (views re-read everything)
      settings_changed()        dataset reference or training settings changed
      lock_changed(bool, str)   edits blocked (e.g. while training) with the reason to show
      modified_changed(bool)    unsaved changes appeared or were saved
      edit_refused(str)         an edit was pushed while locked; the payload says why it was refused
      path_changed(str)         the project file the document is saved in changed ("" = untitled)
      project_replaced()        New, Open or New from Template replaced everything (after the signals above)
      saved(str, str)           the project was written: (the file it was saved in before, "" if untitled; the file)
    """

    changed = Signal()
    settings_changed = Signal()
    lock_changed = Signal(bool, str)
    modified_changed = Signal(bool)
    edit_refused = Signal(str)
    path_changed = Signal(str)
    project_replaced = Signal()
    saved = Signal(str, str)

    def __init__(self, architecture: dict[str, Any] | None = None, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.undo_stack = QUndoStack(self)
        self._arch = self._with_ids(architecture or empty_architecture())
        self._analysis: Analysis | None = None
        self.num_classes: int | None = None
        self.dataset_ref: str = DEFAULT_DATASET
        self.training: dict[str, Any] = {}
        self._locked = False
        self._lock_reason = ""
        self._settings_dirty = False
        self._file_path: Path | None = None
        self.trained = TrainedNetwork(self)  # the network trained (or imported) for this project
        self.runs = RunHistory(self)  # every training run of this project
        self.run_store = ProjectRuns(self, self)  # where its runs are kept on disk (<name>.runs/)
        self.saved.connect(self.run_store.project_saved)
        self.project_replaced.connect(self.run_store.project_replaced)
        self.undo_stack.cleanChanged.connect(self._clean_changed)

    @staticmethod
    def _with_ids(architecture: dict[str, Any]) -> dict[str, Any]:
        """The document as the studio keeps it: format 2, every layer with an id and its inputs.

        Ids the engine makes up where missing are kept (a hand-written graph's inputs may name
        layers by them); a missing "inputs" is written out (the layer before it).
        """
        arch = upgrade(architecture)
        layers = arch.get("layers")
        if isinstance(layers, list):
            for spec in layers:
                if isinstance(spec, dict) and not spec.get("id"):
                    spec["id"] = new_layer_id()
            arch["layers"] = with_explicit_inputs(layers)
        return arch

    def _clean_changed(self, _clean: bool) -> None:
        # The stack also reports while it is being destroyed (at shutdown): nothing to tell anyone then.
        if isValid(self) and isValid(self.undo_stack):
            self.modified_changed.emit(self.is_modified())

    # -- reading -----------------------------------------------------------------------------------
    def architecture(self) -> dict[str, Any]:
        """A deep copy of the architecture document (with layer ids)."""
        return copy.deepcopy(self._arch)

    def layers(self) -> list[dict[str, Any]]:
        return copy.deepcopy(self._arch["layers"])

    def layer(self, index: int) -> dict[str, Any]:
        return copy.deepcopy(self._arch["layers"][index])

    def index_of(self, layer_id: str) -> int:
        for i, spec in enumerate(self._arch["layers"]):
            if spec.get("id") == layer_id:
                return i
        raise KeyError(layer_id)

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return tuple(self._arch["input"]["shape"])

    def analysis(self) -> Analysis:
        """Shape inference and problems, recomputed lazily after each change.

        Besides the engine's shape problems, a network that cannot be trained as a classifier is a
        problem too: one that does not end in a vector, or (once the dataset is known) whose output
        count differs from the dataset's number of classes; and so is one whose training would not fit
        in this computer's memory at the project's batch size.
        """
        if self._analysis is None:
            analysis = analyze(self._arch)
            if analysis.ok and analysis.layers:
                try:
                    check_classifier(analysis, self.num_classes)
                except ArchitectureError as problem:
                    analysis = dataclasses.replace(analysis, problems=(problem,))
            if analysis.ok and analysis.layers:
                too_large = memory_problem(analysis, self.training)
                if too_large is not None:
                    analysis = dataclasses.replace(analysis, problems=(too_large,))
            self._analysis = analysis
        return self._analysis

    def set_num_classes(self, num_classes: int | None) -> None:
        """The chosen dataset's class count (set by the training workspace); None when unknown."""
        if num_classes != self.num_classes:
            self.num_classes = num_classes
            self._changed()

    # -- lock ----------------------------------------------------------------------------------------
    @property
    def locked(self) -> bool:
        return self._locked

    @property
    def lock_reason(self) -> str:
        return self._lock_reason

    def set_locked(self, locked: bool, reason: str = "") -> None:
        self._locked, self._lock_reason = locked, reason if locked else ""
        self.lock_changed.emit(locked, self._lock_reason)

    # -- undoable edits ----------------------------------------------------------------------------------
    def push(self, command: QUndoCommand) -> bool:
        """Run ``command`` through the undo stack, unless the document is locked.

        A refused edit emits ``edit_refused`` with the lock reason so views can say why nothing happened.
        """
        if self._locked:
            self.edit_refused.emit(self._lock_reason or "the architecture is locked")
            return False
        self.undo_stack.push(command)
        return True

    # -- primitive mutators (called by undo commands; not undoable themselves) ------------------------
    def _changed(self) -> None:
        self._analysis = None
        self.changed.emit()

    def set_layers(self, layers: list[dict[str, Any]]) -> None:
        """Replace the whole layer list (structural edits: every spec has an id and its inputs)."""
        self._arch["layers"] = copy.deepcopy(list(layers))
        self._changed()

    def set_layer(self, index: int, spec: dict[str, Any]) -> None:
        self._arch["layers"][index] = copy.deepcopy(spec)
        self._changed()

    def set_input_shape(self, shape: tuple[int, int, int]) -> None:
        if tuple(shape) != self.input_shape:
            self._arch["input"]["shape"] = [int(v) for v in shape]
            self._changed()

    def replace_architecture(self, architecture: dict[str, Any]) -> None:
        self._arch = self._with_ids(architecture)
        self._changed()

    # -- settings ---------------------------------------------------------------------------------------
    def set_dataset_ref(self, ref: str) -> None:
        if ref != self.dataset_ref:
            self.dataset_ref = ref
            self._settings_modified()

    def set_training(self, settings: dict[str, Any]) -> None:
        if settings != self.training:
            memory_settings = ("batch_size", "optimizer", "momentum")
            refit = any(settings.get(k) != self.training.get(k) for k in memory_settings)
            self.training = copy.deepcopy(settings)
            self._settings_modified()
            if refit:  # whether training fits in memory depends on these
                self._changed()

    def mark_modified(self) -> None:
        """Something to save that no edit made (e.g. runs of an untitled project, kept only until it is saved)."""
        self._settings_modified()

    def _settings_modified(self) -> None:
        was = self.is_modified()
        self._settings_dirty = True
        self.settings_changed.emit()
        if not was:
            self.modified_changed.emit(True)

    # -- whole project ----------------------------------------------------------------------------------
    def load_project(self, architecture: dict[str, Any], dataset_ref: str, training: dict[str, Any],
                     path: str | Path | None = None) -> None:
        """Replace everything (New, Open, New from template): clears undo history, the modified flag and
        what was trained for the previous project."""
        self._arch = self._with_ids(architecture)
        self.dataset_ref = dataset_ref
        self.training = copy.deepcopy(training)
        self.undo_stack.clear()
        self.trained.clear()
        self.runs.clear()
        self._changed()
        self.settings_changed.emit()
        self.set_file_path(path)
        self.mark_saved()
        self.project_replaced.emit()

    @property
    def file_path(self) -> Path | None:
        """The project file this document was opened from or saved to; None while untitled."""
        return self._file_path

    def set_file_path(self, path: str | Path | None) -> None:
        new = Path(path) if path else None
        if new != self._file_path:
            self._file_path = new
            self.path_changed.emit(str(new) if new else "")

    @property
    def display_name(self) -> str:
        return self._file_path.stem if self._file_path else "Untitled"

    # -- saved state ------------------------------------------------------------------------------------
    def is_modified(self) -> bool:
        return self._settings_dirty or not self.undo_stack.isClean()

    def mark_saved(self) -> None:
        self._settings_dirty = False
        self.undo_stack.setClean()
        self.modified_changed.emit(False)
