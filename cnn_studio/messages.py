"""Messages for the user that never block the event loop, shared by every workspace.

Training keeps streaming while a message is open: boxes are shown with ``open()`` (window-modal),
not ``exec()``. A box with a parent is owned by it; a box without one is kept referenced here until
it closes. Either way it deletes itself on closing, so no stale wrapper is ever touched again.
"""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import QMessageBox, QWidget

HEADLESS_PLATFORMS = ("offscreen", "minimal")
ICONS = {
    "error": QMessageBox.Icon.Critical,
    "warning": QMessageBox.Icon.Warning,
    "info": QMessageBox.Icon.Information,
}
_parentless: list[QMessageBox] = []


def headless() -> bool:
    """True where nobody can see a dialog (offscreen test runs): questions must not wait for answers."""
    return QGuiApplication.platformName() in HEADLESS_PLATFORMS


def show_message(
    parent: QWidget | None, kind: str, title: str, text: str, informative: str = "", details: str = ""
) -> QMessageBox:
    """Open a message box without blocking; ``kind`` is "error", "warning" or "info"."""
    box = QMessageBox(ICONS.get(kind, QMessageBox.Icon.Information), title, text,
                      QMessageBox.StandardButton.Ok, parent)
    if informative:
        box.setInformativeText(informative)
    if details:
        box.setDetailedText(details)
    box.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)  # paths can be copied
    box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
    box.setWindowModality(Qt.WindowModality.WindowModal)
    if parent is None:
        _parentless.append(box)
        box.finished.connect(lambda _result: _parentless.remove(box) if box in _parentless else None)
    box.open()
    return box
