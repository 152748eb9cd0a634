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
    labels = (bar.params, bar.macs, bar.memory, bar.status)

    def nothing_clipped() -> bool:
        return all(label.width() >= label.sizeHint().width() for label in labels)

    qtbot.waitUntil(nothing_clipped)
    # Every figure is there, whatever the wording.
    params, _, _ = seed_costs()
    assert f"{params:,}" in bar.text() or format_compact(params) in bar.text()
    assert bar.level == 0 or width < bar.sizeHint().width()


def test_the_bar_never_widens_the_window(window):
    assert window.totals.minimumSizeHint().width() == 0
