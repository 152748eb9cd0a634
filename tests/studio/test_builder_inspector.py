"""The inspector: a form generated from the layer schema, applying each change at once (undoably)."""

from __future__ import annotations

import pytest
from PySide6.QtCore import Qt

from cnn_studio.builder.field_editors import BoolEditor, ChoiceEditor, FloatEditor, IntEditor, PaddingEditor
from engine.layers import LAYER_TYPES
from tests.studio.builder_helpers import make_window

KIND_EDITORS = {"int": IntEditor, "size": IntEditor, "float": FloatEditor, "bool": BoolEditor,
                "choice": ChoiceEditor, "padding": PaddingEditor}


@pytest.fixture
def window(qtbot, tmp_path):
    return make_window(qtbot, tmp_path)


def test_form_is_generated_from_the_layer_schema(window):
    for type_name, cls in LAYER_TYPES.items():
        layer_id = window.editor.append_layer(type_name)
        inspector = window.inspector
        count = len(window.document.layers())
        assert inspector.title.text() == window.document.analysis().layers[-1].name
        assert inspector.kind.text() == f"{type_name} · layer {count} of {count}"
        assert inspector.description.text() == cls.description
        assert list(inspector.editors) == [f.name for f in cls.fields]
        spec = window.document.layer(window.document.index_of(layer_id))
        for field in cls.fields:
            editor = inspector.editors[field.name]
            assert isinstance(editor, KIND_EDITORS[field.kind]), (type_name, field.name)
            assert editor.toolTip().startswith(field.help)
            if field.kind in ("int", "size") and field.maximum is not None:
                assert editor.spin.maximum() == field.maximum
                assert editor.spin.minimum() == field.minimum - (1 if field.optional else 0)
            assert editor.value() == spec.get(field.name), (type_name, field.name)


def test_changing_a_spin_box_applies_at_once_and_undoes_in_one_step(window):
    doc = window.document
    conv = doc.layers()[0]["id"]
    window.selection.select(conv)
    filters = window.inspector.editors["filters"].spin
    for value in (40, 44, 48):  # a user scrolling the wheel
        filters.setValue(value)
    assert doc.layer(0)["filters"] == 48
    params = 3 * 3 * 1 * 48 + 48
    assert window.canvas.block(conv).content.params == f"{params:,} params"
    assert f"{params:,}" in window.inspector.facts.text()
    assert doc.undo_stack.count() == 1
    assert window.undo_action.text() == "&Undo Set Conv2D filters"
    window.undo_action.trigger()
    assert doc.layer(0)["filters"] == 32
    assert filters.value() == 32  # the form follows undo


def test_choice_padding_bool_and_optional_editors(window):
    doc = window.document
    conv, pool, dense = (doc.layers()[i]["id"] for i in (0, 1, 5))
    window.selection.select(conv)
    editors = window.inspector.editors
    editors["activation"].combo.setCurrentIndex(editors["activation"].combo.findData(None))
    assert doc.layer(0)["activation"] is None
    padding = editors["padding"]
    padding.combo.setCurrentText("same")
    assert doc.layer(0)["padding"] == "same"
    assert window.canvas.edges[1].label == "28 × 28 × 32"
    padding.combo.setCurrentText("pixels")
    padding.pixels.setValue(2)
    assert doc.layer(0)["padding"] == 2
    editors["use_bias"].box.setChecked(False)
    assert doc.layer(0)["use_bias"] is False
    assert window.canvas.block(conv).content.params == f"{3 * 3 * 1 * 32:,} params"

    window.selection.select(pool)
    stride = window.inspector.editors["stride"].spin
    assert stride.text() == "= pool size"  # None: the stride follows the pool size
    stride.setValue(1)
    assert doc.layer(1)["stride"] == 1
    stride.setValue(stride.minimum())
    assert doc.layer(1)["stride"] is None

    window.selection.select(dense)
    rate_layer = window.editor.insert_layer("Dropout", 6)
    window.selection.select(rate_layer)
    window.inspector.editors["rate"].spin.setValue(0.25)
    assert doc.layer(6)["rate"] == pytest.approx(0.25)


def test_renaming_a_layer_and_restoring_the_default_name(window, qtbot):
    doc = window.document
    conv = doc.layers()[0]["id"]
    window.selection.select(conv)
    name = window.inspector.name_edit
    assert name.placeholderText() == "conv2d_1"
    name.setText("edge_detectors")
    name.editingFinished.emit()
    assert doc.layer(0)["name"] == "edge_detectors"
    assert window.canvas.block(conv).content.subtitle == "edge_detectors"
    name.setText("")
    name.editingFinished.emit()
    assert "name" not in doc.layer(0)
    window.undo_action.trigger()
    assert doc.layer(0)["name"] == "edge_detectors"


def test_no_selection_describes_the_network(window):
    window.selection.select(None)
    inspector = window.inspector
    assert inspector.title.text() == "Network"
    assert inspector.editors == {}
    assert "28 × 28 × 1" in inspector.facts.text()


def test_typed_values_apply_and_form_is_disabled_while_locked(window, qtbot):
    doc = window.document
    dense = doc.layers()[6]["id"]
    window.selection.select(dense)
    spin = window.inspector.editors["units"].spin
    spin.selectAll()
    qtbot.keyClicks(spin.lineEdit(), "7")
    qtbot.keyClick(spin.lineEdit(), Qt.Key.Key_Enter)
    assert doc.layer(6)["units"] == 7
    doc.set_locked(True, "training is running")
    assert not window.inspector.form_host.isEnabled()
    doc.set_locked(False)
    assert window.inspector.form_host.isEnabled()


def test_a_name_being_typed_lands_on_its_own_layer_when_another_block_is_clicked(window, qtbot):
    doc = window.document
    first, third = doc.layers()[0]["id"], doc.layers()[2]["id"]
    window.activateWindow()
    qtbot.waitActive(window)
    window.selection.select(first)
    name = window.inspector.name_edit
    name.setFocus()
    qtbot.waitUntil(name.hasFocus)
    qtbot.keyClicks(name, "stem")
    qtbot.mouseClick(window.canvas.viewport(), Qt.MouseButton.LeftButton, pos=window.canvas.block_center(third))
    assert window.selection.layer_id == third
    assert doc.layer(0).get("name") == "stem"
    assert "name" not in doc.layer(2)


def test_the_title_is_the_name_the_block_shows(window):
    doc = window.document
    second_conv = doc.layers()[2]["id"]
    window.selection.select(second_conv)
    assert window.inspector.title.text() == "conv2d_2" == window.canvas.block(second_conv).content.subtitle
    window.editor.set_name(second_conv, "wide")
    assert window.inspector.title.text() == "wide"


def type_into(qtbot, spin, text: str) -> None:
    spin.setFocus()
    spin.selectAll()
    qtbot.keyClicks(spin.lineEdit(), text)
    qtbot.keyClick(spin.lineEdit(), Qt.Key.Key_Enter)


def test_a_value_beyond_the_limit_is_brought_to_it_and_the_note_says_so(window, qtbot):
    doc = window.document
    pool = doc.layers()[1]["id"]
    window.activateWindow()
    window.selection.select(pool)
    editor = window.inspector.editors["pool_size"]
    assert "Allowed: 1 to 16 px." in editor.toolTip()
    type_into(qtbot, editor.spin, "20")
    # Not silently 2 (the keystroke refused): the largest allowed, and a note saying why.
    assert doc.layer(1)["pool_size"] == 16
    assert editor.note.isVisibleTo(editor)
    assert editor.note.text() == "Pool size is at most 16 px: 20 was set to 16."
    type_into(qtbot, editor.spin, "3")
    assert doc.layer(1)["pool_size"] == 3
    assert not editor.note.isVisibleTo(editor)

    conv = doc.layers()[0]["id"]
    window.selection.select(conv)
    filters = window.inspector.editors["filters"]
    type_into(qtbot, filters.spin, "0")
    assert doc.layer(0)["filters"] == 1
    assert filters.note.text() == "Filters is at least 1: 0 was set to 1."
    kernel = window.inspector.editors["kernel_size"]
    kernel.spin.setValue(31)
    kernel.spin.stepBy(1)  # the arrow or the wheel at the limit
    assert kernel.note.text() == "Kernel size is at most 31 px."
    assert doc.layer(0)["kernel_size"] == 31
