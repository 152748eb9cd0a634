"""The time machine's scrubber: a long run label may be elided in a narrow row, never lost; the slider's
handle always stands where the shown weights are."""

from __future__ import annotations

import pytest
from PySide6.QtCore import QObject, Qt, Signal
from PySide6.QtGui import QFontMetrics
from PySide6.QtWidgets import QStyle, QStyleOptionComboBox

from cnn_studio.runs.time_machine import EpochScrubber, shorten_run_label

LONG = "Run 12: adam lr 0.001 bs 64 · completed"
SHORT = "Run 3: sgd lr 0.05 bs 32 · stopped"


class FakeMachine(QObject):
    """What a scrubber reads of a TimeMachine, with two kept runs."""

    runs_changed = Signal()
    position_changed = Signal()

    def __init__(self) -> None:
        super().__init__()
        self.runs = [("/projects/a.runs/run-012", LONG), ("/projects/a.runs/run-003", SHORT)]
        self.run_id = self.runs[0][0]
        self.epochs, self.epoch = [1, 2, 3], 3
        self.active = self.playing = False
        self.enabled = True

    def choose_run(self, run_id: str) -> None:
        self.run_id = run_id
        self.position_changed.emit()

    def play(self, _on: bool) -> None: ...

    def go_to(self, epoch: int) -> None:
        self.epoch, self.active = epoch, True
        self.position_changed.emit()

    def release(self) -> None:
        # As TimeMachine.release: the latest weights again, the epoch last looked at kept.
        self.active = False
        self.position_changed.emit()

    def describe_latest(self) -> str:
        return "run 2 · 3 epochs"

    def latest_text(self) -> str:
        return f"latest: {self.describe_latest()}"


def test_the_run_chooser_names_the_whole_run_in_its_tooltip_and_list(qtbot):
    machine = FakeMachine()
    scrubber = EpochScrubber(machine)
    qtbot.addWidget(scrubber)
    scrubber.resize(300, 80)  # as in the Inside tab of a 1100 px window: the label does not fit
    scrubber.show()
    qtbot.waitExposed(scrubber)
    box = scrubber.run_box
    option = QStyleOptionComboBox()
    box.initStyleOption(option)
    text_room = box.style().subControlRect(QStyle.ComplexControl.CC_ComboBox, option,
                                           QStyle.SubControl.SC_ComboBoxEditField, box).width()
    metrics = QFontMetrics(box.font())
    assert metrics.horizontalAdvance(LONG) > text_room  # elided on screen...
    assert LONG in box.toolTip()  # ...whole in the tooltip
    # The list it opens is wide enough for every label, whole.
    view = box.view()
    assert view.textElideMode() == Qt.TextElideMode.ElideNone
    assert view.minimumWidth() >= max(metrics.horizontalAdvance(t) for t in (LONG, SHORT))
    box.showPopup()
    qtbot.waitUntil(view.isVisible)
    for row in range(box.count()):
        assert view.visualRect(box.model().index(row, 0)).width() >= metrics.horizontalAdvance(box.itemText(row))
    assert LONG in box.itemData(0, Qt.ItemDataRole.ToolTipRole)
    box.hidePopup()
    # Choosing the other run (as a click in the list does) names that one.
    box.activated.emit(1)
    assert machine.run_id.endswith("run-003")
    assert SHORT in box.toolTip() and LONG not in box.toolTip()
    # No kept runs: the plain explanation, no stale name.
    machine.runs = []
    machine.runs_changed.emit()
    assert "Run" not in box.toolTip().split("The run whose")[0]


def test_a_run_label_is_cut_at_a_whole_setting_never_mid_word():
    def fits(width: int):
        return lambda text: len(text) <= width

    assert shorten_run_label(LONG, fits(60)) == LONG
    assert shorten_run_label(LONG, fits(30)) == "Run 12: adam lr 0.001 bs 64\u2026"  # the status goes first
    assert shorten_run_label(LONG, fits(27)) == "Run 12: adam lr 0.001\u2026"  # "bs" never without its 64
    assert shorten_run_label(LONG, fits(3)) == "Run 12\u2026"  # the run's number always stays


@pytest.mark.parametrize("width", [300, 700])
def test_the_run_chooser_shows_its_label_whole_where_there_is_room_and_cut_cleanly_where_not(qtbot, width):
    machine = FakeMachine()
    scrubber = EpochScrubber(machine)
    qtbot.addWidget(scrubber)
    scrubber.resize(width, 80)  # 300: the Inside tab of a 1100 px window; 700: a wide one
    scrubber.show()
    qtbot.waitExposed(scrubber)
    box = scrubber.run_box
    metrics = QFontMetrics(box.font())
    shown = box.shown_text()
    assert metrics.horizontalAdvance(shown) <= box.text_room()
    if width == 700:  # it asks for its longest label's width, and gets it
        assert shown == LONG and box.text_room() >= metrics.horizontalAdvance(LONG)
    else:  # cut after a whole setting, marked, never "Run 12: adam lr 0.001 b"
        assert shown != LONG and shown.endswith("\u2026") and LONG.startswith(shown[:-1])
        assert LONG[len(shown) - 1] == " "
    assert LONG in box.toolTip()


def test_latest_moves_the_slider_handle_to_the_last_position(qtbot):
    machine = FakeMachine()
    scrubber = EpochScrubber(machine)
    qtbot.addWidget(scrubber)
    scrubber.resize(600, 60)
    scrubber.show()
    qtbot.waitExposed(scrubber)
    slider = scrubber.slider
    assert slider.value() == slider.maximum() == 2 and scrubber.position.text() == "latest: run 2 · 3 epochs"
    slider.setFocus()
    qtbot.keyClick(slider, Qt.Key.Key_Home)  # back to the first epoch, as a drag to the left end does
    assert machine.active and machine.epoch == 1 and slider.value() == 0
    assert scrubber.position.text() == "epoch 1 / 3"
    qtbot.mouseClick(scrubber.latest_button, Qt.MouseButton.LeftButton)
    assert not machine.active and scrubber.position.text() == "latest: run 2 · 3 epochs"
    assert slider.value() == slider.maximum()  # the handle follows the label
    # From there one step back shows the epoch before the last.
    qtbot.keyClick(slider, Qt.Key.Key_Left)
    assert machine.active and machine.epoch == 2 and slider.value() == 1
