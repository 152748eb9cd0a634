"""The Inside views fit the space they get: nothing cut off in a narrow pane, wide panes used.

The panes are sized as at 1100x750 (a narrow one) and 1600x1000 (a wide one), the seed network's
real layer names and shapes shown, and what is drawn checked against the room it has.
"""

from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtCore import Qt
from PySide6.QtGui import QFontMetrics

from cnn_studio.inspect.feature_maps import FeatureMapsView
from cnn_studio.inspect.layer_stats import LayerStatsView
from cnn_studio.inspect.mistakes_gallery import CELL, THUMBNAIL, MistakesGallery
from engine.inspection import layer_statistics
from engine.metrics import evaluate
from engine.model import Model
from engine.resources import asset_path

NARROW = (360, 520)  # the Inside views' pane in a 1100x750 window
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
    assert smaller_side >= 150


@pytest.mark.parametrize("size", [NARROW, WIDE])
def test_the_statistics_table_and_histogram_headings_are_not_cut(qtbot, seed, size):
    model, x = seed
    view = shown(qtbot, LayerStatsView(), size)
    view.set_statistics(layer_statistics(model, x))
    view.select_layer("conv2d_1")
    qtbot.wait(10)
    table = view.table
    assert table.horizontalHeader().length() <= table.viewport().width()
    assert table.horizontalScrollBar().maximum() == 0
    # Cells may wrap at their spaces, never cut a word: "Dead ReLU" figures included.
    metrics = QFontMetrics(table.font())
    model_ = table.model()
    header_metrics = QFontMetrics(table.horizontalHeader().font())
    for column in range(model_.columnCount()):
        width = table.columnWidth(column)
        for line in model_.headerData(column, Qt.Orientation.Horizontal).splitlines():
            assert header_metrics.horizontalAdvance(line) + 6 <= width, (line, width)
        for row in range(model_.rowCount()):
            text = model_.index(row, column).data() or ""
            for word in text.split():
                assert metrics.horizontalAdvance(word) + 6 <= width, (column, text, width)
            lines = max(1, -(-(metrics.horizontalAdvance(text) + 6) // width))
            assert table.rowHeight(row) >= min(lines, 3) * metrics.height() - 2, (row, text)
    for title in (view.weights_title, view.outputs_title):
        assert title.wordWrap() and title.isVisible()
        assert title.height() >= title.heightForWidth(title.width())
    assert "conv2d_1 outputs on 64 images" in view.outputs_title.text()
    assert view.outputs_plot.getPlotItem().titleLabel.text in ("", None)


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
