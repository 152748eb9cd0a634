"""What was trained belongs to the project it was trained in, and the controls offer exactly what can work.

Driven as a user would: buttons and menu entries are found by their text and clicked.
"""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image
from PySide6.QtCore import QPoint, QPointF, QSettings, Qt
from PySide6.QtGui import QWheelEvent
from PySide6.QtWidgets import QApplication, QPushButton, QStyle, QStyleOptionViewItem

import cnn_studio.training.closing as closing_module
import cnn_studio.training.panel as panel_module
import cnn_studio.training.settings_form as form_module
from cnn_studio.main_window import MainWindow
from cnn_studio.project_file import ProjectData, write_project
from engine.model import Model
from engine.training import TrainConfig
from engine.weights import save_weights
from tests.helpers.engine_factories import SMALL_CNN, arch, stripes_dataset
from tests.studio.builder_helpers import ScriptedDialogs
from tests.studio.window_helpers import trainable_window

WAIT_MS = 30_000
WIDER_CNN = arch({"type": "Conv2D", "filters": 6, "kernel_size": 3, "activation": "relu"},
                 {"type": "MaxPool2D", "pool_size": 2}, {"type": "Flatten"},
                 {"type": "Dense", "units": 3, "activation": "softmax"})


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
    with trainable_window(tmp_path, data, dialogs=ScriptedDialogs()) as w:
        w.training_panel.form.set_config(form_module.studio_config(epochs=1, batch_size=32, learning_rate=0.05))
        w.tabs.setCurrentWidget(w.training_panel.tab)
        yield w


def button(window, text: str) -> QPushButton:
    """The Training dock's button showing ``text``."""
    found = [b for b in window.training_panel.dock_widget.findChildren(QPushButton) if b.text() == text]
    assert len(found) == 1, f"no single button {text!r}"
    return found[0]


def menu_action(menu, text: str):
    found = [a for a in menu.actions() if a.text().replace("&", "") == text]
    assert len(found) == 1, f"no single menu entry {text!r}"
    return found[0]


def click(qtbot, window, text: str) -> None:
    widget = button(window, text)
    assert widget.isEnabled(), f"{text!r} is disabled: {widget.toolTip()}"
    qtbot.mouseClick(widget, Qt.MouseButton.LeftButton)


def train(qtbot, window, text: str = "Start") -> str:
    with qtbot.waitSignal(window.training_panel.run_ended, timeout=WAIT_MS) as ended:
        click(qtbot, window, text)
    return ended.args[0]


def inside_layers(window) -> list[str]:
    layers = window.inside_panel.feature_maps.layer_list
    return [layers.item(i).text() for i in range(layers.count())]


def assert_nothing_trained_shows(window) -> None:
    panel = window.training_panel
    assert panel.results.evaluation is None and "Test accuracy" not in panel.results.headline.text()
    assert panel.results.confusion.matrix().size == 0
    assert panel.history_list.count() == 0 and panel.history.runs == []
    assert panel.plots.record is None and len(panel.plots.raw_curve.getData()[0] or []) == 0
    assert inside_layers(window) == [] and window.inside_panel.model is None
    assert "No trained network" in window.inside_panel.status.text()
    assert not button(window, "+1 epoch").isEnabled() and not panel.continue_action.isEnabled()
    assert window.training_session.trained.empty and not window.training_session.runner.can_continue


# -- everything trained belongs to its project --------------------------------------------------------------------
@pytest.mark.parametrize("how", ["New", "New from Template", "Open"])
def test_a_replaced_project_shows_and_continues_nothing_of_the_last_one(qtbot, window, tmp_path, how):
    assert train(qtbot, window) == "completed"
    window.tabs.setCurrentWidget(window.inside_panel)
    qtbot.waitUntil(lambda: len(inside_layers(window)) > 0, timeout=WAIT_MS)
    assert window.training_panel.results.evaluation is not None and button(window, "+1 epoch").isEnabled()
    window.document.mark_saved()
    if how == "New":
        menu_action(window.menus["File"], "New").trigger()
    elif how == "New from Template":
        menu_action(window.templates_menu, "Seed sample CNN").trigger()
    else:
        path = tmp_path / "other.cnnproj"
        write_project(path, ProjectData(WIDER_CNN, "stripes", {}))
        window.dialogs.open_path = str(path)
        menu_action(window.menus["File"], "Open…").trigger()
        assert window.document.file_path == path
    assert_nothing_trained_shows(window)
    window.training_panel.continue_action.trigger()  # F7 cannot sneak past a disabled button
    assert not window.training_session.runner.running


def test_start_in_another_project_begins_from_fresh_weights_not_imported_ones(qtbot, window, tmp_path):
    imported = Model(SMALL_CNN, seed=99)
    weights_file = save_weights(imported, tmp_path / "imported.npz")
    controller = window.export_controller
    with qtbot.waitSignal(controller.import_finished, timeout=WAIT_MS):
        controller.import_from(weights_file)
    assert window.training_session.trained.imported
    path = tmp_path / "same-design.cnnproj"
    write_project(path, ProjectData(SMALL_CNN, "stripes", TrainConfig(epochs=1, learning_rate=1e-6,
                                                                       momentum=0.0).to_dict()))
    window.dialogs.open_path = str(path)
    window.document.mark_saved()
    menu_action(window.menus["File"], "Open…").trigger()
    assert not window.training_session.trained.imported
    assert train(qtbot, window) == "completed"
    # The form's smallest learning rate: the weights barely move, so they show where training began.
    got = window.training_session.trained.weights()
    fresh = Model(window.document.architecture(), seed=0).get_weights()
    for name, value in imported.get_weights().items():
        np.testing.assert_allclose(got[name], fresh[name], atol=1e-4)
        assert not np.allclose(got[name], value, atol=1e-4) or not value.any()


# -- +1 epoch exactly when it can work -----------------------------------------------------------------------------
def test_plus_one_epoch_is_offered_only_for_the_trained_network_and_dataset(qtbot, window, tmp_path, monkeypatch):
    plus_one = button(window, "+1 epoch")
    assert not plus_one.isEnabled() and "press Start first" in plus_one.toolTip()
    assert train(qtbot, window) == "completed"
    assert plus_one.isEnabled()
    # An edit of the design: +1 epoch would train the old network; undone, it can go on again.
    window.editor.set_field(window.document.layers()[0]["id"], "filters", 5)
    assert not plus_one.isEnabled() and "architecture changed" in plus_one.toolTip()
    window.undo_action.trigger()
    assert plus_one.isEnabled()
    # A two-class dataset makes Start refuse this three-class network: +1 epoch must not train on.
    path = tmp_path / "two-classes.npz"
    rng = np.random.default_rng(4)
    np.savez(path, x=rng.integers(0, 255, (40, 12, 12, 1), dtype=np.uint8), y=np.arange(40) % 2)
    monkeypatch.setattr(form_module, "choose_dataset_file", lambda parent: str(path))
    combo = window.training_panel.form.dataset_combo
    with qtbot.waitSignal(window.training_session.datasets.loaded, timeout=WAIT_MS):
        combo.activated.emit(combo.findData(form_module.OPEN_FILE))
    assert not button(window, "Start").isEnabled()
    assert not plus_one.isEnabled() and "Another dataset" in plus_one.toolTip()
    assert not window.training_panel.continue_action.isEnabled()


def test_plus_one_epoch_is_not_offered_for_imported_weights(qtbot, window, tmp_path):
    assert train(qtbot, window) == "completed"
    controller = window.export_controller
    weights_file = save_weights(Model(SMALL_CNN, seed=5), tmp_path / "w.npz")
    with qtbot.waitSignal(controller.import_finished, timeout=WAIT_MS):
        controller.import_from(weights_file)
    plus_one = button(window, "+1 epoch")
    assert not plus_one.isEnabled() and "Imported weights" in plus_one.toolTip()


# -- runs can be ticked to overlay them ----------------------------------------------------------------------------
def check_box_centre(view, item) -> QPoint:
    option = QStyleOptionViewItem()
    view.initViewItemOption(option)
    option.rect = view.visualItemRect(item)
    option.features |= QStyleOptionViewItem.ViewItemFeature.HasCheckIndicator
    rect = view.style().subElementRect(QStyle.SubElement.SE_ItemViewItemCheckIndicator, option, view)
    return rect.center()


def test_an_earlier_run_is_ticked_to_overlay_its_curves(qtbot, window):
    panel = window.training_panel
    assert train(qtbot, window) == "completed"
    panel.form.learning_rate.setValue(0.02)
    assert train(qtbot, window) == "completed"
    runs = panel.history_list
    assert runs.count() == 2
    earlier = runs.item(1)
    assert earlier.text().startswith("run 1:")
    assert earlier.data(Qt.ItemDataRole.CheckStateRole) is not None, "the earlier run has no check box"
    assert panel.plots.overlay_numbers == []
    qtbot.mouseClick(runs.viewport(), Qt.MouseButton.LeftButton, pos=check_box_centre(runs, earlier))
    assert earlier.checkState() == Qt.CheckState.Checked
    assert panel.plots.overlay_numbers == [1]
    legend = [label.text for _sample, label in panel.plots.batch_plot.getPlotItem().legend.items]
    assert panel.history.runs[0].label in legend
    overlay = next(c for c in panel.plots.batch_plot.getPlotItem().listDataItems()
                   if c.name() == panel.history.runs[0].label)
    np.testing.assert_array_equal(overlay.getData()[1], panel.history.runs[0].smoothed_loss.y)
    assert runs.item(0).data(Qt.ItemDataRole.CheckStateRole) is None  # the current run is always drawn


# -- paused time ---------------------------------------------------------------------------------------------------
def test_paused_time_counts_in_no_speed_elapsed_or_eta(qtbot, window):
    panel = window.training_panel
    runner = window.training_session.runner
    panel.form.set_config(TrainConfig(epochs=1000, batch_size=8))
    with qtbot.waitSignal(runner.epoch_end, timeout=WAIT_MS):
        click(qtbot, window, "Start")
    click(qtbot, window, "Pause")
    qtbot.waitUntil(lambda: runner.last_batch is not None and not button(window, "Pause").isEnabled(),
                    timeout=WAIT_MS)
    before = runner.last_batch
    paused_at = before.elapsed
    qtbot.wait(1500)  # the pause itself
    click(qtbot, window, "Resume")
    qtbot.waitUntil(lambda: runner.last_batch.step > before.step + 2, timeout=WAIT_MS)
    after = runner.last_batch
    # At most a batch or two ran between `before` and the pause: the 1.5 s paused must not be counted.
    assert after.elapsed - paused_at < 1.0, (before, after)
    with qtbot.waitSignal(panel.run_ended, timeout=WAIT_MS):
        click(qtbot, window, "Stop")


# -- rough edges ---------------------------------------------------------------------------------------------------
def test_the_wheel_over_an_unfocused_spin_box_scrolls_instead_of_changing_it(qtbot, window):
    form = window.training_panel.form
    momentum = form.momentum
    assert not momentum.hasFocus()
    before = momentum.value()
    centre = QPointF(momentum.rect().center())
    event = QWheelEvent(centre, QPointF(momentum.mapToGlobal(centre.toPoint())), QPoint(0, 0), QPoint(0, 120),
                        Qt.MouseButton.NoButton, Qt.KeyboardModifier.NoModifier, Qt.ScrollPhase.NoScrollPhase, False)
    QApplication.sendEvent(momentum, event)
    assert momentum.value() == before and not event.isAccepted()
    for box in (form.optimizer, form.batch_size, form.learning_rate, form.dataset_combo, form.processes):
        assert box.focusPolicy() == Qt.FocusPolicy.StrongFocus  # a wheel turn does not focus it


def test_messages_about_a_stop_a_pause_or_an_input_change_do_not_outlive_them(qtbot, window, tmp_path):
    panel, document = window.training_panel, window.document
    panel.form.set_config(TrainConfig(epochs=1000, batch_size=8))
    with qtbot.waitSignal(window.training_session.runner.epoch_end, timeout=WAIT_MS):
        click(qtbot, window, "Start")
    click(qtbot, window, "Pause")
    assert document.lock_reason == "Training is paused" and "paused" in window.lock_banner.text()
    assert "Training is paused" in panel.lock_notice.text()
    banner = window.lock_banner.text()
    assert banner.count("top training") <= 1, banner  # the banner says it once
    click(qtbot, window, "Resume")
    assert document.lock_reason == "Training is running"
    with qtbot.waitSignal(panel.run_ended, timeout=WAIT_MS):
        click(qtbot, window, "Stop")
    assert "Press +1 epoch" in panel.message.text()
    assert train(qtbot, window, "+1 epoch") == "completed"
    assert not panel.message.isVisibleTo(panel.dock_widget) or "Press +1 epoch" not in panel.message.text()
    # An input change explained for this project is not explained in the next one.
    document.replace_architecture(arch(*SMALL_CNN["layers"], shape=(40, 30, 3)))
    panel.use_dataset(panel.dataset, "stripes")
    assert document.input_shape == (12, 12, 1) and "(it was 40×30×3)" in panel.message.text()
    document.mark_saved()
    menu_action(window.menus["File"], "New").trigger()
    assert "40×30×3" not in panel.message.text() and not panel.message.isVisibleTo(panel.dock_widget)


def test_the_hover_readout_says_nothing_where_nothing_is_drawn(qtbot, window):
    assert train(qtbot, window) == "completed"
    plots = window.training_panel.plots
    last = int(plots.record.batch_loss.x[-1])
    assert plots.batch_readout.show_at(last + 0.4) is not None
    assert plots.batch_readout.show_at(last + 50) is None and not plots.batch_readout.visible
    assert plots.loss_readout.show_at(1.2) is not None
    assert plots.loss_readout.show_at(3.0) is None


def test_run_labels_follow_learning_rate_changes_and_name_the_network(qtbot, window):
    panel = window.training_panel
    panel.form.set_config(TrainConfig(epochs=1000, batch_size=8, learning_rate=0.05))
    with qtbot.waitSignal(window.training_session.runner.batches, timeout=WAIT_MS):
        click(qtbot, window, "Start")
    with qtbot.waitSignal(window.training_session.runner.rate_changed, timeout=WAIT_MS):
        panel.form.learning_rate.setValue(0.005)
    with qtbot.waitSignal(panel.run_ended, timeout=WAIT_MS):
        click(qtbot, window, "Stop")
    text = panel.history_list.item(0).text()
    assert text.startswith("run 1: sgd lr 0.05→0.005 bs 8"), text
    assert "1 conv, 1 dense, 343 params" in text, text


def test_a_template_for_other_images_follows_the_projects_dataset_at_once_and_undoably(qtbot, window):
    document = window.document
    document.mark_saved()
    menu_action(window.templates_menu, "Small VGG (32x32x3)").trigger()  # a new project: the default dataset
    # Its 28x28 grey images are known as soon as they are loaded, not only once Start is pressed.
    qtbot.waitUntil(lambda: document.input_shape == (28, 28, 1), timeout=WAIT_MS)
    assert not window.training_session.runner.running
    said = window.statusBar().currentMessage()
    assert "28×28×1" in said and "32×32×3" in said and len(said) < 110  # fits the status bar at 1100 px
    explained = window.training_panel.message.text()  # the whole explanation, word-wrapped in the dock
    assert "now 28×28×1" in explained and "(it was 32×32×3)" in explained and "Undo" in explained
    assert window.undo_action.isEnabled() and "Match input" in document.undo_stack.undoText()
    window.undo_action.trigger()
    assert document.input_shape == (32, 32, 3)
    # With the dataset known, a template opens adapted straight away, saying so with its name.
    document.mark_saved()
    menu_action(window.templates_menu, "Small VGG (32x32x3)").trigger()
    assert document.input_shape == (28, 28, 1)
    said = window.statusBar().currentMessage()
    assert "Small VGG" in said and "28×28×1" in said


def test_files_a_dataset_folder_skips_are_shown_every_time_it_is_chosen(qtbot, window, tmp_path, monkeypatch):
    folder = tmp_path / "pets"
    for name in ("cats", "dogs", "owls"):
        (folder / name).mkdir(parents=True)
        for i in range(4):
            Image.new("L", (12, 12), color=30 * i).save(folder / name / f"{i}.png")
    (folder / "cats" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 20)
    (folder / "dogs" / "notes.txt").write_text("not a picture")
    monkeypatch.setattr(form_module, "choose_dataset_folder", lambda parent: str(folder))
    form = window.training_panel.form
    combo = form.dataset_combo
    datasets = window.training_session.datasets
    for _again in range(2):
        with qtbot.waitSignal(datasets.loaded, timeout=WAIT_MS):
            combo.activated.emit(combo.findData(form_module.OPEN_FOLDER))
        assert "2 file(s) skipped" in form.dataset_info.text()
        assert "broken.png" in form.dataset_info.toolTip() and "notes.txt" in form.dataset_info.toolTip()
        assert any("broken.png" in said for said in window.training_panel.notices)
        window.training_panel.use_dataset(stripes_dataset(16, 4), "stripes")  # then chosen again


def test_closing_during_training_asks_about_training_before_saving(qtbot, window, monkeypatch):
    asked: list[str] = []
    answers = {"training": [closing_module.DISCARD, closing_module.DISCARD], "save": ["cancel", "discard"]}

    def ask_training(parent):
        asked.append("training")
        return answers["training"].pop(0)

    def ask_save(name):
        asked.append("save")
        return answers["save"].pop(0)

    monkeypatch.setattr(closing_module, "ask_stop_training", ask_training)
    monkeypatch.setattr(window.dialogs, "ask_save_changes", ask_save)
    window.training_panel.form.set_config(TrainConfig(epochs=1000, batch_size=8))
    with qtbot.waitSignal(window.training_session.runner.batches, timeout=WAIT_MS):
        click(qtbot, window, "Start")
    assert window.document.is_modified()
    window.close()
    assert asked == ["training", "save"]
    assert window.isVisible() and window.training_session.runner.running  # cancelled: training goes on
    window.close()
    assert asked == ["training", "save", "training", "save"] and not window.isVisible()
    assert not window.training_session.runner.running


def test_processes_setting_defaults_to_automatic_and_reaches_the_run(qtbot, window, monkeypatch):
    import cnn_studio.training.training_worker as worker_module

    prepared = []
    real_prepare = worker_module.prepare

    def recording_prepare(architecture, dataset, config, **kwargs):
        prepared.append(config)
        return real_prepare(architecture, dataset, config, **kwargs)

    monkeypatch.setattr(worker_module, "prepare", recording_prepare)
    form = window.training_panel.form
    fresh = panel_module.TrainingSettingsForm()
    qtbot.addWidget(fresh)
    assert fresh.processes.currentData() == "auto" and fresh.config().processes == "auto"
    assert "helper process" in form.processes.toolTip()
    form.processes.setCurrentIndex(form.processes.findData(1))
    assert window.document.training["processes"] == 1
    assert train(qtbot, window) == "completed"
    assert [c.processes for c in prepared] == [1]  # the worker builds the run through engine.training.prepare


def test_an_undone_input_match_is_one_step_of_the_history(qtbot, window, data):
    document = window.document
    document.replace_architecture(arch(*SMALL_CNN["layers"], shape=(20, 20, 3)))
    document.mark_saved()
    window.training_panel.use_dataset(data, "stripes")
    assert document.input_shape == (12, 12, 1) and document.is_modified()
    assert document.undo_stack.count() == 1 and "Match input to" in document.undo_stack.text(0)
    document.undo_stack.undo()
    assert document.input_shape == (20, 20, 3)
    document.undo_stack.redo()
    assert document.input_shape == (12, 12, 1)


def test_every_panel_gets_the_windows_one_session(window):
    session = window.training_session
    assert window.training_panel.session is session and window.inside_panel.session is session
    assert window.export_controller.session is session
    assert session.trained is window.document.trained and session.runs is window.document.runs




def test_a_project_keeps_its_processes_setting_and_settings_the_form_does_not_show(tmp_path, qtbot):
    from cnn_studio.project_file import ProjectFileError, read_project

    path = tmp_path / "p.cnnproj"
    write_project(path, ProjectData(SMALL_CNN, "stripes", {**form_module.studio_config().to_dict(),
                                                           "early_stopping": 3}))
    stored = read_project(path).training
    assert stored["processes"] == "auto"
    form = form_module.TrainingSettingsForm()
    qtbot.addWidget(form)
    form.set_config(form_module.TrainingSettingsForm.config_from_settings(stored))
    form.epochs.setValue(9)  # an edit keeps what has no field in the form
    assert form.config().early_stopping == 3 and form.config().processes == "auto"
    path.write_text(path.read_text().replace('"auto"', "3"))
    with pytest.raises(ProjectFileError, match="processes"):
        read_project(path)


def test_the_app_loads_the_projects_dataset_as_it_opens(qapp, tmp_path, monkeypatch):
    import sys
    import time

    from PySide6.QtCore import QTimer

    from cnn_studio import app as studio_app

    QSettings.setPath(QSettings.Format.IniFormat, QSettings.Scope.UserScope, str(tmp_path))
    QSettings.setPath(QSettings.Format.NativeFormat, QSettings.Scope.UserScope, str(tmp_path))
    monkeypatch.setattr(sys, "excepthook", sys.excepthook)
    path = tmp_path / "grey.npz"
    rng = np.random.default_rng(6)
    np.savez(path, x=rng.integers(0, 255, (30, 12, 12, 1), dtype=np.uint8), y=np.arange(30) % 3)
    project = tmp_path / "p.cnnproj"
    write_project(project, ProjectData(arch(*SMALL_CNN["layers"], shape=(20, 20, 3)), str(path), {}))
    seen = {}
    deadline = time.monotonic() + WAIT_MS / 1000

    def when_loaded() -> None:
        window = next(w for w in QApplication.topLevelWidgets() if isinstance(w, MainWindow) and w.isVisible())
        datasets = window.training_session.datasets
        if datasets.loading_ref is not None:
            seen["asked"] = datasets.loading_ref
        if datasets.current is None and time.monotonic() < deadline:
            QTimer.singleShot(20, when_loaded)
            return
        seen["input"] = window.document.input_shape  # followed the project's images before any Start
        seen["classes"] = window.document.num_classes
        window.document.mark_saved()
        window.close()
        QApplication.quit()

    # Closing the last window would post a Quit event that outlives main() and ends the next test's wait.
    QApplication.setQuitOnLastWindowClosed(False)
    try:
        QTimer.singleShot(0, when_loaded)
        assert studio_app.main([str(project)]) == 0
    finally:
        QApplication.setQuitOnLastWindowClosed(True)
    assert seen == {"asked": str(path), "input": (12, 12, 1), "classes": 3}


def test_a_document_change_that_leaves_the_settings_alone_does_not_reset_the_form(qtbot, window):
    form = window.training_panel.form
    form.epochs.setValue(3)  # a user's edit: the project's settings are the form's
    form.learning_rate.lineEdit().selectAll()
    qtbot.keyClicks(form.learning_rate, "0.07")  # typed, not yet entered
    window.document.mark_modified()  # e.g. a run starting marks the project modified
    assert form.learning_rate.lineEdit().text() == "0.07"
    window.document.set_training({**window.document.training, "epochs": 7})  # settings from elsewhere: shown
    assert form.epochs.value() == 7
