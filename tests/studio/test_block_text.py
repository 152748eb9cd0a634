"""A block shows its layer's type, name, settings and parameter count whole: the count moves to a line
of its own (and the block grows by that line) when the first line cannot hold it beside the name."""

from __future__ import annotations

from PySide6.QtGui import QFontMetricsF

from cnn_studio.builder.blocks import BLOCK_HEIGHT, Block, BlockContent, elide_name, small_font
from tests.studio.builder_helpers import make_window


def drawn(block: Block) -> dict[str, object]:
    return {text.part: text for text in block.text_layout()}


def assert_inside_and_apart(block: Block) -> None:
    rect = block.boundingRect().adjusted(14, 14, -14, -14)
    texts = block.text_layout()
    spans = []
    for text in texts:
        width = QFontMetricsF(text.font).horizontalAdvance(text.text)
        assert rect.left() < text.x and text.x + width <= rect.right() - 8, text
        assert rect.top() < text.baseline <= rect.bottom() - 3, text
        spans.append((round(text.baseline), text.x, text.x + width, text.part))
    for i, (line, start, end, part) in enumerate(spans):
        for other_line, other_start, other_end, other in spans[i + 1:]:
            if abs(line - other_line) < 8:  # the same line: no overlap
                assert end <= other_start or other_end <= start, (part, other)


def test_a_conv_block_shows_its_name_and_count_whole(qtbot):
    content = BlockContent(key="conv2d_2", kind="layer", title="Conv2D", subtitle="conv2d_2",
                           settings="64 @ 3x3, stride 1, valid, relu", params="18,496 params",
                           category="convolution")
    block = Block(content)
    texts = drawn(block)
    assert texts["subtitle"].text == "conv2d_2"
    assert texts["params"].text == "18,496 params"
    assert texts["settings"].text == "64 @ 3x3, stride 1, valid, relu"
    assert_inside_and_apart(block)
    if block.count_below:  # beneath the settings, the block one line taller
        assert texts["params"].baseline > texts["settings"].baseline
        assert block.height() > BLOCK_HEIGHT
    else:
        assert texts["params"].baseline == texts["subtitle"].baseline
        assert block.height() == BLOCK_HEIGHT


def test_a_long_name_pushes_the_count_to_its_own_line(qtbot):
    name = "conv2d_edges_12"
    content = BlockContent(key=name, kind="layer", title="Conv2D", subtitle=name,
                           settings="64 @ 3x3, stride 1, valid, relu", params="1,234,496 params",
                           category="convolution", badges=("lock",))
    block = Block(content)
    texts = drawn(block)
    assert block.count_below and block.height() > BLOCK_HEIGHT
    assert texts["subtitle"].text == name
    assert texts["params"].text == "1,234,496 params"
    assert_inside_and_apart(block)
    # A short count beside a short name stays on the first line.
    short = Block(BlockContent(key="d", kind="layer", title="Dense", subtitle="d", settings="10 units",
                               params="90 params"))
    assert not short.count_below and short.height() == BLOCK_HEIGHT
    assert drawn(short)["params"].baseline == drawn(short)["subtitle"].baseline


def test_every_block_of_the_seed_network_shows_its_name_and_count_whole(qtbot, tmp_path):
    window = make_window(qtbot, tmp_path)
    try:
        canvas = window.canvas
        layers = {spec["id"]: spec for spec in window.document.layers()}
        counted = 0
        for key, block in canvas.blocks.items():
            if key not in layers:
                continue
            texts = drawn(block)
            assert texts["subtitle"].text == key
            if block.content.params:
                counted += 1
                assert texts["params"].text == block.content.params
            assert_inside_and_apart(block)
            # The next block starts below this one, however tall it grew.
        assert counted >= 3
        blocks = sorted(canvas.blocks.values(), key=lambda b: b.pos().y())
        for upper, lower in zip(blocks, blocks[1:], strict=False):
            if abs(upper.pos().x() - lower.pos().x()) < 1:
                assert upper.rect_in_scene().bottom() < lower.rect_in_scene().top()
    finally:
        window.document.mark_saved()
        window.close()


def test_a_long_name_gets_a_line_of_its_own_and_the_tooltip_has_it_whole(qtbot, tmp_path):
    name = "global_average_pooling2d_1"
    block = Block(BlockContent(key="g", kind="layer", title="GlobalAvgPool2D", subtitle=name,
                               settings="one value per channel", category="pooling"))
    texts = drawn(block)
    assert block.name_below and block.height() > BLOCK_HEIGHT
    assert texts["subtitle"].text == name  # whole, under the type and above the settings
    assert texts["title"].baseline < texts["subtitle"].baseline < texts["settings"].baseline
    assert_inside_and_apart(block)
    # Longer still, it is cut in the middle: the number that tells layers of a kind apart stays.
    longer = Block(BlockContent(key="g", kind="layer", title="GlobalAvgPool2D", subtitle="global_" * 8 + "pool_12",
                                settings="one value per channel", category="pooling"))
    assert drawn(longer)["subtitle"].text.endswith("…_12")
    assert_inside_and_apart(longer)
    metrics = QFontMetricsF(small_font())
    cut = elide_name("encoder_block_three_conv_b", metrics, 90)  # a name given by hand keeps its end too
    assert cut.startswith("enc") and cut.endswith("onv_b") and "…" in cut and metrics.horizontalAdvance(cut) <= 90
    assert elide_name("conv2d_3", metrics, 90) == "conv2d_3"
    # On the canvas: the block is laid out taller, and its tooltip names the layer in full.
    window = make_window(qtbot, tmp_path)
    try:
        window.editor.insert_layer("GlobalAvgPool2D", 4)
        pool = window.selection.layer_id
        full = window.document.analysis().layers[window.document.index_of(pool)].name
        block = window.canvas.block(pool)
        assert block.name_below and drawn(block)["subtitle"].text == full and full in block.toolTip()
        blocks = sorted(window.canvas.blocks.values(), key=lambda b: b.pos().y())
        for upper, lower in zip(blocks, blocks[1:], strict=False):
            assert upper.rect_in_scene().bottom() < lower.rect_in_scene().top()
    finally:
        window.document.mark_saved()
        window.close()
