"""Confusion drill-down: a click on a confusion-matrix cell lists its test images; a click on one opens it in
the Inside tab."""

from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtCore import QPoint, Qt

import cnn_studio.training.panel as panel_module
from cnn_studio.training.confusion_gallery import cell_indices
from engine.training import TrainConfig
from tests.helpers.engine_factories import stripes_dataset
from tests.studio.window_helpers import trainable_window


@pytest.fixture
def window(qtbot, tmp_path, monkeypatch):
    monkeypatch.setattr(panel_module, "show_message", lambda *args: None)
    with trainable_window(tmp_path, stripes_dataset(200, 60)) as w:
        yield w


def cell_center(view, row: int, col: int) -> QPoint:
    grid, cell, _ = view._layout()
    return QPoint(int(grid.left() + (col + 0.5) * cell), int(grid.top() + (row + 0.5) * cell))


def test_clicking_a_cell_opens_its_images_and_one_of_them_in_inside(qtbot, window):
    panel = window.training_panel
    window.document.set_training(TrainConfig(epochs=1, batch_size=32, learning_rate=0.02).to_dict())
    window.tabs.setCurrentWidget(panel.tab)
    with qtbot.waitSignal(panel.run_ended, timeout=60_000):
        panel.start()
    qtbot.waitUntil(lambda: panel.results.evaluation is not None, timeout=30_000)
    evaluation = panel.results.evaluation
    confusion = evaluation.confusion
    # The busiest off-diagonal cell if there is one, else the first class's correct ones.
    off = confusion - np.diag(np.diag(confusion))
    row, col = np.unravel_index(np.argmax(off), off.shape) if off.max() else (0, 0)
    view = panel.results.confusion
    qtbot.mouseClick(view, Qt.MouseButton.LeftButton, pos=cell_center(view, row, col))
    gallery = window.confusion_drill_down.gallery
    assert gallery.isVisible() and gallery.cell == (row, col)
    assert gallery.model.rowCount() == confusion[row, col]
    expected = cell_indices(evaluation, row, col)
    assert [gallery.model.item(i).data(Qt.ItemDataRole.UserRole + 1) for i in range(len(expected))] == \
        expected.tolist()
    assert all(evaluation.labels[i] == row and evaluation.predictions[i] == col for i in expected)
    names = panel.results.confusion.class_names()
    assert names[row] in gallery.header.text() and not gallery.model.item(0).icon().isNull()
    # An image opens in the Inside tab.
    index = gallery.model.index(0, 0)
    qtbot.mouseClick(gallery.view.viewport(), Qt.MouseButton.LeftButton, pos=gallery.view.visualRect(index).center())
    assert window.tabs.currentWidget() is window.inside_panel
    assert window.inside_panel.picker.current_index == expected[0]
    gallery.close()
