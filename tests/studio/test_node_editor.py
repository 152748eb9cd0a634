"""The canvas as a node editor: real mouse drags between ports, wires selected and deleted, layers and
composite blocks dropped on wires, deletion with reconnection, the layout's geometry, format 1 files."""

from __future__ import annotations

import pytest
from PySide6.QtCore import QPoint, QPointF, QRectF, Qt

from cnn_studio.builder.canvas import BLOCK_GAP
from cnn_studio.builder.editor import DropTarget
from cnn_studio.builder.layout import free_spot
from cnn_studio.builder.mime import composite_mime, layer_mime
from cnn_studio.graph import INPUT, OUTPUT, Wire
from engine.architecture import FORMAT
from tests.studio.builder_helpers import drag_and_drop, layer_ids, layer_types, make_window

SMALL = {"format": "cnn-studio.architecture/1", "input": {"shape": [8, 8, 4]},
         "layers": [{"id": "conv_a", "type": "Conv2D", "filters": 4, "kernel_size": 3, "padding": "same",
                     "activation": "relu"},
                    {"id": "conv_b", "type": "Conv2D", "filters": 4, "kernel_size": 3, "padding": "same"},
                    {"id": "flat", "type": "Flatten"},
                    {"id": "dense", "type": "Dense", "units": 10}]}


@pytest.fixture
def window(qtbot, tmp_path):
    window = make_window(qtbot, tmp_path)
    window.document.load_project(SMALL, "fashion-mnist-mini", {})
    return window


def inputs(document) -> dict[str, list[str]]:
    return {spec["id"]: spec["inputs"] for spec in document.layers()}


def mouse_drag(qtbot, canvas, start: QPoint, end: QPoint, steps: int = 6) -> None:
    """Press at ``start``, move in steps to ``end`` and release there, as a hand on a mouse would."""
    viewport = canvas.viewport()
    qtbot.mousePress(viewport, Qt.MouseButton.LeftButton, pos=start)
    for i in range(1, steps + 1):
        point = start + (end - start) * (i / steps)
        qtbot.mouseMove(viewport, pos=QPoint(round(point.x()), round(point.y())))
    qtbot.mouseRelease(viewport, Qt.MouseButton.LeftButton, pos=end)


def insert_add(window) -> str:
    """An Add dropped from the palette on the wire conv_b -> flat (so far with one input)."""
    canvas = window.canvas
    accepted, marker = drag_and_drop(canvas, layer_mime("Add"), canvas.wire_center(Wire("conv_b", "flat")))
    assert accepted and marker
    add = window.selection.layer_id
    assert inputs(window.document)[add] == ["conv_b"] and inputs(window.document)["flat"] == [add]
    return add


def test_a_residual_connection_is_made_by_dragging_from_the_input_port_to_the_add(window, qtbot):
    doc, canvas = window.document, window.canvas
    add = insert_add(window)
    assert canvas.block(add).has_error  # an Add with one input
    steps_before = doc.undo_stack.count()
    hints = []
    canvas.hint.connect(hints.append)
    mouse_drag(qtbot, canvas, canvas.output_port_pos(INPUT), canvas.input_port_pos(add))
    assert inputs(doc)[add] == ["conv_b", INPUT]
    assert doc.analysis().ok and not canvas.block(add).has_error
    assert doc.undo_stack.count() == steps_before + 1
    assert window.undo_action.text().startswith("&Undo Connect")
    assert any("Release to connect" in h for h in hints)  # the status bar said what a release would do
    assert canvas.wires_between(INPUT, add) and canvas.wires_between(INPUT, add)[0].label == "8 × 8 × 4"
    assert not canvas.pending.isVisible()
    window.undo_action.trigger()
    assert inputs(doc)[add] == ["conv_b"]
    window.redo_action.trigger()
    assert inputs(doc)[add] == ["conv_b", INPUT]


def test_dragging_from_an_input_port_back_to_a_source_connects_too(window, qtbot):
    doc, canvas = window.document, window.canvas
    add = insert_add(window)
    mouse_drag(qtbot, canvas, canvas.input_port_pos(add), canvas.block_center("conv_a"))
    assert inputs(doc)[add] == ["conv_b", "conv_a"]


def test_a_drag_that_would_make_a_loop_changes_nothing_and_says_why(window, qtbot):
    doc, canvas = window.document, window.canvas
    before = doc.architecture()
    hints = []
    canvas.hint.connect(hints.append)
    mouse_drag(qtbot, canvas, canvas.output_port_pos("flat"), canvas.input_port_pos("conv_a"))
    assert doc.architecture() == before and doc.undo_stack.count() == 0
    assert any("loop" in h for h in hints)
    # Released over empty canvas: nothing either.
    empty = canvas.mapFromScene(canvas.block("conv_a").pos() + QPointF(700, 0))
    mouse_drag(qtbot, canvas, canvas.output_port_pos("conv_a"), empty)
    assert doc.architecture() == before


def test_a_selected_wire_is_disconnected_with_delete_and_undo_restores_it(window, qtbot):
    doc, canvas = window.document, window.canvas
    add = insert_add(window)
    mouse_drag(qtbot, canvas, canvas.output_port_pos(INPUT), canvas.input_port_pos(add))
    skip = Wire(INPUT, add, 1)
    qtbot.mouseClick(canvas.viewport(), Qt.MouseButton.LeftButton, pos=canvas.wire_center(skip))
    assert canvas.selected_wire == skip and canvas.wire_item(skip).selected
    assert window.selection.layer_id is None
    canvas.setFocus()
    qtbot.keyClick(canvas, Qt.Key.Key_Delete)
    assert inputs(doc)[add] == ["conv_b"]
    assert set(layer_ids(doc)) == {"conv_a", "conv_b", add, "flat", "dense"}  # no block was deleted
    assert window.undo_action.text().startswith("&Undo Disconnect")
    window.undo_action.trigger()
    assert inputs(doc)[add] == ["conv_b", INPUT]
    # A layer's only input cannot be cut: the editor says why and nothing changes.
    notices = []
    window.editor.notice.connect(notices.append)
    qtbot.mouseClick(canvas.viewport(), Qt.MouseButton.LeftButton, pos=canvas.wire_center(Wire("conv_a", "conv_b")))
    qtbot.keyClick(canvas, Qt.Key.Key_Delete)
    assert inputs(doc)["conv_b"] == ["conv_a"] and notices and "needs an input" in notices[-1]


def test_a_layer_dropped_on_a_skip_wire_is_inserted_there(window, qtbot):
    doc, canvas = window.document, window.canvas
    add = insert_add(window)
    window.editor.connect(INPUT, add)
    accepted, _ = drag_and_drop(canvas, layer_mime("Conv2D"), canvas.wire_center(Wire(INPUT, add, 1)))
    assert accepted
    new = window.selection.layer_id
    assert inputs(doc)[new] == [INPUT] and inputs(doc)[add] == ["conv_b", new]
    assert window.undo_action.text() == "&Undo Insert Conv2D"
    window.undo_action.trigger()
    assert inputs(doc)[add] == ["conv_b", INPUT] and new not in layer_ids(doc)


def test_drops_near_a_block_go_before_or_after_it_and_below_everything_at_the_end(window):
    doc, canvas = window.document, window.canvas
    block = canvas.block("conv_b")
    upper = canvas.mapFromScene(block.pos() + QPointF(block.boundingRect().width() / 3, 10))
    drag_and_drop(canvas, layer_mime("ReLU"), upper)
    assert layer_types(doc)[:3] == ["Conv2D", "ReLU", "Conv2D"]
    lower = canvas.mapFromScene(block.pos() + QPointF(block.boundingRect().width() / 3, block.height() - 8))
    drag_and_drop(canvas, layer_mime("Dropout"), lower)
    assert layer_types(doc)[3] == "Dropout" and inputs(doc)["flat"] == [doc.layers()[3]["id"]]
    below = canvas.mapFromScene(canvas.output_block.pos() + QPointF(0, 200))
    drag_and_drop(canvas, layer_mime("Softmax"), below)
    assert layer_types(doc)[-1] == "Softmax"


def test_deleting_a_block_reconnects_its_consumers_to_its_input(window, qtbot):
    doc, canvas = window.document, window.canvas
    add = insert_add(window)
    window.editor.connect("conv_a", add)  # conv_a now feeds conv_b and the Add
    window.selection.select("conv_b")
    canvas.setFocus()
    qtbot.keyClick(canvas, Qt.Key.Key_Delete)
    assert "conv_b" not in layer_ids(doc)
    assert inputs(doc)[add] == ["conv_a"]  # conv_b's place taken by its input, no duplicate
    assert window.selection.layer_id == add
    window.undo_action.trigger()
    assert inputs(doc)[add] == ["conv_b", "conv_a"] and inputs(doc)["conv_b"] == ["conv_a"]


@pytest.mark.parametrize("key, new_types", [
    ("residual", {"Conv2D": 3, "BatchNorm": 3, "ReLU": 2, "Add": 1}),  # 4 channels grow to 16: a projection
    ("residual_down", {"Conv2D": 3, "BatchNorm": 3, "ReLU": 2, "Add": 1}),
    ("inception", {"Conv2D": 6, "MaxPool2D": 1, "Concatenate": 1}),
])
def test_a_composite_block_is_dropped_as_one_undoable_edit(window, key, new_types):
    doc, canvas = window.document, window.canvas
    before = doc.architecture()
    accepted, _ = drag_and_drop(canvas, composite_mime(key), canvas.wire_center(Wire("conv_a", "conv_b")))
    assert accepted
    added = [s for s in doc.layers() if s["id"] not in {x["id"] for x in before["layers"]}]
    counts = {}
    for s in added:
        counts[s["type"]] = counts.get(s["type"], 0) + 1
    assert counts == new_types
    assert doc.undo_stack.count() == 1 and doc.analysis().ok
    assert inputs(doc)["conv_b"] == [added[-1]["id"]]
    window.undo_action.trigger()
    assert doc.architecture() == before
    window.redo_action.trigger()
    assert len(doc.layers()) == len(before["layers"]) + len(added)


def test_a_composite_double_clicked_in_the_palette_is_appended(window, qtbot):
    palette = window.layer_palette
    window.editor.remove("flat")
    window.editor.remove("dense")
    rect = palette.tree.visualItemRect(palette.composite_item("residual"))
    qtbot.mouseClick(palette.tree.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
    qtbot.mouseDClick(palette.tree.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
    assert layer_types(window.document)[-2:] == ["Add", "ReLU"]


def test_add_shape_mismatch_marks_the_wire_and_its_fix_inserts_a_projection(window):
    doc, canvas = window.document, window.canvas
    add = insert_add(window)
    window.editor.set_field("conv_b", "filters", 8)
    window.editor.connect(INPUT, add)
    problems = doc.analysis().problems
    assert len(problems) == 1 and problems[0].fix == "project_shortcut"
    wire = canvas.wires_between(INPUT, add)[0]
    assert wire.state == "error"
    assert canvas.wires_between("conv_b", add)[0].state != "error"
    assert canvas.block(add).has_error  # the Add itself is marked too
    row = window.problems.rows[0]
    assert row.fix_button.text() == "Insert a 1x1 Conv2D (8 filters)"
    row.fix_button.click()
    assert doc.analysis().ok
    projection = inputs(doc)[add][1]
    spec = doc.layer(doc.index_of(projection))
    assert (spec["type"], spec["kernel_size"], spec["filters"], spec["inputs"]) == ("Conv2D", 1, 8, [INPUT])
    assert not canvas.block(add).has_error
    window.undo_action.trigger()
    assert inputs(doc)[add] == ["conv_b", INPUT]


def test_clicking_a_problem_with_a_connection_selects_and_shows_that_wire(window, qtbot):
    doc, canvas = window.document, window.canvas
    add = insert_add(window)
    window.editor.set_field("conv_b", "filters", 8)
    window.editor.connect(INPUT, add)
    window.resize(1100, 750)
    window.tabs.setCurrentIndex(1)  # away from the canvas: the click brings it back
    canvas.centerOn(QPointF(0, -2000))  # the wire scrolled out of sight
    window.selection.select("conv_a")
    row = window.problems.rows[0]
    assert "connection" in row.toolTip()
    qtbot.mouseClick(row, Qt.MouseButton.LeftButton, pos=QPoint(10, 10))
    assert window.tabs.currentWidget() is window.design_tab
    wire = canvas.wires_between(INPUT, add)[0]
    assert canvas.selected_wire == wire.wire and wire.selected
    assert [item for item in canvas.edges if item.selected] == [wire]
    assert window.selection.layer_id is None and not canvas.block(add).selected
    centre = canvas.mapFromScene(wire.label_at)
    assert canvas.viewport().rect().contains(centre)
    # Delete now removes that wire (the canvas has the focus), and undo brings it back.
    qtbot.waitUntil(canvas.hasFocus)
    qtbot.keyClick(canvas.viewport(), Qt.Key.Key_Delete)
    assert inputs(doc)[add] == ["conv_b"]
    window.undo_action.trigger()
    assert inputs(doc)[add] == ["conv_b", INPUT]


def test_clicking_a_problem_of_a_block_still_selects_the_block(window, qtbot):
    window.editor.set_field("conv_b", "padding", "valid")
    window.editor.set_field("conv_b", "kernel_size", 30)  # larger than its 8x8 input
    row = window.problems.rows[0]
    assert "layer" in row.toolTip()
    qtbot.mouseClick(row, Qt.MouseButton.LeftButton, pos=QPoint(10, 10))
    assert window.selection.layer_id == "conv_b" and window.canvas.selected_wire is None


def test_concatenate_size_mismatch_is_fixed_with_pooling_or_padding(window):
    doc = window.document
    merge = window.editor.insert_at_target("Concatenate", DropTarget("wire", wire=Wire("conv_b", "flat")))
    window.editor.set_field("conv_b", "padding", "valid")  # 8x8 -> 6x6 on this branch
    window.editor.connect(INPUT, merge)
    (problem,) = doc.analysis().problems
    row = window.problems.rows[0]
    assert row.fix_button is not None and "padding 'same'" in row.fix_button.text()
    row.fix_button.click()
    assert doc.analysis().ok and doc.layer(doc.index_of("conv_b"))["padding"] == "same"
    window.undo_action.trigger()
    # A branch that halves the size is fixed by pooling the other input.
    window.editor.set_field("conv_b", "padding", "same")
    window.editor.set_field("conv_b", "stride", 2)
    (problem,) = doc.analysis().problems
    assert problem.fix == "insert_pooling"
    window.problems.rows[0].fix_button.click()
    assert doc.analysis().ok
    assert "MaxPool2D" in layer_types(doc)


def test_a_block_dragged_onto_a_wire_moves_there_and_elsewhere_just_stays_put(window, qtbot):
    doc, canvas = window.document, window.canvas
    target = canvas.wire_center(Wire("flat", "dense"))
    mouse_drag(qtbot, canvas, canvas.block_center("conv_a"), target, steps=10)
    assert layer_ids(doc) == ["conv_b", "flat", "conv_a", "dense"]
    assert window.undo_action.text().startswith("&Undo Move")
    window.undo_action.trigger()
    assert layer_ids(doc) == ["conv_a", "conv_b", "flat", "dense"]
    # Dropped on empty canvas the block keeps its new place (view only) until Tidy.
    start = canvas.block("dense").pos()
    aside = canvas.mapFromScene(canvas.block("dense").pos() + QPointF(600, 20))
    mouse_drag(qtbot, canvas, canvas.block_center("dense"), aside, steps=10)
    assert doc.undo_stack.count() == 1 and canvas.has_manual_positions
    assert canvas.block("dense").pos().x() > start.x() + 300
    canvas.tidy()
    assert not canvas.has_manual_positions and canvas.block("dense").pos() == start


def test_a_block_dragged_to_empty_canvas_stays_under_the_pointer_and_the_view_does_not_move(window, qtbot):
    canvas = window.canvas
    still = canvas.block_center("conv_b")  # a block that is not dragged: it must not shift on screen
    start = canvas.block_center("conv_a")
    end = start + QPoint(250, 0)  # off the (narrow) scene's edge: the scene grows to the right
    mouse_drag(qtbot, canvas, start, end, steps=10)
    qtbot.wait(20)
    assert canvas.has_manual_positions
    assert (canvas.block_center("conv_b") - still).manhattanLength() <= 1
    assert (canvas.block_center("conv_a") - end).manhattanLength() <= 1
    assert canvas.scene().sceneRect().contains(canvas.block("conv_a").rect_in_scene())
    # Half off the view's edge: the scene grows past the view and a scroll bar comes, the view stays.
    start, end = canvas.block_center("dense"), QPoint(canvas.viewport().width() - 30, canvas.block_center("dense").y())
    mouse_drag(qtbot, canvas, start, end, steps=10)
    qtbot.wait(20)
    assert canvas.horizontalScrollBar().maximum() > canvas.horizontalScrollBar().minimum()
    assert (canvas.block_center("conv_b") - still).manhattanLength() <= 1
    assert (canvas.block_center("dense") - end).manhattanLength() <= 1
    # A settings edit afterwards does not move the view either.
    window.editor.set_field("dense", "units", 12)
    qtbot.wait(20)
    assert (canvas.block_center("conv_b") - still).manhattanLength() <= 1


def test_pressing_a_block_half_out_of_view_does_not_scroll_it_from_under_the_pointer(window, qtbot):
    canvas = window.canvas
    window.document.load_project(resnet_like(4), "fashion-mnist-mini", {})
    canvas.reset_zoom()
    block = canvas.block("r2").rect_in_scene()
    bar = canvas.verticalScrollBar()
    bar.setValue(bar.value() + canvas.mapFromScene(block.center()).y() - canvas.viewport().height() + 8)
    point = canvas.block_center("r2")
    assert canvas.viewport().height() - 16 < point.y() < canvas.viewport().height()  # its lower half is hidden
    scrolled = bar.value()
    qtbot.mouseClick(canvas.viewport(), Qt.MouseButton.LeftButton, pos=point)
    assert window.selection.layer_id == "r2" and bar.value() == scrolled
    window.selection.select(None)
    window.selection.select("r2")  # selected from elsewhere (keys, panels): scrolled into view
    assert canvas.mapFromScene(block.bottomLeft()).y() < canvas.viewport().height()


def test_a_block_released_just_beside_a_wire_lands_on_it(window, qtbot):
    doc, canvas = window.document, window.canvas
    wire = canvas.wire_item(Wire("conv_b", "flat"))
    beside = wire.path.pointAtPercent(0.15) + QPointF(12, 0)  # beside the line, clear of its shape label
    assert canvas.wire_at(beside) is None
    viewport, start, end = canvas.viewport(), canvas.block_center("dense"), canvas.mapFromScene(beside)
    qtbot.mousePress(viewport, Qt.MouseButton.LeftButton, pos=start)
    for i in range(1, 11):
        qtbot.mouseMove(viewport, pos=start + (end - start) * (i / 10))
    # The wire lights up, with the insertion bar above the block, which is see-through while it moves.
    assert wire.highlighted and canvas.marker.isVisible() and canvas.block("dense").opacity() < 1
    qtbot.mouseRelease(viewport, Qt.MouseButton.LeftButton, pos=end)
    assert not canvas.marker.isVisible()
    assert layer_ids(doc) == ["conv_a", "conv_b", "dense", "flat"]
    assert window.undo_action.text().startswith("&Undo Move")
    assert not canvas.has_manual_positions
    assert_clean_layout(canvas)


def test_escape_during_a_move_puts_the_block_back(window, qtbot):
    canvas = window.canvas
    before = canvas.block("conv_a").pos()
    viewport, start = canvas.viewport(), canvas.block_center("conv_a")
    qtbot.mousePress(viewport, Qt.MouseButton.LeftButton, pos=start)
    for i in range(1, 8):
        qtbot.mouseMove(viewport, pos=start + QPoint(0, 30 * i))  # over conv_b
    assert canvas.block("conv_a").pos() != before
    qtbot.keyClick(canvas, Qt.Key.Key_Escape)
    assert canvas.block("conv_a").pos() == before and not canvas.has_manual_positions
    assert canvas.block("conv_a").opacity() == 1 and not canvas.marker.isVisible()
    qtbot.mouseRelease(viewport, Qt.MouseButton.LeftButton, pos=start + QPoint(0, 210))
    assert canvas.block("conv_a").pos() == before and window.document.undo_stack.count() == 0


def test_a_block_dropped_on_another_block_away_from_wires_moves_aside_to_free_space(window, qtbot):
    doc, canvas = window.document, window.canvas
    flat = canvas.block("flat").rect_in_scene()
    target = QPointF(flat.center().x() + 80, flat.center().y())  # on Flatten's body, far from any wire
    assert canvas.wire_at(target) is None and canvas.any_block_at(target).key == "flat"
    mouse_drag(qtbot, canvas, canvas.block_center("conv_a"), canvas.mapFromScene(target), steps=10)
    assert layer_ids(doc) == ["conv_a", "conv_b", "flat", "dense"] and doc.undo_stack.count() == 0
    assert canvas.has_manual_positions
    rects = block_rects(canvas)
    moved = rects.pop("conv_a")
    assert not any(moved.intersects(rect) for rect in rects.values())
    # Beside Flatten, as close to where it was dropped as the room allows.
    assert moved.top() == pytest.approx(flat.top(), abs=1)
    assert moved.left() == pytest.approx(flat.right() + BLOCK_GAP, abs=1)


def test_connecting_a_side_branch_to_the_output_makes_it_the_network_output(window, qtbot):
    doc, canvas = window.document, window.canvas
    window.editor.insert_at_target("GlobalAvgPool2D", DropTarget("after", node="conv_b"))
    pool = window.selection.layer_id
    window.editor.connect("conv_b", "flat")  # the pooling branch now feeds nothing
    assert doc.analysis().warnings
    mouse_drag(qtbot, canvas, canvas.output_port_pos(pool), canvas.input_port_pos(OUTPUT))
    assert layer_ids(doc)[-1] == pool
    assert window.undo_action.text().startswith("&Undo Make")


def block_rects(canvas) -> dict[str, QRectF]:
    return {key: block.rect_in_scene() for key, block in canvas.blocks.items()}


def assert_clean_layout(canvas) -> None:
    """No two blocks overlap and no wire passes through a block (sampled along every wire)."""
    rects = block_rects(canvas)
    keys = list(rects)
    for i, a in enumerate(keys):
        for b in keys[i + 1:]:
            assert not rects[a].adjusted(-4, -4, 4, 4).intersects(rects[b]), (a, b)
    for item in canvas.edges:
        for step in range(401):
            point = item.path.pointAtPercent(step / 400)
            for key, rect in rects.items():
                assert not rect.adjusted(1, 1, -1, -1).contains(point), (item.wire, key)


def resnet_like(blocks: int, width: int = 8) -> dict:
    layers = [{"id": "stem", "type": "Conv2D", "filters": width, "kernel_size": 3, "padding": "same"}]
    previous = "stem"
    for i in range(blocks):
        stride = 2 if i % 3 == 2 else 1
        out = width * 2 if stride == 2 else width
        layers += [
            {"id": f"c{i}a", "type": "Conv2D", "filters": out, "kernel_size": 3, "stride": stride,
             "padding": "same", "inputs": [previous]},
            {"id": f"c{i}b", "type": "Conv2D", "filters": out, "kernel_size": 3, "padding": "same"},
        ]
        shortcut = previous
        if stride == 2:
            layers.append({"id": f"p{i}", "type": "Conv2D", "filters": out, "kernel_size": 1, "stride": 2,
                           "inputs": [previous]})
            shortcut = f"p{i}"
        layers += [{"id": f"add{i}", "type": "Add", "inputs": [f"c{i}b", shortcut]},
                   {"id": f"r{i}", "type": "ReLU"}]
        previous, width = f"r{i}", out
    layers += [{"id": "gap", "type": "GlobalAvgPool2D"}, {"id": "out", "type": "Dense", "units": 10}]
    return {"format": FORMAT, "input": {"shape": [32, 32, 3]}, "layers": layers}


def test_layout_of_a_residual_network_has_no_overlaps_no_wire_through_a_block_and_a_straight_main_path(window):
    doc, canvas = window.document, window.canvas
    doc.load_project(resnet_like(6), "fashion-mnist-mini", {})
    assert doc.analysis().ok
    assert_clean_layout(canvas)
    main = ["stem"] + [k for i in range(6) for k in (f"c{i}a", f"c{i}b", f"add{i}", f"r{i}")] + ["gap", "out"]
    xs = {canvas.block(k).pos().x() for k in main}
    assert xs == {canvas.input_block.pos().x()}  # one straight column
    ys = [canvas.block(k).pos().y() for k in main]
    assert ys == sorted(ys)
    assert canvas.block("p2").pos().y() == canvas.block("c2a").pos().y()  # the projection beside its branch


def test_layout_of_inception_blocks_puts_branches_side_by_side(window):
    doc, canvas = window.document, window.canvas
    window.editor.insert_composite("inception", DropTarget("after", node="conv_a"))
    window.editor.insert_composite("inception", DropTarget("after", node="conv_b"))
    assert doc.analysis().ok
    assert_clean_layout(canvas)
    branch_heads = [s["id"] for s in doc.layers() if s["inputs"] == ["conv_a"]]
    assert len(branch_heads) == 4
    assert len({canvas.block(k).pos().y() for k in branch_heads}) == 1  # one rank, side by side


def test_a_free_spot_is_the_nearest_place_clear_of_every_other_box():
    column = [(0.0, 0.0, 100.0, 50.0), (0.0, 100.0, 100.0, 50.0)]
    assert free_spot((300.0, 0.0, 100.0, 50.0), column, 20.0) == (300.0, 0.0)  # already clear: stays
    assert free_spot((60.0, 100.0, 100.0, 50.0), column, 20.0) == (120.0, 100.0)  # over a box: steps aside
    assert free_spot((0.0, 170.0, 100.0, 50.0), column, 20.0) == (0.0, 170.0)  # exactly the gap below: stays
    assert free_spot((0.0, 160.0, 100.0, 50.0), column, 20.0) == (0.0, 170.0)  # a short hop down clears it
    # Far to the side every box is passed: there always is a place.
    crowd = [(x * 50.0, y * 50.0, 60.0, 60.0) for x in range(6) for y in range(6)]
    left, top = free_spot((100.0, 100.0, 60.0, 60.0), crowd, 10.0)
    assert all(left + 70 <= x or x + 70 <= left or top + 70 <= y or y + 70 <= top for x, y, _, _ in crowd)


def test_a_format_1_project_loads_as_a_chain_and_is_kept_in_format_2(window, tmp_path):
    doc, canvas = window.document, window.canvas
    architecture = doc.architecture()
    assert architecture["format"] == FORMAT
    assert inputs(doc) == {"conv_a": [INPUT], "conv_b": ["conv_a"], "flat": ["conv_b"], "dense": ["flat"]}
    assert [item.wire for item in canvas.edges] == [Wire(INPUT, "conv_a"), Wire("conv_a", "conv_b"),
                                                    Wire("conv_b", "flat"), Wire("flat", "dense"),
                                                    Wire("dense", OUTPUT)]
    xs = {block.pos().x() for block in canvas.blocks.values()}
    assert len(xs) == 1  # a chain is one column
    assert_clean_layout(canvas)


def test_ports_light_up_under_the_pointer_and_the_status_bar_explains(window, qtbot):
    canvas = window.canvas
    qtbot.mouseMove(canvas.viewport(), pos=canvas.output_port_pos("conv_a"))
    assert canvas.block("conv_a").hover_port == "out"
    assert "connect" in window.statusBar().currentMessage()
    qtbot.mouseMove(canvas.viewport(), pos=canvas.block_center("conv_b") + QPoint(60, 0))
    assert canvas.block("conv_a").hover_port is None


@pytest.mark.parametrize("key", ["resnet8", "inception_lite"])
def test_the_branching_templates_open_with_a_clean_layout(qtbot, tmp_path, key):
    from cnn_studio.builder.templates import list_templates

    window = make_window(qtbot, tmp_path)
    template = next(t for t in list_templates() if t.key == key)
    window.project.new_project(template)
    doc, canvas = window.document, window.canvas
    assert doc.analysis().ok
    assert len(canvas.edges) > len(doc.layers()) + 1  # branches: more wires than a chain has
    assert_clean_layout(canvas)
    # The main path runs straight down from the input to the output.
    xs = {canvas.input_block.pos().x(), canvas.output_block.pos().x(), canvas.block(doc.layers()[-1]["id"]).pos().x()}
    assert len(xs) == 1


def test_menus_connect_and_insert_without_dragging(window):
    doc, canvas = window.document, window.canvas
    add = insert_add(window)
    menu = canvas.block_menu("conv_a")
    connect = next(a.menu() for a in menu.actions() if a.menu() and a.text() == "Connect Output To")
    choices = {a.text(): a for a in connect.actions()}
    assert not any(text.startswith("Conv2D 1") for text in choices)  # not to itself
    next(a for text, a in choices.items() if text.endswith("(Add)")).trigger()
    assert inputs(doc)[add] == ["conv_b", "conv_a"]
    wire_menu = canvas.wire_menu(Wire("conv_a", add, 1))
    assert canvas.selected_wire == Wire("conv_a", add, 1)
    insert = next(a.menu() for a in wire_menu.actions() if a.menu() and a.text() == "Insert Layer Here")
    activation = next(a.menu() for a in insert.actions() if a.text() == "Activation")
    next(a for a in activation.actions() if a.text() == "ReLU").trigger()
    relu = inputs(doc)[add][1]
    assert doc.layer(doc.index_of(relu))["type"] == "ReLU" and inputs(doc)[relu] == ["conv_a"]
    disconnect = next(a for a in canvas.wire_menu(Wire(relu, add, 1)).actions() if a.text() == "Disconnect")
    disconnect.trigger()
    assert inputs(doc)[add] == ["conv_b"]


@pytest.mark.parametrize("zoom", [1.0, 0.5, 0.3])
def test_a_click_in_a_blocks_middle_selects_it_and_a_drag_from_its_port_connects_at_any_zoom(window, qtbot, zoom):
    """Zoomed out, the ports reach further than they are drawn, but never over the middle of a block."""
    canvas = window.canvas
    canvas.resetTransform()
    canvas.scale(zoom, zoom)
    canvas.centerOn(canvas.block("conv_b"))
    middle = canvas.mapFromScene(canvas.block("conv_b").rect_in_scene().center())
    window.selection.select(None)
    qtbot.mouseClick(canvas.viewport(), Qt.MouseButton.LeftButton, pos=middle)
    assert window.selection.layer_id == "conv_b"
    assert canvas.port_at(canvas.mapToScene(middle)) is None
    # Pressing on the output port itself still starts a wire.
    assert canvas.port_at(canvas.block("conv_b").output_port()) == ("out", "conv_b")


def test_wiring_into_a_one_input_layer_replaces_its_input_and_says_so(window):
    said: list[str] = []
    window.editor.notice.connect(said.append)
    assert window.editor.connect(INPUT, "conv_b")
    assert inputs(window.document)["conv_b"] == [INPUT]
    assert said == ["conv2d_2 now takes the input instead of conv2d_1 (a one-input layer; Ctrl+Z puts the old "
                    "wire back)."]
    # conv_a now feeds nothing: a warning, not silence.
    assert any("conv2d_1" in text for text in window.problems.texts())
    window.undo_action.trigger()
    assert inputs(window.document)["conv_b"] == ["conv_a"]


def test_a_wire_to_a_block_moved_by_hand_goes_round_the_blocks_in_its_way(window, qtbot):
    """Dragged below the rest of the chain, the first convolution's wires would run straight through
    the blocks between; they take a lane beside them instead."""
    canvas = window.canvas
    below = canvas.block("dense").rect_in_scene().bottom() + 120
    target = canvas.mapFromScene(QPointF(canvas.block("conv_a").top_center().x(), below))
    mouse_drag(qtbot, canvas, canvas.block_center("conv_a"), target, steps=10)
    assert canvas.has_manual_positions
    moved = [item for item in canvas.edges if "conv_a" in (item.wire.source, item.wire.target)]
    assert moved
    for item in moved:
        for key, block in canvas.blocks.items():
            if key in (item.wire.source, item.wire.target):
                continue
            rect = block.rect_in_scene()
            points = [item.path.pointAtPercent(i / 200) for i in range(201)]
            assert not any(rect.contains(p) for p in points), (item.wire, key)
    canvas.tidy()  # back in the layout, the wires take their slots again
    assert not canvas.has_manual_positions
