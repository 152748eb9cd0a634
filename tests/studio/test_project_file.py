"""Project files: save and reopen the same document, refuse broken or foreign files without changing anything,
write atomically, keep recent files, and ask before losing changes."""

from __future__ import annotations

import json
import os
import stat

import pytest

from cnn_studio.project_file import (
    PROJECT_FORMAT,
    ProjectData,
    ProjectFileError,
    parse_project,
    read_project,
    write_project,
)
from tests.studio.builder_helpers import layer_types, make_window


@pytest.fixture
def window(qtbot, tmp_path):
    return make_window(qtbot, tmp_path, show=False)


def edit_a_little(window) -> None:
    doc = window.document
    window.editor.insert_layer("BatchNorm", 1)
    window.editor.set_field(doc.layers()[0]["id"], "filters", 24)
    window.editor.set_name(doc.layers()[6]["id"], "hidden")
    doc.set_dataset_ref("fashion-mnist")
    doc.set_training({"epochs": 3, "batch_size": 32, "optimizer": "adam", "learning_rate": 0.002})


def test_save_and_reopen_gives_the_same_document(window, qtbot, tmp_path):
    edit_a_little(window)
    doc = window.document
    assert window.isWindowModified() and window.windowTitle() == "CNN Studio — Untitled[*]"
    path = tmp_path / "fashion.cnnproj"
    window.dialogs.save_path = str(path)
    window.save_action.trigger()  # untitled: Save asks where
    assert path.is_file()
    assert not window.isWindowModified() and window.windowTitle() == "CNN Studio — fashion[*]"
    assert window.recent.paths() == [str(path.resolve())]
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temp files left over
    saved = json.loads(path.read_text())
    assert saved["format"] == PROJECT_FORMAT and saved["dataset"] == "fashion-mnist"

    (tmp_path / "other").mkdir()
    other = make_window(qtbot, tmp_path / "other", show=False)
    assert other.project.open_project(path)
    assert other.document.architecture() == doc.architecture()  # layer ids included
    assert other.document.dataset_ref == doc.dataset_ref
    assert other.document.training == doc.training
    assert other.document.file_path == path and not other.document.is_modified()
    assert other.canvas.order == window.canvas.order


def test_save_writes_over_the_same_file_and_clears_the_asterisk(window, tmp_path):
    path = tmp_path / "p.cnnproj"
    assert window.project.save_as(path)
    window.editor.append_layer("Softmax")
    assert window.isWindowModified()
    window.dialogs.save_path = None  # Save must not ask again
    assert window.project.save()
    assert read_project(path).architecture["layers"][-1]["type"] == "Softmax"
    assert not window.isWindowModified()


BROKEN = {
    "not JSON": "{\"format\": \"cnn-studio.project/1\", ",
    "a JSON list": "[1, 2, 3]",
    "no format": json.dumps({"architecture": {}}),
    "foreign format": json.dumps({"format": "keras.model/2", "architecture": {}}),
    "newer format": json.dumps({"format": "cnn-studio.project/2", "architecture": {}}),
    "no architecture": json.dumps({"format": PROJECT_FORMAT, "dataset": "x"}),
    "architecture not an object": json.dumps({"format": PROJECT_FORMAT, "architecture": [1]}),
    "bad input shape": json.dumps({"format": PROJECT_FORMAT, "architecture": {
        "format": "cnn-studio.architecture/1", "input": {"shape": [28, 28]}, "layers": []}}),
    "layers not a list": json.dumps({"format": PROJECT_FORMAT, "architecture": {
        "format": "cnn-studio.architecture/1", "input": {"shape": [28, 28, 1]}, "layers": {}}}),
    "unknown layer type": json.dumps({"format": PROJECT_FORMAT, "architecture": {
        "format": "cnn-studio.architecture/1", "input": {"shape": [28, 28, 1]}, "layers": [{"type": "Conv3D"}]}}),
    "dataset not a string": json.dumps({"format": PROJECT_FORMAT, "dataset": 5, "architecture": {
        "format": "cnn-studio.architecture/1", "input": {"shape": [28, 28, 1]}, "layers": []}}),
    "training of the wrong type": json.dumps({"format": PROJECT_FORMAT, "training": {"epochs": "five"},
                                              "architecture": {"format": "cnn-studio.architecture/1",
                                                               "input": {"shape": [28, 28, 1]}, "layers": []}}),
}


@pytest.mark.parametrize("case", list(BROKEN))
def test_broken_or_foreign_files_are_refused_and_change_nothing(window, tmp_path, case):
    path = tmp_path / "broken.cnnproj"
    path.write_text(BROKEN[case])
    window.editor.append_layer("Dropout")
    before = window.document.architecture()
    history = window.document.undo_stack.count()
    assert window.project.open_project(path) is False
    assert len(window.dialogs.errors) == 1
    title, message = window.dialogs.errors[0]
    assert title == "Cannot open the project" and str(path) in message
    assert window.document.architecture() == before
    assert window.document.undo_stack.count() == history and window.document.file_path is None
    assert window.recent.paths() == []


def test_a_truncated_project_is_explained_in_one_whole_sentence(window, tmp_path):
    path = tmp_path / "cut.cnnproj"
    saved = tmp_path / "whole.cnnproj"
    assert window.project.save_as(saved)
    text = saved.read_text()
    cut = text.index('"type": "Conv2D"') + len('"type": "Con')
    path.write_text(text[:cut])
    line = text[:cut].count("\n") + 1
    column = cut - text.rindex("\n", 0, cut) - len('"Con') + 0
    assert window.project.open_project(path) is False
    _title, message = window.dialogs.errors[-1]
    assert message == (f"{path}: not a CNN Studio project: the JSON is broken at line {line}, column {column}: "
                       "a quoted string starts there and is never closed (the file seems cut short).")
    # A broken, not truncated, file says what is wrong without claiming it is cut short.
    path.write_text('{"format": "cnn-studio.project/1" "architecture": {}}')
    with pytest.raises(ProjectFileError) as caught:
        read_project(path)
    assert str(caught.value).endswith("line 1, column 35: a comma is missing there.")


@pytest.mark.skipif(os.name != "posix", reason="POSIX permission bits")
def test_saved_projects_get_the_usual_permissions(window, tmp_path):
    old = os.umask(0o022)
    try:
        path = tmp_path / "shared.cnnproj"
        assert window.project.save_as(path)
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o644


def test_binary_and_missing_files_are_refused(window, tmp_path):
    binary = tmp_path / "image.cnnproj"
    binary.write_bytes(bytes(range(256)))
    with pytest.raises(ProjectFileError, match="not a text file"):
        read_project(binary)
    missing = tmp_path / "gone.cnnproj"
    window.recent.add(missing)
    assert not window.project.open_project(missing)
    assert "no such file" in window.dialogs.errors[-1][1]
    assert window.recent.paths() == []  # a vanished file leaves the recent list


def test_an_architecture_file_opens_as_an_untitled_project(window, tmp_path):
    arch = tmp_path / "tiny.json"
    arch.write_text(json.dumps({"format": "cnn-studio.architecture/1", "input": {"shape": [8, 8, 1]},
                                "layers": [{"type": "Flatten"}, {"type": "Dense", "units": 3}]}))
    assert window.project.open_project(arch)
    assert layer_types(window.document) == ["Flatten", "Dense"]
    assert window.document.file_path is None and window.document.input_shape == (8, 8, 1)


def test_design_problems_are_kept_and_bad_ids_repaired():
    data = parse_project({"format": PROJECT_FORMAT, "architecture": {
        "format": "cnn-studio.architecture/1", "input": {"shape": [4, 4, 1]},
        "layers": [{"type": "Conv2D", "kernel_size": 9, "id": "a"}, {"type": "Dense", "id": "a"},
                   {"type": "Flatten", "id": 7}]}})
    layers = data.architecture["layers"]
    # A repeated or odd id is replaced by a fresh one (the engine's, made from the layer's name).
    assert [spec["id"] for spec in layers] == ["a", "dense_1", "flatten_1"]
    assert data.architecture["format"] == "cnn-studio.architecture/2"
    assert data.architecture["layers"][0]["kernel_size"] == 9  # a design in progress stays as it was


def test_failed_writes_leave_the_old_file_untouched(window, tmp_path):
    path = tmp_path / "keep.cnnproj"
    assert window.project.save_as(path)
    original = path.read_bytes()
    with pytest.raises(ProjectFileError, match="JSON cannot store"):
        write_project(path, ProjectData(window.document.architecture(), "x", {"learning_rate": float("nan")}))
    assert path.read_bytes() == original
    window.editor.append_layer("Dropout")
    assert not window.project.save_as(tmp_path / "no-such-folder" / "p.cnnproj")
    assert "cannot write" in window.dialogs.errors[-1][1]
    assert window.document.file_path == path and window.isWindowModified()
    assert sorted(os.listdir(tmp_path)) == sorted(["keep.cnnproj", "studio.ini"])


@pytest.mark.parametrize("answer", ["cancel", "discard", "save"])
def test_unsaved_changes_are_asked_about_before_opening(window, tmp_path, answer):
    target = tmp_path / "target.cnnproj"
    write_project(target, ProjectData({"format": "cnn-studio.architecture/1", "input": {"shape": [8, 8, 1]},
                                       "layers": [{"type": "Flatten"}]}))
    current = tmp_path / "current.cnnproj"
    window.project.save_as(current)
    window.editor.append_layer("Dropout")
    window.dialogs.save_answer = answer
    opened = window.project.open_project(target)
    assert window.dialogs.questions == ["current"]
    assert opened is (answer != "cancel")
    if opened:
        assert layer_types(window.document) == ["Flatten"] and window.document.file_path == target
    else:
        assert layer_types(window.document)[-1] == "Dropout"
        assert window.document.file_path == current and window.document.is_modified()
    saved_layers = read_project(current).architecture["layers"]
    assert (saved_layers[-1]["type"] == "Dropout") is (answer == "save")


def test_open_recent_menu_lists_saved_projects(window, tmp_path):
    first, second = tmp_path / "a.cnnproj", tmp_path / "b.cnnproj"
    window.project.save_as(first)
    window.project.save_as(second)
    window._fill_recent_menu()
    labels = [a.text() for a in window.recent_menu.actions() if a.text()]
    assert labels[:2] == [f"&1 {second.resolve()}", f"&2 {first.resolve()}"]
    window.recent_menu.actions()[1].trigger()
    assert window.document.file_path == first.resolve()


def test_close_asks_about_changes_and_respects_guards(window):
    window.show()
    window.editor.append_layer("Dropout")
    window.dialogs.save_answer = "cancel"
    assert not window.close() and window.isVisible()
    window.dialogs.save_answer = "discard"
    window.close_guards.append(lambda: False)
    assert not window.close() and window.isVisible()
    window.close_guards.clear()
    assert window.close()


# -- hostile files (fuzz findings, and what a project may point at) -----------------------------------------
def _project(tmp_path, training=None, dataset="fashion-mnist-mini", architecture=None):
    from tests.helpers.engine_factories import SMALL_CNN

    path = tmp_path / "hostile.cnnproj"
    path.write_text(json.dumps({"format": PROJECT_FORMAT, "architecture": architecture or SMALL_CNN,
                                "dataset": dataset, "training": training or {}}))
    return path


@pytest.mark.parametrize("training, expected", [
    ({"seed": 2**40}, '"seed" 1099511627776 is out of range'),  # once an OverflowError in the seed box
    ({"epochs": 10**400}, "is out of range"),  # once an OverflowError in float()
    ({"batch_size": 0}, '"batch_size" must be at least 1'),
    ({"learning_rate": -1.0}, '"learning_rate" must be positive or 0'),
    ({"optimizer": "rmsprop"}, '"optimizer" must be one of'),
])
def test_training_settings_out_of_range_are_refused(tmp_path, training, expected):
    path = _project(tmp_path, training)
    with pytest.raises(ProjectFileError, match=expected) as caught:
        read_project(path)
    assert str(path) in str(caught.value) and "\n" not in str(caught.value)


def test_a_layer_type_that_is_not_a_string(tmp_path):
    from tests.helpers.engine_factories import SMALL_CNN

    architecture = json.loads(json.dumps(SMALL_CNN))
    architecture["layers"][1]["type"] = {"module": "os", "name": "system"}  # once unhashable
    with pytest.raises(ProjectFileError, match="layer 2 has unknown type"):
        read_project(_project(tmp_path, architecture=architecture))


def test_a_project_cannot_make_the_app_run_anything(tmp_path):
    # The dataset reference is the only path a project holds, and datasets are only ever read as data.
    from engine.data import DataError, load_dataset

    marker = tmp_path / "ran"
    script = tmp_path / "train.py"
    script.write_text(f"import os\nos.makedirs({str(marker)!r})\n")
    script.chmod(0o755)
    for dataset in (str(script), "/bin/sh", "$(touch ran)", "`touch ran`"):
        data = read_project(_project(tmp_path, dataset=dataset))
        assert data.dataset == dataset
        with pytest.raises(DataError):
            load_dataset(data.dataset)
    with pytest.raises(ProjectFileError, match='"dataset" must be a dataset name or path'):
        read_project(_project(tmp_path, dataset="data\x00.npz"))
    assert not marker.exists() and not (tmp_path / "ran").exists()
