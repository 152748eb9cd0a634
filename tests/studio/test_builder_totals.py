"""The totals bar: parameters, multiply-adds and activation memory, worked out here by hand."""

from __future__ import annotations

import pytest

from cnn_studio.builder.describe import format_bytes, format_compact
from cnn_studio.builder.templates import list_templates, load_template
from cnn_studio.builder.totals import TotalsBar
from cnn_studio.document import ProjectDocument
from tests.studio.builder_helpers import make_window


def seed_costs() -> tuple[int, int, int]:
    """(parameters, multiply-adds, activation bytes) of the seed network from the layer formulas."""
    c1, p1 = 28 - 3 + 1, (28 - 3 + 1) // 2
    c2, p2 = p1 - 3 + 1, (p1 - 3 + 1) // 2
    flat = p2 * p2 * 64
    params = (3 * 3 * 1 * 32 + 32) + (3 * 3 * 32 * 64 + 64) + (flat * 128 + 128) + (128 * 10 + 10)
    macs = c1 * c1 * 32 * 9 * 1 + c2 * c2 * 64 * 9 * 32 + flat * 128 + 128 * 10
    values = 28 * 28 + c1 * c1 * 32 + p1 * p1 * 32 + c2 * c2 * 64 + p2 * p2 * 64 + flat + 128 + 10
    return params, macs, 4 * values


@pytest.fixture
def window(qtbot, tmp_path):
    return make_window(qtbot, tmp_path)


def test_totals_of_the_seed_network(window):
    params, macs, memory = seed_costs()
    text = window.totals.full_text()
    assert f"Parameters {params:,} ({params:,} trainable, 0 not)" in text
    assert "0 non-trainable" in window.totals.params.toolTip()
    assert f"Multiply-adds {format_compact(macs)} / image" in text
    assert f"Activations {format_bytes(memory)} / image" in text
    assert "Ready to train" in text
    assert window.totals.macs.toolTip().startswith(f"{macs:,} multiply-adds")


def test_totals_follow_edits(window):
    doc = window.document
    params, _, _ = seed_costs()
    window.editor.set_field(doc.layers()[6]["id"], "units", 5)
    changed = params - (128 * 10 + 10) + (128 * 5 + 5)
    assert f"Parameters {changed:,} (" in window.totals.full_text()
    window.undo_action.trigger()
    assert f"Parameters {params:,} (" in window.totals.full_text()


def test_batch_norm_statistics_count_as_non_trainable(qapp):
    template = next(t for t in list_templates() if t.key == "seed_sample_batchnorm")
    doc = ProjectDocument(load_template(template.path))
    bar = TotalsBar(doc)
    running = 2 * (32 + 64)  # mean and variance per channel of both BatchNorm layers
    assert f"{running:,} not)" in bar.full_text() and f"{running:,} non-trainable" in bar.params.toolTip()


def test_partial_totals_are_marked_while_a_problem_stands(window):
    doc = window.document
    window.editor.set_field(doc.layers()[0]["id"], "kernel_size", 29)
    assert "(so far)" in window.totals.full_text() and "✖ 1 problem" in window.totals.full_text()


@pytest.mark.parametrize("width", [1100, 700, 560, 420])
def test_a_narrow_bar_shortens_its_wording_instead_of_clipping_it(window, qtbot, width):
    bar = window.totals
    window.tabs.setCurrentIndex(0)
    bar.resize(width, bar.height())
    qtbot.waitUntil(lambda: bar.width() == width)
    labels = (bar.params, bar.macs, bar.memory, bar.training_memory, bar.status)

    def nothing_clipped() -> bool:
        return all(label.width() >= label.sizeHint().width() for label in labels)

    qtbot.waitUntil(nothing_clipped)
    # Every figure is there, whatever the wording.
    params, _, _ = seed_costs()
    assert f"{params:,}" in bar.text() or format_compact(params) in bar.text()
    # The window's layout decides the bar's final width: the longest wording whenever that width allows it.
    assert bar.level == 0 or bar.width() < bar.sizeHint().width()


def test_the_bar_never_widens_the_window(window):
    assert window.totals.minimumSizeHint().width() == 0


# -- memory: the estimate in the bar, a Problem when training would not fit -----------------------------------
def test_the_bar_shows_the_memory_training_takes(window, monkeypatch):
    from engine import memory

    monkeypatch.setattr(memory, "_system_available", lambda: 64 << 30)
    window.document.set_training({"batch_size": 32})
    text = window.totals.full_text()
    assert "Training" in text and "(batch 32)" in text
    tip = window.totals.training_memory.toolTip()
    assert "parameters" in tip and "64 GiB free" in tip


def test_a_network_too_large_for_memory_is_a_problem_naming_the_layer(window, monkeypatch):
    from engine import memory
    from tests.engine.test_memory import HUGE

    monkeypatch.setattr(memory, "_system_available", lambda: 16 << 30)
    doc = window.document
    doc.load_project(HUGE, "fashion-mnist-mini", {"batch_size": 64})
    problems = window.problems.texts()
    assert len(problems) == 1 and "11.3 billion weights" in problems[0], problems
    problem = doc.analysis().problems[0]
    assert problem.layer_index == 3 and problem.layer_type == "Dense"
    assert "not enough" not in problem.message and "training needs about" in problem.message
    assert "add pooling or reduce filters" in problem.hint
    assert "✖ 1 problem" in window.totals.full_text()
    assert "color:" in window.totals.training_memory.text()  # the figure is shown in the warning colour


def test_a_smaller_batch_size_can_make_it_fit(window, monkeypatch):
    from engine import memory
    from engine.architecture import analyze

    doc = window.document
    need_64 = memory.estimate_training(analyze(doc.architecture()), 64).total
    need_8 = memory.estimate_training(analyze(doc.architecture()), 8).total
    monkeypatch.setattr(memory, "_system_available", lambda: (need_64 + need_8) // 2)
    doc.set_training({"batch_size": 64})
    assert doc.analysis().problems and "at batch size 64" in str(doc.analysis().problems[0])
    doc.set_training({"batch_size": 8})
    assert not doc.analysis().problems
