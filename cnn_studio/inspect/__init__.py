"""The "Inside" workspace: look at what the network sees, during training and after it."""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import QCoreApplication, QTimer

from cnn_studio.inspect.panel import InsidePanel

TAB_TITLE = "Inside"


def install_inside(window: Any) -> InsidePanel:
    """Add the Inside tab to ``window.tabs`` and follow ``window.training_session`` when there is one.

    The session may be installed after this workspace, so it is looked up again once the window's
    constructor has finished.
    """
    panel = InsidePanel()
    window.tabs.addTab(panel, TAB_TITLE)
    window.inside_panel = panel

    def attach() -> None:
        session = getattr(window, "training_session", None)
        if session is not None and panel.session is None:
            panel.attach_session(session)

    attach()
    if panel.session is None:
        QTimer.singleShot(0, attach)
    menus = getattr(window, "menus", {})
    view_menu = menus.get("View") if isinstance(menus, dict) else None
    if view_menu is not None:
        action = view_menu.addAction("Look inside the network")
        action.setToolTip("Feature maps, filters, saliency, statistics and mistakes of the trained network")
        action.triggered.connect(lambda: window.tabs.setCurrentWidget(panel))
    app = QCoreApplication.instance()
    if app is not None:
        app.aboutToQuit.connect(panel.shutdown)
    return panel


__all__ = ["InsidePanel", "install_inside"]
