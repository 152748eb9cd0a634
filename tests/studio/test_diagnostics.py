"""The Diagnostics tab: a badly set-up run is diagnosed in the window, and each fix is one undoable edit."""

from __future__ import annotations

import pytest
from PySide6.QtCore import Qt

import cnn_studio.training.panel as panel_module
from engine.doctor import Diagnosis, DoctorReport, Fix
from engine.training import TrainConfig
from tests.helpers.engine_factories import stripes_dataset
from tests.studio.window_helpers import trainable_window

WAIT_MS = 60_000


@pytest.fixture(scope="module")
def data():
    return stripes_dataset(320, 40)


@pytest.fixture
def window(qtbot, tmp_path, monkeypatch, data):
    monkeypatch.setattr(panel_module, "show_message", lambda *args: None)
    with trainable_window(tmp_path, data) as w:
        qtbot.waitExposed(w)
        yield w


def press_undo(qtbot, window, redo: bool = False) -> None:
    """Ctrl+Z (Ctrl+Shift+Z) as the user presses it, on the focused window."""
    window.activateWindow()
    modifiers = Qt.KeyboardModifier.ControlModifier
    if redo:
        modifiers |= Qt.KeyboardModifier.ShiftModifier
    qtbot.keyClick(window, Qt.Key.Key_Z, modifiers)


def report(*diagnoses: Diagnosis) -> DoctorReport:
    return DoctorReport((), tuple(diagnoses), ("horizontal", "vertical", "blob"))


def test_a_run_with_a_tiny_learning_rate_is_diagnosed_and_its_fix_undone_with_ctrl_z(qtbot, window):
    workspace = window.diagnostics
    window.document.set_training(TrainConfig(epochs=2, batch_size=32, learning_rate=1e-6, momentum=0.0).to_dict())
    assert window.training_panel.form.config().learning_rate == 1e-6
    tabs = window.tabs
    assert tabs.tabText(tabs.indexOf(workspace.view)) == "Diagnostics"
    with qtbot.waitSignal(window.training_panel.run_ended, timeout=WAIT_MS):
        window.training_panel.start()
    qtbot.waitUntil(lambda: workspace.view.card("learning_rate_too_low") is not None, timeout=WAIT_MS)
    # The badge: the tab counts the problems, the Training dock says what it is with a link to the tab.
    assert tabs.tabText(tabs.indexOf(workspace.view)) == "Diagnostics (1)"
    assert not tabs.tabIcon(tabs.indexOf(workspace.view)).isNull()
    assert workspace.notice.isVisible() and "Learning rate too low" in workspace.notice.text()
    workspace.notice.linkActivated.emit("diagnostics")
    assert tabs.currentWidget() is workspace.view
    card = workspace.view.card("learning_rate_too_low")
    assert "1e-06" in card.evidence.text()
    button = card.button("set_learning_rate")
    suggested = card.fixes[next(k for k in card.fixes if k[0] == "set_learning_rate")].data["learning_rate"]
    assert button.isEnabled() and f"{suggested:g}" in button.text()
    qtbot.mouseClick(button, Qt.MouseButton.LeftButton)
    assert window.document.training["learning_rate"] == suggested
    assert window.training_panel.form.config().learning_rate == pytest.approx(suggested)
    assert not button.isEnabled() and button.text().startswith("✓")
    press_undo(qtbot, window)
    assert window.document.training["learning_rate"] == 1e-6
    assert window.training_panel.form.config().learning_rate == pytest.approx(1e-6)
    assert button.isEnabled()
    press_undo(qtbot, window, redo=True)
    assert window.document.training["learning_rate"] == suggested


def test_fixes_wait_until_training_stops(qtbot, window):
    window.document.set_training(TrainConfig(epochs=500, batch_size=8, learning_rate=0.05).to_dict())
    fix = Fix("set_learning_rate", "Set the learning rate to 0.01", {"learning_rate": 0.01})
    window.diagnostics.view.set_report(report(Diagnosis("learning_rate_too_high", "Learning rate too high", "e",
                                                        "a", 1, fixes=(fix,))))
    with qtbot.waitSignal(window.training_panel.session.runner.batches, timeout=WAIT_MS):
        window.training_panel.start()
    # A fresh run clears the previous findings; those of this run arrive after its first epoch.
    assert window.diagnostics.view.cards == []
    window.diagnostics.view.set_report(report(Diagnosis("learning_rate_too_high", "Learning rate too high", "e",
                                                        "a", 1, fixes=(fix,))))
    button = window.diagnostics.view.cards[0].button("set_learning_rate")
    assert not button.isEnabled() and "Stop training first" in button.toolTip()
    with qtbot.waitSignal(window.training_panel.run_ended, timeout=WAIT_MS):
        window.training_panel.stop()
    # (The run's own findings may have replaced the card meanwhile: show it again.)
    window.diagnostics.view.set_report(report(Diagnosis("learning_rate_too_high", "Learning rate too high", "e",
                                                        "a", 1, fixes=(fix,))))
    assert window.diagnostics.view.cards[0].button("set_learning_rate").isEnabled()


def click_fix(qtbot, window, diagnosis: Diagnosis) -> None:
    window.diagnostics.view.set_report(report(diagnosis))
    window.tabs.setCurrentWidget(window.diagnostics.view)
    card = window.diagnostics.view.cards[0]
    qtbot.mouseClick(card.button(diagnosis.fixes[0].kind), Qt.MouseButton.LeftButton)


def types(window) -> list[str]:
    return [spec["type"] for spec in window.document.layers()]


def test_insert_batch_norm_splits_the_activation_off_and_undoes(qtbot, window):
    before = window.document.layers()
    fix = Fix("insert_batch_norm", "Insert BatchNorm after conv2d_1", {"layer": "conv2d_1"})
    click_fix(qtbot, window, Diagnosis("saturated_activations", "t", "e", "a", 2, "conv2d_1", (fix,)))
    assert types(window) == ["Conv2D", "BatchNorm", "ReLU", "MaxPool2D", "Flatten", "Dense"]
    layers = window.document.layers()
    assert layers[0]["activation"] is None and layers[1]["inputs"] == [layers[0]["id"]]
    assert layers[3]["inputs"] == [layers[2]["id"]]
    names = [info.name for info in window.document.analysis().layers]
    assert names[0] == "conv2d_1" and names[3:] == ["max_pool2d_1", "flatten_1", "dense_1"]  # weights keep names
    assert window.document.analysis().ok
    press_undo(qtbot, window)
    assert window.document.layers() == before


def test_switching_activations_and_adding_dropout(qtbot, window):
    before = window.document.layers()
    leaky = Fix("set_activation", "Use LeakyReLU in conv2d_1", {"layers": ["conv2d_1"], "activation": "leaky_relu"})
    click_fix(qtbot, window, Diagnosis("dead_relu", "t", "e", "a", 2, "conv2d_1", (leaky,)))
    assert window.document.layers()[0]["activation"] == "leaky_relu"
    dropout = Fix("add_dropout", "Add Dropout (0.5) before dense_1", {"before": "dense_1", "rate": 0.5})
    click_fix(qtbot, window, Diagnosis("overfitting", "t", "e", "a", 5, "", (dropout,)))
    assert types(window) == ["Conv2D", "MaxPool2D", "Flatten", "Dropout", "Dense"]
    assert window.document.layers()[3]["rate"] == 0.5
    press_undo(qtbot, window)
    press_undo(qtbot, window)
    assert window.document.layers() == before


def test_settings_fixes_and_a_layer_gone_since_the_run(qtbot, window, monkeypatch):
    stop = Fix("set_early_stopping", "Turn on early stopping (patience 3)", {"early_stopping": 3})
    click_fix(qtbot, window, Diagnosis("overfitting", "t", "e", "a", 5, "", (stop,)))
    assert window.document.training["early_stopping"] == 3
    assert window.training_panel.form.config().early_stopping == 3
    shown = []
    monkeypatch.setattr("cnn_studio.diagnose.workspace.show_message", lambda *args: shown.append(args))
    gone = Fix("insert_batch_norm", "Insert BatchNorm after conv2d_9", {"layer": "conv2d_9"})
    click_fix(qtbot, window, Diagnosis("saturated_activations", "t", "e", "a", 2, "conv2d_9", (gone,)))
    assert shown and "no layer 'conv2d_9' any more" in shown[0][3]


def test_show_layer_selects_the_block_in_the_design(qtbot, window):
    window.diagnostics.view.set_report(report(Diagnosis("dead_relu", "Dead ReLU units", "e", "a", 1, "conv2d_1")))
    card = window.diagnostics.view.cards[0]
    qtbot.mouseClick(card.show_button, Qt.MouseButton.LeftButton)
    assert window.tabs.currentWidget() is window.design_tab
    assert window.selection.layer_id == window.document.layers()[0]["id"]


@pytest.mark.parametrize("size", [(525, 560), (900, 1300)])
def test_each_plots_axis_title_fits_its_axis_whole(qtbot, size):
    # With the Layer profile dock open below a 1100x750 window, each plot has well under 100 px of axis, and the
    # gradient plot's title was cut to "MS of d(loss)/d(weights)"; now a shorter one is shown, the whole in the tip.
    import numpy as np
    from PySide6.QtGui import QFontMetricsF

    from cnn_studio.diagnose.diagnostics_view import GRADIENT_TITLES, RATIO_TITLES, UNITS_TITLES, DiagnosticsView
    from engine.doctor.records import EpochRecord, LayerEpoch

    names = [f"{kind}_{i}" for i in range(1, 10) for kind in ("conv2d", "batch_norm")] + ["dense_1"]  # ResNet-8
    rng = np.random.default_rng(0)
    layers = tuple(LayerEpoch(n, "Conv2D", gradient_rms=float(10 ** rng.uniform(-3, -1)), update_ratio=1e-3,
                              dead_fraction=0.1, dead_units=1, units=8, activation="relu") for n in names)
    view = DiagnosticsView()
    qtbot.addWidget(view)
    view.resize(*size)
    view.show()
    qtbot.waitExposed(view)
    view.set_report(DoctorReport(tuple(EpochRecord(e, 1.0, 1.0, 0.5, 0.5, 0.01, layers, (), (), 64)
                                       for e in range(1, 4)), ()))
    qtbot.wait(20)
    for plot, titles in ((view.gradient_plot, GRADIENT_TITLES), (view.ratio_plot, RATIO_TITLES),
                         (view.units_plot, UNITS_TITLES)):
        item = plot.getPlotItem()
        axis = item.getAxis("left")
        shown = axis.labelText
        assert shown in titles
        room = item.getViewBox().height()
        assert QFontMetricsF(axis.label.font()).horizontalAdvance(shown) <= room or shown == titles[-1], (shown, room)
        assert plot.toolTip().startswith(titles[0])  # the whole title, whatever the axis shows
    if size == (900, 1300):  # room enough: the whole title
        assert view.gradient_plot.getPlotItem().getAxis("left").labelText == GRADIENT_TITLES[0]
    else:
        assert view.gradient_plot.getPlotItem().getAxis("left").labelText != GRADIENT_TITLES[0]


def test_a_short_clean_run_says_what_is_still_to_watch_instead_of_all_healthy(qtbot):
    from cnn_studio.diagnose.diagnostics_view import DiagnosticsView
    from engine.doctor.records import EpochRecord

    view = DiagnosticsView()
    qtbot.addWidget(view)
    records = tuple(EpochRecord(e, 0.5, v, 0.5, 0.5, 0.01, (), (), (), 64) for e, v in ((1, 0.40), (2, 0.45)))
    note = ("The validation loss rose in the last epoch (0.400 → 0.450) while the training loss fell: worth "
            "watching, as the doctor names it overfitting after 3 rising epochs in a row.")
    view.set_report(DoctorReport(records, (), (), (note, "Some checks need more epochs: overfitting from epoch 4.")))
    text = view.summary.text()
    assert "No problems found" in text and "after epoch 2" in text
    assert "worth watching" in text and "overfitting from epoch 4" in text
    assert "look healthy" not in text
    view.set_report(DoctorReport(records, ()))
    assert "look healthy" in view.summary.text()


def dead_relu_report(layers: tuple[str, ...]) -> DoctorReport:
    """What a run with a learning rate of 0.3 gets: a dead-ReLU card per layer, each with two fixes."""
    def diagnosis(layer: str) -> Diagnosis:
        fixes = (Fix("set_activation", f"Use LeakyReLU in {layer}", {"layers": [layer], "activation": "leaky_relu"}),
                 Fix("set_learning_rate", "Set the learning rate to 0.1", {"learning_rate": 0.1}))
        evidence = (f"28 of 32 channels of {layer} (88%) output zero for every one of the 256 probe images after "
                    "epoch 3: they no longer learn.")
        advice = ("A ReLU whose input is always negative gets no gradient. LeakyReLU keeps a small slope there; a "
                  "lower learning rate avoids pushing units into that state.")
        return Diagnosis("dead_relu", "Dead ReLU units", evidence, advice, 3, layer, fixes)

    return report(*(diagnosis(layer) for layer in layers))


def shown_diagnostics(qtbot, size: tuple[int, int], layers: tuple[str, ...]):
    from cnn_studio.diagnose.diagnostics_view import DiagnosticsView

    view = DiagnosticsView()
    qtbot.addWidget(view)
    view.resize(*size)
    view.show()
    qtbot.waitExposed(view)
    view.set_report(dead_relu_report(layers))
    qtbot.wait(50)
    return view


def check_cards_whole(view) -> None:
    """Every card's text and buttons lie inside the cards' viewport, none cut at the side or at the bottom."""
    viewport = view.cards_scroll.viewport()
    for card in view.cards:
        assert card.width() <= viewport.width()
        for widget in (*card.buttons.values(), card.show_button, card.evidence, card.advice):
            corner = widget.mapTo(card, widget.rect().bottomRight())
            assert widget.isVisible() and corner.x() < card.width() and corner.y() < card.height(), widget
            assert widget.mapTo(viewport, widget.rect().topRight()).x() < viewport.width()
        for label in (card.evidence, card.advice):
            assert label.height() >= label.heightForWidth(label.width())  # every wrapped line shown
        assert card.evidence.text().endswith("they no longer learn.")


@pytest.mark.parametrize("width", [900, 1100])
def test_a_cards_text_and_buttons_are_whole_in_the_advice_pane(qtbot, width):
    # The advice pane of a 1600 px window is about 400 px wide; a dead-ReLU card's three buttons side by side
    # are wider, and the card was cut off on the right: its text in mid-word, the Show button half gone.
    view = shown_diagnostics(qtbot, (width, 800), ("conv2d_1", "conv2d_2"))
    assert view.splitter.orientation() == Qt.Orientation.Horizontal  # the advice beside the plots
    check_cards_whole(view)


def test_stacked_above_the_plots_the_advice_is_as_tall_as_its_cards(qtbot):
    # The Diagnostics tab of a 1100x750 window: the advice pane above the plots had 120 px, one card's first two
    # lines in a scroll area of its own, its fix buttons out of sight.
    view = shown_diagnostics(qtbot, (540, 560), ("conv2d_1", "conv2d_2", "dense_1"))
    assert view.splitter.orientation() == Qt.Orientation.Vertical
    qtbot.waitUntil(lambda: view.splitter.sizes()[0] >= view.advice_height(), timeout=5_000)
    assert view.splitter.sizes()[0] > 120 and view.splitter.sizes()[1] >= 3 * 240  # the plots keep their height
    assert view.cards_scroll.verticalScrollBar().maximum() == 0  # nothing to scroll inside the pane
    check_cards_whole(view)
    # Fewer problems after the next epoch: the pane shrinks with them.
    tall = view.splitter.sizes()[0]
    view.set_report(dead_relu_report(("conv2d_1",)))
    qtbot.waitUntil(lambda: view.splitter.sizes()[0] < tall, timeout=5_000)
    assert view.splitter.sizes()[0] >= view.advice_height()


def test_layer_curves_take_colour_blind_safe_hues_and_patterns_beyond_them(qtbot):
    from cnn_studio.diagnose.diagnostics_view import DiagnosticsView
    from cnn_studio.training.run_colors import RUN_COLORS
    from engine.doctor.records import EpochRecord, LayerEpoch

    layers = tuple(LayerEpoch(f"conv2d_{i}", "Conv2D", 0.1, 0.01, 1e-3, dead_fraction=0.1, saturated_fraction=0.05)
                   for i in range(1, 10))
    records = tuple(EpochRecord(e, 0.5, 0.5, 0.5, 0.5, 0.01, layers, (), (), 64) for e in (1, 2))
    view = DiagnosticsView()
    qtbot.addWidget(view)
    view.set_report(DoctorReport(records, ()))
    curves = view.curves["gradient"]
    pens = [curves[f"conv2d_{i}"].opts["pen"] for i in range(1, 10)]
    assert [pen.color().name().upper() for pen in pens[:7]] == [c.upper() for c in RUN_COLORS]
    assert all(pen.style() == Qt.PenStyle.SolidLine for pen in pens[:7])
    # The eighth layer takes the first hue again, dashed.
    assert pens[7].color() == pens[0].color() and pens[7].style() == Qt.PenStyle.DashLine
    units = view.curves["units"]
    assert units["conv2d_1 dead"].opts["symbol"] == "o" and units["conv2d_1 saturated"].opts["symbol"] == "t"
