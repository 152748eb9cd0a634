"""The Inside tab following a real TrainingSession, and its installation into the main window."""

from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtCore import QObject, QSettings
from PySide6.QtWidgets import QMenu, QTabWidget, QWidget

from cnn_studio.inspect import InsidePanel, install_inside
from cnn_studio.inspect.panel import COMPUTING_MAPS, COMPUTING_PREDICTION
from cnn_studio.main_window import MainWindow
from cnn_studio.training.session import TrainingSession
from engine.data import Normalization
from engine.inspection import layer_statistics
from engine.training import TrainConfig
from tests.helpers.engine_factories import SMALL_CNN, stripes_dataset

LONG_RUN = TrainConfig(epochs=500, batch_size=8, learning_rate=0.01, validation_split=0.0)


@pytest.fixture
def session():
    training = TrainingSession()
    yield training
    training.shutdown(10_000)


@pytest.fixture
def panel(qtbot, session):
    widget = InsidePanel()
    qtbot.addWidget(widget)
    widget.resize(1000, 700)
    widget.show()
    widget.attach_session(session)
    yield widget
    widget.shutdown()


def test_live_updates_arrive_during_training_and_stop_when_it_stops(qtbot, session, panel):
    dataset = stripes_dataset(n_train=400, n_test=30)
    assert panel.probes_received == 0 and not panel.live
    session.runner.start(SMALL_CNN, dataset, LONG_RUN)
    qtbot.waitUntil(lambda: panel.probes_received >= 3, timeout=30_000)
    assert panel.live and session.runner.running
    assert "Live" in panel.status.text()
    # The probes are drawn: every layer, one tile per channel of the chosen one.
    view = panel.feature_maps
    assert view.current_layer == "conv2d_1"
    assert [c.shape for c in view.shown_channels()] == [(10, 10)] * 4
    assert panel.prediction.probabilities.sum() == pytest.approx(1.0, abs=1e-5)
    assert panel.picker.current_index is not None  # a test image is the probe sample
    # A new sample goes to the worker: the next probes are computed for it.
    before = panel.probes_received
    panel.picker.step(1)
    qtbot.waitUntil(lambda: panel.probes_received >= before + 2, timeout=30_000)

    session.runner.stop()
    qtbot.waitUntil(lambda: not session.runner.running, timeout=30_000)
    assert not panel.live
    arrived = panel.probes_received
    qtbot.wait(1200)  # several probe intervals: nothing more may arrive once training stopped
    assert panel.probes_received == arrived
    # Idle again: the panel computes on demand from the final weights.
    qtbot.waitUntil(lambda: not panel.worker.busy, timeout=10_000)
    final = session.trained.model()
    assert final is not None
    x = panel.picker.current_input()
    np.testing.assert_allclose(panel.prediction.probabilities, final.predict(x[None])[0], rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(view.shown_channels()[0], final.layer_outputs(x)[0][1][:, :, 0], rtol=1e-4,
                               atol=1e-6)
    assert panel.filters.layer_names() == ["conv2d_1"]
    np.testing.assert_array_equal(panel.filters._kernels["conv2d_1"], final.parameters()["conv2d_1.kernel"])
    # The session's test-set evaluation fills the gallery with exactly its mistakes.
    qtbot.waitUntil(lambda: session.trained.evaluation() is not None, timeout=10_000)
    assert sorted(panel.mistakes.shown_indices()) == session.trained.evaluation().mistakes.tolist()


def test_a_hidden_tab_asks_for_no_probes_and_catches_up_when_shown(qtbot, session, panel):
    session.runner.start(SMALL_CNN, stripes_dataset(n_train=400, n_test=10), LONG_RUN)
    qtbot.waitUntil(lambda: panel.probes_received >= 1, timeout=30_000)
    panel.hide()
    qtbot.wait(100)
    hidden_at = panel.probes_received
    qtbot.wait(1000)
    assert panel.probes_received == hidden_at
    panel.show()
    qtbot.waitUntil(lambda: panel.probes_received > hidden_at, timeout=30_000)
    session.runner.stop()
    qtbot.waitUntil(lambda: not session.runner.running, timeout=30_000)


def test_opened_after_a_run_it_says_it_is_computing_and_shows_the_sample_first(qtbot, session, panel):
    # The tab stayed hidden through the whole run (the user watched the Train tab): nothing was computed.
    panel.hide()
    dataset = stripes_dataset(n_train=64, n_test=16)
    session.runner.start(SMALL_CNN, dataset, TrainConfig(epochs=2, batch_size=16, validation_split=0.0))
    qtbot.waitUntil(lambda: not session.runner.running, timeout=30_000)
    assert not panel.feature_maps.has_outputs
    # Not a blank tab with bare axes: every empty view says its results are on their way.
    assert not panel.busy_note.isHidden()
    assert panel.prediction.headline.text() == COMPUTING_PREDICTION
    assert panel.feature_maps.caption.text() == COMPUTING_MAPS
    assert panel.feature_maps.layer_list.item(0).text() == "Computing\u2026"
    assert panel.feature_maps.current_layer is None  # the stand-in row is no layer
    arrived: list[str] = []
    panel.worker.result_ready.connect(lambda kind, _result: arrived.append(kind))
    panel.show()
    qtbot.waitUntil(lambda: panel.feature_maps.has_outputs, timeout=10_000)
    # The feature maps and prediction come first, not after the statistics of the test images.
    assert arrived[0] == "sample"
    assert panel.busy_note.isHidden() and panel.prediction.probabilities is not None
    assert panel.feature_maps.current_layer == "conv2d_1" and panel.feature_maps.caption.text() != COMPUTING_MAPS
    qtbot.waitUntil(lambda: not panel.worker.busy, timeout=10_000)
    assert "stats" in arrived


def test_statistics_follow_each_epoch_of_a_run(qtbot, session, panel):
    dataset = stripes_dataset(n_train=64, n_test=16)
    session.runner.start(SMALL_CNN, dataset, TrainConfig(epochs=2, batch_size=16, validation_split=0.0))
    qtbot.waitUntil(lambda: not session.runner.running, timeout=30_000)
    qtbot.waitUntil(lambda: not panel.worker.busy and bool(panel.stats.statistics), timeout=10_000)
    final = session.trained.model()
    expected = layer_statistics(final, Normalization.from_dict(final.preprocessing).apply(dataset.x_test))
    assert [s.dead_units for s in panel.stats.statistics] == [s.dead_units for s in expected]
    np.testing.assert_array_equal(panel.stats.statistics[0].weights.counts, expected[0].weights.counts)


class WindowDouble(QObject):
    """The main window's public surface, as far as install_inside uses it."""

    def __init__(self) -> None:
        super().__init__()
        self.host = QWidget()
        self.tabs = QTabWidget(self.host)
        self.menus = {"View": QMenu("View", self.host)}
        self.close_guards: list = []


def test_install_inside_adds_the_tab_a_view_action_and_follows_the_session(qtbot, session):
    window = WindowDouble()
    qtbot.addWidget(window.host)
    panel = install_inside(window, session)
    try:
        assert window.tabs.tabText(window.tabs.indexOf(panel)) == "Inside"
        assert panel.session is session
        action = next(a for a in window.menus["View"].actions() if "inside" in a.text().lower())
        window.tabs.addTab(QWidget(), "Other")
        window.tabs.setCurrentIndex(1)
        action.trigger()
        assert window.tabs.currentWidget() is panel
    finally:
        panel.shutdown()


def test_the_main_window_has_an_inside_tab_following_its_training_session(qtbot, tmp_path):
    window = MainWindow(settings=QSettings(str(tmp_path / "studio.ini"), QSettings.Format.IniFormat))
    qtbot.addWidget(window)
    tabs = [window.tabs.tabText(i) for i in range(window.tabs.count())]
    assert "Inside" in tabs
    panel = window.inside_panel
    assert isinstance(panel, InsidePanel)
    assert panel.session is window.training_session
    panel.shutdown()


def test_adopted_weights_drop_the_last_runs_accuracy_and_mistakes(qtbot, session, panel):
    from engine.model import Model

    dataset = stripes_dataset(n_train=64, n_test=30)
    with qtbot.waitSignal(session.trained.evaluation_changed, timeout=30_000):
        session.runner.start(SMALL_CNN, dataset, TrainConfig(epochs=1, batch_size=16, validation_split=0.0))
    qtbot.waitUntil(lambda: not session.runner.running, timeout=30_000)
    assert "test accuracy" in panel.status.text()
    other = Model.from_architecture(SMALL_CNN, seed=7)  # e.g. File > Import Weights
    other.preprocessing = dataset.normalization.to_dict()
    session.trained.adopt(other)
    assert panel.model is other
    assert "test accuracy" not in panel.status.text()
    assert "evaluated" in panel.mistakes.summary.text()


def test_the_live_status_names_the_epoch_done_not_the_one_being_trained(qtbot, session, panel):
    # After epoch 1 it said "(epoch 1 of 3)" while the status bar showed "Epoch 2/3" being trained.
    seen: list[str] = []
    session.runner.epoch_end.connect(lambda event: seen.append(panel.status.text()))  # after the panel's slot
    session.runner.start(SMALL_CNN, stripes_dataset(n_train=64, n_test=10),
                         TrainConfig(epochs=2, batch_size=16, validation_split=0.0))
    qtbot.waitUntil(lambda: len(seen) == 2, timeout=30_000)
    assert "Live" in seen[0] and "(epoch 1 of 2 done)" in seen[0]
    assert "(epoch 2 of 2 done)" in seen[1]
    qtbot.waitUntil(lambda: not session.runner.running, timeout=30_000)
