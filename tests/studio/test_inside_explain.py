"""The Inside tab's explanation views: attribution methods, filter atlas, embedding."""

from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtCore import Qt

from cnn_studio.inspect.attribution_view import CLASS_TRUE
from cnn_studio.inspect.panel import InsidePanel
from engine.explain import grad_cam, occlusion, smooth_grad
from engine.model import Model
from tests.helpers.engine_factories import RESIDUAL, arch, stripes_dataset

WAIT_MS = 20_000


def settle(qtbot, panel: InsidePanel) -> None:
    qtbot.waitUntil(lambda: not panel.worker.busy and not panel.slow_worker.busy, timeout=WAIT_MS)


def wait_for_layout(qtbot, widget) -> None:
    """Until ``widget`` stays where it is for 50 ms: a word-wrapped label that got new text (a status line,
    a headline) takes more than one layout pass to settle, and moves what is below it."""
    seen = [None]

    def unmoved() -> bool:
        where, seen[0] = seen[0], (widget.mapTo(widget.window(), widget.rect().topLeft()), widget.size())
        return where == seen[0]

    qtbot.waitUntil(lambda: qtbot.wait(50) or unmoved(), timeout=5_000)


def choose(box, data) -> None:
    box.setCurrentIndex(box.findData(data))


def test_switching_attribution_methods_shows_each_engine_map(qtbot, panel, small):
    model, dataset = small
    panel.set_model(model, dataset)
    view = panel.attribution
    panel.views.setCurrentWidget(view)
    panel.picker.show_test_index(3)
    settle(qtbot, panel)
    x = panel.picker.current_input()
    assert view.result.method == "gradient"
    assert not view.layer_box.isVisible() and not view.samples.isVisible()

    # Grad-CAM: the layer chooser appears; the map is the engine's, at the layer's resolution.
    choose(view.method_box, "gradcam")
    assert view.layer_box.isVisible() and [view.layer_box.itemText(i) for i in range(view.layer_box.count())] == \
        ["conv2d_1", "max_pool2d_1"]
    assert view.layer_box.currentText() == "max_pool2d_1"  # the last feature maps by default
    settle(qtbot, panel)
    cam = grad_cam(model, x, "max_pool2d_1")
    assert view.result.method == "gradcam" and view.result.class_index == cam.class_index
    np.testing.assert_allclose(view.result.map, cam.map, rtol=1e-5)
    np.testing.assert_allclose(view.result.heat, cam.normalized, rtol=1e-5, atol=1e-7)
    assert view.map_image.image.shape == (5, 5) and "Grad-CAM of max_pool2d_1 (5x5)" in view.right_title.text
    view.layer_box.setCurrentText("conv2d_1")
    settle(qtbot, panel)
    np.testing.assert_allclose(view.result.map, grad_cam(model, x, "conv2d_1").map, rtol=1e-5)

    # SmoothGrad runs in the background with progress; its settings show.
    choose(view.method_box, "smoothgrad")
    assert view.samples.isVisible() and view.noise.isVisible() and not view.layer_box.isVisible()
    view.samples.setValue(6)
    settle(qtbot, panel)
    expected = smooth_grad(model, x, samples=6, noise=0.15)
    assert view.result.method == "smoothgrad"
    np.testing.assert_allclose(view.result.map, expected.gradient.sum(axis=-1), rtol=1e-4, atol=1e-6)
    assert not view.progress.isVisible()

    # Occlusion, explaining the sample's true class.
    choose(view.method_box, "occlusion")
    assert view.patch.isVisible() and view.stride.isVisible() and view.fill.isVisible()
    choose(view.class_box, CLASS_TRUE)
    settle(qtbot, panel)
    label = panel.picker.current_label()
    fill = (0.0 - np.asarray(dataset.normalization.mean)) / np.asarray(dataset.normalization.std)
    expected = occlusion(model, x, label, view.patch.value(), view.stride.value(), fill.astype(np.float32))
    assert view.result.method == "occlusion" and view.result.class_index == label
    np.testing.assert_allclose(view.result.map, expected.map, rtol=1e-4, atol=1e-6)

    # The overlay's opacity follows the slider.
    view.opacity.setValue(30)
    assert view.overlay.opacity() == pytest.approx(0.3)


def test_a_long_computation_reports_progress_and_can_be_cancelled(qtbot, panel, small, monkeypatch):
    import threading

    import cnn_studio.inspect.attribution as attribution_module

    # SmoothGrad waits after its first sample until the test has pressed Cancel (a small network is quick).
    gate = threading.Event()
    real = attribution_module.smooth_grad

    def held(*args, progress=None, **kwargs):
        def report(fraction):
            progress(fraction)
            gate.wait(30)

        return real(*args, progress=report, **kwargs)

    monkeypatch.setattr(attribution_module, "smooth_grad", held)
    model, dataset = small
    panel.set_model(model, dataset)
    view = panel.attribution
    panel.views.setCurrentWidget(view)
    panel.picker.show_test_index(0)
    settle(qtbot, panel)
    view.samples.setValue(50)
    seen = []
    panel.slow_worker.job_progress.connect(lambda kind, f: seen.append(f))
    with qtbot.waitSignal(panel.slow_worker.job_progress, timeout=WAIT_MS):
        choose(view.method_box, "smoothgrad")
    assert view.progress.isVisible() and view.cancel_button.isVisible()
    with qtbot.waitSignal(panel.slow_worker.job_cancelled, timeout=WAIT_MS):
        qtbot.mouseClick(view.cancel_button, Qt.MouseButton.LeftButton)
        gate.set()
    assert not view.progress.isVisible()
    assert seen == [pytest.approx(1 / 50)]
    assert view.result is None or view.result.method != "smoothgrad"


def test_a_projection_can_be_cancelled_and_started_again(qtbot, panel, small, monkeypatch):
    import threading

    import cnn_studio.inspect.embedding_view as embedding_module

    gate = threading.Event()
    real = embedding_module.embed

    def held(*args, progress=None, cancelled=None, **kwargs):
        progress(0.1)
        gate.wait(30)
        if cancelled():
            from engine.explain import Cancelled

            raise Cancelled()
        return real(*args, progress=progress, cancelled=cancelled, **kwargs)

    monkeypatch.setattr(embedding_module, "embed", held)
    model, dataset = small
    view = panel.embedding
    with qtbot.waitSignal(panel.slow_worker.job_progress, timeout=WAIT_MS):
        panel.set_model(model, dataset)
        panel.views.setCurrentWidget(view)
    assert view.progress.isVisible() and view.cancel_button.isVisible() and not view.project_button.isVisible()
    with qtbot.waitSignal(panel.slow_worker.job_cancelled, timeout=WAIT_MS):
        qtbot.mouseClick(view.cancel_button, Qt.MouseButton.LeftButton)
        gate.set()
    assert not view.progress.isVisible() and not view.cancel_button.isVisible()
    assert "Projection stopped" in view.status.text() and view.project_button.isVisible()
    assert not len(view.points)
    qtbot.mouseClick(view.project_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: len(view.points) == len(dataset.y_test), timeout=WAIT_MS)
    assert "misclassified" in view.status.text() and not view.project_button.isVisible()


def test_grad_cam_of_a_branching_network_in_the_view(qtbot, panel):
    model = Model.from_architecture(RESIDUAL, seed=1)
    rng = np.random.default_rng(0)
    from engine.data import Dataset

    dataset = Dataset.from_arrays(rng.integers(0, 256, (20, 8, 8, 3), dtype=np.uint8), np.arange(20) % 3,
                                  rng.integers(0, 256, (9, 8, 8, 3), dtype=np.uint8), np.arange(9) % 3,
                                  ["a", "b", "c"], name="rgb")
    panel.set_model(model, dataset)
    view = panel.attribution
    panel.views.setCurrentWidget(view)
    choose(view.method_box, "gradcam")
    assert view.layer_box.currentText() == "relu_3"
    view.layer_box.setCurrentText("add_1")
    panel.picker.show_test_index(2)
    settle(qtbot, panel)
    x = panel.picker.current_input()
    np.testing.assert_allclose(view.result.map, grad_cam(model, x, "add_1").map, rtol=1e-5)


def test_grad_cam_is_offered_only_with_feature_maps(qtbot, panel):
    doc = arch({"type": "Flatten"}, {"type": "Dense", "units": 3, "activation": "softmax"})
    dataset = stripes_dataset(n_train=20, n_test=5)
    panel.set_model(Model.from_architecture(doc), dataset)
    item = panel.attribution.method_box.model().item(2)
    assert not item.isEnabled() and "has none" in item.toolTip()


# -- filter atlas -----------------------------------------------------------------------------------------
def test_filter_atlas_shows_each_channels_top_patches_and_a_click_shows_them_large(qtbot, panel, small):
    from engine.explain import filter_atlas
    from engine.inspection import raw_to_uint8

    model, dataset = small
    panel.set_model(model, dataset)
    atlas_view = panel.atlas
    assert atlas_view.layer == "conv2d_1" and atlas_view.model.rowCount() == 0  # computed when first shown
    panel.views.setCurrentWidget(atlas_view)
    qtbot.waitUntil(lambda: atlas_view.atlas is not None, timeout=WAIT_MS)
    assert atlas_view.model.rowCount() == 4  # one tile per channel
    expected = filter_atlas(model, dataset.normalized("test"), "conv2d_1", 9,
                            pictures=raw_to_uint8(dataset.x_test, dataset.normalization.scale))
    for shown, engine_channel in zip(atlas_view.atlas.channels, expected.channels):
        assert shown.indices.tolist() == engine_channel.indices.tolist()
        np.testing.assert_array_equal(shown.patches, engine_channel.patches)
    assert "3x3 pixels" in atlas_view.status.text()
    tile = atlas_view.model.index(2, 0)
    qtbot.mouseClick(atlas_view.grid.viewport(), Qt.MouseButton.LeftButton,
                     pos=atlas_view.grid.visualRect(tile).center())
    assert atlas_view.channel == 2 and atlas_view.detail_model.rowCount() == 9
    assert "channel 2" in atlas_view.detail_title.text()
    from cnn_studio.inspect.atlas_view import TILE

    assert atlas_view.detail.iconSize().width() >= 2 * (TILE // 3)  # large: a tile holds 3 x 3 of them
    first = atlas_view.detail_model.index(0, 0)
    qtbot.mouseClick(atlas_view.detail.viewport(), Qt.MouseButton.LeftButton,
                     pos=atlas_view.detail.visualRect(first).center())
    assert panel.picker.current_index == int(expected.channels[2].indices[0])
    # Another layer: its atlas (pooling has no weights of its own, so it is not offered).
    assert [atlas_view.layer_box.itemText(i) for i in range(atlas_view.layer_box.count())] == ["conv2d_1"]


# -- embedding ---------------------------------------------------------------------------------------------
def test_embedding_points_hover_for_the_image_and_click_into_the_picker(qtbot, panel, small):
    from PySide6.QtTest import QTest

    from engine.explain import embed

    model, dataset = small
    panel.set_model(model, dataset)
    view = panel.embedding
    assert view.layer == "flatten_1"  # no hidden Dense layer: the last vector before the classifier
    panel.views.setCurrentWidget(view)
    qtbot.waitUntil(lambda: len(view.points) == len(dataset.y_test), timeout=WAIT_MS)
    expected = embed(model, dataset.normalized("test"), "flatten_1")
    np.testing.assert_allclose(np.abs(view.points), np.abs(expected.points), rtol=1e-4, atol=1e-5)
    predictions = model.predict(dataset.normalized("test")).argmax(axis=1)
    np.testing.assert_array_equal(view.predictions, predictions)
    assert "misclassified" in view.status.text()
    wait_for_layout(qtbot, view.plot)  # the points' new status line may still move the plot down
    target = int(np.argmax(view.points[:, 0]))  # the rightmost point: nothing overlaps it
    at = view.plot.mapFromScene(view.scene_position(target))
    QTest.mouseMove(view.plot.viewport(), at)
    qtbot.waitUntil(lambda: view.preview.isVisible(), timeout=5_000)
    assert view.hovered == int(view.indices[target]) and not view.preview.pixmap().isNull()
    qtbot.mouseClick(view.plot.viewport(), Qt.MouseButton.LeftButton, pos=at)
    assert panel.picker.current_index == int(view.indices[target])
    assert panel.views.currentWidget() is panel.feature_maps
    # A new snapshot (as after an epoch) projects again while the view is shown.
    panel.views.setCurrentWidget(view)
    before = view.points.copy()
    model.parameters()["conv2d_1.kernel"][...] *= 1.5
    panel.set_model(model, dataset)
    qtbot.waitUntil(lambda: not np.allclose(view.points, before), timeout=WAIT_MS)
