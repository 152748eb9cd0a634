"""The main window's public surface, the palette, the Edit menu, and the app entry point."""

from __future__ import annotations

import subprocess
import sys

import pytest
from PySide6.QtCore import QSettings, Qt, QTimer
from PySide6.QtGui import QKeySequence
from PySide6.QtWidgets import QApplication, QDockWidget, QLabel, QMessageBox, QTabBar

from cnn_studio import app as studio_app
from cnn_studio.builder.dialogs import Dialogs
from cnn_studio.main_window import MainWindow
from cnn_studio.project_file import ProjectData, write_project
from engine.layers import CATEGORIES, LAYER_TYPES
from tests.studio.builder_helpers import layer_types, make_window


@pytest.fixture
def window(qtbot, tmp_path):
    return make_window(qtbot, tmp_path)


def test_public_surface_for_other_workspaces(window):
    assert {"File", "Edit", "View", "Train", "Help", "Export"} <= set(window.menus)
    assert window.menus["Export"].menuAction() in window.menus["File"].actions()
    assert window.tabs.tabText(0) == "Design"
    assert window.size().width() >= 1400 and window.size().height() >= 900
    assert window.windowTitle() == "CNN Studio — Untitled[*]"
    assert window.document.dataset_ref == "fashion-mnist-mini"
    assert window.document.analysis().ok  # ready to train
    dock = window.add_dock(QLabel("hello"), "Extra Panel", Qt.DockWidgetArea.LeftDockWidgetArea)
    assert isinstance(dock, QDockWidget) and dock.windowTitle() == "Extra Panel"
    assert window.dockWidgetArea(dock) == Qt.DockWidgetArea.LeftDockWidgetArea
    assert dock.toggleViewAction() in window.menus["Panels"].actions()
    assert dock.features() & QDockWidget.DockWidgetFeature.DockWidgetMovable


def test_tabbed_docks_have_one_tab_bar_each_that_follows_the_window(qtbot, tmp_path):
    # Qt 6.11 leaves a stale copy of a dock group's tab bar behind when a second group is tabified
    # before the window is shown; it was drawn in the gap beside the Inside tab.
    window = make_window(qtbot, tmp_path)
    qtbot.waitUntil(lambda: window.tabifiedDockWidgets(window.docks["Properties"]) != [])
    window.resize(window.width() + 100, window.height() + 60)
    QApplication.processEvents()
    bars = [bar for bar in window.findChildren(QTabBar) if bar.parentWidget() is window and bar.isVisible()]
    groups = sorted(tuple(bar.tabText(i) for i in range(bar.count())) for bar in bars)
    assert groups == [("Problems", "History", "Layer profile"), ("Properties", "Training")]
    right = next(bar for bar in bars if bar.tabText(0) == "Properties")
    assert right.geometry().right() == window.width() - 1  # moved with the resize: the live one
    assert window.tabifiedDockWidgets(window.docks["Problems"]) == [window.docks["History"],
                                                                    window.docks["Layer profile"]]
    assert not window.docks["Properties"].visibleRegion().isEmpty()  # in front, above Training


def test_common_actions_have_shortcuts_and_tooltips(window):
    shortcuts = {
        window.undo_action: "Ctrl+Z", window.redo_action: "Ctrl+Shift+Z", window.duplicate_action: "Ctrl+D",
        window.delete_action: "Del", window.save_action: "Ctrl+S", window.open_action: "Ctrl+O",
        window.new_action: "Ctrl+N", window.save_as_action: "Ctrl+Shift+S",
    }
    for action, keys in shortcuts.items():
        assert QKeySequence(keys) in action.shortcuts(), action.text()
        assert action.toolTip()
    edit_texts = [a.text() for a in window.menus["Edit"].actions()]
    assert "&Undo" in edit_texts and "&Redo" in edit_texts


def test_the_shortcut_list_names_every_menu_shortcut(window):
    from cnn_studio.main_window import SHORTCUTS_HELP

    def shortcut_actions(menu):
        for action in menu.actions():
            if action.menu() is not None:
                yield from shortcut_actions(action.menu())
            elif action.shortcuts():
                yield action

    listed = SHORTCUTS_HELP.replace("<b>Delete</b>", "<b>Del</b>")
    missing = [(action.text(), keys) for name in ("File", "Edit", "View", "Train", "Help")
               for action in shortcut_actions(window.menus[name])
               if (keys := action.shortcuts()[0].toString(QKeySequence.SequenceFormat.PortableText)) not in listed]
    assert missing == []


def test_edit_menu_names_the_action_to_undo_and_redo(window):
    window.editor.append_layer("Dropout")
    assert window.undo_action.text() == "&Undo Insert Dropout" and window.undo_action.isEnabled()
    window.undo_action.trigger()
    assert window.redo_action.text() == "&Redo Insert Dropout"
    assert window.undo_action.text() == "&Undo" and not window.undo_action.isEnabled()
    assert window.history.model().rowCount() == 2  # the opened project and the undone insert
    first = window.history.model().index(0, 0).data()
    assert first == window.history.emptyLabel() == "Opened project"  # a plain label, not "<opened project>"


def test_palette_groups_every_layer_with_tooltips(window):
    palette = window.layer_palette
    assert palette.categories() == [*CATEGORIES, "Blocks"]
    assert sorted(palette.visible_types()) == sorted(LAYER_TYPES)
    for type_name, cls in LAYER_TYPES.items():
        item = palette.item_for(type_name)
        assert item.parent().text(0) == cls.category
        assert cls.description in item.toolTip(0)
        assert not item.icon(0).isNull()


def test_palette_filter_and_double_click_append(window, qtbot):
    palette = window.layer_palette
    qtbot.keyClicks(palette.filter_box, "pool")
    assert sorted(palette.visible_types()) == ["AvgPool2D", "GlobalAvgPool2D", "MaxPool2D"]
    palette.set_filter("probabilities")  # matches descriptions too
    assert palette.visible_types() == ["Softmax"]
    palette.set_filter("")
    assert len(palette.visible_types()) == len(LAYER_TYPES)

    item = palette.item_for("Tanh")
    rect = palette.tree.visualItemRect(item)
    # A real double-click starts with a press; item views ignore a lone double-click event.
    qtbot.mouseClick(palette.tree.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
    qtbot.mouseDClick(palette.tree.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
    assert layer_types(window.document)[-1] == "Tanh"
    palette.tree.setCurrentItem(palette.item_for("Dropout"))
    qtbot.keyClick(palette.tree, Qt.Key.Key_Return)
    assert layer_types(window.document)[-2:] == ["Tanh", "Dropout"]
    assert "Dropout" in palette.description.text()


def test_insert_menu_puts_the_layer_after_the_selection(window):
    window.selection.select(window.document.layers()[0]["id"])
    insert_menu = next(a.menu() for a in window.menus["Edit"].actions() if a.menu() and "Insert" in a.text())
    activation = next(a.menu() for a in insert_menu.actions() if a.text() == "Activation")
    next(a for a in activation.actions() if a.text() == "ELU").trigger()
    assert layer_types(window.document)[:2] == ["Conv2D", "ELU"]


def test_headless_dialogs_never_block(window):
    dialogs = Dialogs(window)
    assert dialogs.ask_save_changes("x") == "discard"
    assert dialogs.open_project_path("/") is None
    dialogs.error("Cannot open the project", "broken.cnnproj: not JSON")
    boxes = [w for w in QApplication.topLevelWidgets() if isinstance(w, QMessageBox) and w.isVisible()]
    assert [b.text() for b in boxes] == ["broken.cnnproj: not JSON"]
    for box in boxes:
        box.close()


def test_exception_reporter_shows_the_error_and_keeps_going(window, capsys):
    reporter = studio_app.ExceptionReporter(lambda: window)
    try:
        raise ValueError("boom")
    except ValueError:
        reporter(*sys.exc_info())
    assert "ValueError: boom" in reporter.reported[0]
    assert "ValueError: boom" in capsys.readouterr().err
    boxes = [w for w in window.findChildren(QMessageBox) if w.isVisible()]
    assert len(boxes) == 1 and "boom" in boxes[0].text() and "ValueError" in boxes[0].detailedText()
    boxes[0].close()


def test_version_flag_of_the_module_entry_point():
    result = subprocess.run([sys.executable, "-m", "cnn_studio", "--version"], capture_output=True, text=True,
                            timeout=60, env={"QT_QPA_PLATFORM": "offscreen", "PATH": ""})
    assert result.returncode == 0
    assert result.stdout.strip().startswith("cnn-studio ")


def test_main_opens_the_project_given_on_the_command_line(qapp, tmp_path, monkeypatch):
    QSettings.setPath(QSettings.Format.NativeFormat, QSettings.Scope.UserScope, str(tmp_path))
    QSettings.setPath(QSettings.Format.IniFormat, QSettings.Scope.UserScope, str(tmp_path))
    monkeypatch.setattr(sys, "excepthook", sys.excepthook)
    path = tmp_path / "mine.cnnproj"
    write_project(path, ProjectData({"format": "cnn-studio.architecture/1", "input": {"shape": [8, 8, 1]},
                                     "layers": [{"type": "Flatten"}, {"type": "Dense", "units": 2}]}))
    seen = {}

    def inspect_and_close() -> None:
        window = next(w for w in QApplication.topLevelWidgets() if isinstance(w, MainWindow) and w.isVisible())
        seen["title"] = window.windowTitle()
        seen["types"] = layer_types(window.document)
        window.close()
        QApplication.quit()

    QTimer.singleShot(0, inspect_and_close)
    assert studio_app.main([str(path)]) == 0
    assert seen == {"title": "CNN Studio — mine[*]", "types": ["Flatten", "Dense"]}
    assert isinstance(sys.excepthook, studio_app.ExceptionReporter)
    assert QApplication.applicationName() == "CNN Studio"
