"""The training settings form shows the project's settings, and the user's edits go into the project."""

from __future__ import annotations

from PySide6.QtCore import QObject

from cnn_studio.document import ProjectDocument
from cnn_studio.training.settings_form import TrainingSettingsForm
from engine.training import TrainConfig

KEEP_CHECKPOINTS = "keep_checkpoints"  # the project's setting (not the trainer's): which checkpoints runs keep


class TrainingSettingsBinding(QObject):
    """Keeps ``form`` and ``document.training`` in step (the dataset is DatasetChoice's job)."""

    def __init__(self, document: ProjectDocument, form: TrainingSettingsForm, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.document = document
        self.form = form
        self._writing = False
        form.config_changed.connect(self._on_edited)
        document.settings_changed.connect(self._on_document_settings)
        self.show_document_settings()

    def show_document_settings(self) -> None:
        settings = self.document.training or {}
        self.form.set_config(TrainingSettingsForm.config_from_settings(settings))
        self.form.set_checkpoints(str(settings.get(KEEP_CHECKPOINTS, "all")))

    def _on_document_settings(self) -> None:
        if self._writing:
            return
        settings = self.document.training or {}
        shown = TrainingSettingsForm.config_from_settings(settings) == self.form.config() and \
            str(settings.get(KEEP_CHECKPOINTS, "all")) == self.form.checkpoints()
        if not shown:  # a project was opened, or settings came from elsewhere; else a value being typed stays
            self.show_document_settings()

    def _on_edited(self, config: TrainConfig) -> None:
        self._writing = True
        try:
            self.document.set_training({**config.to_dict(), KEEP_CHECKPOINTS: self.form.checkpoints()})
        finally:
            self._writing = False
