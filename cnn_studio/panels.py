"""Installs the workspaces that follow training (Train, Inside, Export) into the main window.

The window makes the one ``TrainingSession`` and hands it here; each workspace receives it (or the pieces
of it it follows) when it is built, and adds its docks, tabs, menus and close guards through the window's
small public surface (document, tabs, add_dock, docks, menus, close_guards, design_tab).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from PySide6.QtCore import QCoreApplication

from cnn_studio.diagnose import DiagnosticsWorkspace, install_diagnostics
from cnn_studio.diagnose.profiling import ProfileWorkspace, install_profiler
from cnn_studio.export_actions import ExportController, install_export
from cnn_studio.inspect import InsidePanel, install_inside
from cnn_studio.interop_actions import InteropController, install_interop
from cnn_studio.runs.workspace import RunsWorkspace, install_runs
from cnn_studio.training.confusion_gallery import ConfusionDrillDown
from cnn_studio.training.panel import TrainingPanel
from cnn_studio.training.session import TrainingSession


@dataclass(frozen=True)
class Workspaces:
    training: TrainingPanel
    inside: InsidePanel
    export: ExportController
    runs: RunsWorkspace
    interop: InteropController
    diagnostics: DiagnosticsWorkspace
    drill_down: ConfusionDrillDown
    profiler: ProfileWorkspace


def install_panels(window: Any, session: TrainingSession) -> Workspaces:
    training = TrainingPanel(window, session)
    inside = install_inside(window, session)
    export = install_export(window, session)
    runs = install_runs(window, session)
    interop = install_interop(window, session)
    diagnostics = install_diagnostics(window, session, training)
    drill_down = ConfusionDrillDown(window, training, inside, session)
    profiler = install_profiler(window, session, training)
    app = QCoreApplication.instance()
    if app is not None:
        # Quitting without closing the window (e.g. Ctrl+Q from elsewhere) must still join the threads.
        app.aboutToQuit.connect(training.shutdown)
    return Workspaces(training, inside, export, runs, interop, diagnostics, drill_down, profiler)
