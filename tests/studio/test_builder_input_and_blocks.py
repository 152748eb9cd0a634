"""The Input block on the canvas (selectable; Delete says why it stays) and Edit > Insert Layer > Blocks
(the palette's composite blocks, each inserted as one undoable edit after the selection)."""

from __future__ import annotations

from typing import Any

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QMenu

from cnn_studio.builder.composites import COMPOSITES
from cnn_studio.builder.editor import INPUT_KEPT, DropTarget
from cnn_studio.graph import INPUT
from tests.studio.builder_helpers import layer_ids, layer_types, make_window


@pytest.fixture
def window(qtbot, tmp_path):
    return make_window(qtbot, tmp_path)


def click_input_block(qtbot, canvas) -> None:
    centre = canvas.mapFromScene(canvas.input_block.rect_in_scene().center())
    qtbot.mouseClick(canvas.viewport(), Qt.MouseButton.LeftButton, pos=centre)


def insert_menu(window) -> QMenu:
    return next(a.menu() for a in window.menus["Edit"].actions() if a.menu() and "Insert" in a.text())


def blocks_menu(window) -> QMenu:
    return next(a.menu() for a in insert_menu(window).actions() if a.menu() and a.text() == "Blocks")


def block_action(window, key: str):
    return next(a for a in blocks_menu(window).actions() if a.text() == COMPOSITES[key].title)


def structure(layers: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The layers with ids replaced by positions: equal for the same edit made twice (fresh ids each time)."""
    position = {spec["id"]: i for i, spec in enumerate(layers)}
    position[INPUT] = INPUT
    return [{**{k: v for k, v in spec.items() if k != "id"}, "inputs": [position[i] for i in spec.get("inputs", [])]}
            for spec in layers]


# -- the Input block -------------------------------------------------------------------------------------------
def test_clicking_the_input_block_selects_it_and_delete_says_why_it_stays(window, qtbot):
    doc, canvas = window.document, window.canvas
    before, steps = doc.layers(), doc.undo_stack.count()
    click_input_block(qtbot, canvas)
    assert window.selection.input_selected and window.selection.layer_id is None
    assert canvas.input_block.selected
    assert window.inspector.title.text() == "Input"  # the inspector says what it is, and that it stays
    assert "can't be deleted" in window.inspector.description.text()
    assert "follows the dataset" in window.inspector.facts.text()
    # Delete stays enabled so that choosing it can explain itself; the other block edits have nothing to act on.
    assert window.delete_action.isEnabled()
    assert not window.duplicate_action.isEnabled() and not window.move_up_action.isEnabled()

    canvas.setFocus()
    qtbot.keyClick(canvas, Qt.Key.Key_Delete)
    assert window.statusBar().currentMessage() == INPUT_KEPT
    assert "Input block can't be deleted" in INPUT_KEPT and "Train tab" in INPUT_KEPT
    assert doc.layers() == before and doc.undo_stack.count() == steps and not doc.is_modified()
    assert window.selection.input_selected  # still selected: nothing happened to it


def test_edit_delete_with_the_input_selected_shows_the_message(window, qtbot):
    doc = window.document
    before, steps = doc.layers(), doc.undo_stack.count()
    click_input_block(qtbot, window.canvas)
    window.statusBar().clearMessage()
    window.delete_action.trigger()
    assert window.statusBar().currentMessage() == INPUT_KEPT
    assert doc.layers() == before and doc.undo_stack.count() == steps
    # Backspace deletes too, and says the same.
    window.statusBar().clearMessage()
    window.canvas.setFocus()
    qtbot.keyClick(window.canvas, Qt.Key.Key_Backspace)
    assert window.statusBar().currentMessage() == INPUT_KEPT


def test_the_input_cannot_be_removed_by_id_either(window):
    with_notice = []
    window.editor.notice.connect(with_notice.append)
    assert window.editor.remove(INPUT) is False
    assert with_notice == [INPUT_KEPT]


def test_a_locked_document_still_explains_the_input(window, qtbot):
    click_input_block(qtbot, window.canvas)
    window.document.set_locked(True, "training is running")
    assert not window.delete_action.isEnabled()
    window.canvas.setFocus()
    qtbot.keyClick(window.canvas, Qt.Key.Key_Delete)
    assert window.statusBar().currentMessage() == INPUT_KEPT  # the reason that holds whatever the lock


def test_the_keyboard_walks_to_the_input_and_back(window, qtbot):
    doc, canvas = window.document, window.canvas
    ids = layer_ids(doc)
    window.selection.select(ids[0])
    canvas.setFocus()
    qtbot.keyClick(canvas, Qt.Key.Key_Up)
    assert window.selection.input_selected and canvas.input_block.selected
    qtbot.keyClick(canvas, Qt.Key.Key_Up)
    assert window.selection.input_selected  # the top: it stays
    qtbot.keyClick(canvas, Qt.Key.Key_Down)
    assert window.selection.layer_id == ids[0] and not canvas.input_block.selected


def test_selecting_a_layer_or_a_wire_after_the_input_moves_the_selection(window, qtbot):
    doc, canvas = window.document, window.canvas
    click_input_block(qtbot, canvas)
    first = layer_ids(doc)[0]
    qtbot.mouseClick(canvas.viewport(), Qt.MouseButton.LeftButton, pos=canvas.block_center(first))
    assert window.selection.layer_id == first and not canvas.input_block.selected
    assert window.inspector.title.text() == "conv2d_1"
    click_input_block(qtbot, canvas)
    qtbot.mouseClick(canvas.viewport(), Qt.MouseButton.LeftButton, pos=canvas.gap_center(1))
    assert canvas.selected_wire is not None and not window.selection.input_selected
    assert not window.delete_action.isEnabled()
    assert window.inspector.title.text() == "Network"


def test_deleting_a_layer_still_works_after_the_input_was_selected(window, qtbot):
    doc, canvas = window.document, window.canvas
    ids = layer_ids(doc)
    click_input_block(qtbot, canvas)
    qtbot.keyClick(canvas, Qt.Key.Key_Down)
    window.delete_action.trigger()
    assert layer_ids(doc) == ids[1:]
    assert window.undo_action.text() == "&Undo Delete Conv2D 1"
    window.undo_action.trigger()
    assert layer_ids(doc) == ids


# -- Edit > Insert Layer > Blocks ------------------------------------------------------------------------------
def test_the_blocks_submenu_lists_the_palettes_composites_with_their_descriptions(window):
    insert = insert_menu(window)
    titles = [a.text() for a in insert.actions() if a.menu()]
    assert titles[-1] == "Blocks"  # after the layer categories, as in the palette
    menu = blocks_menu(window)
    assert menu.toolTipsVisible()
    assert [a.text() for a in menu.actions()] == [c.title for c in COMPOSITES.values()]
    for key, composite in COMPOSITES.items():
        tip = block_action(window, key).toolTip()
        assert composite.title in tip and composite.description in tip and "one undo step" in tip
        assert "double-click" not in tip  # the palette's drag hint does not belong in a menu


@pytest.mark.parametrize("key", list(COMPOSITES))
def test_a_block_from_the_menu_goes_after_the_selection_as_one_undoable_edit(window, key):
    doc = window.document
    ids = layer_ids(doc)
    before, steps = doc.layers(), doc.undo_stack.count()
    window.selection.select(ids[0])  # the first convolution: 26 x 26 x 32
    block_action(window, key).trigger()
    added = [spec for spec in doc.layers() if spec["id"] not in ids]
    assert len(added) == len(COMPOSITES[key].build((26, 26, 32)))
    assert doc.undo_stack.count() == steps + 1
    assert window.undo_action.text() == f"&Undo Insert {COMPOSITES[key].title}"
    # Between the selected layer and what it fed, like the layers of Insert Layer.
    assert all(ids[0] in spec["inputs"] or spec["inputs"][0] in {s["id"] for s in added} for spec in added)
    assert doc.layer(doc.index_of(ids[1]))["inputs"] == [added[-1]["id"]]
    assert window.selection.layer_id == added[0]["id"]
    assert doc.analysis().ok
    window.undo_action.trigger()
    assert doc.layers() == before
    window.redo_action.trigger()
    assert [s["id"] for s in doc.layers() if s["id"] not in ids] == [s["id"] for s in added]


def test_a_block_from_the_menu_is_placed_as_the_palette_drop_places_it(window):
    """The menu's edit is the palette's edit: the same layers, settings and wiring (ids aside)."""
    doc, editor = window.document, window.editor
    first = layer_ids(doc)[2]
    window.selection.select(first)
    block_action(window, "residual_down").trigger()
    from_menu = structure(doc.layers())
    window.undo_action.trigger()
    window.selection.select(first)
    editor.insert_composite("residual_down", DropTarget("after", node=first))  # what a drop below the block does
    assert structure(doc.layers()) == from_menu


def test_with_nothing_selected_a_block_is_appended_as_a_double_click_appends_it(window, qtbot):
    doc, palette = window.document, window.layer_palette
    window.selection.select(None)
    block_action(window, "residual").trigger()
    from_menu = structure(doc.layers())
    assert layer_types(doc)[-2:] == ["Add", "ReLU"]
    window.undo_action.trigger()
    palette.tree.scrollToItem(palette.composite_item("residual"))
    rect = palette.tree.visualItemRect(palette.composite_item("residual"))
    qtbot.mouseClick(palette.tree.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
    qtbot.mouseDClick(palette.tree.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
    assert structure(doc.layers()) == from_menu


def test_with_the_input_selected_a_block_and_a_layer_go_first(window, qtbot):
    doc = window.document
    ids = layer_ids(doc)
    click_input_block(qtbot, window.canvas)
    block_action(window, "inception").trigger()
    added = [spec for spec in doc.layers() if spec["id"] not in ids]
    assert all(spec["inputs"] != [INPUT] or spec["type"] in ("Conv2D", "MaxPool2D") for spec in added)
    assert doc.layer(doc.index_of(ids[0]))["inputs"] == [added[-1]["id"]]  # the old first layer takes the block
    assert layer_types(doc)[len(added) - 1] == "Concatenate"
    window.undo_action.trigger()
    assert layer_ids(doc) == ids
    # A single layer from Insert Layer goes first too.
    click_input_block(qtbot, window.canvas)
    activation = next(a.menu() for a in insert_menu(window).actions() if a.text() == "Activation")
    next(a for a in activation.actions() if a.text() == "ReLU").trigger()
    assert layer_types(doc)[0] == "ReLU" and doc.layers()[0]["inputs"] == [INPUT]


def test_a_locked_document_refuses_a_block_from_the_menu_and_says_why(window):
    doc = window.document
    before, steps = doc.layers(), doc.undo_stack.count()
    doc.set_locked(True, "training is running")
    block_action(window, "inception").trigger()
    assert doc.layers() == before and doc.undo_stack.count() == steps
    assert "training is running" in window.statusBar().currentMessage()


def test_a_hint_going_away_leaves_a_notice_in_the_status_bar(window, qtbot):
    click_input_block(qtbot, window.canvas)
    qtbot.keyClick(window.canvas, Qt.Key.Key_Delete)
    bar = window.statusBar()
    assert bar.currentMessage() == INPUT_KEPT
    window.canvas.hint.emit("")  # the pointer leaves a port: its hint is cleared, not the notice
    assert bar.currentMessage() == INPUT_KEPT
    window.canvas.hint.emit("Drag to an input port to connect")
    assert bar.currentMessage() == "Drag to an input port to connect"
    window.canvas.hint.emit("")
    assert bar.currentMessage() == ""
