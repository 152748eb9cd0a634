"""The export folder picker takes a new folder's name as well as an existing folder."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QDialog, QLineEdit

from cnn_studio.folder_chooser import NewFolderChooser


def open_chooser(qtbot, suggested):
    dialog = NewFolderChooser(None, "Export into folder", suggested, "Export")
    qtbot.addWidget(dialog)
    dialog.open()
    qtbot.waitExposed(dialog)
    return dialog


def type_name_and_accept(qtbot, dialog, name: str) -> None:
    field = dialog.findChild(QLineEdit, "fileNameEdit")
    field.setFocus()
    field.selectAll()
    qtbot.keyClicks(field, name)
    qtbot.keyClick(field, Qt.Key.Key_Return)


def test_a_new_folder_name_is_accepted(qtbot, tmp_path):
    dialog = open_chooser(qtbot, tmp_path / "seed-predictor")
    assert dialog.labelText(NewFolderChooser.DialogLabel.Accept) == "Export"
    field = dialog.findChild(QLineEdit, "fileNameEdit")
    field.selectAll()
    qtbot.keyClicks(field, "brand-new")
    button = dialog.accept_button()
    assert button.text() == "Export"
    qtbot.waitUntil(button.isEnabled)  # Qt greys it out for a folder that does not exist yet
    qtbot.mouseClick(button, Qt.MouseButton.LeftButton)
    assert dialog.result() == QDialog.DialogCode.Accepted
    assert dialog.chosen() == tmp_path / "brand-new"
    assert not (tmp_path / "brand-new").exists()  # the export creates it


def test_the_suggested_name_is_preselected_and_an_existing_folder_is_accepted(qtbot, tmp_path):
    dialog = open_chooser(qtbot, tmp_path / "seed-predictor")
    assert dialog.typed_path() == tmp_path / "seed-predictor"
    (tmp_path / "old").mkdir()
    type_name_and_accept(qtbot, dialog, "old")
    # Typing an existing folder's name opens it (Qt's way); accepting again chooses it.
    if dialog.isVisible():
        dialog.accept()
    assert dialog.result() == QDialog.DialogCode.Accepted
    assert dialog.chosen() == tmp_path / "old"


def test_a_nested_new_name_is_accepted_and_a_file_is_refused_with_a_message(qtbot, tmp_path, monkeypatch):
    import cnn_studio.folder_chooser as chooser_module

    dialog = open_chooser(qtbot, tmp_path / "seed-predictor")
    type_name_and_accept(qtbot, dialog, "exports/today")
    assert dialog.chosen() == tmp_path / "exports" / "today"

    messages = []
    monkeypatch.setattr(chooser_module, "show_message", lambda *args, **_kw: messages.append(args))
    (tmp_path / "notes.txt").write_text("x")
    dialog = open_chooser(qtbot, tmp_path / "seed-predictor")
    type_name_and_accept(qtbot, dialog, "notes.txt")
    assert dialog.isVisible() and dialog.chosen() is None
    assert messages and "notes.txt is a file" in messages[0][3]
    dialog.reject()


def test_cancel_chooses_nothing(qtbot, tmp_path):
    dialog = open_chooser(qtbot, tmp_path / "x")
    dialog.reject()
    assert dialog.chosen() is None
