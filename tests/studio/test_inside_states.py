"""The Inside tab never shows what belongs to something else: a sample that is gone, a pointer that left, a
computation that failed; and it stays usable in a 1100x750 window (every view reachable, nothing cut)."""

from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtCore import QPoint, QPointF, Qt
from PySide6.QtGui import QFontMetrics
from PySide6.QtTest import QTest

from cnn_studio.inspect.atlas_view import TILE, FilterAtlasView
from cnn_studio.inspect.panel import NO_SAMPLE, InsidePanel
from engine.data import Dataset
from engine.explain import filter_atlas
from engine.model import Model
from tests.helpers.engine_factories import RESIDUAL
from tests.studio.window_helpers import close_window, shown_window

WAIT_MS = 20_000


def settle(qtbot, panel: InsidePanel) -> None:
    qtbot.waitUntil(lambda: not panel.worker.busy and not panel.slow_worker.busy, timeout=WAIT_MS)


def class_ticks(panel: InsidePanel) -> list[str]:
    axis = panel.prediction.plot.getPlotItem().getAxis("left")
    return [text for _, text in axis._tickLevels[0]] if axis._tickLevels else []


def residual_model_and_data() -> tuple[Model, Dataset]:
    rng = np.random.default_rng(0)
    data = Dataset.from_arrays(rng.integers(0, 256, (24, 8, 8, 3), dtype=np.uint8), np.arange(24) % 3,
                               rng.integers(0, 256, (30, 8, 8, 3), dtype=np.uint8), np.arange(30) % 3,
                               ["circle", "square", "ankle boot"], name="shapes")
    model = Model.from_architecture(RESIDUAL, seed=0)
    model.preprocessing = data.normalization.to_dict()
    return model, data


# -- a sample that is gone -----------------------------------------------------------------------------------
def test_a_source_without_a_sample_shows_no_other_samples_results(qtbot, panel, small):
    model, dataset = small
    panel.set_model(model, dataset)
    panel.picker.show_test_index(4)
    settle(qtbot, panel)
    true_class = dataset.class_names[int(dataset.y_test[4])]
    assert f"\u2713 {true_class}" in class_ticks(panel) and panel.feature_maps.has_outputs
    # Picture, with no picture opened yet: the test image's maps and its true-class mark were left behind.
    qtbot.mouseClick(panel.picker.sources._buttons[1], Qt.MouseButton.LeftButton)
    assert panel.picker.current_input() is None
    assert panel.prediction.probabilities is None and panel.prediction.headline.text() == "No prediction yet"
    assert class_ticks(panel) == list(dataset.class_names)  # the classes stay named, none marked as true
    assert not panel.feature_maps.has_outputs and not panel.feature_maps.shown_channels()
    assert panel.feature_maps.caption.text() == NO_SAMPLE
    # Back to the test set: everything for that image again.
    qtbot.mouseClick(panel.picker.sources._buttons[0], Qt.MouseButton.LeftButton)
    settle(qtbot, panel)
    assert panel.feature_maps.has_outputs and f"\u2713 {true_class}" in class_ticks(panel)


# -- a pointer that left ---------------------------------------------------------------------------------------
def test_the_feature_map_readout_follows_the_pointer_and_the_outputs(qtbot, panel, small):
    model, dataset = small
    panel.set_model(model, dataset)
    panel.picker.show_test_index(0)
    settle(qtbot, panel)
    view = panel.feature_maps
    view.select_layer("conv2d_1")
    hint = "Hover a channel to read it; click to enlarge"
    grid = view.grid
    qtbot.waitUntil(lambda: grid.viewport().width() > 50)
    h, w = view.current_output().shape[:2]
    inside = grid.mapFromScene(grid.view.mapViewToScene(QPointF(w / 2 + 0.1, h / 2 + 0.1)))
    QTest.mouseMove(grid.viewport(), inside)
    qtbot.waitUntil(lambda: view.hover_label.text().startswith("channel 0 \u00b7"), timeout=5_000)
    first = view.hover_label.text()
    # New outputs under the resting pointer (another sample, as training streams them): the new value is read.
    outputs = [(name, out * 3 + 1) for name, out in model.layer_outputs(panel.picker.current_input())]
    view.set_outputs(outputs)
    value = float(dict(outputs)["conv2d_1"][h // 2, w // 2, 0])
    assert view.hover_label.text() != first and view.hover_label.text().endswith(f"value {value:.4g}")
    # The pointer leaves the grid: the readout no longer names a value that is not under it.
    QTest.mouseMove(view.layer_list.viewport(), QPoint(5, 5))
    qtbot.waitUntil(lambda: view.hover_label.text() == hint, timeout=5_000)
    # Another network: nothing of the old readout lingers.
    QTest.mouseMove(grid.viewport(), inside)
    qtbot.waitUntil(lambda: view.hover_label.text().startswith("channel"), timeout=5_000)
    view.clear()
    assert view.hover_label.text() == hint


# -- a computation that failed ----------------------------------------------------------------------------------
def test_a_failed_computation_is_told_in_its_own_view(qtbot, panel, small, monkeypatch):
    import cnn_studio.inspect.embedding_view as embedding_view
    import cnn_studio.inspect.panel as panel_module

    model, dataset = small
    panel.set_model(model, dataset)

    def no_memory(*_args, **_kwargs):
        raise MemoryError("cannot allocate 3.2 GiB")

    # The embedding kept saying "Projecting the activations…" for good, the reason only in the status line.
    monkeypatch.setattr(embedding_view, "embed", no_memory)
    view = panel.embedding
    panel.views.setCurrentWidget(view)
    qtbot.waitUntil(lambda: "Could not" in view.status.text(), timeout=WAIT_MS)
    assert view.status.text() == "Could not compute the embedding: MemoryError: cannot allocate 3.2 GiB"
    assert not view.progress.isVisible() and not len(view.points)
    assert "Could not compute the embedding: MemoryError" in panel.status.text()
    # So did the attribution view with "Computing SmoothGrad…".
    monkeypatch.setattr(panel_module, "compute_attribution", no_memory)
    attribution = panel.attribution
    panel.views.setCurrentWidget(attribution)
    attribution.set_method("smoothgrad")
    qtbot.waitUntil(lambda: "Could not" in attribution.explanation.text(), timeout=WAIT_MS)
    assert attribution.explanation.text().startswith("Could not compute the attribution map: MemoryError")
    assert not attribution.progress.isVisible() and not attribution.cancel_button.isVisible()
    # The embedding tries again the next time it is shown, and draws its points.
    monkeypatch.undo()
    panel.views.setCurrentWidget(view)
    qtbot.waitUntil(lambda: len(view.points) == len(dataset.y_test), timeout=WAIT_MS)
    assert "misclassified" in view.status.text()


def test_no_network_leaves_nothing_of_the_last_one_in_the_embedding_and_the_atlas(qtbot, panel):
    """Another project (no trained network): the projection, its layer choices and the atlas's go."""
    model, data = residual_model_and_data()
    panel.set_model(model, data)
    view = panel.embedding
    panel.views.setCurrentWidget(view)
    qtbot.waitUntil(lambda: len(view.points) == len(data.y_test), timeout=WAIT_MS)
    assert view.layer_box.count() and panel.atlas.layer_box.count()
    panel.set_model(None)
    assert not len(view.points) and view.legend.text() == "" and view.layer_box.count() == 0
    assert view.status.text().startswith("The embedding appears once") and not view.project_button.isVisible()
    assert panel.atlas.layer_box.count() == 0 and panel.atlas.atlas is None


# -- nothing cut, nothing hidden ---------------------------------------------------------------------------------
def test_the_embedding_key_hides_no_point(qtbot, panel):
    model, data = residual_model_and_data()
    panel.resize(600, 500)  # a narrow pane: the key inside the plot covered half of it
    panel.set_model(model, data)
    view = panel.embedding
    panel.views.setCurrentWidget(view)
    qtbot.waitUntil(lambda: len(view.points) == len(data.y_test), timeout=WAIT_MS)
    key = view.legend
    for name in data.class_names:
        assert name.replace(" ", "&nbsp;") in key.text()
    assert key.isVisible() and not key.geometry().intersects(view.plot.geometry())
    qtbot.wait(20)
    box = view.plot.getPlotItem().getViewBox()
    for position in range(len(view.points)):
        assert box.sceneBoundingRect().contains(view.scene_position(position))


def test_layer_names_are_whole_in_the_layer_choosers(qtbot, panel, small):
    # The boxes were sized for the first network's names ("dense_1"); ResNet's "global_avg_pool2d_1" was then cut.
    model, dataset = small
    panel.set_model(model, dataset)
    for view in (panel.attribution, panel.atlas, panel.embedding, panel.filters):
        panel.views.setCurrentWidget(view)
        qtbot.wait(10)
    settle(qtbot, panel)
    residual, data = residual_model_and_data()
    panel.set_model(residual, data)
    panel.attribution.set_method("gradcam")
    panel.embedding.layer_box.setCurrentText("global_avg_pool2d_1")
    for view in (panel.attribution, panel.atlas, panel.embedding, panel.filters):
        panel.views.setCurrentWidget(view)
        qtbot.wait(10)
        box = view.layer_box
        longest = max(QFontMetrics(box.font()).horizontalAdvance(box.itemText(i)) for i in range(box.count()))
        assert box.isVisible() and box.width() >= longest + 20, (view, box.width(), longest)
    settle(qtbot, panel)


def test_a_one_by_one_convolution_gets_no_flat_weight_tile(qtbot):
    model, data = residual_model_and_data()
    view = FilterAtlasView()
    qtbot.addWidget(view)
    projection = "conv2d_6"  # the 1x1 projection shortcut
    assert model.layers[model.index_of(projection)].params["kernel"].shape[:2] == (1, 1)
    view.set_atlas(filter_atlas(model, data.normalized("test"), projection, 4), data.class_names)
    icon = view.model.item(0).icon()
    assert icon.availableSizes()[0].width() == TILE  # patches only: no single-colour square beside them
    assert "1x1 convolution" in view.status.text() and "its weights (left)" not in view.status.text()
    view.set_atlas(filter_atlas(model, data.normalized("test"), "conv2d_1", 4), data.class_names)
    assert view.model.item(0).icon().availableSizes()[0].width() == 2 * TILE
    assert "its weights (left)" in view.status.text() and "1x1" not in view.status.text()


# -- the main window at 1100x750 -------------------------------------------------------------------------------------
def test_drawing_keeps_a_1100_by_750_window_on_the_screen(qtbot, tmp_path):
    window = shown_window(tmp_path, (1100, 750))
    try:
        qtbot.waitExposed(window)
        panel = window.inside_panel
        window.tabs.setCurrentWidget(panel)
        qtbot.mouseClick(panel.picker.sources._buttons[2], Qt.MouseButton.LeftButton)
        assert panel.picker.pad.isVisible()
        qtbot.wait(50)
        # The pad, the picture and the prediction are taller than the window leaves the column: it scrolls,
        # where the window used to grow to 857 px, its bottom off a 768 px screen.
        assert window.height() == 750 and window.minimumSizeHint().height() <= 750
        canvas = panel.picker.pad.canvas
        assert canvas.visibleRegion().boundingRect().size() == canvas.size()  # the pad itself is whole
    finally:
        close_window(window)


@pytest.mark.parametrize("size", [(1100, 750), (1600, 1000)])
def test_every_view_is_reachable_however_narrow_the_tabs(qtbot, tmp_path, size):
    window = shown_window(tmp_path, size)
    try:
        qtbot.waitExposed(window)
        panel = window.inside_panel
        window.tabs.setCurrentWidget(panel)
        qtbot.wait(50)
        views, button = panel.views, panel.views_button
        overflowing = views.tabBar().sizeHint().width() > views.width()
        assert overflowing == (size == (1100, 750))  # beside the docks only three of seven tabs fit
        assert button.isVisible() == overflowing
        if not overflowing:
            return
        menu = button.menu()
        menu.aboutToShow.emit()
        assert [a.text() for a in menu.actions()] == [views.tabText(i) for i in range(views.count())]
        next(a for a in menu.actions() if a.text() == "Embedding").trigger()
        assert views.currentWidget() is panel.embedding
    finally:
        close_window(window)


@pytest.mark.parametrize("width", [294, 600])
def test_the_mistakes_controls_show_their_whole_texts(qtbot, width):
    from PySide6.QtWidgets import QStyle, QStyleOptionComboBox

    from cnn_studio.inspect.mistakes_gallery import MistakesGallery

    # 294 px: the pane in a 1100 px window, where the two boxes side by side read "Sort: most confiden".
    gallery = MistakesGallery()
    qtbot.addWidget(gallery)
    gallery.resize(width, 500)
    gallery.show()
    qtbot.waitExposed(gallery)
    gallery.set_order("least confident")
    qtbot.wait(20)
    for box in (gallery.order_box, gallery.class_box):
        option = QStyleOptionComboBox()
        box.initStyleOption(option)
        room = box.style().subControlRect(QStyle.ComplexControl.CC_ComboBox, option,
                                          QStyle.SubControl.SC_ComboBoxEditField, box).width()
        text = box.currentText()
        assert QFontMetrics(box.font()).horizontalAdvance(text) <= room, (text, room)
    assert gallery.evaluate_button.isVisible()
    assert gallery.evaluate_button.geometry().right() <= gallery.width()


def test_the_filter_readout_goes_when_the_pointer_leaves(qtbot, panel, small):
    model, dataset = small
    panel.set_model(model, dataset)
    view = panel.filters
    panel.views.setCurrentWidget(view)
    qtbot.waitUntil(lambda: view.graphics.viewport().width() > 50)
    kh, kw = view._kernels["conv2d_1"].shape[:2]
    inside = view.graphics.mapFromScene(view.view.mapViewToScene(QPointF(kw / 2, kh / 2)))
    QTest.mouseMove(view.graphics.viewport(), inside)
    qtbot.waitUntil(lambda: view.hover_label.text().startswith("filter 0"), timeout=5_000)
    QTest.mouseMove(view.caption, QPoint(3, 3))
    qtbot.waitUntil(lambda: view.hover_label.text() == "", timeout=5_000)
