"""Impossible designs: the block turns red, the problems list explains with the user's numbers, fixes apply."""

from __future__ import annotations

import pytest

from cnn_studio.builder.describe import problem_text
from cnn_studio.builder.fixes import make_fix_command
from cnn_studio.document import ProjectDocument
from engine.architecture import analyze, check_classifier
from engine.errors import ArchitectureError
from tests.studio.builder_helpers import layer_types, make_window


@pytest.fixture
def window(qtbot, tmp_path):
    return make_window(qtbot, tmp_path)


def test_kernel_larger_than_its_input_is_explained_and_fixed(window):
    doc = window.document
    conv2 = doc.layers()[2]["id"]
    side = (28 - 3 + 1) // 2  # what reaches the second convolution
    kernel = side + 2
    window.editor.set_field(conv2, "kernel_size", kernel)

    expected = (f"conv2d_2 (Conv2D): output height ({side} + 2*0 - {kernel}) / 1 + 1 = {(side - kernel) // 1 + 1}; "
                f"the kernel is larger than its {side}x{side} input. Use padding 'same' or a smaller kernel.")
    assert window.problems.texts() == [expected]
    block = window.canvas.block(conv2)
    assert block.has_error
    assert expected in block.toolTip()
    assert not doc.analysis().ok  # the training workspace keeps Start disabled on this
    assert window.canvas.output_block.content.settings == "1 problem to fix"
    assert window.problems_dock.windowTitle() == "Problems (1)"
    # Later blocks have no shape until the problem is fixed.
    assert [edge.label for edge in window.canvas.edges[3:]] == ["?"] * 5
    assert "✖ 1 problem" in window.totals.text()

    row = window.problems.rows[0]
    assert row.fix_button.text() == "Use padding 'same'"
    row.fix_button.click()
    assert doc.layer(2)["padding"] == "same" and doc.layer(2)["kernel_size"] == kernel
    assert doc.analysis().ok
    assert window.problems.texts() == [] and window.problems.all_clear.isVisibleTo(window.problems)
    assert not window.canvas.block(conv2).has_error
    assert window.undo_action.text() == "&Undo Fix: padding 'same' on conv2d_2"
    window.undo_action.trigger()
    assert window.problems.texts() == [expected]


def test_dense_after_a_convolution_offers_to_insert_flatten(window):
    doc = window.document
    flatten = doc.layers()[4]["id"]
    window.editor.remove(flatten)
    problems = doc.analysis().problems
    assert len(problems) == 1
    text = window.problems.texts()[0]
    side = ((28 - 3 + 1) // 2 - 3 + 1) // 2
    assert text.startswith("dense_1 (Dense): Dense works on vectors. Insert a Flatten")
    assert f"{side}x{side}x64 feature map into a vector of {side * side * 64} values" in text
    # Clicking the row selects the culprit; the inspector offers the same fix.
    window.problems.rows[0].clicked.emit()
    assert window.selection.index() == 4
    assert window.inspector.fix_button.isVisibleTo(window.inspector)
    assert window.inspector.fix_button.text() == "Fix: Insert Flatten before it"
    window.inspector.fix_button.click()
    assert layer_types(doc)[4:6] == ["Flatten", "Dense"]
    assert doc.analysis().ok
    window.undo_action.trigger()
    assert layer_types(doc)[4] == "Dense"


def test_settings_errors_are_listed_without_their_location_prefix(window):
    doc = window.document
    pool = doc.layers()[1]
    window.editor.set_field(pool["id"], "padding", 3)
    assert window.problems.texts() == ["max_pool2d_1 (MaxPool2D): A window would then hold nothing but padding. "
                                       "Use a smaller padding."]
    assert window.problems.rows[0].fix_button is None


def test_empty_network_is_a_problem(qapp):
    doc = ProjectDocument({"format": "cnn-studio.architecture/1", "input": {"shape": [8, 8, 1]}, "layers": []})
    assert [problem_text(p) for p in doc.analysis().problems] == ["Network: the network has no layers"]


def classifier_problem(doc: ProjectDocument, classes: int) -> ArchitectureError:
    with pytest.raises(ArchitectureError) as caught:
        check_classifier(doc.analysis(), classes)
    return caught.value


def test_classifier_fixes_size_the_output_for_the_dataset(qapp):
    doc = ProjectDocument({"format": "cnn-studio.architecture/1", "input": {"shape": [12, 12, 3]},
                           "layers": [{"type": "Conv2D", "filters": 4, "kernel_size": 3}]})
    problem = classifier_problem(doc, 7)
    assert problem.fix == "append_classifier"
    doc.push(make_fix_command(doc, problem, num_classes=7))
    assert [s["type"] for s in doc.layers()] == ["Conv2D", "Flatten", "Dense"]
    check_classifier(analyze(doc.architecture()), 7)
    doc.undo_stack.undo()
    assert [s["type"] for s in doc.layers()] == ["Conv2D"]

    seed_like = ProjectDocument({"format": "cnn-studio.architecture/1", "input": {"shape": [6, 6, 1]},
                                 "layers": [{"type": "Flatten"}, {"type": "Dense", "units": 10},
                                            {"type": "Softmax"}]})
    problem = classifier_problem(seed_like, 4)
    assert problem.fix == "set_output_units"
    seed_like.push(make_fix_command(seed_like, problem, num_classes=4))
    assert seed_like.layer(1)["units"] == 4  # the Dense before the Softmax
    check_classifier(seed_like.analysis(), 4)


def test_a_network_that_cannot_classify_is_a_problem_with_its_fix(window):
    from engine.architecture import FORMAT

    doc = window.document
    doc.replace_architecture({"format": FORMAT, "input": {"shape": [28, 28, 1]},
                              "layers": [{"type": "Conv2D", "filters": 4, "kernel_size": 3}]})
    assert not doc.analysis().ok
    (text,) = window.problems.texts()
    assert "ends in a 26x26x4 feature map" in text and "one unit per class" in text
    assert "problem" in window.totals.text() and "Ready to train" not in window.totals.text()
    window.problems.rows[0].fix_button.click()
    assert layer_types(doc)[-2:] == ["Flatten", "Dense"] and doc.analysis().ok


def test_the_dataset_class_count_makes_a_mismatched_output_a_problem(window):
    doc = window.document
    assert doc.analysis().ok  # the seed network: 10 outputs, dataset not known yet
    doc.set_num_classes(3)
    (text,) = window.problems.texts()
    assert "has 10 outputs but the dataset has 3 classes" in text or "Set the last layer's units to 3" in text
    window.problems.rows[0].fix_button.click()
    assert doc.layers()[-1]["units"] == 3 and doc.analysis().ok
    doc.set_num_classes(None)
    assert doc.analysis().ok


def test_a_kernel_larger_than_the_image_also_offers_the_largest_kernel_that_fits(window):
    doc = window.document
    conv = doc.layers()[0]["id"]
    window.editor.set_field(conv, "kernel_size", 30)  # on the 28x28 input
    row = window.problems.rows[0]
    assert [button.text() for button in row.fix_buttons] == [
        "Use padding 'same'", "Use kernel size 28 (largest that fits)"]
    window.selection.select(conv)
    inspector = window.inspector
    shown = [b.text() for b in inspector.fix_buttons if b.isVisibleTo(inspector)]
    assert shown == ["Fix: Use padding 'same'", "Fix: Use kernel size 28 (largest that fits)"]
    inspector.fix_buttons[1].click()
    assert doc.layer(0)["kernel_size"] == 28 and doc.layer(0).get("padding", "valid") == "valid"
    assert window.undo_action.text() == "&Undo Fix: kernel size 28 on conv2d_1"
    assert window.canvas.edges[1].label == "1 × 1 × 32"
    assert doc.analysis().layers[0].error is None
    window.undo_action.trigger()
    assert doc.layer(0)["kernel_size"] == 30
    # The largest window is counted with the layer's padding: with 1 pixel per side, 30 fits.
    window.editor.set_field(conv, "padding", 1)
    assert doc.analysis().layers[0].error is None
    window.editor.set_field(conv, "kernel_size", 31)
    assert window.problems.rows[0].fix_buttons[1].text() == "Use kernel size 30 (largest that fits)"


def test_a_pooling_window_larger_than_its_input_offers_the_largest_that_fits(window):
    doc = window.document
    pool2 = doc.layers()[3]["id"]  # sees 11x11
    window.editor.set_field(pool2, "pool_size", 12)
    row = window.problems.rows[0]
    assert [button.text() for button in row.fix_buttons][1] == "Use pool size 11 (largest that fits)"
    row.fix_buttons[1].click()
    assert doc.layer(3)["pool_size"] == 11 and doc.analysis().ok


def test_the_canvas_menu_offers_every_fix(window, monkeypatch):
    from PySide6.QtGui import QContextMenuEvent
    from PySide6.QtWidgets import QApplication, QMenu

    import cnn_studio.builder.canvas as canvas_module

    shown: list[list[str]] = []

    class RecordingMenu(QMenu):
        def exec(self, *_args):  # a real menu would wait for a click
            shown.append([action.text() for action in self.actions()])

    monkeypatch.setattr(canvas_module, "QMenu", RecordingMenu)
    doc, canvas = window.document, window.canvas
    conv = doc.layers()[0]["id"]
    window.editor.set_field(conv, "kernel_size", 30)
    point = canvas.block_center(conv)
    QApplication.sendEvent(canvas.viewport(), QContextMenuEvent(QContextMenuEvent.Reason.Mouse, point,
                                                                canvas.viewport().mapToGlobal(point)))
    assert shown and shown[0][-2:] == ["Fix: Use padding 'same'", "Fix: Use kernel size 28 (largest that fits)"]


def test_a_branch_nothing_uses_is_a_warning_in_the_list_the_title_and_the_blocks_tooltip(window, qtbot):
    from PySide6.QtCore import Qt

    from cnn_studio.builder.problems import ALL_CLEAR_BUT_WARNINGS

    doc = window.document
    doc.replace_architecture({
        "format": "cnn-studio.architecture/2", "input": {"shape": [12, 12, 1]},
        "layers": [
            {"id": "trunk", "type": "Conv2D", "name": "trunk", "filters": 4, "kernel_size": 3, "activation": "relu"},
            {"id": "loose", "type": "Conv2D", "name": "loose", "filters": 4, "kernel_size": 3, "inputs": ["input"]},
            {"id": "flat", "type": "Flatten", "inputs": ["trunk"]},
            {"id": "out", "type": "Dense", "units": 3, "activation": "softmax"},
        ],
    })
    assert doc.analysis().ok  # it trains: a warning, not a problem
    [text] = window.problems.texts()
    assert text.startswith("Warning · loose (Conv2D): No layer uses the output of loose")
    assert window.problems.all_clear.isVisibleTo(window.problems)
    assert window.problems.all_clear.text() == ALL_CLEAR_BUT_WARNINGS
    assert window.problems_dock.windowTitle() == "Problems · 1 warning"
    block = window.canvas.block("loose")
    assert block.content.state == "warning" and "No layer uses the output of loose" in block.toolTip()
    # A click on the row's (selectable) text selects the block it is about.
    row = window.problems.rows[0]
    qtbot.mouseClick(row.label, Qt.MouseButton.LeftButton)
    assert window.selection.layer_id == "loose"


def test_a_softmax_inside_the_network_is_a_warning_whose_fix_uses_relu_and_undoes(window, qtbot):
    from PySide6.QtCore import Qt

    doc = window.document
    doc.replace_architecture({
        "format": "cnn-studio.architecture/2", "input": {"shape": [12, 12, 1]},
        "layers": [
            {"id": "flat", "type": "Flatten"},
            {"id": "probs", "type": "Dense", "name": "probs", "units": 16, "activation": "softmax"},
            {"id": "out", "type": "Dense", "units": 3, "activation": "softmax"},
        ],
    })
    [text] = window.problems.texts()
    assert text.startswith("Warning · probs (Dense): probs turns its values into probabilities (softmax), and dense_2 "
                           "takes them.")
    button = window.problems.rows[0].fix_button
    assert button is not None and button.text() == "Use ReLU instead of softmax"
    qtbot.mouseClick(button, Qt.MouseButton.LeftButton)
    assert doc.layers()[1]["activation"] == "relu"
    assert window.problems.texts() == []
    doc.undo_stack.undo()
    assert doc.layers()[1]["activation"] == "softmax"
