"""The canvas: blocks and shape arrows, drops from the palette, block moves, delete, duplicate, undo/redo."""

from __future__ import annotations

import pytest
from PySide6.QtCore import QMimeData, QPoint, QPointF, QRectF, Qt
from PySide6.QtGui import QWheelEvent
from PySide6.QtWidgets import QApplication

from cnn_studio.builder.blocks import BLOCK_HEIGHT, BLOCK_WIDTH
from cnn_studio.builder.describe import format_shape
from cnn_studio.builder.mime import block_mime, layer_mime
from cnn_studio.builder.templates import list_templates
from tests.studio.builder_helpers import drag_and_drop, layer_ids, layer_types, make_window

SEED_TYPES = ["Conv2D", "MaxPool2D", "Conv2D", "MaxPool2D", "Flatten", "Dense", "Dense"]


@pytest.fixture
def window(qtbot, tmp_path):
    return make_window(qtbot, tmp_path)


def test_seed_network_is_drawn_as_a_chain_with_shapes_on_the_arrows(window):
    doc, canvas = window.document, window.canvas
    assert layer_types(doc) == SEED_TYPES
    assert canvas.order == layer_ids(doc)
    # Input, seven layers and the output are joined by eight arrows labelled with the shape they carry.
    labels = [edge.label for edge in canvas.edges]
    conv1 = 28 - 3 + 1
    pool1 = conv1 // 2
    conv2 = pool1 - 3 + 1
    pool2 = conv2 // 2
    assert labels == [format_shape(s) for s in [(28, 28, 1), (conv1, conv1, 32), (pool1, pool1, 32),
                                                (conv2, conv2, 64), (pool2, pool2, 64), (pool2 * pool2 * 64,),
                                                (128,), (10,)]]
    first = canvas.block(doc.layers()[0]["id"])
    assert first.content.settings == "32 @ 3x3, stride 1, valid, relu"
    assert first.content.params == f"{3 * 3 * 1 * 32 + 32:,} params"
    assert "conv2d_1" in first.toolTip()
    assert canvas.input_block.content.settings.startswith("28 × 28 × 1")
    assert canvas.output_block.content.settings.startswith("10 scores")
    # Blocks run top to bottom in document order.
    ys = [canvas.block(i).pos().y() for i in canvas.order]
    assert ys == sorted(ys)


def test_dropping_a_palette_entry_inserts_it_where_it_lands_with_undo_and_redo(window):
    doc, canvas = window.document, window.canvas
    before = layer_types(doc)
    accepted, marker_shown = drag_and_drop(canvas, layer_mime("Dropout"), canvas.gap_center(2))
    assert accepted and marker_shown
    assert not canvas.marker.isVisible()
    assert layer_types(doc) == before[:2] + ["Dropout"] + before[2:]
    new_id = doc.layers()[2]["id"]
    assert window.selection.layer_id == new_id
    assert canvas.block(new_id).content.title == "Dropout"
    assert window.undo_action.text() == "&Undo Insert Dropout"

    window.undo_action.trigger()
    assert layer_types(doc) == before
    window.redo_action.trigger()
    assert layer_types(doc) == before[:2] + ["Dropout"] + before[2:]
    assert doc.layers()[2]["id"] == new_id


def test_drop_before_the_first_and_after_the_last_block(window):
    doc, canvas = window.document, window.canvas
    n = len(doc.layers())
    drag_and_drop(canvas, layer_mime("BatchNorm"), canvas.gap_center(0))
    assert layer_types(doc)[0] == "BatchNorm"
    drag_and_drop(canvas, layer_mime("Softmax"), canvas.gap_center(n + 1))
    assert layer_types(doc)[-1] == "Softmax"
    assert len(doc.layers()) == n + 2


def test_dragging_a_block_moves_it_and_undo_puts_it_back(window):
    doc, canvas = window.document, window.canvas
    ids = layer_ids(doc)
    pool = ids[1]
    # Drop the first MaxPool into the gap after the second Conv2D (gap 3): it lands at index 2.
    accepted, _ = drag_and_drop(canvas, block_mime(pool), canvas.gap_center(3))
    assert accepted
    assert layer_ids(doc) == [ids[0], ids[2], pool] + ids[3:]
    assert window.undo_action.text().startswith("&Undo Move max_pool2d_1")  # named as its block shows it
    window.undo_action.trigger()
    assert layer_ids(doc) == ids
    window.redo_action.trigger()
    assert layer_ids(doc) == [ids[0], ids[2], pool] + ids[3:]
    # Moving a block upwards, into the very first gap.
    drag_and_drop(canvas, block_mime(ids[5]), canvas.gap_center(0))
    assert layer_ids(doc)[0] == ids[5]


def test_dropping_a_block_onto_its_own_place_changes_nothing(window):
    doc, canvas = window.document, window.canvas
    ids = layer_ids(doc)
    accepted, _ = drag_and_drop(canvas, block_mime(ids[3]), canvas.gap_center(3))
    assert not accepted
    assert layer_ids(doc) == ids
    assert doc.undo_stack.count() == 0


def test_foreign_payloads_are_not_accepted(window):
    doc, canvas = window.document, window.canvas
    text = QMimeData()
    text.setText("Conv2D")
    assert drag_and_drop(canvas, text, canvas.gap_center(1)) == (False, False)
    assert drag_and_drop(canvas, layer_mime("Conv3D"), canvas.gap_center(1)) == (False, False)
    assert drag_and_drop(canvas, block_mime("no-such-id"), canvas.gap_center(1)) == (False, False)
    assert layer_types(doc) == SEED_TYPES


def test_delete_key_removes_the_selected_block_and_undo_restores_it(window, qtbot):
    doc, canvas = window.document, window.canvas
    ids = layer_ids(doc)
    window.selection.select(ids[4])
    canvas.setFocus()
    qtbot.keyClick(canvas, Qt.Key.Key_Delete)
    assert layer_ids(doc) == ids[:4] + ids[5:]
    assert ids[4] not in canvas.blocks
    # The block that moved into its place is selected, so Delete can be pressed again.
    assert window.selection.layer_id == ids[5]
    assert window.undo_action.text() == "&Undo Delete Flatten 5"
    window.undo_action.trigger()
    assert layer_ids(doc) == ids
    window.redo_action.trigger()
    assert layer_ids(doc) == ids[:4] + ids[5:]


def test_ctrl_d_duplicates_after_the_original_with_a_new_id(window, qtbot):
    doc, canvas = window.document, window.canvas
    ids = layer_ids(doc)
    doc_before = doc.layers()
    window.editor.set_name(ids[0], "edges")
    window.selection.select(ids[0])
    canvas.setFocus()
    qtbot.keyClick(canvas, Qt.Key.Key_D, Qt.KeyboardModifier.ControlModifier)
    layers = doc.layers()
    assert len(layers) == len(ids) + 1
    copy = layers[1]
    assert copy["id"] not in ids and copy.get("name") != "edges"  # a repeated custom name would clash
    wiring = ("id", "inputs", "name")
    assert {k: v for k, v in copy.items() if k not in wiring} == {
        k: v for k, v in doc_before[0].items() if k not in wiring}
    assert copy["inputs"] == [ids[0]] and layers[2]["inputs"] == [copy["id"]]  # the copy sits between them
    assert window.selection.layer_id == copy["id"]
    assert window.undo_action.text() == "&Undo Duplicate Conv2D"
    window.undo_action.trigger()
    assert layer_ids(doc) == ids
    window.redo_action.trigger()
    assert layer_ids(doc)[1] == copy["id"]


def names_by_id(document) -> dict[str, str]:
    return {info.id: info.name for info in document.analysis().layers}


def test_ctrl_d_keeps_the_names_of_the_other_layers(window, qtbot):
    doc, canvas = window.document, window.canvas
    before = names_by_id(doc)
    assert before[doc.layers()[2]["id"]] == "conv2d_2"
    window.selection.select(doc.layers()[0]["id"])
    canvas.setFocus()
    qtbot.keyClick(canvas, Qt.Key.Key_D, Qt.KeyboardModifier.ControlModifier)
    copy_id = window.selection.layer_id
    after = names_by_id(doc)
    assert {key: name for key, name in after.items() if key != copy_id} == before
    assert after[copy_id] == "conv2d_3"  # the next free name: the second convolution keeps conv2d_2
    assert doc.analysis().ok
    assert canvas.block(doc.layers()[3]["id"]).content.subtitle == "conv2d_2"
    # Duplicating the last layer of its type shifts nothing: the copy simply gets the next name.
    window.editor.duplicate(doc.layers()[-1]["id"])
    assert [info.name for info in doc.analysis().layers][-2:] == ["dense_2", "dense_3"]
    assert "name" not in doc.layers()[-1]
    window.undo_action.trigger()
    window.undo_action.trigger()
    assert names_by_id(doc) == before and all("name" not in spec for spec in doc.layers())


def test_undoing_a_delete_selects_the_restored_block(window, qtbot):
    doc, canvas = window.document, window.canvas
    ids = layer_ids(doc)
    window.selection.select(ids[2])
    canvas.setFocus()
    qtbot.keyClick(canvas, Qt.Key.Key_Delete)
    assert window.selection.layer_id == ids[3]
    window.undo_action.trigger()
    assert layer_ids(doc) == ids
    assert window.selection.layer_id == ids[2]
    assert canvas.block(ids[2]).selected and not canvas.block(ids[3]).selected
    assert window.inspector.title.text() == "conv2d_2"
    window.redo_action.trigger()
    assert window.selection.layer_id == ids[3]


def test_keyboard_moves_and_walks_the_selection(window, qtbot):
    doc, canvas = window.document, window.canvas
    ids = layer_ids(doc)
    window.selection.select(ids[0])
    canvas.setFocus()
    qtbot.keyClick(canvas, Qt.Key.Key_Down)
    assert window.selection.layer_id == ids[1]
    window.move_down_action.trigger()
    assert layer_ids(doc)[2] == ids[1]
    window.move_up_action.trigger()
    assert layer_ids(doc) == ids
    qtbot.keyClick(canvas, Qt.Key.Key_Escape)
    assert window.selection.layer_id is None


def test_clicking_a_block_selects_it_and_the_inspector_follows(window, qtbot):
    doc, canvas = window.document, window.canvas
    target = doc.layers()[2]["id"]
    qtbot.mouseClick(canvas.viewport(), Qt.MouseButton.LeftButton, pos=canvas.block_center(target))
    assert window.selection.layer_id == target
    assert canvas.block(target).selected
    assert window.inspector.title.text() == "conv2d_2"  # the name the block shows
    assert window.inspector.kind.text() == "Conv2D · layer 3 of 7"
    assert window.inspector.editors["filters"].value() == 64
    # A click on the empty canvas beside the blocks clears the selection.
    beside = canvas.block(target).pos() + QPointF(-BLOCK_WIDTH / 2 - 40, BLOCK_HEIGHT / 2)
    qtbot.mouseClick(canvas.viewport(), Qt.MouseButton.LeftButton, pos=canvas.mapFromScene(beside))
    assert window.selection.layer_id is None


def test_locked_document_refuses_edits_and_says_why(window, qtbot):
    doc, canvas = window.document, window.canvas
    ids = layer_ids(doc)
    window.selection.select(ids[0])
    doc.set_locked(True, "training is running")
    assert window.lock_banner.isVisibleTo(window)
    assert "training is running" in window.lock_banner.text()
    assert not window.undo_action.isEnabled() and not window.delete_action.isEnabled()
    assert drag_and_drop(canvas, layer_mime("Dropout"), canvas.gap_center(1)) == (False, False)
    with qtbot.waitSignal(doc.edit_refused):
        assert window.editor.remove(ids[0]) is False
    assert "training is running" in window.statusBar().currentMessage()
    assert layer_ids(doc) == ids
    assert not window.inspector.form_host.isEnabled()
    doc.set_locked(False)
    window.editor.set_field(ids[0], "kernel_size", 29)  # an impossible design, to get a fix button
    doc.set_locked(True, "training is running")
    assert not window.problems.rows[0].fix_button.isEnabled()
    assert not window.inspector.fix_button.isEnabled()
    doc.set_locked(False)
    assert window.problems.rows[0].fix_button.isEnabled()
    window.undo_action.trigger()
    assert not window.lock_banner.isVisibleTo(window)
    assert window.editor.remove(ids[0])
    assert layer_ids(doc) == ids[1:]


def test_inserting_after_a_duplicate_keeps_every_name_and_makes_none_twice(window, qtbot):
    """Ctrl+D writes the other layers' names out; a layer dropped later on a wire must not take one of
    them, and no existing layer may change its name (its weights are named after it)."""
    doc, canvas = window.document, window.canvas
    window.selection.select(doc.layers()[0]["id"])
    canvas.setFocus()
    qtbot.keyClick(canvas, Qt.Key.Key_D, Qt.KeyboardModifier.ControlModifier)
    before = names_by_id(doc)
    # A Conv2D dropped from the palette between the first two blocks.
    accepted, _ = drag_and_drop(canvas, layer_mime("Conv2D"), canvas.gap_center(1))
    assert accepted
    after = names_by_id(doc)
    new = [key for key in after if key not in before]
    assert len(new) == 1 and {key: after[key] for key in before} == before
    assert len(set(after.values())) == len(after) and after[new[0]].startswith("conv2d_")
    assert not [p for p in doc.analysis().problems if "used twice" in p.message]
    # A composite block and a second drop: still every name once, the old ones unchanged.
    window.editor.append_composite("residual")
    drag_and_drop(canvas, layer_mime("Conv2D"), canvas.gap_center(2))
    final = names_by_id(doc)
    assert {key: final[key] for key in before} == before and len(set(final.values())) == len(final)


# -- where the view starts ----------------------------------------------------------------------------------
def open_template(window, key: str) -> None:
    template = next(t for t in list_templates() if t.key == key)
    assert window.project.new_project(template)


def scroll_to_the_end(canvas) -> None:
    for bar in (canvas.horizontalScrollBar(), canvas.verticalScrollBar()):
        bar.setValue(bar.maximum())


def assert_shows_the_start(canvas) -> None:
    """The input block whole at the top of the view, the main column (x = 0) in its middle."""
    view = QRectF(canvas.viewport().rect())
    first = QRectF(canvas.mapFromScene(canvas.input_block.rect_in_scene()).boundingRect())
    assert view.contains(first), (view, first)
    assert first.top() < 60
    scene = canvas.scene().sceneRect()
    half = view.width() / 2 / canvas.zoom_level()
    if scene.left() <= -half and scene.right() >= half:  # the scene reaches that far both ways
        assert abs(canvas.mapFromScene(QPointF(0, 0)).x() - view.center().x()) <= 2


def test_actual_size_shows_the_top_of_the_network_with_its_main_column_in_the_middle(window):
    canvas = window.canvas
    open_template(window, "inception_lite")
    window.zoom_out_action.trigger()
    window.zoom_out_action.trigger()
    scroll_to_the_end(canvas)
    window.actual_size_action.trigger()
    assert canvas.zoom_level() == 1.0
    assert_shows_the_start(canvas)
    scene = canvas.scene().sceneRect()
    assert scene.left() < -canvas.viewport().width() / 2  # the middle was reachable: it was checked


def test_new_and_templates_open_at_the_top_of_the_network(window, qtbot):
    canvas = window.canvas
    window.zoom_in_action.trigger()  # a zoom by hand...
    scroll_to_the_end(canvas)  # ... and scrolled away
    open_template(window, "inception_lite")
    assert_shows_the_start(canvas)
    scroll_to_the_end(canvas)
    window.new_action.trigger()
    assert layer_types(window.document) == SEED_TYPES
    assert_shows_the_start(canvas)
    # Resizing the window keeps the start in view until the user scrolls away.
    open_template(window, "resnet8")
    window.resize(1150, 760)
    qtbot.wait(20)
    assert_shows_the_start(canvas)
    wheel = QWheelEvent(QPointF(100, 100), canvas.viewport().mapToGlobal(QPointF(100, 100)), QPoint(0, 0),
                        QPoint(0, -240), Qt.MouseButton.NoButton, Qt.KeyboardModifier.NoModifier,
                        Qt.ScrollPhase.NoScrollPhase, False)
    QApplication.sendEvent(canvas.viewport(), wheel)
    scrolled = canvas.verticalScrollBar().value()
    assert scrolled > canvas.verticalScrollBar().minimum()
    window.resize(1400, 900)
    qtbot.wait(20)
    assert canvas.mapFromScene(canvas.input_block.rect_in_scene().topLeft()).y() < 0  # still scrolled down


def test_a_network_zoomed_out_smaller_than_the_view_sits_in_its_middle(window, qtbot):
    canvas = window.canvas
    open_template(window, "resnet8")
    for _ in range(20):
        window.zoom_out_action.trigger()
    qtbot.wait(10)  # the scroll bars go, the viewport widens
    view = QRectF(canvas.viewport().rect())
    network = QRectF()
    for block in canvas.blocks.values():
        network = network.united(block.rect_in_scene())
    for wire in canvas.edges:
        network = network.united(wire.path.boundingRect())
    shown = QRectF(canvas.mapFromScene(network).boundingRect())
    assert view.contains(shown)
    assert abs(shown.center().y() - view.center().y()) <= 3
    assert abs(shown.center().x() - view.center().x()) <= 3, (shown, view)
