"""The Layer profile: Profile times each layer in the background; the table's rows add up to the step and
the canvas colours its blocks by time."""

from __future__ import annotations

import pytest
from PySide6.QtCore import Qt

import cnn_studio.training.panel as panel_module
from cnn_studio.diagnose.profiling import block_heat
from engine.training import TrainConfig
from tests.helpers.engine_factories import stripes_dataset
from tests.studio.window_helpers import trainable_window


@pytest.fixture
def window(qtbot, tmp_path, monkeypatch):
    monkeypatch.setattr(panel_module, "show_message", lambda *args: None)
    with trainable_window(tmp_path, stripes_dataset(200, 20)) as w:
        w.document.set_training(TrainConfig(batch_size=32).to_dict())
        yield w


def test_profile_fills_the_table_and_colours_the_canvas(qtbot, window):
    workspace = window.profiler
    view = workspace.view
    assert workspace.action in window.menus["Train"].actions()
    view.steps.setValue(2)
    with qtbot.waitSignal(workspace.runner.finished, timeout=60_000):
        workspace.action.trigger()
    profile = view.profile
    assert profile.batch_size == 32 and profile.steps == 2
    names = [view.table.item(i, 0).text() for i in range(view.table.rowCount())]
    assert names == ["conv2d_1 + max_pool2d_1", "flatten_1", "dense_1", "loss (softmax cross-entropy)",
                     "update (sgd)", "(Python between the kernels)", "Whole step"]
    # The rows (and the time between the kernels) add up to the measured step.
    totals = [float(view.table.item(i, 3).text()) for i in range(view.table.rowCount())]
    assert sum(totals[:-1]) == pytest.approx(totals[-1], abs=0.02 * len(totals))
    shares = view.share_column()
    assert shares[-1] == 1.0 and sum(shares[:-1]) == pytest.approx(1.0, abs=0.002 * len(shares))
    # The canvas: every layer's block coloured, the fused pair sharing its kernel's time.
    layers = window.document.layers()
    heat = window.canvas.heat
    assert set(heat) == {spec["id"] for spec in layers}
    assert max(fraction for fraction, _ in heat.values()) == 1.0
    conv, pool = layers[0]["id"], layers[1]["id"]
    # The fused convolution and pooling split their kernel's time as measured one by one.
    assert "ms" in heat[conv][1] and "%" in heat[conv][1] and heat[pool][0] > 0
    assert window.canvas.block(conv).heat == heat[conv]
    assert heat == block_heat(profile, {"conv2d_1": conv, "max_pool2d_1": pool, "flatten_1": layers[2]["id"],
                                        "dense_1": layers[3]["id"]})
    # Unticked: no colours; an edit of the design makes the profile stale and removes them too.
    view.colour_box.setChecked(False)
    assert window.canvas.heat == {} and window.canvas.block(conv).heat is None
    view.colour_box.setChecked(True)
    assert window.canvas.heat
    window.editor.set_field(layers[0]["id"], "filters", 6)
    assert window.canvas.heat == {} and "(an earlier design)" in view.summary.text()


def test_profiling_can_be_cancelled(qtbot, window, monkeypatch):
    import threading

    import cnn_studio.diagnose.profile_view as profile_view

    # The profile waits after its first step until the test has pressed Cancel (a small network is quick).
    gate = threading.Event()
    real = profile_view.profile_training

    def held(*args, progress=None, **kwargs):
        def report(fraction):
            progress(fraction)
            gate.wait(30)

        return real(*args, progress=report, **kwargs)

    monkeypatch.setattr(profile_view, "profile_training", held)
    workspace = window.profiler
    with qtbot.waitSignal(workspace.runner.progressed, timeout=60_000):
        qtbot.mouseClick(workspace.view.profile_button, Qt.MouseButton.LeftButton)
    assert workspace.view.progress.isVisible() and not workspace.view.profile_button.isEnabled()
    with qtbot.waitSignal(workspace.runner.failed, timeout=60_000) as failed:
        qtbot.mouseClick(workspace.view.cancel_button, Qt.MouseButton.LeftButton)
        gate.set()
    assert failed.args == [""] and "cancelled" in workspace.view.summary.text()
    assert not workspace.runner.running and workspace.view.profile_button.isEnabled()


def test_a_new_project_drops_the_profile_of_the_last_one(qtbot, window):
    # File > New from template kept the previous project's table under "(an earlier design)", for a network that
    # is no longer open at all.
    workspace = window.profiler
    view = workspace.view
    view.steps.setValue(1)
    with qtbot.waitSignal(workspace.runner.finished, timeout=60_000):
        workspace.action.trigger()
    assert view.table.rowCount() > 0 and window.canvas.heat
    window.document.mark_saved()  # no "save changes?" question
    next(a for a in window.templates_menu.actions() if a.text() == "LeNet-5").trigger()
    assert len(window.document.layers()) != 4  # LeNet-5 is open now
    assert view.profile is None and view.table.rowCount() == 0
    assert "(an earlier design)" not in view.summary.text() and view.summary.text().startswith("Profile times")
    assert window.canvas.heat == {}

