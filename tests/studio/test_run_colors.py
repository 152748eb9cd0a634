"""A run keeps its colour from the moment it starts to when it is overlaid on a later run's curves, and every
Train-tab plot that draws overlays names them in its legend."""

from __future__ import annotations

import pyqtgraph as pg
import pytest
from PySide6.QtCore import Qt
from PySide6.QtGui import QColor

from cnn_studio.training.plots import TrainingPlots
from cnn_studio.training.run_colors import RUN_COLORS, run_color
from cnn_studio.training.run_history import RunHistory, RunRecord
from cnn_studio.training.run_list import RunHistoryList
from engine.training import EpochEnd, TrainConfig
from tests.helpers.engine_factories import stripes_dataset
from tests.studio.window_helpers import trainable_window

WAIT_MS = 30_000


def look(curve: pg.PlotDataItem) -> tuple[str, Qt.PenStyle, str | None, str | None]:
    """What tells a curve's run and kind apart: line colour and style, point shape and colour."""
    opts = curve.opts
    brush = opts["symbolBrush"]
    return (opts["pen"].color().name(), opts["pen"].style(), opts["symbol"],
            None if opts["symbol"] is None else pg.mkBrush(brush).color().name())


def width(curve: pg.PlotDataItem) -> float:
    return curve.opts["pen"].widthF()


def legend_names(widget: pg.PlotWidget) -> list[str]:
    return [label.text for _sample, label in widget.getPlotItem().legend.items]


def legend_colors(widget: pg.PlotWidget) -> dict[str, str]:
    return {label.text: sample.item.opts["pen"].color().name() for sample, label in widget.getPlotItem().legend.items}


def a_run(number: int, epochs: int = 3) -> RunRecord:
    run = RunRecord(number, TrainConfig(epochs=epochs, learning_rate=0.05), "stripes")
    for step in range(1, 31):
        run.batch_loss.append(step, 2.0 / step)
        run.smoothed_loss.add(step, 2.0 / step)
    for epoch in range(1, epochs + 1):
        run.epochs.append(EpochEnd(epoch, epochs, 1.0 / epoch, 0.5, 1.2 / epoch, 0.4, 0.05, float(epoch)))
    return run


class Click:
    """The little of a mouse click a legend sample reads."""

    def button(self) -> Qt.MouseButton:
        return Qt.MouseButton.LeftButton

    def accept(self) -> None:
        pass


# -- the rule ---------------------------------------------------------------------------------------------------
def test_each_run_number_has_one_readable_colour():
    assert run_color(1) == RUN_COLORS[0] and run_color(len(RUN_COLORS) + 2) == RUN_COLORS[1]
    assert len({c.lower() for c in RUN_COLORS}) == len(RUN_COLORS) >= 6
    assert RunRecord(3, TrainConfig(), "stripes").color == run_color(3)
    for color in RUN_COLORS:  # none so pale that it fades into the plots' white background (yellow would)
        assert contrast_on_white(color) >= 2.0, color
    assert contrast_on_white("#F0E442") < 2.0


def contrast_on_white(color: str) -> float:
    """The WCAG contrast ratio of ``color`` against white."""
    def linear(c: float) -> float:
        return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4

    q = QColor(color)
    luminance = 0.2126 * linear(q.redF()) + 0.7152 * linear(q.greenF()) + 0.0722 * linear(q.blueF())
    return 1.05 / (luminance + 0.05)


# -- the plots on their own -----------------------------------------------------------------------------------------
@pytest.fixture
def plots(qtbot):
    widget = TrainingPlots()
    qtbot.addWidget(widget)
    widget.resize(525, 440)  # as in a 1100x750 window
    widget.show()
    return widget


def test_a_run_looks_the_same_before_and_after_the_next_run_starts(plots):
    first, second = a_run(1), a_run(2)
    plots.begin_run(first)
    plots.redraw()
    before = [look(c) for c in plots.current_curves[1:]]  # smoothed loss, train/val loss, train/val accuracy
    assert before[0][0] == before[1][0] == before[2][0] == QColor(run_color(1)).name()
    assert before[1][1] == Qt.PenStyle.SolidLine and before[2][1] == Qt.PenStyle.DashLine  # validation dashed

    plots.begin_run(second)
    plots.set_overlays([first])
    after = [look(c) for c in plots.overlay_curves(1)]
    assert after == before
    # The current run is told apart by its weight, in a hue of its own.
    assert plots.current_curves[2].opts["pen"].color().name() == QColor(run_color(2)).name()
    assert all(width(c) > width(o) for c, o in zip(plots.current_curves[1:], plots.overlay_curves(1)))


def test_every_plot_names_the_current_run_and_the_overlays(plots):
    first, second = a_run(1), a_run(2)
    plots.begin_run(second)
    plots.set_overlays([first])
    for widget in (plots.loss_plot, plots.accuracy_plot):
        assert legend_names(widget) == ["run 2", "run 1", "train", "validation"]
        colors = legend_colors(widget)
        assert colors["run 1"] == QColor(run_color(1)).name() and colors["run 2"] == QColor(run_color(2)).name()
    assert legend_names(plots.batch_plot) == ["loss (raw)", second.label, first.label]
    assert legend_colors(plots.batch_plot)[first.label] == QColor(run_color(1)).name()
    plots.set_overlays([])
    for widget in (plots.loss_plot, plots.accuracy_plot):
        assert legend_names(widget) == ["run 2", "train", "validation"]
    plots.clear()
    assert legend_names(plots.batch_plot) == [] and not plots.batch_plot.getPlotItem().legend.isVisible()


def test_a_runs_legend_entry_hides_and_shows_all_its_curves(plots):
    first, second = a_run(1), a_run(2)
    plots.begin_run(second)
    plots.set_overlays([first])
    sample = next(s for s, label in plots.loss_plot.getPlotItem().legend.items if label.text == "run 1")
    sample.mouseClickEvent(Click())
    train, val = plots.overlay_curves(1)[1:3]
    assert not train.isVisible() and not val.isVisible()
    assert plots.train_loss_curve.isVisible()
    sample.mouseClickEvent(Click())
    assert train.isVisible() and val.isVisible()
    key = next(s for s, label in plots.loss_plot.getPlotItem().legend.items if label.text == "validation")
    key.mouseClickEvent(Click())  # a key to a line style hides nothing
    assert all(c.isVisible() for c in plots.current_curves + plots.overlay_curves(1))


def test_the_current_runs_entry_follows_a_learning_rate_change(plots):
    run = a_run(1)
    plots.begin_run(run)
    run.rate_changes.append((20, "lr", 0.01))
    plots.redraw()
    assert run.label in legend_names(plots.batch_plot) and "0.05→0.01" in run.label


def test_the_run_list_shows_each_run_in_its_colour_before_and_after_the_next(qtbot):
    history = RunHistory()
    runs = RunHistoryList(history)
    qtbot.addWidget(runs)

    def swatch(row: int) -> str:
        return runs.item(row).icon().pixmap(14, 14).toImage().pixelColor(7, 7).name()

    history.new_run(TrainConfig(), "stripes")
    assert swatch(0) == QColor(run_color(1)).name()
    history.new_run(TrainConfig(), "stripes")
    assert swatch(1) == QColor(run_color(1)).name() and swatch(0) == QColor(run_color(2)).name()


# -- in the real window, with real runs ---------------------------------------------------------------------------
def test_a_trained_run_keeps_its_colour_when_overlaid_on_the_next(qtbot, tmp_path):
    with trainable_window(tmp_path, stripes_dataset(128, 40), size=(1100, 750)) as window:
        panel = window.training_panel
        window.tabs.setCurrentWidget(panel.tab)
        for lr in (0.05, 0.02):
            panel.form.set_config(TrainConfig(epochs=1, batch_size=32, learning_rate=lr))
            with qtbot.waitSignal(panel.run_ended, timeout=WAIT_MS):
                panel.start()
            if lr == 0.05:
                first = panel.history.current
                before = [look(c) for c in panel.plots.current_curves[1:]]
        assert panel.history.current is not first
        panel.history_list.set_overlay(first, True)
        assert panel.plots.overlay_numbers == [1]
        assert [look(c) for c in panel.plots.overlay_curves(1)] == before
        for widget in (panel.plots.loss_plot, panel.plots.accuracy_plot):
            assert legend_names(widget) == ["run 2", "run 1", "train", "validation"]
        assert first.label in legend_names(panel.plots.batch_plot)
