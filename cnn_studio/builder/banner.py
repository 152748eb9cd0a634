"""The notice over the canvas while the architecture is locked (e.g. during training)."""

from __future__ import annotations

from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QLabel, QWidget

from cnn_studio.document import ProjectDocument

STYLE = "background: #fff4ce; color: #5c4400; border-bottom: 1px solid #e0c36a; padding: 6px 12px;"
FLASH_STYLE = "background: #ffe08a; color: #3d2d00; border-bottom: 1px solid #c9a227; padding: 6px 12px;"


class LockBanner(QLabel):
    def __init__(self, document: ProjectDocument, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setStyleSheet(STYLE)
        self.setWordWrap(True)
        self.setVisible(False)
        document.lock_changed.connect(self.show_lock)
        document.edit_refused.connect(lambda _reason: self.flash())
        self._timer = QTimer(self, singleShot=True, interval=600, timeout=lambda: self.setStyleSheet(STYLE))

    def show_lock(self, locked: bool, reason: str) -> None:
        self.setText(f"<b>Locked</b> — {reason or 'the architecture is in use'}. "
                     "Stop training to edit the architecture; it stays visible meanwhile.")
        self.setVisible(locked)

    def flash(self) -> None:
        """Draw the eye to the banner when an edit was refused."""
        if self.isVisible():
            self.setStyleSheet(FLASH_STYLE)
            self._timer.start()
