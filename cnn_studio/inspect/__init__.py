"""The "Inside" workspace: look at what the network sees, during training and after it."""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import QCoreApplication

from cnn_studio.inspect.panel import InsidePanel

TAB_TITLE = "Inside"


def install_inside(window: Any, session: Any) -> InsidePanel:
    """Add the Inside tab to ``window.tabs`` and a View menu entry; the panel follows ``session`` (the
    window's TrainingSession)."""
    panel = InsidePanel()
    window.tabs.addTab(panel, TAB_TITLE)
    panel.attach_session(session)
    action = window.menus["View"].addAction("Look inside the network")
    action.setToolTip("Feature maps, filters, saliency, statistics and mistakes of the trained network")
    action.triggered.connect(lambda: window.tabs.setCurrentWidget(panel))
    app = QCoreApplication.instance()
    if app is not None:
        app.aboutToQuit.connect(panel.shutdown)
    return panel


__all__ = ["InsidePanel", "install_inside"]
