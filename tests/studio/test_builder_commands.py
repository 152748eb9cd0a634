"""Undo commands on the document: every edit undoes and redoes exactly, field edits merge, locks refuse."""

from __future__ import annotations

import copy

import pytest

from cnn_studio.builder import commands
from cnn_studio.builder.commands import InsertLayerCommand, MoveLayerCommand, RemoveLayerCommand, SetLayerCommand
from cnn_studio.builder.editor import ArchitectureEditor, new_layer_spec
from cnn_studio.builder.selection import BlockSelection
from cnn_studio.builder.templates import seed_architecture
from cnn_studio.document import ProjectDocument
from engine.layers import LAYER_TYPES


@pytest.fixture
def doc(qapp):
    return ProjectDocument(seed_architecture())


def types(doc):
    return [spec["type"] for spec in doc.layers()]


def test_each_command_undoes_and_redoes_exactly(doc):
    original = doc.architecture()
    ids = [s["id"] for s in doc.layers()]
    doc.push(InsertLayerCommand(doc, 1, {"type": "BatchNorm"}))
    after_insert = doc.architecture()
    assert types(doc)[1] == "BatchNorm"
    move = MoveLayerCommand(doc, ids[0], 3)
    doc.push(move)
    assert [s["id"] for s in doc.layers()][3] == ids[0]
    after_move = doc.architecture()
    spec = doc.layer(doc.index_of(ids[5]))
    doc.push(SetLayerCommand(doc, ids[5], {**spec, "units": 64}, field="units"))
    assert doc.layer(doc.index_of(ids[5]))["units"] == 64
    after_set = doc.architecture()
    doc.push(RemoveLayerCommand(doc, ids[4]))
    assert ids[4] not in [s["id"] for s in doc.layers()]
    after_remove = doc.architecture()

    snapshots = [original, after_insert, after_move, after_set, after_remove]
    for expected in reversed(snapshots[:-1]):
        doc.undo_stack.undo()
        assert doc.architecture() == expected
    for expected in snapshots[1:]:
        doc.undo_stack.redo()
        assert doc.architecture() == expected


def test_rapid_edits_of_one_field_merge_into_one_undo_step(doc, monkeypatch):
    clock = [100.0]
    monkeypatch.setattr(commands.time, "monotonic", lambda: clock[0])
    layer_id = doc.layers()[0]["id"]
    editor = ArchitectureEditor(doc, BlockSelection(doc))
    for filters in (33, 34, 35, 36):
        clock[0] += 0.2
        editor.set_field(layer_id, "filters", filters)
    assert doc.undo_stack.count() == 1
    assert doc.layer(0)["filters"] == 36
    # Another field, or the same field after a pause, is a new step.
    editor.set_field(layer_id, "stride", 2)
    clock[0] += commands.MERGE_SECONDS + 1
    editor.set_field(layer_id, "stride", 1)
    assert doc.undo_stack.count() == 3
    doc.undo_stack.undo()
    doc.undo_stack.undo()
    doc.undo_stack.undo()
    assert doc.layer(0)["filters"] == 32


def test_edits_that_return_to_the_start_vanish_from_the_history(doc, monkeypatch):
    monkeypatch.setattr(commands.time, "monotonic", lambda: 5.0)
    layer_id = doc.layers()[5]["id"]
    editor = ArchitectureEditor(doc, BlockSelection(doc))
    editor.set_field(layer_id, "units", 129)
    editor.set_field(layer_id, "units", 128)
    assert doc.undo_stack.count() == 0
    assert not doc.is_modified()


def test_setting_an_unchanged_value_is_not_an_edit(doc):
    editor = ArchitectureEditor(doc, BlockSelection(doc))
    assert editor.set_field(doc.layers()[0]["id"], "filters", 32) is False
    assert doc.undo_stack.count() == 0


def test_locked_document_refuses_every_edit(doc, qtbot):
    editor = ArchitectureEditor(doc, BlockSelection(doc))
    before = doc.architecture()
    doc.set_locked(True, "training is running")
    with qtbot.waitSignal(doc.edit_refused) as refused:
        assert editor.append_layer("Dropout") is None
    assert refused.args == ["training is running"]
    first = doc.layers()[0]["id"]
    assert not editor.set_field(first, "filters", 8)
    assert not editor.move(first, 3)
    assert not editor.remove(first)
    assert editor.duplicate(first) is None
    assert doc.architecture() == before and doc.undo_stack.count() == 0


def test_modified_flag_follows_the_undo_stack(doc):
    editor = ArchitectureEditor(doc, BlockSelection(doc))
    assert not doc.is_modified()
    editor.append_layer("Softmax")
    assert doc.is_modified()
    doc.undo_stack.undo()
    assert not doc.is_modified()
    doc.set_dataset_ref("fashion-mnist")
    assert doc.is_modified()
    doc.mark_saved()
    assert not doc.is_modified()


@pytest.mark.parametrize("type_name", list(LAYER_TYPES))
def test_every_palette_spec_is_a_valid_layer(type_name):
    spec = new_layer_spec(type_name)
    cls = LAYER_TYPES[type_name]
    layer = cls(**{k: v for k, v in spec.items() if k != "type"})  # the engine accepts it as it is
    assert set(layer.config) == {f.name for f in cls.fields}


def test_commands_address_layers_by_id_not_position(doc):
    """A command recorded before other edits still hits its own layer when replayed."""
    editor = ArchitectureEditor(doc, BlockSelection(doc))
    target = doc.layers()[5]["id"]
    editor.set_field(target, "units", 96)
    editor.insert_layer("Dropout", 0)
    editor.insert_layer("BatchNorm", 0)
    for _ in range(3):
        doc.undo_stack.undo()
    snapshot = copy.deepcopy(doc.architecture())
    for _ in range(3):
        doc.undo_stack.redo()
    assert doc.layer(doc.index_of(target))["units"] == 96
    assert types(doc)[:2] == ["BatchNorm", "Dropout"]
    for _ in range(3):
        doc.undo_stack.undo()
    assert doc.architecture() == snapshot
