"""The main window opened on a small network and a dataset, as the training-side studio tests use it."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from PySide6.QtCore import QSettings

from cnn_studio.main_window import MainWindow
from tests.helpers.engine_factories import SMALL_CNN


@contextmanager
def trainable_window(tmp_path: Path, dataset: Any, size: tuple[int, int] = (1400, 900),
                     architecture: dict[str, Any] = SMALL_CNN, **window_options: Any) -> Iterator[MainWindow]:
    """A shown main window holding ``architecture`` with ``dataset`` chosen; on exit it is closed as
    saved, so that no "save changes?" question waits for an answer."""
    window = MainWindow(settings=QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat),
                        **window_options)
    window.resize(*size)
    window.show()
    window.document.replace_architecture(architecture)
    window.training_panel.use_dataset(dataset, "stripes")
    try:
        yield window
    finally:
        window.document.mark_saved()
        window.close()
        window.deleteLater()


def shown_window(tmp_path: Path, size: tuple[int, int] = (1100, 750)) -> MainWindow:
    """A shown main window with its own settings file (the caller closes it with ``close_window``)."""
    window = MainWindow(settings=QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat))
    window.resize(*size)
    window.show()
    return window


def close_window(window: MainWindow) -> None:
    """Close as saved: no "save changes?" question waits for an answer."""
    window.document.mark_saved()
    window.close()
    window.deleteLater()
