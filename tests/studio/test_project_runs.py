"""Runs kept with the project: train, save, close, reopen and find the trained network, its curves and
results; an untitled project's runs move beside it on first save; an interrupted run is offered for
resuming and ends as if it had never stopped."""

from __future__ import annotations

import json

import numpy as np
import pytest

import cnn_studio.training.panel as panel_module
from cnn_studio.main_window import MainWindow
from cnn_studio.runs.store import runs_folder_for
from engine.model import Model
from engine.runs import RunFolder, dataset_reference, new_run, train_in_folder
from engine.training import TrainConfig
from engine.weights import build_model
from tests.helpers.engine_factories import SMALL_CNN, stripes_dataset
from tests.studio.window_helpers import close_window, shown_window

WAIT_MS = 60_000


@pytest.fixture(scope="module")
def data():
    return stripes_dataset(192, 48)


@pytest.fixture
def npz(tmp_path, data):
    path = tmp_path / "stripes.npz"
    np.savez(path, x=data.x_train[..., 0], y=data.y_train, x_test=data.x_test[..., 0], y_test=data.y_test,
             class_names=np.array(data.class_names))
    return path


@pytest.fixture(autouse=True)
def quiet(monkeypatch):
    monkeypatch.setattr(panel_module, "show_message", lambda *args, **kwargs: None)


def make_window(tmp_path) -> MainWindow:
    return shown_window(tmp_path)


close = close_window


def train(qtbot, w: MainWindow, epochs: int = 2) -> None:
    panel = w.training_panel
    panel.form.set_config(TrainConfig(epochs=epochs, batch_size=32, learning_rate=0.05))
    with qtbot.waitSignal(panel.run_ended, timeout=WAIT_MS) as ended:
        panel.start()
    assert ended.args == ["completed"]


def test_train_save_close_reopen_brings_the_run_back(qtbot, tmp_path, data, npz):
    w = make_window(tmp_path)
    w.document.replace_architecture(SMALL_CNN)
    w.training_panel.use_dataset(data, str(npz))
    temporary = w.document.run_store.folder
    train(qtbot, w)
    assert w.document.is_modified()  # the run lives in a temporary folder until the project is saved
    trained_weights = w.document.trained.weights()
    record = w.document.runs.current
    evaluation = w.document.trained.evaluation()
    assert record.run_id and (temporary / record.run_id / "run.json").exists()
    # The panel's time is the run's recorded training time (both from the trainer's clock).
    said = w.training_panel.status_progress.label.text()
    assert said.startswith("Finished after 2 epochs · ")
    minutes, seconds = said.rsplit(" · ", 1)[1].split(":")
    recorded = RunFolder.open(temporary / record.run_id).record["timings"]["training_seconds"]
    assert abs(int(minutes) * 60 + int(seconds) - recorded) <= 0.5 + 1e-6

    project = tmp_path / "proj.cnnproj"
    assert w.project.save_as(project)
    runs = runs_folder_for(project)
    assert (runs / record.run_id / "weights.npz").exists() and not temporary.exists()
    assert w.document.run_store.folder == runs
    curves = (record.batch_loss.y.copy(), [e.val_loss for e in record.epochs])
    close(w)

    w = make_window(tmp_path)
    assert w.project.open_project(project)
    trained = w.document.trained
    assert not trained.empty and trained.epochs_completed == 2 and trained.run_id == record.run_id
    for name, value in trained_weights.items():
        np.testing.assert_array_equal(trained.weights()[name], value, err_msg=name)
    back = w.document.runs.current
    assert len(w.document.runs.runs) == 1 and back.outcome == "completed" and back.run_id == record.run_id
    np.testing.assert_array_equal(back.batch_loss.y, curves[0])
    assert [e.val_loss for e in back.epochs] == pytest.approx(curves[1], rel=1e-12)
    assert back.test_accuracy == pytest.approx(evaluation.accuracy)
    again = trained.evaluation()
    np.testing.assert_array_equal(again.confusion, evaluation.confusion)
    np.testing.assert_array_equal(again.predictions, evaluation.predictions)
    results = w.training_panel.results
    assert results.evaluation is again
    assert w.training_panel.history_list.count() == 1
    # The progress line says how the kept run ended (the dock's then tells of the dataset loading);
    # nothing pretends to be starting.
    status = w.training_panel.status_progress
    assert status.label.text() == "Run 1 finished after 2 epochs" and status.bar.value() == status.bar.maximum()
    qtbot.waitUntil(lambda: "Dataset ready" in w.training_panel.dock_progress.label.text(), timeout=WAIT_MS)
    assert results.headline.text().startswith("Test accuracy")  # not "Training…"
    x, y = w.training_panel.plots.raw_curve.getData()
    assert len(x) == len(curves[0])
    # The Inside tab works on the run's weights at once, without training.
    inside = w.inside_panel
    assert inside.model is not None
    for name, value in trained_weights.items():
        np.testing.assert_array_equal(inside.model.tensors()[name], value)
    # "+1 epoch" trains the kept run on from its last checkpoint.
    panel = w.training_panel
    assert panel.continue_action.isEnabled(), panel.continue_action.toolTip()
    with qtbot.waitSignal(panel.run_ended, timeout=WAIT_MS) as ended:
        panel.continue_action.trigger()
    assert ended.args == ["completed"] and trained.epochs_completed == 3
    assert len(w.document.runs.runs) == 1 and [e.epoch for e in w.document.runs.current.epochs] == [1, 2, 3]
    folder = RunFolder.open(runs / record.run_id)
    assert folder.epochs_completed == 3 and folder.status == "completed" and len(folder.record["history"]) == 3
    close(w)


def make_interrupted_run(runs_folder, data, npz, config):
    """A run of SMALL_CNN that stopped after its first epoch, as a killed process leaves it."""
    model = Model(SMALL_CNN, seed=config.seed)
    folder, trainer = new_run(runs_folder / "cut", model, data, config, dataset_reference(data, npz))
    with folder.training():
        folder.start_session(config.epochs, None, {})
        trainer.epoch_hooks.append(lambda event: folder.save_epoch(trainer.state_dict(), 0.1))
        trainer.fit(epochs=1)
        folder.record["status"] = "killed"  # (left without marking it interrupted)
    folder.record["status"] = "running"
    folder.write_record()
    return folder


def test_an_interrupted_run_is_offered_and_resumes_bit_identically(qtbot, tmp_path, data, npz):
    config = TrainConfig(epochs=3, batch_size=32, learning_rate=0.05)
    project = tmp_path / "p.cnnproj"
    project.write_text(json.dumps({"format": "cnn-studio.project/1", "architecture": SMALL_CNN,
                                   "dataset": str(npz), "training": config.to_dict()}))
    runs = runs_folder_for(project)
    make_interrupted_run(runs, data, npz, config)
    whole = train_in_folder(*new_run(tmp_path / "whole", Model(SMALL_CNN, seed=config.seed), data, config,
                                     dataset_reference(data, npz))).trainer.model

    w = make_window(tmp_path)
    workspace = w.runs_workspace
    with qtbot.waitSignal(workspace.resume_offered, timeout=WAIT_MS):
        assert w.project.open_project(project)
    assert workspace.offer == "cut" and workspace.resume_action.isEnabled()
    assert w.document.runs.current.outcome == "interrupted" and len(w.document.runs.current.epochs) == 1
    with qtbot.waitSignal(w.training_panel.run_ended, timeout=WAIT_MS) as ended:
        assert workspace.resume_offered_run()
    assert ended.args == ["completed"]
    folder = RunFolder.open(runs / "cut")
    assert folder.status == "completed" and folder.epochs_completed == 3
    assert [s["from_epoch"] for s in folder.record["sessions"]] == [0, 1]
    assert len(w.document.runs.runs) == 1 and len(w.document.runs.current.epochs) == 3
    for name, value in whole.tensors().items():
        np.testing.assert_array_equal(w.document.trained.weights()[name], value, err_msg=name)
    assert not workspace.resume_action.isEnabled()
    close(w)


def test_early_stopping_and_checkpoints_from_the_training_dock(qtbot, tmp_path, data, npz):
    w = make_window(tmp_path)
    w.document.replace_architecture(SMALL_CNN)
    w.training_panel.use_dataset(data, str(npz))
    form = w.training_panel.form
    form.set_config(TrainConfig(epochs=8, batch_size=32, learning_rate=0.05))
    assert not form.stopping_form.isRowVisible(form.patience)
    form.early_stopping.click()
    assert form.stopping_form.isRowVisible(form.patience) and form.stopping_form.isRowVisible(form.monitor)
    form.patience.setValue(1)
    form.min_delta.setValue(5.0)  # no epoch improves the validation loss by 5: stops after epoch 2
    form.keep_checkpoints.setCurrentIndex(form.keep_checkpoints.findData("best"))
    form.schedule.setCurrentIndex(form.schedule.findData("plateau"))
    assert form.schedule_form.isRowVisible(form.plateau_patience)
    form.plateau_patience.setValue(1)
    config = form.config()
    assert (config.early_stopping, config.min_delta, config.restore_best, config.schedule) == (1, 5.0, True, "plateau")
    assert w.document.training["keep_checkpoints"] == "best" and w.document.training["early_stopping"] == 1
    with qtbot.waitSignal(w.training_panel.run_ended, timeout=WAIT_MS) as ended:
        w.training_panel.start()
    assert ended.args == ["completed"]
    assert "Stopped early after epoch 2" in w.training_panel.message.text()
    assert "learning rate lowered" in " ".join(w.training_panel.notices)
    folder = RunFolder.open(w.document.run_store.folder / w.document.runs.current.run_id)
    assert folder.record["early_stopping"]["restored_epoch"] == 1 and folder.epochs_completed == 2
    assert [e for e, _ in folder.checkpoints()] == [1, 2]  # best and last
    _, _, best = folder.epoch_weights(1)
    for name, value in best.items():
        np.testing.assert_array_equal(w.document.trained.weights()[name], value, err_msg=name)
    close(w)


def test_the_time_machine_names_an_epochs_learning_rate_where_it_moved(qtbot, tmp_path, data, npz):
    """A schedule (or a change made while training) moves the learning rate: an epoch shown from the
    past says the rate it trained with when that is not the run's own."""
    w = make_window(tmp_path)
    w.document.replace_architecture(SMALL_CNN)
    w.training_panel.use_dataset(data, str(npz))
    panel = w.training_panel
    panel.form.set_config(TrainConfig(epochs=3, batch_size=32, learning_rate=0.05, schedule="step", step_epochs=1,
                                      step_gamma=0.5))
    with qtbot.waitSignal(panel.run_ended, timeout=WAIT_MS):
        panel.start()
    workspace, inside = w.runs_workspace, w.inside_panel
    machine = workspace.time_machine
    history = RunFolder.open(machine.run_id).record["history"]
    rates = {entry["epoch"]: entry["learning_rate"] for entry in history}
    w.tabs.setCurrentWidget(inside)
    for epoch in (1, 2):
        with qtbot.waitSignal(machine.shown, timeout=WAIT_MS):
            workspace.inside_scrubber.slider.setValue(epoch - 1)
        if rates[epoch] == pytest.approx(0.05):
            assert inside.pinned == f"Epoch {epoch} of run 1"
        else:
            assert inside.pinned == f"Epoch {epoch} of run 1 (lr {rates[epoch]:.3g})"
    assert any(rate != pytest.approx(0.05) for rate in rates.values())
    close(w)


def test_the_time_machine_shows_each_epochs_network(qtbot, tmp_path, data, npz):
    w = make_window(tmp_path)
    w.document.replace_architecture(SMALL_CNN)
    w.training_panel.use_dataset(data, str(npz))
    train(qtbot, w, epochs=3)
    workspace, inside = w.runs_workspace, w.inside_panel
    machine = workspace.time_machine
    run_path = w.document.run_store.folder / w.document.runs.current.run_id
    assert machine.run_id == str(run_path) and machine.epochs == [1, 2, 3] and not machine.active
    w.tabs.setCurrentWidget(inside)
    qtbot.waitUntil(lambda: inside.picker.current_input() is not None, timeout=WAIT_MS)
    sample = inside.picker.current_input()
    for epoch in (1, 2):
        with qtbot.waitSignal(machine.shown, timeout=WAIT_MS):
            workspace.inside_scrubber.slider.setValue(epoch - 1)
        assert inside.pinned == f"Epoch {epoch} of run 1"
        assert "Epoch 2" not in inside.status.text() or epoch == 2
        checkpoint = build_model(*RunFolder.open(run_path).epoch_weights(epoch))
        expected = dict(checkpoint.layer_outputs(sample))

        def maps_match(expected: dict = expected) -> bool:
            shown = dict(inside.feature_maps._outputs)
            return shown.keys() == expected.keys() and all(np.array_equal(shown[k], expected[k]) for k in expected)

        qtbot.waitUntil(maps_match, timeout=WAIT_MS)
        # The layer statistics are this epoch's, and their heading says so (not "the latest weights").
        qtbot.waitUntil(lambda epoch=epoch: f"with the weights of epoch {epoch} of run 1." in inside.stats.note.text(),
                        timeout=WAIT_MS)
        np.testing.assert_array_equal(inside.filters._kernels["conv2d_1"], checkpoint.layers[0].params["kernel"])
        results = w.training_panel.results
        assert results.headline.text().startswith(f"Epoch {epoch} of run") and results.evaluation is not None
        assert workspace.train_scrubber.slider.value() == epoch - 1  # both scrubbers show the same epoch
        assert w.training_panel.plots.marked_epoch == epoch  # and the curves mark it
    workspace.inside_scrubber.latest_button.click()
    assert not machine.active and inside.pinned == "" and w.training_panel.plots.marked_epoch is None
    for scrubber in (workspace.inside_scrubber, workspace.train_scrubber):  # both handles at the last position
        assert scrubber.slider.value() == scrubber.slider.maximum() == 2
        assert scrubber.position.text() == "latest: run 1 · 3 epochs"
    qtbot.waitUntil(lambda: "with the latest weights" in inside.stats.note.text(), timeout=WAIT_MS)
    for name, value in w.document.trained.weights().items():
        np.testing.assert_array_equal(inside.model.tensors()[name], value)
    close(w)


def test_the_runs_tab_sorts_filters_and_compares_two_runs(qtbot, tmp_path, data, npz):
    from PySide6.QtCore import Qt

    w = make_window(tmp_path)
    w.document.replace_architecture(SMALL_CNN)
    w.training_panel.use_dataset(data, str(npz))
    panel = w.training_panel
    for lr in (0.05, 0.005):
        panel.form.set_config(TrainConfig(epochs=2, batch_size=32, learning_rate=lr))
        with qtbot.waitSignal(panel.run_ended, timeout=WAIT_MS):
            panel.start()
    workspace = w.runs_workspace
    view = workspace.runs_view
    w.tabs.setCurrentWidget(workspace.runs_tab)
    assert view.proxy.rowCount() == 2 and view.count.text() == "2 runs"
    header = [view.model.headerData(i, Qt.Orientation.Horizontal) for i in range(view.model.columnCount())]
    assert header == ["Run", "Network", "Params", "Optimizer", "LR", "Batch", "Epochs", "Best val.", "Test", "Time",
                      "Status"]
    view.table.sortByColumn(4, Qt.SortOrder.AscendingOrder)  # learning rate
    assert view.proxy.index(0, 4).data() == "0.005" and view.proxy.index(1, 4).data() == "0.05"
    view.filter_box.setText("0.005")
    assert view.proxy.rowCount() == 1
    view.filter_box.setText("")
    view.status_box.setCurrentIndex(view.status_box.findData("interrupted"))
    assert view.proxy.rowCount() == 0
    view.status_box.setCurrentIndex(0)

    runs = view.runs()
    view.select_paths([str(r.path) for r in runs])
    comparison = view.comparison
    assert comparison.a is not None and comparison.b is not None
    settings = {comparison.settings.item(i, 0).text(): (comparison.settings.item(i, 1).text(),
                                                        comparison.settings.item(i, 2).text())
                for i in range(comparison.settings.rowCount())}
    assert settings == {"learning_rate": ("0.05", "0.005")}
    assert "the same in both runs" in comparison.architecture.text()
    ea, eb = comparison.a.load_evaluation(), comparison.b.load_evaluation()
    delta = eb.confusion - ea.confusion
    shown = [[comparison.confusion.item(i, j).text() for j in range(3)] for i in range(3)]
    assert shown == [[f"{v:+d}" if v else "" for v in row] for row in delta]
    right_a, right_b = ea.predictions == ea.labels, eb.predictions == eb.labels
    assert comparison.worse.count() == int((right_a & ~right_b).sum())
    assert comparison.better.count() == int((~right_a & right_b).sum())
    flipped = comparison.worse if comparison.worse.count() else comparison.better
    assert flipped.count(), "two so different learning rates flip some test images"
    item = flipped.item(0)
    assert not item.icon().isNull()  # the test image's picture
    comparison._on_flip_chosen(item)
    inside = w.inside_panel
    assert w.tabs.currentWidget() is inside and inside.pinned == "Run 2 after 2 epochs"
    assert inside.picker.current_index == int(item.data(Qt.ItemDataRole.UserRole))
    for name, value in inside.model.tensors().items():
        np.testing.assert_array_equal(value, w.document.trained.weights()[name])  # run 2 is the trained network

    view.select_paths([str(runs[0].path)])
    assert view.inspect_button.isEnabled() and not view.resume_button.isEnabled()
    view.inspect_button.click()
    assert inside.pinned == "Run 1 after 2 epochs"
    w.tabs.setCurrentWidget(workspace.runs_tab)
    view.select_paths([str(runs[0].path)])
    view.delete_button.click()  # (no question offscreen)
    assert view.proxy.rowCount() == 1 and not runs[0].path.exists()
    close(w)


def test_a_2x2_sweep_in_the_studio(qtbot, tmp_path, data, npz):
    w = make_window(tmp_path)
    w.document.replace_architecture(SMALL_CNN)
    w.training_panel.use_dataset(data, str(npz))
    w.training_panel.form.set_config(TrainConfig(epochs=5, batch_size=32, learning_rate=0.05))
    workspace = w.runs_workspace
    view = workspace.sweep_view
    w.tabs.setCurrentWidget(workspace.runs_tab)
    workspace.runs_tab.setCurrentWidget(view)
    assert view.axis_texts() == ["lr=0.1,0.03,0.01", "batch_size=32,64"]  # a ready-made example
    view.axes.cellWidget(0, 1).setText("0.05, 0.01")
    view.add_button.click()
    view.axes.cellWidget(2, 0).setCurrentText("dense_1.units")
    view.remove_button.click()  # (the last row)
    assert view.axis_texts() == ["lr=0.05,0.01", "batch_size=32,64"]
    view.epochs.setValue(1)
    with qtbot.waitSignal(workspace.sweeps.finished, timeout=4 * WAIT_MS) as done:
        view.start_button.click()
        assert not view.start_button.isEnabled() and view.stop_button.isEnabled()
    assert done.args == ["completed"]
    sweep = workspace.sweeps.sweep
    assert [r.summary.status for r in sweep.runs] == ["completed"] * 4
    assert [(r.point["learning_rate"], r.point["batch_size"]) for r in sweep.runs] == [
        (0.05, 32), (0.05, 64), (0.01, 32), (0.01, 64)]
    for run in sweep.runs:
        rec = RunFolder.open(run.path).record
        assert rec["config"]["learning_rate"] == run.point["learning_rate"] and rec["epochs_completed"] == 1
        assert rec["config"]["batch_size"] == run.point["batch_size"] and run.path.parent.parent == \
            w.document.run_store.folder
    assert view.table.rowCount() == 4
    best = sweep.ranked()[0]
    assert [view.table.horizontalHeaderItem(c).text() for c in range(6)] == ["#", "lr", "batch", "best val.",
                                                                             "test", "status"]
    marked = [r for r in range(4) if view.table.item(r, 3).text().endswith("★")]
    assert marked == [sweep.runs.index(best)]
    assert len(view.plot.lines) == 4
    assert "Best: learning_rate=" in view.message.text()
    assert len(w.document.runs.runs) == 4  # each run went through the Train tab like any other
    assert workspace.runs_view.proxy.rowCount() == 4  # and is listed with the project's runs
    close(w)


def test_saving_while_a_run_trains_moves_the_run_when_it_ends(qtbot, tmp_path, data, npz):
    w = make_window(tmp_path)
    w.document.replace_architecture(SMALL_CNN)
    w.training_panel.use_dataset(data, str(npz))
    panel = w.training_panel
    panel.form.set_config(TrainConfig(epochs=200, batch_size=8, learning_rate=0.01))
    with qtbot.waitSignal(panel.session.runner.epoch_end, timeout=WAIT_MS):
        panel.start()
    temporary = w.document.run_store.folder
    run_id = w.document.runs.current.run_id
    project = tmp_path / "saved.cnnproj"
    assert w.project.save_as(project)
    assert (temporary / run_id).exists()  # it still trains there
    with qtbot.waitSignal(panel.run_ended, timeout=WAIT_MS):
        panel.stop()
    runs = runs_folder_for(project)
    assert (runs / run_id / "run.json").exists() and not temporary.exists()
    with qtbot.waitSignal(panel.run_ended, timeout=WAIT_MS):
        panel.continue_one_epoch()
    folder = RunFolder.open(runs / run_id)
    assert folder.status == "completed" and folder.epochs_completed == w.document.trained.epochs_completed
    assert not (temporary / run_id).exists()
    close(w)


def test_the_time_machine_names_whose_weights_the_latest_are(qtbot, tmp_path, data, npz):
    """A run stopped before its first epoch keeps no checkpoint, but its weights are the trained network:
    the scrubbers must say so, not show the previous run's last epoch as the latest."""
    w = make_window(tmp_path)
    w.document.replace_architecture(SMALL_CNN)
    w.training_panel.use_dataset(data, str(npz))
    train(qtbot, w)
    workspace = w.runs_workspace
    assert workspace.inside_scrubber.position.text() == "latest: run 1 · 2 epochs"
    panel = w.training_panel
    # One image a batch: the stop lands inside the first epoch (on a slow machine perhaps after it: then
    # the run keeps that epoch, and the words must still name run 2).
    panel.form.set_config(TrainConfig(epochs=50, batch_size=1, learning_rate=0.05))
    with qtbot.waitSignal(panel.run_ended, timeout=WAIT_MS) as ended:
        panel.start()
        panel.stop()
    assert ended.args == ["stopped"]
    assert w.document.trained.run_id == w.document.runs.current.run_id  # Inside shows run 2's weights
    epochs = w.document.trained.epochs_completed
    expected = f"latest: run 2 · {epochs} epoch{'s' if epochs != 1 else ''} · stopped"
    for scrubber in (workspace.inside_scrubber, workspace.train_scrubber):
        qtbot.waitUntil(lambda s=scrubber: expected in s.position.text(), timeout=WAIT_MS)
    close(w)
