"""The epoch plots' legends (Train and Diagnostics tabs) sit where they hide no data point.

The plots are sized as in a 1100x750 and a 1600x1000 window and fed curves that run through every
corner (an accuracy near 100%, a loss that climbs at the end); the legend's rectangle is compared with
the drawn points' bounding box in scene coordinates.
"""

from __future__ import annotations

import math

import numpy as np
import pyqtgraph as pg
import pytest
from PySide6.QtCore import QPointF, QRectF

from cnn_studio.diagnose.diagnostics_view import DiagnosticsView
from cnn_studio.plot_legend import LegendAbove
from cnn_studio.training.plots import TrainingPlots
from cnn_studio.training.run_history import RunRecord
from engine.doctor import DoctorReport
from engine.doctor.records import EpochRecord, LayerEpoch
from engine.training import EpochEnd, TrainConfig

NARROW, WIDE = (525, 440), (740, 600)  # the Train tab's plots in a 1100x750 and a 1600x1000 window


def data_rect(widget: pg.PlotWidget) -> QRectF:
    """Where the points of every curve of ``widget`` are drawn (scene coordinates, symbols included)."""
    plot = widget.getPlotItem()
    rect = QRectF()
    for item in plot.listDataItems():
        x, y = item.getData()
        if x is None:
            continue
        for px, py in zip(x, y):
            if math.isfinite(px) and math.isfinite(py):
                point = plot.vb.mapViewToScene(QPointF(float(px), float(py)))
                rect = rect.united(QRectF(point.x() - 4, point.y() - 4, 8, 8))
    return rect


def check_legend(widget: pg.PlotWidget, names: list[str]) -> None:
    plot = widget.getPlotItem()
    legend = plot.legend
    assert isinstance(legend, LegendAbove)
    assert [label.text for _sample, label in legend.items] == names
    points = data_rect(widget)
    assert not points.isEmpty()
    box = legend.sceneBoundingRect()
    assert not box.intersects(points), (box, points)
    assert plot.sceneBoundingRect().contains(box), (box, plot.sceneBoundingRect())  # not cut by the plot's edge
    assert box.bottom() <= plot.vb.sceneBoundingRect().top()  # above the data area, under the title
    assert box.top() >= plot.titleLabel.sceneBoundingRect().top()
    for _sample, label in legend.items:  # each name drawn whole, none on top of another
        assert label.item.boundingRect().width() <= label.width() + 1, label.text
    rects = [label.sceneBoundingRect() for _sample, label in legend.items]
    assert all(not a.intersected(b).height() or not a.intersected(b).width()
               for i, a in enumerate(rects) for b in rects[i + 1:])


def a_run(number: int = 1) -> RunRecord:
    run = RunRecord(number, TrainConfig(epochs=6), "stripes")
    # Accuracy up to the top right; the validation loss climbing into the top right (overfitting).
    for epoch, (loss, val_loss, acc, val_acc) in enumerate(
            [(2.3, 1.0, 0.2, 0.6), (1.2, 0.8, 0.7, 0.8), (0.6, 0.9, 0.9, 0.9), (0.3, 1.4, 0.97, 0.9),
             (0.1, 2.1, 0.99, 0.88), (0.05, 2.6, 1.0, 0.87)], start=1):
        run.epochs.append(EpochEnd(epoch, 6, loss, acc, val_loss, val_acc, 0.01, float(epoch)))
    return run


@pytest.mark.parametrize("size", [NARROW, WIDE])
def test_the_epoch_legends_sit_above_the_curves(qtbot, size):
    plots = TrainingPlots()
    qtbot.addWidget(plots)
    plots.resize(*size)
    plots.show()
    qtbot.waitExposed(plots)
    plots.expect(600, 6)
    current = a_run(number=2)
    plots.begin_run(current)
    qtbot.wait(20)
    for widget in (plots.loss_plot, plots.accuracy_plot):
        check_legend(widget, ["run 2", "train", "validation"])
    # An overlaid earlier run gets an entry of its own; the legend wraps into more rows, still above the data.
    plots.set_overlays([a_run()])
    qtbot.wait(20)
    for widget in (plots.loss_plot, plots.accuracy_plot):
        check_legend(widget, ["run 2", "run 1", "train", "validation"])


def layer_epochs(epoch: int, names: list[str]) -> tuple[LayerEpoch, ...]:
    rng = np.random.default_rng(epoch)
    return tuple(LayerEpoch(name, "Conv2D", gradient_rms=float(10 ** rng.uniform(-3.5, -1)),
                            update_ratio=float(10 ** rng.uniform(-4, -1.5)), dead_fraction=float(rng.uniform(0, 1)),
                            dead_units=3, units=8, activation="relu") for name in names)


@pytest.mark.parametrize(("size", "layers"), [((525, 900), 4), ((535, 760), 4), ((525, 900), 9)])
def test_the_diagnostics_legends_sit_above_the_curves(qtbot, size, layers):
    """Each layer has an entry: many layers wrap into more rows, still above the data."""
    names = [f"conv2d_{i}" for i in range(1, layers + 1)]
    view = DiagnosticsView()
    qtbot.addWidget(view)
    view.resize(*size)
    view.show()
    qtbot.waitExposed(view)
    records = tuple(EpochRecord(e, 1.0, 1.0, 0.5, 0.5, 0.01, layer_epochs(e, names), (), (), 64) for e in range(1, 6))
    view.set_report(DoctorReport(records, ()))
    qtbot.wait(20)
    check_legend(view.gradient_plot, names)
    check_legend(view.ratio_plot, names)
    check_legend(view.units_plot, [f"{name} dead" for name in names])
    if layers > 4:
        assert view.gradient_plot.getPlotItem().legend.columnCount < layers  # wrapped into rows
