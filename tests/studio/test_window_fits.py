"""The main window works at 1100x750: every tab fits between the default docks, nothing squeezed below the
width its text needs; toolbars wrap onto more rows in a narrow pane and use one row in a wide one."""

from __future__ import annotations

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QAbstractButton, QComboBox, QLabel, QWidget

from cnn_studio.flow_layout import FlowLayout
from tests.studio.builder_helpers import make_window

# 1100 px less the Layers dock (210), the right-hand docks (300) and the separators between them.
CENTRAL_ROOM = 580


@pytest.fixture
def window(qtbot, tmp_path):
    window = make_window(qtbot, tmp_path)
    yield window
    window.close()


def tab(window, title: str) -> QWidget:
    for index in range(window.tabs.count()):
        if window.tabs.tabText(index) == title:
            return window.tabs.widget(index)
    raise AssertionError(f"no {title} tab")


@pytest.mark.parametrize("title", ["Design", "Train", "Diagnostics", "Inside", "Runs"])
def test_each_tab_fits_beside_the_default_docks(window, title):
    assert tab(window, title).minimumSizeHint().width() <= CENTRAL_ROOM


def test_the_sweep_page_of_the_runs_tab_fits_too(window):
    sweep = window.runs_workspace.sweep_view
    assert sweep.minimumSizeHint().width() <= CENTRAL_ROOM - 8


def test_the_window_shrinks_to_1100_by_750_with_nothing_squeezed(qtbot, window):
    assert window.minimumSizeHint().width() <= 1100
    window.resize(1100, 750)
    qtbot.waitUntil(lambda: window.width() == 1100)
    for index in range(window.tabs.count()):
        window.tabs.setCurrentIndex(index)
        qtbot.wait(20)
        page = window.tabs.widget(index)
        for widget in page.findChildren(QWidget):
            if not widget.isVisible() or not isinstance(widget, (QLabel, QAbstractButton, QComboBox)):
                continue
            if isinstance(widget, QLabel) and widget.wordWrap():
                continue
            text = widget.currentText() if isinstance(widget, QComboBox) else widget.text()
            if not text:  # arrows of Qt's own scrolling tab bars and the like
                continue
            # A label, button or box narrower than its minimum would show its text cut.
            assert widget.width() >= widget.minimumSizeHint().width(), (
                window.tabs.tabText(index), type(widget).__name__, text)
    for dock in window.docks.values():
        if dock.isVisible() and not dock.isFloating():
            assert dock.width() >= dock.minimumSizeHint().width() - 1, dock.windowTitle()


def test_the_time_machine_wraps_in_a_narrow_pane_and_takes_one_row_in_a_wide_one(qtbot, window):
    scrubber = window.runs_workspace.inside_scrubber
    window.tabs.setCurrentWidget(window.inside_panel)
    window.resize(1100, 750)
    qtbot.waitUntil(lambda: window.width() == 1100)
    qtbot.wait(20)
    assert isinstance(scrubber.layout(), FlowLayout)
    narrow = scrubber.width()
    # Everything in one row needs more than the pane has: the slider goes to a row of its own.
    if scrubber.layout().sizeHint().width() > narrow:
        assert scrubber.slider.y() > scrubber.run_box.y()
    window.resize(1600, 1000)
    qtbot.waitUntil(lambda: window.width() == 1600)
    qtbot.wait(20)
    assert scrubber.width() > narrow
    assert abs(scrubber.slider.geometry().center().y() - scrubber.run_box.geometry().center().y()) <= 2
    assert scrubber.latest_button.geometry().right() <= scrubber.width()
    # The slider takes the room the row leaves over.
    assert scrubber.slider.width() > scrubber.slider.sizeHint().width()


def test_a_flow_layout_keeps_a_label_beside_its_box_and_wraps_whole_pairs(qtbot):
    host = QWidget()
    qtbot.addWidget(host)
    flow = FlowLayout(host)
    boxes = [QComboBox() for _ in range(3)]
    for box in boxes:
        box.addItem("a fairly long choice")
    labels = [flow.add_labelled(f"Label {i}", box) for i, box in enumerate(boxes)]
    pair = labels[0].sizeHint().width() + flow._spacing + boxes[0].sizeHint().width()
    assert flow.minimumSize().width() == max(
        label.minimumSizeHint().width() + flow._spacing + box.minimumSizeHint().width()
        for label, box in zip(labels, boxes, strict=True))
    assert labels[0].buddy() is boxes[0]
    host.resize(3 * pair + 40, 200)
    host.show()
    qtbot.waitExposed(host)
    one_row = flow.heightForWidth(host.width())
    assert len({box.geometry().center().y() for box in boxes}) == 1
    host.resize(pair + 10, 200)
    qtbot.waitUntil(lambda: host.width() == pair + 10)
    qtbot.wait(10)
    assert flow.heightForWidth(host.width()) > 2 * one_row
    for label, box in zip(labels, boxes, strict=True):
        assert abs(label.geometry().center().y() - box.geometry().center().y()) <= 2  # together
        assert label.geometry().right() < box.geometry().left()
        assert box.geometry().right() <= host.width()
    assert boxes[0].y() < boxes[1].y() < boxes[2].y()
    # A hidden pair leaves no gap.
    second_row = boxes[1].y()
    labels[1].hide()
    boxes[1].hide()
    qtbot.wait(10)
    assert boxes[2].y() == second_row  # the third pair moved up to the second row


def test_train_and_diagnostics_panes_stack_and_scroll_when_narrow_and_sit_side_by_side_when_wide(qtbot, window):
    splitters = {"Train": window.training_panel.tab_splitter, "Diagnostics": window.diagnostics.view.splitter}
    for size, orientation in (((1100, 750), Qt.Orientation.Vertical), ((1600, 1000), Qt.Orientation.Horizontal)):
        window.resize(*size)
        qtbot.waitUntil(lambda size=size: window.width() == size[0])
        for title, splitter in splitters.items():
            window.tabs.setCurrentWidget(tab(window, title))
            qtbot.wait(30)
            assert splitter.orientation() == orientation, (title, size)
            panes = [splitter.widget(i) for i in range(splitter.count())]
            for pane in panes:  # every pane at least as large as it needs: nothing squeezed
                need = pane.minimumSizeHint().expandedTo(pane.minimumSize())
                assert pane.width() >= need.width() and pane.height() >= need.height() - 1, (title, size)
            if orientation == Qt.Orientation.Vertical:
                # Stacked, each pane gets the whole width (plots are not squeezed into a third of it).
                assert all(pane.width() >= splitter.width() - 2 for pane in panes)


def test_the_run_comparison_stacks_its_parts_when_narrow(qtbot):
    from cnn_studio.runs.compare import RunComparison

    comparison = RunComparison()
    qtbot.addWidget(comparison)
    comparison.resize(1000, 600)
    comparison.show()
    qtbot.waitUntil(lambda: comparison.columns == 2)
    comparison.resize(500, 600)
    qtbot.waitUntil(lambda: comparison.columns == 1)
    assert comparison.minimumSizeHint().width() <= 500  # one column: only the height scrolls
    assert comparison.minimumHeight() >= 4 * 250
