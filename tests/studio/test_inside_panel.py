"""The Inside tab driven without training: set_model / set_evaluation, sample sources, every view."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image
from PySide6.QtCore import QPoint, QPointF, Qt
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QMessageBox

from cnn_studio.inspect.feature_maps import CHANNEL_CAP, FeatureMapsView, unit_grid
from cnn_studio.inspect.panel import InsidePanel
from engine.data import Dataset, Normalization
from engine.inspection import image_to_input, input_to_image, layer_statistics, saliency
from engine.metrics import evaluate
from engine.model import Model
from tests.helpers.engine_factories import SMALL_CNN, arch, stripes_dataset

RGB_CNN = arch(
    {"type": "Conv2D", "filters": 6, "kernel_size": 5, "activation": "relu"},
    {"type": "MaxPool2D", "pool_size": 2},
    {"type": "Conv2D", "filters": 8, "kernel_size": 3, "activation": "relu"},
    {"type": "GlobalAvgPool2D"},
    {"type": "Dense", "units": 10, "activation": "softmax"},
    shape=(32, 32, 3),
)


def cifar_shaped_dataset() -> Dataset:
    rng = np.random.default_rng(0)
    names = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
    return Dataset.from_arrays(rng.integers(0, 256, (40, 32, 32, 3), dtype=np.uint8), np.arange(40) % 10,
                               rng.integers(0, 256, (30, 32, 32, 3), dtype=np.uint8), np.arange(30) % 10,
                               names, name="cifar-shaped")


def settle(qtbot, panel: InsidePanel) -> None:
    qtbot.waitUntil(lambda: not panel.worker.busy, timeout=10_000)


def current_x(panel: InsidePanel) -> np.ndarray:
    x = panel.picker.current_input()
    assert x is not None
    return x


# -- feature maps ----------------------------------------
def test_picking_a_sample_shows_one_image_per_channel_of_the_chosen_layer(qtbot, panel, small):
    model, dataset = small
    panel.set_model(model, dataset)
    panel.picker.show_test_index(7)
    settle(qtbot, panel)
    assert panel.picker.current_index == 7
    expected_x = dataset.normalized("test", np.array([7]))[0]
    np.testing.assert_allclose(current_x(panel), expected_x, rtol=1e-6)
    outputs = dict(model.layer_outputs(expected_x))
    view = panel.feature_maps
    view.select_layer("conv2d_1")
    channels = view.shown_channels()
    assert len(channels) == 4  # 4 filters
    for c, picture in enumerate(channels):
        assert picture.shape == (10, 10)
        np.testing.assert_allclose(picture, outputs["conv2d_1"][:, :, c], rtol=1e-5, atol=1e-6)
    view.select_layer("max_pool2d_1")
    assert [p.shape for p in view.shown_channels()] == [(5, 5)] * 4
    # Another sample redraws the same tiles with its own outputs.
    items = list(view.grid.visible_items())
    panel.picker.step(1)
    settle(qtbot, panel)
    assert panel.picker.current_index == 8
    assert view.grid.visible_items() == items
    later = dict(model.layer_outputs(dataset.normalized("test", np.array([8]))[0]))
    np.testing.assert_allclose(view.shown_channels()[2], later["max_pool2d_1"][:, :, 2], rtol=1e-5, atol=1e-6)


def test_vector_layers_show_their_units_as_one_grid(qtbot, panel, small):
    model, dataset = small
    panel.set_model(model, dataset)
    settle(qtbot, panel)
    panel.feature_maps.select_layer("flatten_1")
    (cells,) = panel.feature_maps.shown_channels()
    assert cells.shape == (10, 10)  # 100 units
    flat = dict(model.layer_outputs(current_x(panel)))["flatten_1"]
    np.testing.assert_allclose(cells.ravel(), flat, rtol=1e-5, atol=1e-6)
    grid = unit_grid(np.arange(5, dtype=np.float32))
    assert grid.shape == (2, 3) and np.isnan(grid[1, 2]) and grid[1, 1] == 4


def test_channel_grid_caps_channels_scales_and_maps_hover_and_clicks(qtbot):
    view = FeatureMapsView()
    qtbot.addWidget(view)
    view.show()
    rng = np.random.default_rng(0)
    maps = rng.random((6, 5, 70)).astype(np.float32) * np.arange(1, 71, dtype=np.float32)
    view.set_outputs([("conv", maps), ("dense", rng.random(12).astype(np.float32))])
    assert len(view.shown_channels()) == CHANNEL_CAP
    assert view.show_all.isVisible()
    view.show_all.setChecked(True)
    assert len(view.shown_channels()) == 70
    items = view.grid.visible_items()
    assert len({tuple(item.levels) for item in items}) == 70  # each channel on its own scale
    view.scaling.setCurrentIndex(1)
    assert {tuple(item.levels) for item in view.grid.visible_items()} == {(float(maps.min()), float(maps.max()))}
    # Row-major tiles: channel 10 of a 9-column grid sits in row 1, column 1.
    rows_cols = view.grid._layout
    assert rows_cols[3] == 9
    tile_w, tile_h, gap = 5, 6, view.grid._gap
    assert view.grid.locate(1 * (tile_w + gap) + 2.5, 1 * (tile_h + gap) + 3.5) == (10, 3, 2)
    assert view.grid.locate(tile_w + gap / 2, 1.0) is None  # in the gap
    hovered = []
    view.grid.hovered.connect(hovered.append)
    centre = view.grid.view.mapViewToScene(QPointF(1 * (tile_w + gap) + 2.5, 1 * (tile_h + gap) + 3.5))
    view.grid._on_mouse_moved(centre)
    assert hovered[-1].startswith("channel 10 \u00b7 row 3, column 2")
    view.select_channel(10)
    np.testing.assert_array_equal(view.enlarged.shown, maps[:, :, 10])
    assert "channel 10" in view.enlarged.title.text()
    view.select_layer("dense")
    assert view.shown_channels()[0].shape == (3, 4)
    view.select_channel(5)
    np.testing.assert_array_equal(view.enlarged.shown, view.current_output())


def test_clicking_a_tile_enlarges_that_channel(qtbot, panel, small):
    model, dataset = small
    panel.set_model(model, dataset)
    settle(qtbot, panel)
    grid = panel.feature_maps.grid
    qtbot.waitUntil(lambda: grid.view.width() > 50)
    _count, h, w, cols = grid._layout
    centre = QPointF(1 * (w + grid._gap) + w / 2, 0 * (h + grid._gap) + h / 2)  # channel 1
    point = grid.mapFromScene(grid.view.mapViewToScene(centre))
    QTest.mouseClick(grid.viewport(), Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, point)
    qtbot.waitUntil(lambda: panel.feature_maps.selected_channel == 1)
    output = dict(model.layer_outputs(current_x(panel)))["conv2d_1"]
    np.testing.assert_allclose(panel.feature_maps.enlarged.shown, output[:, :, 1], rtol=1e-5, atol=1e-6)


# -- prediction ----------------------------------------
def test_probabilities_sum_to_one_match_predict_and_show_the_true_label(qtbot, panel, small):
    model, dataset = small
    panel.set_model(model, dataset)
    panel.picker.show_test_index(3)
    settle(qtbot, panel)
    probs = panel.prediction.probabilities
    assert probs.sum() == pytest.approx(1.0, abs=1e-6)
    np.testing.assert_allclose(probs, model.predict(current_x(panel)[None])[0], rtol=1e-5)
    assert panel.prediction.top_class == int(np.argmax(probs))
    assert panel.prediction.true_label == int(dataset.y_test[3])
    brushes = panel.prediction.bars.opts["brushes"]
    top_colour = brushes[panel.prediction.top_class].color().getRgb()
    assert all(b.color().getRgb() != top_colour for i, b in enumerate(brushes) if i != panel.prediction.top_class)
    assert dataset.class_names[int(dataset.y_test[3])] in panel.prediction.headline.text()


# -- sample sources ----------------------------------------
def test_drawing_pad_produces_the_input_the_model_receives(qtbot, panel, small):
    model, dataset = small
    panel.set_model(model, dataset)
    picker = panel.picker
    picker.sources.setCurrentIndex(2)
    canvas = picker.pad.canvas
    qtbot.waitUntil(canvas.isVisible)
    assert canvas.is_blank()
    size = canvas.width()
    assert size == 12 * canvas.factor
    y = size // 2
    QTest.mousePress(canvas, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, QPoint(5, y))
    for x in range(10, size - 5, 10):
        QTest.mouseMove(canvas, QPoint(x, y))
    QTest.mouseRelease(canvas, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, QPoint(size - 5, y))
    settle(qtbot, panel)
    pixels = picker.pad.pixels()
    assert pixels.shape == (12, 12, 1) and pixels.dtype == np.uint8
    assert pixels[5:7].mean() > 150  # the stroke crosses the middle rows
    assert pixels[:3].max() == 0 and pixels[-3:].max() == 0  # and nothing else
    x = current_x(panel)
    np.testing.assert_array_equal(x, image_to_input(pixels, (12, 12, 1), dataset.normalization))
    # What the feature maps and the prediction show is the model's response to exactly that input.
    outputs = dict(model.layer_outputs(x))
    panel.feature_maps.select_layer("conv2d_1")
    np.testing.assert_allclose(panel.feature_maps.shown_channels()[0], outputs["conv2d_1"][:, :, 0], rtol=1e-5,
                               atol=1e-6)
    np.testing.assert_allclose(panel.prediction.probabilities, model.predict(x[None])[0], rtol=1e-5)
    assert panel.prediction.true_label is None
    picker.pad.clear()
    assert canvas.is_blank() and picker.pad.pixels().max() == 0


def test_test_set_browsing_filters_by_class(qtbot, panel, small):
    model, dataset = small
    panel.set_model(model, dataset)
    picker = panel.picker
    picker.class_filter.setCurrentIndex(2)  # "vertical" = class 1
    seen = []
    for _ in range(5):
        seen.append(picker.current_index)
        picker.next_button.click()
    expected = np.flatnonzero(dataset.y_test == 1)
    assert seen == expected[:5].tolist()
    assert picker.count_label.text() == f"of {len(expected)}"
    picker.previous_button.click()
    assert picker.current_index == expected[4]
    assert picker.current_label() == 1
    picker.show_test_index(int(np.flatnonzero(dataset.y_test == 2)[0]))  # outside the filter: it is cleared
    assert picker.class_filter.currentIndex() == 0 and picker.current_label() == 2


def test_the_image_number_shown_is_the_one_in_the_index_box(qtbot, panel, small):
    model, dataset = small
    panel.set_model(model, dataset)
    panel.picker.show_test_index(7)
    assert panel.picker.index_box.value() == 8  # all classes: the eighth test image
    assert panel.picker.description().startswith("Test image #8\n")


def test_arrow_keys_browse_the_test_images(qtbot, panel, small):
    model, dataset = small
    panel.set_model(model, dataset)
    picker = panel.picker
    picker.class_filter.setCurrentIndex(2)  # "vertical" = class 1
    expected = np.flatnonzero(dataset.y_test == 1)
    panel.window().activateWindow()
    qtbot.waitUntil(panel.window().isActiveWindow)
    qtbot.mouseClick(picker.preview, Qt.MouseButton.LeftButton)
    assert picker.hasFocus()  # a click on the picture gives the picker the focus
    qtbot.keyClick(picker, Qt.Key.Key_Right)
    qtbot.keyClick(picker, Qt.Key.Key_Right)
    assert picker.current_index == expected[2]
    qtbot.keyClick(picker, Qt.Key.Key_Left)
    assert picker.current_index == expected[1]
    qtbot.keyClick(picker, Qt.Key.Key_End)
    assert picker.current_index == expected[-1]
    qtbot.keyClick(picker, Qt.Key.Key_Right)  # past the last: back to the first, like the button
    assert picker.current_index == expected[0]
    qtbot.keyClick(picker, Qt.Key.Key_Right)
    qtbot.keyClick(picker, Qt.Key.Key_Home)
    assert picker.current_index == expected[0]
    assert picker.index_box.value() == 1
    # The index box keeps its arrow keys for its own cursor.
    qtbot.keyClick(picker.index_box, Qt.Key.Key_Right)
    assert picker.current_index == expected[0]


def test_a_picture_file_becomes_the_sample_and_a_bad_one_shows_a_message(qtbot, panel, small, tmp_path):
    model, dataset = small
    panel.set_model(model, dataset)
    picture = np.zeros((48, 48, 3), np.uint8)
    picture[:, 20:28] = 255  # a bright vertical bar
    path = tmp_path / "bar.png"
    Image.fromarray(picture).save(path)
    assert panel.picker.load_file(path)
    settle(qtbot, panel)
    assert panel.picker.source == "file"
    x = current_x(panel)
    np.testing.assert_array_equal(x, image_to_input(path, (12, 12, 1), dataset.normalization))
    np.testing.assert_allclose(panel.prediction.probabilities, model.predict(x[None])[0], rtol=1e-5)
    panel.picker.invert_box.setChecked(True)
    np.testing.assert_array_equal(current_x(panel), image_to_input(path, (12, 12, 1), dataset.normalization,
                                                                  invert=True))
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"\x89PNG but not really")
    assert not panel.picker.load_file(bad)
    boxes = [b for b in panel.findChildren(QMessageBox) if b.isVisible()]
    assert boxes and "broken.png" in boxes[0].text()
    assert panel.picker.source == "file" and panel.picker.current_pixels() is not None  # the old picture stays
    for box in boxes:
        box.close()


# -- attribution: the plain gradient ----------------------------------------
def test_gradient_attribution_shows_the_engine_gradient_matching_finite_differences(qtbot, panel):
    doc = arch(
        {"type": "Conv2D", "filters": 3, "kernel_size": 3, "activation": "tanh"},
        {"type": "AvgPool2D", "pool_size": 2},
        {"type": "Flatten"},
        {"type": "Dense", "units": 3, "activation": "softmax"},
        shape=(12, 12, 1),
    )
    model = Model.from_architecture(doc, seed=2, dtype=np.float64)
    dataset = stripes_dataset(n_train=30, n_test=10)
    panel.set_model(model, dataset)
    panel.views.setCurrentWidget(panel.attribution)
    assert panel.attribution.method == "gradient"  # the quick one first
    panel.picker.show_test_index(4)
    settle(qtbot, panel)
    result = panel.attribution.result
    assert result is not None and result.method == "gradient"
    x = current_x(panel).astype(np.float64)
    k = int(np.argmax(model.predict(x[None])[0]))
    assert result.class_index == k
    numeric = np.zeros_like(x)
    eps = 1e-6
    for idx in np.ndindex(x.shape):
        old = x[idx]
        x[idx] = old + eps
        plus = model.forward_logits(x[None])[0, k]
        x[idx] = old - eps
        minus = model.forward_logits(x[None])[0, k]
        x[idx] = old
        numeric[idx] = (plus - minus) / (2 * eps)
    np.testing.assert_allclose(result.map, numeric.sum(axis=-1), rtol=1e-4, atol=1e-7)
    np.testing.assert_allclose(panel.attribution.map_image.image, numeric.sum(axis=-1), rtol=1e-4, atol=1e-7)
    magnitude = np.abs(numeric).max(axis=-1)
    np.testing.assert_allclose(result.heat, magnitude / magnitude.max(), rtol=1e-4, atol=1e-7)
    # Asking for another class recomputes for that class.
    other = (k + 1) % 3
    panel.attribution.class_box.setCurrentIndex(panel.attribution.class_box.findData(other))
    settle(qtbot, panel)
    assert panel.attribution.result.class_index == other
    np.testing.assert_allclose(panel.attribution.result.map, saliency(model, x, other).gradient.sum(axis=-1),
                               rtol=1e-6)


# -- mistakes ----------------------------------------
def test_gallery_lists_exactly_the_misclassified_samples_and_opens_one(qtbot, panel, small):
    model, dataset = small
    panel.set_model(model, dataset)
    ev = evaluate(model, dataset.normalized("test"), dataset.y_test)
    assert 0 < len(ev.mistakes) < len(ev.labels)
    panel.set_evaluation(ev)
    gallery = panel.mistakes
    assert sorted(gallery.shown_indices()) == ev.mistakes.tolist()
    confidences = [ev.probabilities[i].max() for i in gallery.shown_indices()]
    assert confidences == sorted(confidences, reverse=True)  # most confident first by default
    gallery.set_order("least confident")
    assert [ev.probabilities[i].max() for i in gallery.shown_indices()] == sorted(confidences)
    wrong_class = int(np.bincount(ev.labels[ev.mistakes]).argmax())
    gallery.set_class_filter(wrong_class)
    assert sorted(gallery.shown_indices()) == [i for i in ev.mistakes if ev.labels[i] == wrong_class]
    gallery.set_class_filter(None)
    # Each entry names true and predicted class with its confidence.
    first = gallery.model.index(0, 0)
    m = gallery.model.mistakes[0]
    text = first.data(Qt.ItemDataRole.DisplayRole)
    assert dataset.class_names[m.true_class] in text and dataset.class_names[m.predicted_class] in text
    assert not first.data(Qt.ItemDataRole.DecorationRole).isNull()
    # Clicking one opens it in the sample picker with its feature maps.
    panel.views.setCurrentWidget(gallery)
    target = gallery.model.index(2, 0)
    chosen = gallery.model.mistakes[2].index
    rect = gallery.view.visualRect(target)
    QTest.mouseClick(gallery.view.viewport(), Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier,
                     rect.center())
    settle(qtbot, panel)
    assert panel.picker.current_index == chosen
    assert panel.views.currentWidget() is panel.feature_maps
    outputs = dict(model.layer_outputs(dataset.normalized("test", np.array([chosen]))[0]))
    panel.feature_maps.select_layer("conv2d_1")
    np.testing.assert_allclose(panel.feature_maps.shown_channels()[3], outputs["conv2d_1"][:, :, 3], rtol=1e-5,
                               atol=1e-6)
    assert panel.prediction.true_label == ev.labels[chosen] != panel.prediction.top_class


def test_evaluate_button_fills_the_gallery_in_the_background(qtbot, panel, small):
    model, dataset = small
    panel.set_model(model, dataset)
    panel.mistakes.evaluate_button.click()
    settle(qtbot, panel)
    expected = evaluate(model, dataset.normalized("test"), dataset.y_test).mistakes
    assert sorted(panel.mistakes.shown_indices()) == expected.tolist()


# -- filters and statistics ----------------------------------------
def test_filters_show_the_first_conv_kernels_and_deeper_ones_on_request(qtbot, panel):
    doc = arch(
        {"type": "Conv2D", "filters": 5, "kernel_size": 3, "activation": "relu"},
        {"type": "Conv2D", "filters": 3, "kernel_size": 2, "activation": "relu"},
        {"type": "Flatten"},
        {"type": "Dense", "units": 3, "activation": "softmax"},
        shape=(12, 12, 1),
    )
    model = Model.from_architecture(doc, seed=0)
    panel.set_model(model, stripes_dataset(n_train=30, n_test=10))
    filters = panel.filters
    assert filters.layer_names() == ["conv2d_1", "conv2d_2"]
    assert filters.layer_box.currentText() == "conv2d_1"
    picture = filters.shown
    kernel = model.parameters()["conv2d_1.kernel"]
    # 5 filters in a 2x3 grid of 3x3 tiles with one-pixel gaps.
    assert picture.shape == (2 * 4 - 1, 3 * 4 - 1)
    tile = picture[4:7, 0:3]  # filter 3: row 1, column 0
    np.testing.assert_allclose(tile, kernel[:, :, 0, 3] / np.abs(kernel[:, :, 0, 3]).max(), rtol=1e-5)
    assert np.isnan(picture[3]).all()  # the gap row
    filters.show_layer("conv2d_2")
    deeper = filters.shown
    assert deeper.shape == (5 * 3 - 1, 3 * 3 - 1)  # columns are 3 filters, rows 5 input channels
    k2 = model.parameters()["conv2d_2.kernel"]
    # Filter 1 (column 1), input channel 2 (row 2).
    np.testing.assert_allclose(deeper[6:8, 3:5], k2[:, :, 2, 1] / np.abs(k2[:, :, :, 1]).max(), rtol=1e-5)
    assert filters.locate(3.5, 6.5) == (1, 2)


def test_layer_statistics_table_matches_the_engine(qtbot, panel, small):
    model, dataset = small
    panel.set_model(model, dataset)
    settle(qtbot, panel)
    shown = panel.stats.statistics
    x = Normalization.from_dict(model.preprocessing).apply(dataset.x_test[:256])
    expected = layer_statistics(model, x)
    assert [s.name for s in shown] == [s.name for s in expected]
    for a, b in zip(shown, expected):
        assert a.dead_units == b.dead_units and a.relu == b.relu
        np.testing.assert_array_equal(a.activations.counts, b.activations.counts)
    assert panel.stats.model.rowCount() == len(model.names)
    dead_cell = panel.stats.model.index(0, panel.stats.model.column("dead")).data()
    assert dead_cell.endswith(f"({expected[0].dead_units}/4)")
    panel.stats.select_layer("conv2d_1")
    weights, outputs = panel.stats.histogram_counts()
    np.testing.assert_array_equal(weights, expected[0].weights.counts)


def test_the_statistics_heading_names_the_weights_they_were_measured_with(qtbot, panel, small):
    model, dataset = small
    panel.set_model(model, dataset)
    settle(qtbot, panel)
    assert "with the latest weights (updated after every epoch)" in panel.stats.note.text()
    # The time machine pins an older epoch: its figures are that epoch's, and the heading says so.
    past = Model.from_architecture(SMALL_CNN, seed=1)
    past.preprocessing = model.preprocessing
    panel.pin_model(past, "Epoch 1 of run 2", dataset)
    qtbot.waitUntil(lambda: "with the weights of epoch 1 of run 2." in panel.stats.note.text(), timeout=10_000)
    assert "latest" not in panel.stats.note.text()
    assert "Measured on all 40 test images" in panel.stats.note.text()
    panel.pin_model(model, "Run 3 after 5 epochs", dataset)  # (another run, from the Runs tab)
    qtbot.waitUntil(lambda: "with the weights of run 3 after 5 epochs." in panel.stats.note.text(), timeout=10_000)


# -- colour input ----------------------------------------
def test_everything_works_on_cifar_shaped_colour_input(qtbot, panel):
    dataset = cifar_shaped_dataset()
    model = Model.from_architecture(RGB_CNN, seed=0)
    panel.set_model(model, dataset)
    panel.picker.show_test_index(5)
    settle(qtbot, panel)
    x = current_x(panel)
    assert x.shape == (32, 32, 3)
    assert panel.picker.current_pixels().shape == (32, 32, 3)
    panel.feature_maps.select_layer("conv2d_1")
    assert [c.shape for c in panel.feature_maps.shown_channels()] == [(28, 28)] * 6
    np.testing.assert_allclose(panel.prediction.probabilities, model.predict(x[None])[0], rtol=1e-5)
    assert panel.prediction.probabilities.sum() == pytest.approx(1.0, abs=1e-6)
    # Filters of a colour input are colour pictures: 6 tiles of 5x5x3.
    panel.views.setCurrentWidget(panel.filters)
    assert panel.filters.rgb_box.isVisible()
    assert panel.filters.shown.shape == (2 * 6 - 1, 3 * 6 - 1, 3)
    panel.filters.rgb_box.setChecked(False)
    assert panel.filters.shown.shape == (3 * 6 - 1, 6 * 6 - 1)  # input channels x filters
    # Attribution over the colour picture.
    result = panel.attribution.result
    assert result.map.shape == (32, 32) and result.heat.shape == (32, 32)
    np.testing.assert_allclose(panel.attribution.picture.image, input_to_image(x, model.preprocessing), atol=1e-6)
    # The drawing pad draws in colour at 32x32x3.
    panel.picker.sources.setCurrentIndex(2)
    canvas = panel.picker.pad.canvas
    assert panel.picker.pad.color_button.isVisible()
    canvas.pen_color = Qt.GlobalColor.red
    canvas.draw_line(QPointF(10, 10), QPointF(canvas.width() - 10, canvas.height() - 10))
    canvas.stroke_changed.emit()
    settle(qtbot, panel)
    pixels = panel.picker.current_pixels()
    assert pixels.shape == (32, 32, 3)
    assert pixels[16, 16, 0] > 200 and pixels[16, 16, 1] < 40  # red along the diagonal
    np.testing.assert_allclose(panel.prediction.probabilities, model.predict(current_x(panel)[None])[0], rtol=1e-5)


def test_a_dataset_that_does_not_fit_the_network_leaves_pictures_and_drawings(qtbot, panel):
    model = Model.from_architecture(SMALL_CNN, seed=0)  # 12x12x1
    panel.set_model(model, cifar_shaped_dataset())
    assert not panel.picker.sources.isTabEnabled(0)
    assert panel.picker.source == "draw"
    assert panel.picker.current_input().shape == (12, 12, 1)
    assert "do not fit" in panel.picker.sources._buttons[0].toolTip()


def test_without_a_model_the_panel_explains_what_to_do(qtbot, panel, small):
    model, dataset = small
    panel.set_model(model, dataset)
    settle(qtbot, panel)
    panel.set_model(None)
    assert "No trained network" in panel.status.text()
    assert panel.feature_maps.shown_channels() == []
    assert panel.prediction.probabilities is None


def test_a_hidden_tab_defers_its_work_until_it_is_shown(qtbot, small):
    model, dataset = small
    hidden = InsidePanel()
    qtbot.addWidget(hidden)
    try:
        hidden.set_model(model, dataset)
        qtbot.wait(50)
        assert not hidden.worker.busy
        assert hidden.prediction.probabilities is None and hidden.stats.statistics == []
        hidden.show()
        qtbot.waitUntil(lambda: hidden.prediction.probabilities is not None and bool(hidden.stats.statistics),
                        timeout=10_000)
        x = hidden.picker.current_input()
        np.testing.assert_allclose(hidden.prediction.probabilities, model.predict(x[None])[0], rtol=1e-5)
    finally:
        hidden.shutdown()


def test_the_feature_map_caption_wraps_instead_of_widening_the_window(qtbot):
    view = FeatureMapsView()
    qtbot.addWidget(view)
    view.resize(700, 500)
    view.show()
    empty = view.minimumSizeHint().width()
    maps = np.random.default_rng(0).random((26, 26, 32), dtype=np.float32)
    view.set_outputs([("a_rather_long_layer_name_conv2d_1", maps)])
    view.select_layer("a_rather_long_layer_name_conv2d_1")
    assert "32 channels" in view.caption.text()
    qtbot.wait(50)  # the layouts take the new caption into account
    # The caption shares a row with the scaling box: it must not raise the view's minimum width.
    assert view.minimumSizeHint().width() <= empty + 20, (empty, view.minimumSizeHint().width())
    # ... and it is still shown, in the width the row has left.
    assert view.caption.isVisible() and view.caption.width() >= 60


def test_the_drawing_pad_keeps_its_room_above_the_prediction(qtbot, small):
    model, dataset = small
    widget = InsidePanel()
    qtbot.addWidget(widget)
    widget.resize(1000, 690)  # the Inside tab's height in a 1400x900 window
    widget.show()
    widget.set_model(model, dataset)
    widget.picker.sources.setCurrentIndex(2)  # Draw
    pad = widget.picker.pad
    qtbot.waitUntil(lambda: pad.isVisible())
    qtbot.wait(50)
    # Neither squeezed under its Clear button and brush slider nor drawn over them.
    assert pad.height() >= pad.minimumSizeHint().height()
    assert widget.prediction.height() >= widget.prediction.plot.minimumHeight()
    widget.shutdown()


def test_every_node_of_a_branching_network_has_its_feature_maps_and_says_what_it_takes(qtbot, panel):
    from engine.architecture import FORMAT

    branching = {"format": FORMAT, "input": {"shape": [12, 12, 1]}, "layers": [
        {"id": "stem", "type": "Conv2D", "filters": 4, "kernel_size": 3, "padding": "same"},
        {"id": "a", "type": "Conv2D", "filters": 4, "kernel_size": 3, "padding": "same"},
        {"id": "add", "type": "Add", "inputs": ["a", "stem"]},
        {"id": "b", "type": "Conv2D", "filters": 2, "kernel_size": 1, "inputs": ["stem"]},
        {"id": "cat", "type": "Concatenate", "inputs": ["add", "b"]},
        {"id": "gap", "type": "GlobalAvgPool2D"},
        {"id": "out", "type": "Dense", "units": 3, "activation": "softmax"}]}
    dataset = stripes_dataset(n_train=30, n_test=20)
    model = Model.from_architecture(branching, seed=0)
    panel.set_model(model, dataset)
    settle(qtbot, panel)
    view = panel.feature_maps
    rows = [view.layer_list.item(i).text() for i in range(view.layer_list.count())]
    assert [row.split()[0] for row in rows] == model.names  # merges and the side branch included
    # What a row takes, its lines joined again (a narrow list puts each input on a line of its own).
    by_name = {name: " ".join(row.splitlines()[2:]) for name, row in zip(model.names, rows)}
    assert by_name["add_1"] == "\u2190 conv2d_2 + conv2d_1"
    assert by_name["conv2d_3"] == "\u2190 conv2d_1"  # a branch that starts further up
    assert by_name["conv2d_2"] == ""  # the row above feeds it: nothing to say
    outputs = dict(model.layer_outputs(current_x(panel)))
    for name in ("add_1", "concatenate_1"):
        view.select_layer(name)
        channels = view.shown_channels()
        assert len(channels) == outputs[name].shape[2]
        np.testing.assert_allclose(channels[0], outputs[name][:, :, 0], rtol=1e-5, atol=1e-6)
    assert outputs["concatenate_1"].shape == (12, 12, 6)
