"""Shared pieces of the builder tests: a window with throw-away settings and scripted dialogs,
and drag-and-drop delivered as Qt delivers a real drop (offscreen, QDrag.exec() returns at once)."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QMimeData, QPoint, QPointF, QSettings, Qt
from PySide6.QtGui import QDragEnterEvent, QDragMoveEvent, QDropEvent
from PySide6.QtWidgets import QApplication

from cnn_studio.main_window import MainWindow


class ScriptedDialogs:
    """Stands in for the window's Dialogs: answers are set by the test, messages are recorded."""

    def __init__(self) -> None:
        self.save_answer = "discard"
        self.restore_answer: bool | None = None  # after a crash: restore, discard, or nobody answers
        self.restore_questions: list[str] = []
        self.open_path: str | None = None
        self.save_path: str | None = None
        self.questions: list[str] = []
        self.errors: list[tuple[str, str]] = []
        self.infos: list[tuple[str, str]] = []

    def ask_save_changes(self, project_name: str) -> str:
        self.questions.append(project_name)
        return self.save_answer

    def ask_restore(self, project_name: str, saved_at: float) -> bool | None:
        self.restore_questions.append(project_name)
        return self.restore_answer

    def open_project_path(self, directory: str) -> str | None:
        return self.open_path

    def save_project_path(self, suggested: str) -> str | None:
        return self.save_path

    def error(self, title: str, text: str, details: str = "") -> None:
        self.errors.append((title, text))

    def info(self, title: str, text: str) -> None:
        self.infos.append((title, text))


def make_window(qtbot, tmp_path: Path, show: bool = True) -> MainWindow:
    settings = QSettings(str(tmp_path / "studio.ini"), QSettings.Format.IniFormat)
    window = MainWindow(settings=settings, dialogs=ScriptedDialogs())
    qtbot.addWidget(window)
    if show:
        window.show()
        qtbot.waitExposed(window)
    return window


def layer_types(document) -> list[str]:
    return [spec["type"] for spec in document.layers()]


def layer_ids(document) -> list[str]:
    return [spec["id"] for spec in document.layers()]


def drag_and_drop(canvas, mime: QMimeData, point: QPoint) -> tuple[bool, bool]:
    """Enter, move over and drop ``mime`` at viewport ``point``.

    Returns (the drop was accepted, the insertion marker was visible just before the drop).
    """
    viewport = canvas.viewport()
    actions = Qt.DropAction.CopyAction | Qt.DropAction.MoveAction
    buttons, mods = Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier
    enter = QDragEnterEvent(point, actions, mime, buttons, mods)
    QApplication.sendEvent(viewport, enter)
    if not enter.isAccepted():
        return False, False
    move = QDragMoveEvent(point, actions, mime, buttons, mods)
    QApplication.sendEvent(viewport, move)
    marker_shown = canvas.marker.isVisible()
    drop = QDropEvent(QPointF(point), actions, mime, buttons, mods)
    QApplication.sendEvent(viewport, drop)
    return drop.isAccepted(), marker_shown
