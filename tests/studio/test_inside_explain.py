"""The Inside tab's explanation views: attribution methods, filter atlas, embedding."""

from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtCore import Qt

from cnn_studio.inspect.attribution_view import CLASS_TRUE
from cnn_studio.inspect.panel import InsidePanel
from engine.explain import grad_cam, occlusion, smooth_grad
from engine.model import Model
from tests.helpers.engine_factories import RESIDUAL, SMALL_CNN, arch, stripes_dataset

WAIT_MS = 20_000


@pytest.fixture
def panel(qtbot):
    widget = InsidePanel()
    qtbot.addWidget(widget)
    widget.resize(1200, 800)
    widget.show()
    yield widget
    widget.shutdown()


@pytest.fixture
def small():
    dataset = stripes_dataset(n_train=60, n_test=40).standardized()
    model = Model.from_architecture(SMALL_CNN, seed=0)
    model.preprocessing = dataset.normalization.to_dict()
    return model, dataset


def settle(qtbot, panel: InsidePanel) -> None:
    qtbot.waitUntil(lambda: not panel.worker.busy and not panel.slow_worker.busy, timeout=WAIT_MS)


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


def test_a_long_computation_reports_progress_and_can_be_cancelled(qtbot, panel, small):
    model, dataset = small
    panel.set_model(model, dataset)
    view = panel.attribution
    panel.views.setCurrentWidget(view)
    panel.picker.show_test_index(0)
    settle(qtbot, panel)
    view.samples.setValue(200)
    seen = []
    panel.slow_worker.job_progress.connect(lambda kind, f: seen.append(f))
    with qtbot.waitSignal(panel.slow_worker.job_progress, timeout=WAIT_MS):
        choose(view.method_box, "smoothgrad")
    assert view.progress.isVisible() and view.cancel_button.isVisible()
    with qtbot.waitSignal(panel.slow_worker.job_cancelled, timeout=WAIT_MS):
        qtbot.mouseClick(view.cancel_button, Qt.MouseButton.LeftButton)
    assert not view.progress.isVisible()
    assert seen and max(seen) < 1.0
    assert view.result is None or view.result.method != "smoothgrad"


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
