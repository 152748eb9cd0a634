"""Log axes label a readable subset of their ticks: decades, or 1-2-5 when fewer than two decades show."""

from __future__ import annotations

import math

import pytest

from cnn_studio.plot_axes import DecadeAxis, fine_ticks, labelled_multiples
from cnn_studio.training.plots import make_plot


def tick_labels(qtbot, low: float, high: float) -> list[str]:
    """Every label the left axis of a log plot 400x300 px draws for values from ``low`` to ``high``."""
    widget = make_plot("gradient", "epoch", "RMS", log_y=True)
    qtbot.addWidget(widget)
    widget.resize(400, 300)
    widget.show()
    qtbot.waitExposed(widget)
    widget.getPlotItem().setYRange(math.log10(low), math.log10(high), padding=0)
    axis = widget.getPlotItem().getAxis("left")
    assert isinstance(axis, DecadeAxis) and axis.logMode
    labels = []
    for spacing, values in axis.tickValues(*axis.range, axis.height()):
        labels += axis.tickStrings(values, axis.scale, spacing)
    return labels


def test_a_range_over_several_decades_labels_only_the_decades(qtbot):
    labels = [t for t in tick_labels(qtbot, 2e-4, 0.3) if t]
    assert set(labels) == {"0.001", "0.01", "0.1"}, labels
    assert len(labels) == len(set(labels))  # no label drawn twice


def test_a_range_of_about_one_decade_labels_1_2_5(qtbot):
    # The gradient sizes of the seed network after a few epochs: pyqtgraph wrote "0.01 0.009 0.008 … 0.003".
    labels = [t for t in tick_labels(qtbot, 0.0025, 0.055) if t]
    assert labels == ["0.005", "0.01", "0.02", "0.05"]


def test_a_wide_range_labels_whole_decades_spaced_apart(qtbot):
    labels = [t for t in tick_labels(qtbot, 1e-6, 0.05) if t]
    assert set(labels) == {"10⁻⁶", "10⁻⁵", "0.0001", "0.001", "0.01"}
    assert len(labels) == len(set(labels))


@pytest.mark.parametrize(("low", "high", "expected"), [
    (-3.6, -0.5, (1,)), (-2.6, -1.26, (1, 2, 5)), (-2.4, -2.1, tuple(range(1, 10))),
])
def test_the_labelled_multiples_are_the_sparsest_that_label_two_ticks(low, high, expected):
    assert labelled_multiples(low, high) == expected


def test_a_range_between_two_multiples_gets_round_values(qtbot):
    # A loss settling between 0.31 and 0.38: no multiple of a power of ten lies inside, and pyqtgraph
    # drew no tick at all.
    labels = [t for t in tick_labels(qtbot, 0.31, 0.38) if t]
    assert len(labels) >= 2, labels
    assert all(0.31 <= float(t) <= 0.38 for t in labels), labels
    assert len(labels) == len(set(labels))
    # Where the only multiple besides 0.02 sits at the very top (its label would stick out and is left
    # out), round values in between are labelled too.
    near_edge = [t for t in tick_labels(qtbot, 0.0152, 0.0296) if t]
    assert len(near_edge) >= 2 and all(0.0152 <= float(t) <= 0.0296 for t in near_edge), near_edge
    # and the decades come back when the range widens again
    assert set(t for t in tick_labels(qtbot, 2e-4, 0.3) if t) == {"0.001", "0.01", "0.1"}


@pytest.mark.parametrize(("low", "high"), [(0.31, 0.38), (0.0412, 0.0419), (2.5, 2.9), (120.0, 180.0)])
def test_fine_ticks_are_round_and_inside(low, high):
    step, values = fine_ticks(low, high)
    assert len(values) >= 2
    assert all(low - 1e-12 <= v <= high + 1e-12 for v in values)
    assert all(abs(v / step - round(v / step)) < 1e-6 for v in values)
    assert len(values) <= 6
