"""The Train workspace inside the real main window: controls, lock, live plots, results, closing."""

from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtCore import Qt

import cnn_studio.training.closing as closing_module
import cnn_studio.training.panel as panel_module
import cnn_studio.training.settings_form as form_module
from cnn_studio.training.threads import live_threads
from engine.metrics import evaluate
from engine.model import Model
from engine.training import TrainConfig
from engine.weights import load_weights
from tests.helpers.engine_factories import SMALL_CNN, arch, stripes_dataset
from tests.studio.window_helpers import trainable_window

WAIT_MS = 30_000


@pytest.fixture(scope="module")
def data():
    return stripes_dataset(256, 60)


@pytest.fixture
def messages(monkeypatch):
    shown: list[tuple[str, str, str]] = []
    monkeypatch.setattr(panel_module, "show_message", lambda parent, kind, title, text: shown.append(
        (kind, title, text)))
    return shown


@pytest.fixture
def window(qtbot, tmp_path, messages, data):
    with trainable_window(tmp_path, data) as w:
        w.tabs.setCurrentWidget(w.training_panel.tab)
        yield w
    assert not w.isVisible()


def configure(panel, **settings) -> TrainConfig:
    config = TrainConfig(**{"epochs": 2, "batch_size": 32, "learning_rate": 0.05, **settings})
    panel.form.set_config(config)
    return config


def start_long_run(qtbot, panel) -> None:
    configure(panel, epochs=1000, batch_size=8)
    with qtbot.waitSignal(panel.session.runner.batches, timeout=WAIT_MS):
        panel.start_action.trigger()


def test_a_run_fills_the_plots_progress_and_results(qtbot, window, data):
    panel = window.training_panel
    configure(panel, epochs=2)
    with qtbot.waitSignal(panel.run_ended, timeout=WAIT_MS) as ended:
        panel.start_button.click()
    assert ended.args == ["completed"]
    record = panel.history.current
    assert record.outcome == "completed" and len(record.epochs) == 2
    x, y = panel.plots.raw_curve.getData()
    assert len(x) == len(record.batch_loss) == record.epochs[-1].epoch * panel.session.runner.last_batch.batches
    np.testing.assert_array_equal(y, record.batch_loss.y)
    assert len(panel.plots.smooth_curve.getData()[0]) == len(x)
    assert len(panel.plots.train_loss_curve.getData()[0]) == 2
    assert len(panel.plots.val_acc_curve.getData()[0]) == 2
    bar = panel.status_progress.bar
    assert bar.value() == bar.maximum() and "Finished after 2 epochs" in panel.status_progress.label.text()
    assert panel.history_list.count() == 1 and "run 1: sgd lr 0.05 bs 32" in panel.history_list.item(0).text()


def test_confusion_matrix_matches_the_engines_evaluate(qtbot, window, data):
    panel = window.training_panel
    configure(panel, epochs=3)
    with qtbot.waitSignal(panel.run_ended, timeout=WAIT_MS):
        panel.start_action.trigger()
    expected = evaluate(panel.session.trained.model(), data.normalized("test"), data.y_test)
    view = panel.results.confusion
    np.testing.assert_array_equal(view.matrix(), expected.confusion)
    assert view.class_names() == data.class_names
    np.testing.assert_allclose(view.per_class_accuracy(), expected.per_class_accuracy)
    assert f"Test accuracy {expected.accuracy:.2%} on {len(data.y_test)} images" in panel.results.headline.text()
    assert panel.history.current.test_accuracy == pytest.approx(expected.accuracy)
    i = int(np.argmax(expected.confusion.sum(axis=1)))
    assert view.describe_cell(i, i).startswith(f"{expected.confusion[i, i]} {data.class_names[i]} image(s)")


def test_the_architecture_is_locked_while_training(qtbot, window):
    panel, document = window.training_panel, window.document
    before = document.architecture()
    start_long_run(qtbot, panel)
    assert document.locked and "Training is running" in document.lock_reason
    assert panel.lock_notice.isVisible() and not panel.start_button.isEnabled()
    with qtbot.waitSignal(document.edit_refused, timeout=WAIT_MS):
        window.editor.append_layer("Dense")
    assert document.architecture() == before
    assert not panel.form.batch_size.isEnabled() and panel.form.learning_rate.isEnabled()
    with qtbot.waitSignal(panel.run_ended, timeout=WAIT_MS) as ended:
        panel.stop_action.trigger()
    assert ended.args == ["stopped"]
    assert not document.locked and not panel.lock_notice.isVisible()
    assert panel.form.batch_size.isEnabled() and panel.continue_button.isEnabled()


def test_start_is_disabled_while_the_architecture_has_problems(qtbot, window):
    panel = window.training_panel
    window.document.replace_architecture(arch({"type": "Conv2D", "filters": 2, "kernel_size": 30}))
    assert not panel.start_action.isEnabled() and not panel.start_button.isEnabled()
    assert "layer 1 (Conv2D)" in panel.problem_notice.text()
    panel.start()
    assert not panel.session.runner.running and live_threads() == []
    window.document.replace_architecture(SMALL_CNN)
    assert panel.start_action.isEnabled() and not panel.problem_notice.isVisible()


def test_a_network_with_the_wrong_number_of_outputs_is_explained(qtbot, window, messages):
    panel = window.training_panel
    window.document.replace_architecture(arch(*SMALL_CNN["layers"][:3], {"type": "Dense", "units": 10,
                                                                          "activation": "softmax"}))
    panel.start()
    assert not panel.session.runner.running
    kind, title, text = messages[-1]
    assert title == "The network does not fit the dataset"
    assert "10 outputs but the dataset has 3 classes" in text and "units to 3" in text


def test_settings_are_stored_in_the_document(qtbot, window):
    panel, document = window.training_panel, window.document
    document.mark_saved()
    panel.form.learning_rate.setValue(0.02)
    panel.form.optimizer.setCurrentIndex(panel.form.optimizer.findData("adam"))
    panel.form.augment_hflip.setChecked(True)
    assert document.training["learning_rate"] == pytest.approx(0.02)
    assert document.training["optimizer"] == "adam" and document.training["augment_hflip"] is True
    assert document.is_modified()
    assert panel.form.momentum_label.text().startswith("β1")
    # A project opened elsewhere brings its settings into the form.
    document.set_training({**TrainConfig(epochs=7, batch_size=16).to_dict(), "unknown": 1})
    assert panel.form.config().epochs == 7 and panel.form.config().batch_size == 16


def test_learning_rate_change_mid_run_is_applied_and_marked(qtbot, window):
    panel = window.training_panel
    start_long_run(qtbot, panel)
    with qtbot.waitSignal(panel.session.runner.rate_changed, timeout=WAIT_MS):
        panel.form.learning_rate.setValue(0.005)
    qtbot.waitUntil(lambda: panel.session.runner.last_batch.learning_rate == pytest.approx(0.005), timeout=WAIT_MS)
    assert [label for _step, label in panel.plots.markers] == ["lr 0.005"]
    step, kind, value = panel.history.current.rate_changes[0]
    assert kind == "lr" and value == pytest.approx(0.005) and panel.plots.markers[0][0] == step
    with qtbot.waitSignal(panel.run_ended, timeout=WAIT_MS):
        panel.stop()


def test_pause_resume_stop_and_one_more_epoch(qtbot, window):
    panel = window.training_panel
    configure(panel, epochs=1000, batch_size=8)
    # A whole epoch first, so "+1 epoch" below continues after at least one (a loaded machine may deliver
    # the first batches long before the first epoch ends).
    with qtbot.waitSignal(panel.session.runner.epoch_end, timeout=WAIT_MS):
        panel.start_action.trigger()
    panel.pause_button.click()
    assert panel.session.runner.paused and panel.resume_button.isEnabled() and not panel.pause_button.isEnabled()
    assert panel.pause_action.text() == "Resume"
    qtbot.waitUntil(lambda: panel.status_progress.label.text().startswith("Paused"), timeout=WAIT_MS)
    assert panel.history_list.item(0).text().endswith(" · paused")  # the run list says so too
    panel.pause_action.trigger()  # F6 toggles back
    assert not panel.session.runner.paused and panel.pause_action.text() == "Pause"
    assert panel.history_list.item(0).text().endswith(" · running")
    with qtbot.waitSignal(panel.run_ended, timeout=WAIT_MS):
        panel.stop_button.click()
    done = panel.session.trained.epochs_completed
    assert panel.continue_action.isEnabled()
    with qtbot.waitSignal(panel.run_ended, timeout=WAIT_MS) as ended:
        panel.continue_button.click()
    assert ended.args == ["completed"] and panel.session.trained.epochs_completed == done + 1
    assert panel.history.current.epochs[-1].epoch == done + 1 and len(panel.history.runs) == 1
    assert f"Finished at epoch {done + 1}" in panel.status_progress.label.text()
    assert "for the last 1 epoch" in panel.status_progress.label.text()


def test_divergence_stops_with_advice_and_keeps_good_weights(qtbot, window, messages):
    panel = window.training_panel
    configure(panel, epochs=1)
    with qtbot.waitSignal(panel.run_ended, timeout=WAIT_MS):
        panel.start()
    good = panel.session.trained.weights()
    panel.session.runner.set_learning_rate(1e20)
    with qtbot.waitSignal(panel.run_ended, timeout=WAIT_MS) as ended:
        panel.continue_action.trigger()
    assert ended.args == ["diverged"]
    kind, title, text = messages[-1]
    assert (kind, title) == ("warning", "Training diverged") and "lower learning rate" in text
    assert panel.message.isVisible() and "lower learning rate" in panel.message.text()
    assert panel.history.current.outcome == "diverged"
    kept = panel.session.trained.weights()
    assert all(np.array_equal(good[k], kept[k]) for k in good)


def test_earlier_runs_can_be_overlaid(qtbot, window):
    panel = window.training_panel
    for lr in (0.05, 0.02):
        configure(panel, epochs=1, learning_rate=lr)
        with qtbot.waitSignal(panel.run_ended, timeout=WAIT_MS):
            panel.start()
    assert panel.history_list.count() == 2
    earlier = panel.history_list.item(1)
    assert earlier.text().startswith("run 1: sgd lr 0.05 bs 32")
    assert panel.plots.overlay_numbers == []
    earlier.setCheckState(Qt.CheckState.Checked)
    assert panel.plots.overlay_numbers == [1]
    legend = [label.text for _sample, label in panel.plots.batch_plot.getPlotItem().legend.items]
    assert "run 1: sgd lr 0.05 bs 32" in legend
    earlier.setCheckState(Qt.CheckState.Unchecked)
    assert panel.plots.overlay_numbers == []


def test_hover_readouts_describe_the_nearest_point(qtbot, window):
    panel = window.training_panel
    configure(panel, epochs=2)
    with qtbot.waitSignal(panel.run_ended, timeout=WAIT_MS):
        panel.start()
    record = panel.history.current
    text = panel.plots.batch_readout.show_at(3.2)
    assert text.startswith("step 3\n") and f"loss {record.batch_loss.y[2]:.4f}" in text
    assert panel.plots.batch_readout.visible
    text = panel.plots.accuracy_readout.show_at(1.9)
    assert text.startswith("epoch 2") and f"{100 * record.epochs[1].val_accuracy:.2f}%" in text


def test_closing_mid_run_can_keep_the_weights(qtbot, window, tmp_path, monkeypatch):
    panel = window.training_panel
    target = tmp_path / "kept.npz"
    monkeypatch.setattr(closing_module, "ask_stop_training", lambda parent: closing_module.KEEP)
    monkeypatch.setattr(closing_module, "ask_weights_path", lambda parent, suggested: str(target))
    start_long_run(qtbot, panel)
    window.document.mark_saved()
    window.close()
    assert not window.isVisible() and not panel.session.runner.running and live_threads() == []
    model = load_weights(target)
    assert model.names == panel.session.trained.model().names
    saved, latest = model.get_weights(), panel.session.trained.model().get_weights()
    assert all(np.array_equal(saved[k], latest[k]) for k in latest)


def test_closing_mid_run_can_be_cancelled_or_discard(qtbot, window, monkeypatch):
    panel = window.training_panel
    answers = [closing_module.CANCEL, closing_module.DISCARD]
    monkeypatch.setattr(closing_module, "ask_stop_training", lambda parent: answers.pop(0))
    monkeypatch.setattr(closing_module, "ask_weights_path", lambda parent, suggested: pytest.fail("not asked"))
    start_long_run(qtbot, panel)
    window.document.mark_saved()
    window.close()
    assert window.isVisible() and panel.session.runner.running  # cancelled: training goes on
    window.close()
    assert not window.isVisible() and not panel.session.runner.running and live_threads() == []


def test_a_dataset_chosen_from_a_file_sets_the_input_shape(qtbot, window, tmp_path, monkeypatch):
    panel = window.training_panel
    path = tmp_path / "shapes.npz"
    rng = np.random.default_rng(1)
    np.savez(path, x=rng.integers(0, 255, (30, 9, 9, 3), dtype=np.uint8), y=np.arange(30) % 3)
    monkeypatch.setattr(form_module, "choose_dataset_file", lambda parent: str(path))
    combo = panel.form.dataset_combo
    with qtbot.waitSignal(panel.session.datasets.loaded, timeout=WAIT_MS):
        combo.activated.emit(combo.findData(form_module.OPEN_FILE))
    assert window.document.dataset_ref == str(path)
    assert window.document.input_shape == (9, 9, 3)
    assert "24 training and 6 test images" in panel.form.dataset_info.text()
    assert combo.currentData() == str(path)


def test_a_dataset_that_cannot_load_is_reported(qtbot, window, tmp_path, monkeypatch, messages):
    panel = window.training_panel
    empty = tmp_path / "empty"
    empty.mkdir()
    monkeypatch.setattr(form_module, "choose_dataset_folder", lambda parent: str(empty))
    combo = panel.form.dataset_combo
    with qtbot.waitSignal(panel.session.datasets.failed, timeout=WAIT_MS):
        combo.activated.emit(combo.findData(form_module.OPEN_FOLDER))
    kind, title, text = messages[-1]
    assert kind == "error" and str(empty) in text and "folder is empty" in text
    assert "folder is empty" in panel.form.dataset_info.text()
    assert panel.start_action.isEnabled()  # the app carries on


def test_train_menu_has_the_controls_with_shortcuts(window):
    menu = window.menus["Train"]
    shortcuts = {a.text(): a.shortcut().toString() for a in menu.actions() if not a.isSeparator()}
    assert shortcuts["Start training"] == "F5" and shortcuts["Pause"] == "F6"
    assert shortcuts["Stop"] == "Shift+F5" and shortcuts["+1 epoch"] == "F7"
    assert window.training_session is window.training_panel.session
    assert window.tabs.tabText(window.tabs.indexOf(window.training_panel.tab)) == "Train"


def test_start_loads_the_projects_dataset_in_the_background_first(qtbot, window, tmp_path):
    panel = window.training_panel
    path = tmp_path / "project-data.npz"
    rng = np.random.default_rng(2)
    np.savez(path, x=rng.integers(0, 255, (90, 12, 12, 1), dtype=np.uint8), y=np.arange(90) % 3)
    window.document.set_dataset_ref(str(path))  # as when a project is opened
    assert panel.form.dataset_ref == str(path)
    window.tabs.setCurrentWidget(window.design_tab)
    configure(panel, epochs=1)
    with qtbot.waitSignal(panel.run_ended, timeout=WAIT_MS) as ended:
        panel.start()
        assert panel.form.dataset_busy.isVisibleTo(panel.form) and not panel.start_action.isEnabled()
    assert ended.args == ["completed"]
    assert str(path) in panel.session.trained.dataset().source and len(panel.session.trained.dataset().y_train) == 72
    assert window.tabs.currentWidget() is panel.tab
    assert not panel.form.dataset_busy.isVisibleTo(panel.form)


def test_a_design_for_other_images_is_adapted_to_the_dataset_and_the_user_is_told(qtbot, window, messages):
    panel = window.training_panel
    # A design for 32x32 colour images (like the small VGG template) trained on 12x12 grey stripes.
    window.document.replace_architecture(arch(*SMALL_CNN["layers"], shape=(32, 32, 3)))
    configure(panel, epochs=1)
    with qtbot.waitSignal(panel.run_ended, timeout=WAIT_MS):
        panel.start()
    assert window.document.input_shape == (12, 12, 1)
    said = panel.message.text()
    assert panel.message.isVisibleTo(panel.dock_widget)
    assert "12×12×1" in said and "32×32×3" in said and "stripes" in said
    assert said in panel.notices
    assert not [m for m in messages if m[0] == "error"]


def test_a_design_that_breaks_on_the_datasets_images_says_why(qtbot, window, messages):
    panel = window.training_panel
    big_kernel = {"type": "Conv2D", "filters": 4, "kernel_size": 13, "activation": "relu"}
    window.document.replace_architecture(arch(big_kernel, *SMALL_CNN["layers"][1:], shape=(32, 32, 3)))
    panel.start()
    assert not panel.session.runner.running
    kind, title, text = messages[-1]
    assert title == "The network does not fit the dataset"
    assert text.startswith("The network's input is now 12×12×1") and "(it was 32×32×3)" in text
    assert "kernel" in text


def test_the_input_change_is_still_shown_when_start_had_to_load_the_dataset(qtbot, window, tmp_path):
    panel = window.training_panel
    path = tmp_path / "grey-8x8.npz"
    rng = np.random.default_rng(3)
    np.savez(path, x=rng.integers(0, 255, (60, 8, 8, 1), dtype=np.uint8), y=np.arange(60) % 3)
    window.document.replace_architecture(arch(*SMALL_CNN["layers"], shape=(32, 32, 3)))
    window.document.set_dataset_ref(str(path))
    configure(panel, epochs=1)
    with qtbot.waitSignal(panel.run_ended, timeout=WAIT_MS):
        panel.start()
    assert window.document.input_shape == (8, 8, 1)
    assert "now 8×8×1" in panel.message.text() and "(it was 32×32×3)" in panel.message.text()


def test_imported_weights_mark_the_last_results_stale_and_start_trains_on_from_them(qtbot, window, data):
    panel = window.training_panel
    configure(panel, epochs=1)
    with qtbot.waitSignal(panel.run_ended, timeout=WAIT_MS):
        panel.start_button.click()
    assert panel.results.evaluation is not None
    imported = Model(SMALL_CNN, seed=99)
    panel.session.trained.adopt(imported, data)
    assert "not to the imported weights" in panel.results.headline.text()
    configure(panel, epochs=1, learning_rate=1e-6, momentum=0.0)  # the form's smallest rate: weights barely move
    with qtbot.waitSignal(panel.run_ended, timeout=WAIT_MS):
        panel.start_button.click()
    trained = panel.session.trained.model().get_weights()
    fresh = Model(SMALL_CNN, seed=0).get_weights()
    for name, value in imported.get_weights().items():
        np.testing.assert_allclose(trained[name], value, atol=1e-4)
        assert not np.allclose(trained[name], fresh[name], atol=1e-4) or not value.any()


def test_training_from_imported_weights_normalises_the_data_as_they_were_trained(qtbot, window, data):
    """Weights trained on centred inputs (e.g. with Standardize inputs, or an import's mean and std)
    go on seeing such inputs: Start normalises the data with their mean and std."""
    panel = window.training_panel
    imported = Model(SMALL_CNN, seed=99)
    imported.preprocessing = {"scale": 1 / 255, "mean": [0.3], "std": [0.4]}
    panel.session.trained.adopt(imported, data)
    configure(panel, epochs=1)
    with qtbot.waitSignal(panel.run_ended, timeout=WAIT_MS):
        panel.start_button.click()
    preprocessing = panel.session.trained.model().preprocessing
    assert preprocessing["mean"] == [0.3] and preprocessing["std"] == [0.4]
