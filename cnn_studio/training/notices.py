"""The Training dock's message line: what the user should know about the last thing that happened."""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtWidgets import QLabel

NOTE_STYLE = "color: #5c4400;"
ERROR_STYLE = "color: #b00020;"


class Notices:
    """A word-wrapped line in the dock (long explanations fit there, unlike in the status bar) and a short
    echo in the status bar. ``said`` keeps every notice shown, oldest first."""

    def __init__(self, label: QLabel, status: Callable[[str, int], None]) -> None:
        self.label = label
        self.status = status
        self.said: list[str] = []
        label.setWordWrap(True)
        label.setVisible(False)

    def say(self, text: str, *, error: bool = False, status: str | None = None, timeout_ms: int = 6000) -> None:
        """Show ``text`` in the dock; the status bar gets ``status`` (a short form) or the text itself."""
        if not text:
            return
        self.said.append(text)
        self.show(text, error=error)
        self.status(status or text, timeout_ms)

    def show(self, text: str, *, error: bool = False) -> None:
        """Show ``text`` in the dock only ("" hides the line)."""
        self.label.setText(text)
        self.label.setStyleSheet(ERROR_STYLE if error else NOTE_STYLE)
        self.label.setVisible(bool(text))

    def clear(self) -> None:
        self.show("")

