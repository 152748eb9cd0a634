"""Pieces of the Train workspace on their own: buffers, smoothing, progress text, form, heat map, warnings."""

from __future__ import annotations

import threading
import warnings

import numpy as np
import pytest
from PySide6.QtCore import QObject, Signal
from PySide6.QtWidgets import QCheckBox

from cnn_studio.training.confusion_view import ConfusionMatrixView
from cnn_studio.training.progress import TrainingProgress, describe_batch, format_duration
from cnn_studio.training.run_history import RunHistory, RunRecorder
from cnn_studio.training.run_list import RunHistoryList
from cnn_studio.training.series import GrowingSeries, SmoothedSeries
from cnn_studio.training.settings_form import TrainingSettingsForm
from cnn_studio.training.thread_warnings import warnings_to
from engine.data import DatasetInfo
from engine.training import BatchEnd, EpochEnd, TrainConfig, TrainingFinished


def test_growing_series_keeps_every_point_and_finds_the_nearest():
    series = GrowingSeries(capacity=2)
    for i in range(1, 11):
        series.append(i, i * i)
    series.extend(np.array([11.0, 12.0]), np.array([121.0, 144.0]))
    assert len(series) == 12
    np.testing.assert_array_equal(series.x, np.arange(1, 13))
    np.testing.assert_array_equal(series.y, np.arange(1, 13) ** 2)
    assert [series.nearest(v) for v in (-5, 1.4, 1.6, 11.9, 99)] == [0, 0, 1, 11, 11]
    assert GrowingSeries().nearest(3) is None


def test_smoothed_series_is_a_bias_corrected_moving_average():
    smooth = SmoothedSeries(beta=0.5)
    for step, value in enumerate([4.0, 0.0, float("nan"), 2.0], start=1):
        smooth.add(step, value)
    # By hand: avg 2, 1, (NaN skipped) 1, 1.5; weights 0.5, 0.75, 0.75, 0.875.
    np.testing.assert_allclose(smooth.y, [4.0, 1 / 0.75, 1 / 0.75, 1.5 / 0.875])


def test_progress_text_counts_epochs_batches_speed_and_time(qtbot):
    assert [format_duration(s) for s in (0, 42.4, 725, 3723, float("nan"))] == ["0:00", "0:42", "12:05",
                                                                                 "1:02:03", "—"]
    event = BatchEnd(epoch=3, batch=40, batches=169, step=378, loss=0.5, accuracy=0.8, learning_rate=0.01,
                     images_per_second=1234.5, elapsed=42, eta=70)
    assert describe_batch(event, 5) == "Epoch 3/5 · batch 40/169 · 1,234 img/s · elapsed 0:42 · ETA 1:10"
    progress = TrainingProgress()
    qtbot.addWidget(progress)
    progress.begin(epochs_done_before=2, epochs=3, batches_per_epoch=169)
    progress.show_batch(event)
    assert progress.bar.maximum() == 3 * 169 and progress.bar.value() == 40
    progress.set_paused(True)
    assert progress.label.text().startswith("Paused · Epoch 3/5")


def test_run_records_are_labelled_with_their_key_settings(qapp):
    history = RunHistory()
    added = []
    history.run_added.connect(added.append)
    run = history.new_run(TrainConfig(optimizer="adam", learning_rate=0.001, batch_size=128), "fashion-mnist-mini")
    assert added == [run] and history.current is run
    assert run.label == "run 1: adam lr 0.001 bs 128"
    run.epochs.append(EpochEnd(1, 2, 0.9, 0.7, 0.8, 0.75, 0.001, 3.0))
    run.test_accuracy = 0.74
    run.outcome = "stopped"
    assert run.describe() == "run 1: adam lr 0.001 bs 128 · 1 epoch · val 75.0% · test 74.0% · stopped"
    run.set_smoothing(batches_per_epoch=1000)
    assert run.smoothed_loss.beta == pytest.approx(1 - 1 / 50)


class _StandInRunner(QObject):
    """Just the signals and state a RunRecorder follows, so pause and resume can be played without a thread."""

    began, started, batches, epoch_end = Signal(bool), Signal(object), Signal(object), Signal(object)
    finished, failed, rate_changed, state_changed = Signal(object), Signal(str), Signal(str, float, int), Signal()

    def __init__(self) -> None:
        super().__init__()
        self.paused, self.run_id, self.dataset, self.config = False, "", None, TrainConfig()

    def set_paused(self, paused: bool) -> None:
        self.paused = paused
        self.state_changed.emit()


class _StandInTrained(QObject):
    evaluation_changed, replaced = Signal(), Signal()

    def architecture(self) -> dict:
        return {}


def test_a_paused_run_is_listed_as_paused_until_it_resumes(qtbot):
    history, runner, trained = RunHistory(), _StandInRunner(), _StandInTrained()
    recorder = RunRecorder(history, runner, trained)  # noqa: F841 (kept alive: it does the recording)
    runs = RunHistoryList(history)
    qtbot.addWidget(runs)
    runner.began.emit(True)
    assert runs.item(0).text().endswith(" · running")
    runner.set_paused(True)
    assert history.current.outcome == "paused" and runs.item(0).text().endswith(" · paused")
    runner.set_paused(False)
    assert history.current.outcome == "running" and runs.item(0).text().endswith(" · running")
    # Stopping while paused: the run ends as stopped, and a later state change does not bring "running" back.
    runner.set_paused(True)
    runner.finished.emit(TrainingFinished("stopped", 0, ""))
    runner.set_paused(False)
    assert runs.item(0).text().endswith(" · stopped")


def test_settings_form_round_trips_a_config_and_reports_edits(qtbot):
    form = TrainingSettingsForm()
    qtbot.addWidget(form)
    config = TrainConfig(epochs=9, batch_size=17, optimizer="adamw", learning_rate=0.0025, momentum=0.8,
                         weight_decay=0.01, schedule="step", warmup_epochs=1.5, step_epochs=3, step_gamma=0.25,
                         validation_split=0.2, label_smoothing=0.1, seed=42, augment_shift=2, augment_hflip=True,
                         augment_rotation=10.0, standardize=True)
    edits = []
    form.config_changed.connect(edits.append)
    form.set_config(config)
    assert form.config() == config and edits == []  # showing a config is not an edit
    form.epochs.setValue(10)
    assert edits[-1].epochs == 10
    form.set_running(True)
    assert not form.epochs.isEnabled() and not form.dataset_combo.isEnabled()
    assert form.learning_rate.isEnabled() and form.momentum.isEnabled()
    live = []
    form.live_rate_changed.connect(lambda kind, value: live.append((kind, value)))
    form.learning_rate.setValue(0.004)
    assert live == [("lr", pytest.approx(0.004))]
    form.set_running(False)
    assert all(box.isEnabled() for box in form.findChildren(QCheckBox) if box is not form.nesterov)


def test_project_settings_with_bad_values_fall_back_to_defaults():
    stored = {"epochs": "many", "batch_size": 32, "learning_rate": 1, "optimizer": "adam", "seed": None,
              "augment_hflip": 1, "extra": True}
    config = TrainingSettingsForm.config_from_settings(stored)
    defaults = TrainConfig()
    assert config.epochs == defaults.epochs and config.seed == defaults.seed
    assert config.augment_hflip == defaults.augment_hflip
    assert (config.batch_size, config.learning_rate, config.optimizer) == (32, 1.0, "adam")


def test_dataset_chooser_lists_known_datasets_and_disables_missing_ones(qtbot):
    form = TrainingSettingsForm()
    qtbot.addWidget(form)
    form.set_datasets([DatasetInfo("fashion-mnist-mini", "bundled", True, "/a"),
                       DatasetInfo("fashion-mnist", "full", False, "/b")])
    combo = form.dataset_combo
    assert combo.itemText(0) == "Fashion-MNIST mini"
    assert combo.itemText(1) == "Fashion-MNIST (full) — not installed"
    assert not combo.model().item(1).isEnabled()
    form.set_dataset_ref("/data/my-images")
    assert combo.currentData() == "/data/my-images" and "my-images" in combo.currentText()


def test_confusion_view_checks_its_input_and_explains_cells(qtbot):
    view = ConfusionMatrixView()
    qtbot.addWidget(view)
    with pytest.raises(ValueError, match="does not match 3 class names"):
        view.set_confusion(np.zeros((2, 2)), ["a", "b", "c"])
    matrix = np.array([[8, 2, 0], [1, 9, 0], [0, 0, 0]])
    view.set_confusion(matrix, ["cat", "dog", "fox"])
    np.testing.assert_allclose(view.per_class_accuracy()[:2], [0.8, 0.9])
    assert np.isnan(view.per_class_accuracy()[2])
    assert view.describe_cell(0, 1) == "2 cat image(s) taken for dog (20.0% of cat); click to see them"
    view.resize(400, 380)
    grid_cell = view.cell_at(view.rect().center())
    assert grid_cell is not None and all(0 <= i < 3 for i in grid_cell)
    assert view.grab().width() == 400  # paints without error


def test_worker_thread_warnings_are_routed_to_their_sink():
    got, outside = [], []

    def work():
        with warnings_to(got.append):
            warnings.warn("inside the worker", RuntimeWarning, stacklevel=1)

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        thread = threading.Thread(target=work)
        thread.start()
        thread.join()
        warnings.warn("on the main thread", UserWarning, stacklevel=1)
        outside.extend(str(w.message) for w in caught)
    assert got == ["RuntimeWarning: inside the worker"]
    assert outside == ["on the main thread"]


def test_plots_label_their_axes_without_a_hidden_scale_factor(qtbot):
    from cnn_studio.inspect.layer_stats import LayerStatsView
    from cnn_studio.training.plots import TrainingPlots

    plots = TrainingPlots()
    stats = LayerStatsView()
    for widget in (plots, stats):
        qtbot.addWidget(widget)
        widget.resize(800, 600)
        widget.show()
    # An epoch loss of 0.52 must read 0.52, not 520 on an axis titled "loss (x0.001)".
    plots.loss_plot.getPlotItem().setYRange(0.45, 0.85, padding=0)
    stats.weights_plot.getPlotItem().setXRange(-0.05, 0.05, padding=0)
    qtbot.wait(20)
    for plot in (plots.batch_plot, plots.loss_plot, plots.accuracy_plot, stats.weights_plot, stats.outputs_plot):
        for name in ("left", "bottom"):
            axis = plot.getPlotItem().getAxis(name)
            assert axis.autoSIPrefixScale == 1.0, (plot, name)
            assert "(x" not in axis.labelString()


def test_confusion_counts_shrink_to_fit_instead_of_vanishing(qtbot):
    from PySide6.QtGui import QFontMetrics

    view = ConfusionMatrixView()
    qtbot.addWidget(view)
    matrix = np.full((10, 10), 3)
    np.fill_diagonal(matrix, 196)  # three-digit hits on the diagonal, as after one Fashion-MNIST epoch
    view.set_confusion(matrix, [f"class {i}" for i in range(10)])
    view.resize(300, 300)  # the results pane in a 1400 px window: cells of about 17 px
    _grid, cell, _acc = view._layout()
    assert QFontMetrics(view.count_font(cell)).horizontalAdvance("196") <= cell - 2
    assert view.grab().width() == 300


def test_a_typed_learning_rate_reaches_a_run_once_not_per_keystroke(qtbot):
    from PySide6.QtCore import Qt

    form = TrainingSettingsForm()
    qtbot.addWidget(form)
    form.set_running(True)
    live = []
    form.live_rate_changed.connect(lambda kind, value: live.append((kind, value)))
    form.learning_rate.lineEdit().selectAll()
    qtbot.keyClicks(form.learning_rate, "0.005")
    assert live == []  # 0, 0., 0.0, 0.00 ... never reach the optimizer
    qtbot.keyClick(form.learning_rate, Qt.Key.Key_Return)
    assert live == [("lr", pytest.approx(0.005))]
