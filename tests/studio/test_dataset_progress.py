"""A dataset that takes a while to load shows a progress dialog with Cancel; Cancel stops the load, keeps
nothing and leaves the previous dataset in place."""

from __future__ import annotations

import time

import pytest
from PySide6.QtCore import QSettings, Qt
from PySide6.QtWidgets import QApplication, QProgressDialog, QPushButton

import cnn_studio.training.dataset_progress as progress_module
from cnn_studio.main_window import MainWindow
from engine.data import image_folder
from tests.helpers.data_factories import make_image_folder
from tests.helpers.engine_factories import stripes_dataset

WAIT_MS = 30_000


@pytest.fixture
def window(qtbot, tmp_path, monkeypatch):
    monkeypatch.setattr(progress_module.DatasetProgress, "SHOW_AFTER_MS", 0)
    window = MainWindow(settings=QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat))
    qtbot.addWidget(window)
    window.show()
    window.training_panel.use_dataset(stripes_dataset(64, 16), "stripes")
    return window


@pytest.fixture
def slow_folder(tmp_path, monkeypatch):
    """A folder of 40 images that decodes at 25 images a second (as a large folder would, slowly)."""
    root = make_image_folder(tmp_path / "pets", ("cat", "dog"), per_class=20)
    original = image_folder.picture_pixels

    def slow(*args, **kwargs):
        time.sleep(0.04)
        return original(*args, **kwargs)

    monkeypatch.setattr(image_folder, "picture_pixels", slow)
    return root


def progress_dialog() -> QProgressDialog | None:
    return next((w for w in QApplication.topLevelWidgets() if isinstance(w, QProgressDialog) and w.isVisible()), None)


def test_cancel_stops_the_load_and_keeps_the_previous_dataset(qtbot, window, slow_folder):
    panel = window.training_panel
    before = panel.datasets.source.current
    panel.load_dataset(str(slow_folder))
    qtbot.waitUntil(lambda: progress_dialog() is not None, timeout=WAIT_MS)
    dialog = progress_dialog()
    qtbot.waitUntil(lambda: "Decoding the images of" in dialog.labelText(), timeout=WAIT_MS)
    assert dialog.maximum() == 40 and 0 < dialog.value() < 40
    cancel = next(b for b in dialog.findChildren(QPushButton) if b.text() == "Cancel")
    with qtbot.waitSignal(panel.datasets.source.cancelled, timeout=WAIT_MS):
        qtbot.mouseClick(cancel, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: progress_dialog() is None, timeout=WAIT_MS)
    assert panel.datasets.source.current is before
    assert "cancelled" in panel.form.dataset_info.text()
    assert not panel.datasets.loading


def test_the_dialog_follows_a_load_to_its_end(qtbot, window, slow_folder):
    panel = window.training_panel
    seen: list[tuple[str, int, int]] = []
    panel.datasets.source.progressed.connect(lambda _ref, stage, done, total: seen.append((stage, done, total)))
    with qtbot.waitSignal(panel.datasets.source.loaded, timeout=WAIT_MS):
        panel.load_dataset(str(slow_folder))
    assert ("decoding", 40, 40) in seen and ("scanning", 40, 40) in seen
    qtbot.waitUntil(lambda: progress_dialog() is None, timeout=WAIT_MS)
    assert len(panel.datasets.source.current.y_train) + len(panel.datasets.source.current.y_test) == 40
