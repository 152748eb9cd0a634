"""The project's dataset as the user chooses it in the Training dock, loaded in the background.

The form's dataset list and ``document.dataset_ref`` always agree. Once a dataset is loaded the document
learns its class count, and the network's input follows its images: one undoable edit, explained in
the dock. Files the loader skipped are listed with the dataset.
"""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import QObject, Signal

from cnn_studio.document import ProjectDocument
from cnn_studio.training.dataset_progress import DatasetProgress
from cnn_studio.training.datasets import DatasetSource
from cnn_studio.training.input_match import match_input, shape_text
from cnn_studio.training.notices import Notices
from cnn_studio.training.progress import TrainingProgress
from cnn_studio.training.runner import TrainingRunner
from cnn_studio.training.settings_form import TrainingSettingsForm, dataset_title
from engine.data import Dataset, known_datasets

SKIPPED_SHOWN = 3  # skipped files named in the dock; the dataset line's tooltip lists them all


def skipped_files(warnings: tuple[str, ...]) -> list[str]:
    """The loader's warnings without their category prefix ("UserWarning: ")."""
    return [text.split(": ", 1)[1] if text.startswith(("UserWarning: ", "RuntimeWarning: ")) else text
            for text in warnings]


class DatasetChoice(QObject):
    """Signals: ready(Dataset, str) after the chosen dataset loaded, with the input change in words ("" if
    none); failed(str) the chosen dataset did not load (the message)."""

    ready = Signal(object, str)
    failed = Signal(str)

    def __init__(self, document: ProjectDocument, form: TrainingSettingsForm, source: DatasetSource,
                 runner: TrainingRunner, progress: TrainingProgress, notices: Notices,
                 notify: Callable[[str, str, str], None], parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.document = document
        self.form = form
        self.source = source
        self.runner = runner
        self.progress = progress
        self.notices = notices
        self.notify = notify
        form.set_datasets(known_datasets())
        form.set_dataset_ref(document.dataset_ref)
        form.dataset_chosen.connect(self._on_chosen)
        document.settings_changed.connect(self._on_document_settings)
        document.project_replaced.connect(self._on_project_replaced)
        source.loaded.connect(self._on_loaded)
        source.failed.connect(self._on_failed)
        source.cancelled.connect(self._on_cancelled)
        # A large folder of images takes a while: a dialog shows how far it is, with Cancel.
        self.progress_dialog = DatasetProgress(source, form)

    # -- reading ----------------------------------------------------------------------------------------------
    @property
    def chosen_ref(self) -> str:
        return self.form.dataset_ref or self.document.dataset_ref

    @property
    def dataset(self) -> Dataset | None:
        """The chosen dataset once it is loaded (None while it loads, or when it failed to)."""
        return self.source.current if self.source.has(self.chosen_ref) else None

    @property
    def loading(self) -> bool:
        return self.source.loading_ref is not None

    # -- loading -------------------------------------------------------------------------------------------------
    def load(self, ref: str | None = None) -> None:
        """Load the chosen dataset (or ``ref``) in the background, unless it is loaded or on its way."""
        ref = ref or self.chosen_ref
        if self.source.request(ref):
            self.form.set_dataset_loading(True)
            self.progress.busy(f"Loading {dataset_title(ref)}…")

    def ensure_loaded(self) -> None:
        """Load the chosen dataset if nothing is loaded or loading yet (e.g. the Train tab is first shown)."""
        if self.source.current is None and not self.loading:
            self.load()

    def use(self, dataset: Dataset, ref: str | None = None) -> None:
        """Use a dataset already in memory (scripts, tests) as if it had been chosen and loaded from ``ref``."""
        ref = ref or dataset.name
        self.form.set_dataset_ref(ref)
        self.document.set_dataset_ref(ref)
        self.source.use(dataset, ref)

    # -- reactions -----------------------------------------------------------------------------------------------
    def _on_chosen(self, ref: str) -> None:
        self.document.set_dataset_ref(ref)
        self.load(ref)

    def _on_document_settings(self) -> None:
        ref = self.document.dataset_ref
        if ref == self.form.dataset_ref:
            return
        # A project with another dataset was opened: the class count known so far was the other dataset's.
        self.form.set_dataset_ref(ref)
        if not self.source.has(ref):
            self.document.set_num_classes(None)
            self.form.set_dataset_info("")
        if not self.runner.running and (self.source.current is not None or self.loading):
            self.load(ref)  # the studio already works with datasets: know this one before Start

    def _on_project_replaced(self) -> None:
        self.notices.clear()
        dataset = self.dataset
        if dataset is not None and not self.runner.running:
            # e.g. a template for 32x32 colour images while 28x28 grey ones are chosen: follow them now,
            # not only once Start is pressed
            self.document.set_num_classes(dataset.num_classes)
            explanation, status = match_input(self.document, dataset)
            self.notices.say(explanation, status=status, timeout_ms=10000)

    def _on_loaded(self, ref: str, dataset: Dataset) -> None:
        self.document.set_num_classes(dataset.num_classes)
        self.form.set_dataset_loading(False)
        self._show_info(dataset)
        explanation = ""
        if not self.runner.running:
            self.progress.done(f"Dataset ready: {dataset.name}", complete=False)
            explanation, status = match_input(self.document, dataset)
            self.notices.say(explanation, status=status, timeout_ms=10000)
        skipped = skipped_files(self.source.warnings)
        if skipped and not explanation:
            named = "; ".join(skipped[:SKIPPED_SHOWN]) + ("; …" if len(skipped) > SKIPPED_SHOWN else "")
            self.notices.say(f"{len(skipped)} file(s) of {dataset.name} were skipped: {named}",
                             status=f"{len(skipped)} file(s) of {dataset.name} skipped (see the Training panel)")
        self.ready.emit(dataset, explanation)

    def _show_info(self, dataset: Dataset) -> None:
        h, w, c = dataset.input_shape
        text = (f"{len(dataset.y_train):,} training and {len(dataset.y_test):,} test images · "
                f"{shape_text((h, w, c))} · {dataset.num_classes} classes")
        skipped = skipped_files(self.source.warnings)
        if skipped:
            text += f" · {len(skipped)} file(s) skipped (hover to list them)"
        self.form.set_dataset_info(text)
        self.form.dataset_info.setToolTip("\n".join(skipped))

    def _on_cancelled(self, ref: str) -> None:
        self.form.set_dataset_loading(False)
        self.form.set_dataset_info(f"Loading {dataset_title(ref)} was cancelled")
        self.form.dataset_info.setToolTip("")
        self.progress.done("Dataset not loaded (cancelled)", complete=False)

    def _on_failed(self, ref: str, message: str) -> None:
        self.form.set_dataset_loading(False)
        self.form.set_dataset_info(message, error=True)
        self.form.dataset_info.setToolTip("")
        self.progress.done("Dataset not loaded", complete=False)
        self.failed.emit(message)
        self.notify("error", "Dataset not loaded", f"Could not load the dataset {dataset_title(ref)}:\n\n{message}")
