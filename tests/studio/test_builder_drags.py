"""Drags as a person starts them: from the palette (a real press and move starts a QDrag, whose payload
is then dropped on the canvas) and on the canvas (blocks and ports), and none of it while training locks
the design."""

from __future__ import annotations

import pytest
from PySide6.QtCore import QMimeData, QPoint, Qt
from PySide6.QtGui import QDrag

from cnn_studio.builder.mime import layer_type_from
from cnn_studio.graph import Wire
from tests.studio.builder_helpers import drag_and_drop, layer_ids, layer_types, make_window


@pytest.fixture
def window(qtbot, tmp_path):
    return make_window(qtbot, tmp_path)


class DragRecorder:
    """Stands in for QDrag.exec (offscreen it returns at once): records each drag's payload and drops
    it on the canvas at ``target`` the way Qt delivers a real drop."""

    def __init__(self, canvas) -> None:
        self.canvas = canvas
        self.target: QPoint | None = None
        self.payloads: list[QMimeData] = []

    def exec(self, drag: QDrag) -> Qt.DropAction:
        self.payloads.append(drag.mimeData())
        if self.target is None:
            return Qt.DropAction.IgnoreAction
        accepted, _marker = drag_and_drop(self.canvas, drag.mimeData(), self.target)
        return Qt.DropAction.CopyAction if accepted else Qt.DropAction.IgnoreAction


@pytest.fixture
def drags(window, monkeypatch):
    recorder = DragRecorder(window.canvas)
    monkeypatch.setattr(QDrag, "exec", lambda drag, *_args, **_kwargs: recorder.exec(drag))
    return recorder


def press_and_move(qtbot, widget, start: QPoint, end: QPoint, steps: int = 6) -> None:
    """A left-button press, a move in steps and the release, as a hand on a mouse does."""
    qtbot.mousePress(widget, Qt.MouseButton.LeftButton, pos=start)
    for i in range(1, steps + 1):
        point = start + (end - start) * (i / steps)
        qtbot.mouseMove(widget, pos=QPoint(round(point.x()), round(point.y())))
    qtbot.mouseRelease(widget, Qt.MouseButton.LeftButton, pos=end)


def palette_point(window, type_name: str) -> QPoint:
    tree = window.layer_palette.tree
    item = window.layer_palette.item_for(type_name)
    tree.scrollToItem(item)
    return tree.visualItemRect(item).center()


def drag_from_palette(qtbot, window, type_name: str) -> None:
    start = palette_point(window, type_name)
    press_and_move(qtbot, window.layer_palette.tree.viewport(), start, start + QPoint(60, 8))


def test_a_drag_started_in_the_palette_inserts_the_layer_where_it_is_dropped(window, drags, qtbot):
    doc, canvas = window.document, window.canvas
    before = layer_types(doc)
    drags.target = canvas.gap_center(1)
    drag_from_palette(qtbot, window, "Dropout")
    (payload,) = drags.payloads
    assert layer_type_from(payload) == "Dropout"
    assert layer_types(doc) == before[:1] + ["Dropout"] + before[1:]
    assert window.undo_action.text() == "&Undo Insert Dropout"


def test_a_block_dragged_on_the_canvas_onto_a_wire_moves_there(window, qtbot):
    doc, canvas = window.document, window.canvas
    ids = layer_ids(doc)
    press_and_move(qtbot, canvas.viewport(), canvas.block_center(ids[1]), canvas.wire_center(Wire(ids[3], ids[4])),
                   steps=10)
    assert layer_ids(doc) == [ids[0], ids[2], ids[3], ids[1]] + ids[4:]


def test_no_drag_changes_the_design_while_training_locks_it(window, drags, qtbot):
    doc, canvas = window.document, window.canvas
    ids = layer_ids(doc)
    doc.set_locked(True, "training is running")
    drags.target = canvas.gap_center(1)
    # The palette starts no drag at all, and says why in its tooltip.
    drag_from_palette(qtbot, window, "Dropout")
    assert drags.payloads == []
    assert "locked" in window.layer_palette.toolTip()
    # A block dragged onto a wire stays where the network has it.
    press_and_move(qtbot, canvas.viewport(), canvas.block_center(ids[1]), canvas.wire_center(Wire(ids[3], ids[4])),
                   steps=10)
    assert layer_ids(doc) == ids
    # A wire drawn from a port is refused with the reason.
    with qtbot.waitSignal(doc.edit_refused) as refused:
        press_and_move(qtbot, canvas.viewport(), canvas.output_port_pos(ids[0]), canvas.block_center(ids[4]))
    assert refused.args == ["training is running"]
    assert layer_ids(doc) == ids and doc.undo_stack.count() == 0
    doc.set_locked(False)
    drag_from_palette(qtbot, window, "Dropout")
    assert len(drags.payloads) == 1 and "Dropout" in layer_types(doc)
