"""The Diagnostics workspace: the training doctor's findings as a tab, a badge and a notice.

The tab follows the window's TrainingSession: each DoctorReport the runner announces replaces what it
shows; a fresh run clears it. A fix is pushed on the project's undo stack (refused while training runs,
since the project is locked then); its card shows it applied until it is undone. Whenever problems are
found the tab's title counts them with a warning icon, the Training dock says so with a link to the tab,
and the status bar names the first one, so a newcomer watching the curves sees that something is wrong
and where to read why.
"""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import QObject, Qt
from PySide6.QtGui import QIcon, QUndoCommand
from PySide6.QtWidgets import QLabel, QStyle, QTabWidget

from cnn_studio.diagnose.diagnostics_view import DiagnosticsView
from cnn_studio.diagnose.fixes import FixError, fix_command, layer_ids_by_name
from cnn_studio.messages import show_message
from engine.doctor import DoctorReport, Fix

TAB_TITLE = "Diagnostics"
LOCKED_REASON = "Stop training first (Shift+F5): a fix changes the project, and the next run trains with it."


class AppliedFix(QUndoCommand):
    """A fix's edit, telling the view when it is done and undone (its card shows which)."""

    def __init__(self, inner: QUndoCommand, fix: Fix, view: DiagnosticsView) -> None:
        super().__init__(inner.text())
        self.inner, self.fix, self.view = inner, fix, view

    def redo(self) -> None:
        self.inner.redo()
        self.view.mark_applied(self.fix, True)

    def undo(self) -> None:
        self.inner.undo()
        self.view.mark_applied(self.fix, False)


class DiagnosticsWorkspace(QObject):
    def __init__(self, window: Any, session: Any) -> None:
        super().__init__(window)
        self.window = window
        self.document = window.document
        self.runner = session.runner
        self.view = DiagnosticsView()
        tabs: QTabWidget = window.tabs
        after = next((i for i in range(tabs.count()) if tabs.tabText(i) == "Train"), tabs.count() - 1)
        self.index = tabs.insertTab(after + 1, self.view, TAB_TITLE)
        tabs.setTabToolTip(self.index, "What the training doctor found out about the last run")
        self.notice = QLabel("")
        self.notice.setWordWrap(True)
        self.notice.setTextFormat(Qt.TextFormat.RichText)
        self.notice.setStyleSheet("background: #fdebd0; border: 1px solid #e59866; padding: 4px; color: #6e2c00;")
        self.notice.setVisible(False)
        self.notice.linkActivated.connect(lambda _link: self.show())
        self._warning_icon = window.style().standardIcon(QStyle.StandardPixmap.SP_MessageBoxWarning)

        self.view.fix_requested.connect(self.apply)
        self.view.layer_requested.connect(self.show_layer)
        self.runner.diagnosed.connect(self.set_report)
        self.runner.began.connect(self._on_began)
        self.runner.state_changed.connect(self._update_enabled)
        window.document.project_replaced.connect(self.clear)
        action = window.menus["View"].addAction("Training diagnostics")
        action.setToolTip("What the training doctor found out about the last run, and how to fix it")
        action.triggered.connect(self.show)
        self._update_enabled()

    def add_notice_to(self, layout: Any, after: Any) -> None:
        """Put the 'problems found' notice into ``layout`` (the Training dock) below widget ``after``."""
        layout.insertWidget(layout.indexOf(after) + 1, self.notice)

    # -- reports -------------------------------------------------------------------------------------------------
    def set_report(self, report: DoctorReport) -> None:
        before = {d.key for d in self.view.diagnoses}
        self.view.set_report(report)
        self._update_badge()
        new = [d for d in report.diagnoses if d.key not in before]
        if new:
            more = f" (and {len(new) - 1} more)" if len(new) > 1 else ""
            self.window.statusBar().showMessage(
                f"The training doctor found: {new[0].title}{more}. See the {TAB_TITLE} tab.", 10000)

    def clear(self) -> None:
        self.view.clear()
        self._update_badge()

    def _on_began(self, fresh: bool) -> None:
        if fresh:
            self.clear()

    def _update_badge(self) -> None:
        tabs, n = self.window.tabs, len(self.view.diagnoses)
        index = tabs.indexOf(self.view)
        tabs.setTabText(index, f"{TAB_TITLE} ({n})" if n else TAB_TITLE)
        tabs.setTabIcon(index, self._warning_icon if n else QIcon())
        titles = "; ".join(d.title for d in self.view.diagnoses)
        tabs.setTabToolTip(index, f"The training doctor found: {titles}" if n else
                           "What the training doctor found out about the last run")
        if n:
            first = self.view.diagnoses[0].title
            more = f" and {n - 1} more problem{'s' if n > 2 else ''}" if n > 1 else ""
            self.notice.setText(f"⚠ The training doctor found: <b>{first}</b>{more}. "
                                f"<a href='diagnostics'>See why and how to fix it</a>")
        self.notice.setVisible(bool(n))

    def _update_enabled(self) -> None:
        running = self.runner.running
        self.view.set_fixes_enabled(not running, LOCKED_REASON if running else "")

    # -- actions -------------------------------------------------------------------------------------------------
    def show(self) -> None:
        self.window.tabs.setCurrentWidget(self.view)

    def apply(self, fix: Fix) -> bool:
        """Apply ``fix`` to the project as one undoable edit; False (the reason shown) when it cannot be."""
        if self.document.locked:
            self.window.statusBar().showMessage(LOCKED_REASON, 6000)
            return False
        try:
            command = fix_command(self.document, fix)
        except FixError as exc:
            show_message(self.window, "warning", "Fix not applied", f"{fix.label}: {exc}.")
            return False
        if not self.document.push(AppliedFix(command, fix, self.view)):
            return False
        self.window.statusBar().showMessage(f"Applied: {fix.label}. Start (F5) trains with it; Ctrl+Z undoes it.",
                                            8000)
        return True

    def show_layer(self, name: str) -> None:
        layer_id = layer_ids_by_name(self.document).get(name)
        if layer_id is None:
            self.window.statusBar().showMessage(f"The network has no layer {name!r} any more.", 6000)
            return
        self.window.tabs.setCurrentWidget(self.window.design_tab)
        self.window.selection.select(layer_id)


def install_diagnostics(window: Any, session: Any, training: Any) -> DiagnosticsWorkspace:
    """The Diagnostics tab in ``window`` (after the Train tab), following ``session``; its notice goes into
    the Training dock of ``training`` (the TrainingPanel)."""
    workspace = DiagnosticsWorkspace(window, session)
    layout = training.dock_widget.layout()
    workspace.add_notice_to(layout, training.dock_progress)
    return workspace
