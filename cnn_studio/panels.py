"""Installs the optional workspaces (training, inspection, export) into the main window.

Each installer takes the MainWindow and adds its docks, tabs, menus and close guards through
the window's small public surface (document, tabs, add_dock, menus, close_guards).
"""

from __future__ import annotations

from typing import Any

from cnn_studio.export_actions import install_export
from cnn_studio.inspect import install_inside
from cnn_studio.training import install_training


def install_panels(window: Any) -> None:
    install_training(window)
    install_inside(window)
    install_export(window)
