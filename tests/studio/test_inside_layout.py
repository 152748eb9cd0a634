"""The Inside views fit the space they get: nothing cut off in a narrow pane, wide panes used.

The panes are sized as at 1100x750 (a narrow one) and 1600x1000 (a wide one), the seed network's
real layer names and shapes shown, and what is drawn checked against the room it has.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from PySide6.QtCore import QPoint, Qt
from PySide6.QtGui import QFontMetrics

from cnn_studio.inspect.feature_maps import FeatureMapsView, input_lines, shorten_name
from cnn_studio.inspect.layer_stats import LayerStatsView
from cnn_studio.inspect.mistakes_gallery import CELL, THUMBNAIL, MistakesGallery
from cnn_studio.inspect.panel import layer_inputs
from engine.inspection import layer_statistics
from engine.metrics import evaluate
from engine.model import Model
from engine.resources import asset_path

NARROW = (294, 432)  # the Inside views' pane in a 1100x750 window (as measured in the main window)
WIDE = (900, 560)


@pytest.fixture(scope="module")
def seed():
    model = Model.from_architecture(asset_path("architectures", "seed_sample.json"), seed=0)
    rng = np.random.default_rng(0)
    return model, rng.random((64, 28, 28, 1), dtype=np.float32)


def shown(qtbot, widget, size):
    qtbot.addWidget(widget)
    widget.resize(*size)
    widget.show()
    qtbot.waitExposed(widget)
    return widget


def test_the_layer_list_shows_every_name_and_shape_whole(qtbot, seed):
    model, x = seed
    view = shown(qtbot, FeatureMapsView(), NARROW)
    view.set_outputs(model.layer_outputs(x[0]))
    qtbot.wait(10)
    listing = view.layer_list
    metrics = QFontMetrics(listing.font())
    room = listing.viewport().width()
    for row in range(listing.count()):
        for line in listing.item(row).text().splitlines():
            assert metrics.horizontalAdvance(line) + 8 <= room, (line, room)
    assert "max_pool2d_1" in listing.item(1).text() and "13×13×32" in listing.item(1).text()


def test_names_are_shortened_in_their_type_part_and_never_lose_their_number():
    def fits_11(text: str) -> bool:  # one character, one unit of room
        return len(text) <= 11

    assert shorten_name("relu_1", fits_11) == "relu_1"
    assert shorten_name("batch_norm_12", fits_11) == "batch_n\u2026_12"
    assert shorten_name("a_very_long_name", fits_11) == "a_ver\u2026_name"  # no number: the middle goes
    assert input_lines(["conv2d_2", "relu_1"], lambda t: len(t) <= 30) == ["\u2190 conv2d_2 + relu_1"]
    assert input_lines(["batch_norm_12", "relu_1"], lambda t: len(t) <= 15) == [
        "\u2190 batch_norm_12", "+ relu_1"]
    assert input_lines(["batch_norm_12", "relu_1"], fits_11) == ["\u2190 batch\u2026_12", "+ relu_1"]


@pytest.mark.parametrize("size", [NARROW, WIDE])
def test_a_merge_row_names_every_layer_it_takes_whole(qtbot, size):
    # ResNet-8: each Add takes two batch norms (or a batch norm and a ReLU); in a single line
    # "← batch_norm_5 + batch_norm_6" is wider than the list, and was cut to "← batch_...h_norm_6".
    model = Model.from_architecture(asset_path("templates", "resnet8.json"), seed=0)
    view = shown(qtbot, FeatureMapsView(), size)
    view.set_layer_inputs(layer_inputs(model))
    view.set_outputs(model.layer_outputs(np.zeros((28, 28, 1), np.float32)))
    qtbot.wait(10)
    listing = view.layer_list
    metrics = QFontMetrics(listing.font())
    room = listing.viewport().width()
    rows = {name: listing.item(row) for row, name in enumerate(model.names)}
    for item in rows.values():
        for line in item.text().splitlines():
            assert metrics.horizontalAdvance(line) + 8 <= room, (line, room)
    for add in ("add_1", "add_2", "add_3"):
        takes = layer_inputs(model)[add]
        lines = rows[add].text().splitlines()[2:]
        assert lines[0].startswith("\u2190 ") and all(line.startswith("+ ") for line in lines[1:])
        shown_names = [line.split(" ", 1)[1] for line in lines]
        if size == WIDE:
            assert shown_names == takes  # a line each, every name whole
        else:  # the narrowest list: a name too long for its line keeps its start and its number
            for name, short in zip(takes, shown_names, strict=True):
                stem, number = name.rsplit("_", 1)
                kept = short[: -len(number) - 2]  # what is left of the stem before "…_<number>"
                assert short == name or (short.endswith("\u2026_" + number) and stem.startswith(kept))
        assert "takes " + " + ".join(takes) in rows[add].toolTip()  # and the tooltip has them whole


@pytest.mark.parametrize("size", [NARROW, (520, 700), WIDE, (1000, 420)])
def test_the_enlarged_channel_gets_a_large_square(qtbot, seed, size):
    model, x = seed
    view = shown(qtbot, FeatureMapsView(), size)
    view.set_outputs(model.layer_outputs(x[0]))
    view.select_channel(3)
    qtbot.wait(10)
    plot = view.enlarged.plot
    # The grid and the enlarged channel share the pane along its longer side.
    side_by_side = view.maps_splitter.orientation() == Qt.Orientation.Horizontal
    area = view.maps_splitter
    assert side_by_side == (area.width() > 1.3 * area.height())
    smaller_side = min(plot.width(), plot.height())
    assert smaller_side >= 0.35 * min(area.width(), area.height()), (size, plot.size())
    assert smaller_side >= 130  # about 5x a 26x26 map, even in the narrow pane of a 1100 px window


def check_table_fits(table) -> None:
    """Every heading and figure whole in its column; a name too long for its column elided, whole in its tooltip."""
    assert table.horizontalHeader().length() <= table.viewport().width()
    assert table.horizontalScrollBar().maximum() == 0
    metrics = QFontMetrics(table.font())
    header_metrics = QFontMetrics(table.horizontalHeader().font())
    model_ = table.model()
    for column in range(model_.columnCount()):
        width = table.columnWidth(column)
        for line in model_.headerData(column, Qt.Orientation.Horizontal).splitlines():
            assert header_metrics.horizontalAdvance(line) + 6 <= width, (line, width)
        for row in range(model_.rowCount()):
            index = model_.index(row, column)
            lines = (index.data() or "").splitlines()
            for line in lines:
                if metrics.horizontalAdvance(line) + 6 > width:
                    assert column == model_.column("layer"), (line, width)  # only names are ever elided
                    assert line in index.data(Qt.ItemDataRole.ToolTipRole)
            assert table.rowHeight(row) >= len(lines) * metrics.height(), (row, lines)


@pytest.mark.parametrize("size", [NARROW, (480, 520), (540, 520), WIDE])
def test_the_statistics_table_and_histogram_headings_are_not_cut(qtbot, seed, size):
    model, x = seed
    view = shown(qtbot, LayerStatsView(), size)
    view.set_statistics(layer_statistics(model, x))
    view.select_layer("conv2d_1")
    qtbot.wait(10)
    table = view.table
    # The narrow pane gets the compact table (shape under the name, deviation under the mean); a wide one
    # a column each, one line a cell (this network needs about 490 px for that).
    assert view.model.compact == (size[0] < 500)
    assert view.model.compact == (view.one_line_width() > table.viewport().width())
    check_table_fits(table)
    assert table.currentIndex().row() == 0  # the selection survives the change of columns
    for title in (view.weights_title, view.outputs_title):
        assert title.wordWrap() and title.isVisible()
        assert title.height() >= title.heightForWidth(title.width())
    assert "conv2d_1 outputs on 64 images" in view.outputs_title.text()
    assert "Conv2D" in view.weights_title.toolTip()  # the type is in the tooltip, not the short heading
    # A heading that wraps makes the other as tall: both histograms start at the same height.
    assert view.weights_title.height() == view.outputs_title.height()
    assert view.weights_plot.mapTo(view, QPoint(0, 0)).y() == view.outputs_plot.mapTo(view, QPoint(0, 0)).y()
    assert view.weights_plot.height() == view.outputs_plot.height()
    assert view.outputs_plot.getPlotItem().titleLabel.text in ("", None)
    # The histograms' axis labels are drawn whole in their low plots.
    for plot in (view.weights_plot, view.outputs_plot):
        axis = plot.getPlotItem().getAxis("left")
        label = axis.label.boundingRect().width()  # drawn turned: its width runs along the axis
        assert label <= axis.height(), (axis.labelText, label, axis.height())
    # Another project: nothing of this network lingers in the headings or their tooltips.
    view.clear("No trained network yet.")
    assert [t.text() for t in (view.weights_title, view.outputs_title)] == ["weights", "outputs"]
    assert view.weights_title.toolTip() == view.outputs_title.toolTip() == ""


def test_the_narrow_statistics_table_names_every_figure_in_tooltips(qtbot, seed):
    model, x = seed
    stats = layer_statistics(model, x)
    view = shown(qtbot, LayerStatsView(), NARROW)
    # A user's long layer name: elided in the narrow pane, whole in its tooltip.
    long_name = "first_convolution_of_the_feature_extractor"
    stats[0] = dataclasses.replace(stats[0], name=long_name)
    view.set_statistics(stats)
    qtbot.wait(10)
    table, model_ = view.table, view.model
    assert model_.compact
    assert model_.columnCount() == 4 and "Output" not in [model_.headerData(c, Qt.Orientation.Horizontal)
                                                          for c in range(4)]
    check_table_fits(table)
    name_cell = model_.index(0, model_.column("layer"))
    assert name_cell.data().splitlines() == [long_name, "26×26×32"]
    assert long_name in name_cell.data(Qt.ItemDataRole.ToolTipRole)
    assert "Conv2D" in name_cell.data(Qt.ItemDataRole.ToolTipRole) and "26×26×32" in name_cell.data(
        Qt.ItemDataRole.ToolTipRole)
    weights = model_.index(0, model_.column("weights"))
    assert len(weights.data().splitlines()) == 2
    assert "standard deviation" in weights.data(Qt.ItemDataRole.ToolTipRole)
    dead = model_.index(0, model_.column("dead"))
    assert dead.data().splitlines()[1] == f"({stats[0].dead_units}/{stats[0].units})"
    for column in range(model_.columnCount()):  # every heading explains itself
        assert model_.headerData(column, Qt.Orientation.Horizontal, Qt.ItemDataRole.ToolTipRole)
    # Widened, the same view goes back to a column each; narrowed again, compact again.
    view.resize(*WIDE)
    qtbot.waitUntil(lambda: not model_.compact)
    assert model_.columnCount() == 5
    check_table_fits(table)
    view.resize(*NARROW)
    qtbot.waitUntil(lambda: model_.compact)


def test_the_mistakes_gallery_fills_its_width_and_grows_its_thumbnails(qtbot, seed):
    model, x = seed
    labels = np.arange(len(x)) % 10
    ev = evaluate(model, x, labels)
    gallery = shown(qtbot, MistakesGallery(), (900, 600))
    gallery.set_evaluation(ev, (x * 255).astype(np.uint8), 1 / 255, [str(i) for i in range(10)])
    qtbot.wait(10)
    viewport = gallery.view.viewport().width()
    grid = gallery.view.gridSize()
    columns = gallery.columns()
    assert columns >= (viewport - 4) // CELL.width() >= 6
    assert viewport - columns * grid.width() < columns + 4  # only rounding and the view's margin are left
    assert gallery.view.iconSize().width() > THUMBNAIL  # the thumbnails use the room too
    # A narrow pane: fewer, smaller cells, still filling the row.
    gallery.resize(400, 600)
    qtbot.waitUntil(lambda: gallery.view.viewport().width() < 400)
    qtbot.wait(10)
    viewport = gallery.view.viewport().width()
    assert gallery.columns() == (viewport - 4) // CELL.width() >= 2
    assert viewport - gallery.columns() * gallery.view.gridSize().width() < gallery.columns() + 4
    assert gallery.minimumSizeHint().width() <= 400


def test_the_inside_tab_fits_beside_the_docks_of_a_1100_pixel_window(qtbot):
    from cnn_studio.inspect.panel import InsidePanel

    panel = shown(qtbot, InsidePanel(), (580, 600))
    try:
        # 1100 px less the Layers (210) and right-hand (300) docks and their separators.
        assert panel.minimumSizeHint().width() <= 580
    finally:
        panel.shutdown()
