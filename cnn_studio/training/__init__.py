"""The "Train" workspace: live training on a worker thread, curves, run history and test results.

``install_training(window)`` adds it to the main window and sets ``window.training_session``
(the :class:`~cnn_studio.training.session.TrainingSession` other workspaces follow).
"""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import QCoreApplication

from cnn_studio.training.panel import TrainingPanel
from cnn_studio.training.session import ProbeResult, TrainingSession


def install_training(window: Any) -> TrainingPanel:
    """Add the Train tab, the Training dock, the Train menu and a close guard to ``window``."""
    panel = TrainingPanel(window)
    window.training_session = panel.session
    window.training_panel = panel
    app = QCoreApplication.instance()
    if app is not None:
        # Quitting without closing the window (e.g. Ctrl+Q from elsewhere) must still join the threads.
        app.aboutToQuit.connect(panel.shutdown)
    return panel


__all__ = ["ProbeResult", "TrainingPanel", "TrainingSession", "install_training"]
