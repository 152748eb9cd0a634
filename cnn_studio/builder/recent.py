"""The File > Open Recent list, kept in QSettings (most recent first, at most MAX_RECENT)."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QObject, QSettings, Signal

MAX_RECENT = 8
KEY = "recent_projects"


class RecentFiles(QObject):
    changed = Signal()

    def __init__(self, settings: QSettings, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.settings = settings

    def paths(self) -> list[str]:
        value = self.settings.value(KEY, [])
        if isinstance(value, str):  # QSettings returns a lone string for a one-item list
            value = [value]
        return [str(v) for v in value or [] if v]

    def add(self, path: str | Path) -> None:
        path = str(Path(path).resolve())
        self._store([path] + [p for p in self.paths() if p != path])

    def remove(self, path: str | Path) -> None:
        path = str(path)
        self._store([p for p in self.paths() if p != path and p != str(Path(path).resolve())])

    def clear(self) -> None:
        self._store([])

    def _store(self, paths: list[str]) -> None:
        self.settings.setValue(KEY, paths[:MAX_RECENT])
        self.settings.sync()
        self.changed.emit()
