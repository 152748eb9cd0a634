"""The Runs tab's comparison of two runs: it says which run got the flipped images right, shows every class
name whole over the confusion matrix, shows one hint at a time, and leaves nothing behind when the project
changes."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PySide6.QtCore import QPoint, Qt
from PySide6.QtGui import QColor, QFontMetrics
from PySide6.QtWidgets import QLabel, QScrollArea

import cnn_studio.training.panel as panel_module
from cnn_studio.runs.class_header import TURNED_MARGIN
from cnn_studio.runs.compare import RunComparison, flip_summary, flips
from cnn_studio.runs.store import runs_folder_for
from engine.data import Dataset
from engine.model import Model
from engine.runs import RunFolder, dataset_reference, new_run, train_in_folder
from engine.training import TrainConfig
from tests.helpers.engine_factories import arch
from tests.studio.window_helpers import close_window, shown_window

FASHION = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]
NET = arch({"type": "Conv2D", "filters": 2, "kernel_size": 3, "activation": "relu"}, {"type": "Flatten"},
           {"type": "Dense", "units": 10, "activation": "softmax"})
CONFIG = TrainConfig(epochs=2, batch_size=32, learning_rate=0.05)


@pytest.fixture(scope="module")
def data() -> Dataset:
    """Ten classes with Fashion-MNIST's names (noise images: the two runs disagree on many)."""
    rng = np.random.default_rng(0)
    x, x_test = (rng.integers(0, 256, (n, 12, 12, 1), dtype=np.uint8) for n in (160, 60))
    return Dataset.from_arrays(x, np.arange(160) % 10, x_test, np.arange(60) % 10, FASHION, name="fashion-like")


@pytest.fixture(autouse=True)
def quiet(monkeypatch):
    monkeypatch.setattr(panel_module, "show_message", lambda *args, **kwargs: None)


@pytest.fixture
def project(tmp_path, data):
    """A saved project with two completed runs (learning rates 0.05 and 0.0005)."""
    npz = tmp_path / "fashion-like.npz"
    np.savez(npz, x=data.x_train[..., 0], y=data.y_train, x_test=data.x_test[..., 0], y_test=data.y_test,
             class_names=np.array(data.class_names))
    path = tmp_path / "two.cnnproj"
    path.write_text(json.dumps({"format": "cnn-studio.project/1", "architecture": NET, "dataset": str(npz),
                                "training": CONFIG.to_dict()}))
    for name, lr in (("20240101-a", 0.05), ("20240102-b", 0.0005)):
        config = TrainConfig.from_dict({**CONFIG.to_dict(), "learning_rate": lr})
        train_in_folder(*new_run(runs_folder_for(path) / name, Model(NET, seed=0), data, config,
                                 dataset_reference(data, npz)))
    return path


def folders(project) -> list[RunFolder]:
    return [RunFolder.open(p) for p in sorted(runs_folder_for(project).iterdir())]


def shown_comparison(qtbot, project, width: int) -> RunComparison:
    comparison = RunComparison()
    qtbot.addWidget(comparison)
    comparison.resize(width, 1100)
    comparison.show()
    qtbot.waitExposed(comparison)
    a, b = folders(project)
    comparison.compare(a, b, ("run 1", "run 2"))
    qtbot.wait(20)
    return comparison


def test_the_flip_counts_say_which_run_got_the_images_right(qtbot, project):
    assert flip_summary(123, 320) == "123 test images right in A but wrong in B; 320 wrong in A but right in B"
    assert flip_summary(1, 0).startswith("1 test image right in A")
    comparison = shown_comparison(qtbot, project, 1000)
    worse, better = flips(*folders(project))
    assert worse and better, "two so different learning rates flip some test images"
    assert comparison.flip_note.text().startswith(
        f"{len(worse)} test images right in A but wrong in B; {len(better)} wrong in A but right in B")
    assert comparison.worse.count() == len(worse) and comparison.better.count() == len(better)


def header_ink_rows(header, section: int) -> int:
    """How many pixel rows of a header section hold text (dark pixels)."""
    picture = header.grab().toImage()
    left = header.sectionViewportPosition(section)
    rows = 0
    for y in range(picture.height()):
        if any(QColor(picture.pixel(x, y)).lightness() < 110
               for x in range(left + 3, left + header.sectionSize(section) - 3)):
            rows += 1
    return rows


@pytest.mark.parametrize("width, turned", [(1000, True), (1900, False)])
def test_the_confusion_headers_show_every_class_name_whole(qtbot, project, width, turned):
    comparison = shown_comparison(qtbot, project, width)
    table = comparison.confusion
    header = table.horizontalHeader()
    assert [table.horizontalHeaderItem(j).text() for j in range(10)] == FASHION
    for j, name in enumerate(FASHION):  # the full name in each header's tooltip, columns and rows alike
        assert table.horizontalHeaderItem(j).toolTip() == f"predicted {name}"
        assert table.verticalHeaderItem(j).toolTip() == f"true {name}"
    assert header.turned == turned
    metrics = QFontMetrics(header.font())
    longest = max(metrics.horizontalAdvance(name) for name in FASHION)
    line = metrics.height()
    if turned:  # the columns are too narrow for "T-shirt/top" lying level: the names stand upright, whole
        assert not header.level_fits()
        assert header.height() >= longest + 2 * TURNED_MARGIN
        assert header_ink_rows(header, 0) > 2 * line  # "T-shirt/top" drawn upright, not one cut line
    else:  # room enough: level names, one line high
        assert all(header.sectionSize(j) >= metrics.horizontalAdvance(FASHION[j]) for j in range(10))
        assert header.height() < 2 * line + 8
        assert 0 < header_ink_rows(header, 0) <= line


def spans_the_curves(comparison: RunComparison) -> bool:
    """Whether both plots' value axes span run A's validation curve (pyqtgraph scales them when drawing)."""
    history = comparison.a.record["history"] if comparison.a is not None else []
    curves = ((comparison.accuracy_plot, "val_accuracy", 100), (comparison.loss_plot, "val_loss", 1))
    return bool(history) and all(plot.viewRange()[1][0] <= e[key] * scale <= plot.viewRange()[1][1]
                                 for e in history for plot, key, scale in curves)


def test_a_cleared_comparison_forgets_the_old_ranges_and_scales_to_the_next(qtbot, project):
    comparison = shown_comparison(qtbot, project, 1000)
    qtbot.waitUntil(lambda: spans_the_curves(comparison))
    plots = (comparison.accuracy_plot, comparison.loss_plot)
    comparison.clear()
    for plot in plots:
        assert plot.getPlotItem().listDataItems() == []
        assert plot.viewRange() == [[0, 1], [0, 1]]
    comparison.compare(*folders(project), ("run 1", "run 2"))
    qtbot.waitUntil(lambda: spans_the_curves(comparison))  # the axes follow the data again


make_window = shown_window
close = close_window


def click_row(qtbot, view, row: int, modifier=Qt.KeyboardModifier.NoModifier) -> None:
    rect = view.table.visualRect(view.proxy.index(row, 1))
    qtbot.mouseClick(view.table.viewport(), Qt.MouseButton.LeftButton, modifier, rect.center())


def visible_texts(view) -> list[QLabel]:
    """The hint and the comparison's title where they show (the texts that told the user what to select)."""
    return [label for label in (view.hint, view.comparison.title) if label.isVisible() and label.text()]


def check_whole(label: QLabel) -> None:
    """The label is as tall as its wrapped text: no line of it is cut off or drawn over what lies below."""
    assert label.height() >= label.heightForWidth(label.width()), label.text()


@pytest.mark.parametrize("size", [(1100, 750), (1600, 1000)])
def test_the_runs_tab_shows_one_hint_at_a_time(qtbot, tmp_path, project, size):
    w = make_window(tmp_path, size)
    assert w.project.open_project(project)
    workspace = w.runs_workspace
    view = workspace.runs_view
    w.tabs.setCurrentWidget(workspace.runs_tab)
    qtbot.waitUntil(lambda: view.proxy.rowCount() == 2)
    qtbot.wait(20)

    assert visible_texts(view) == [view.hint]
    assert view.hint.text() == "Select a run; select two (Ctrl+click) to compare them."
    check_whole(view.hint)
    click_row(qtbot, view, 0)
    assert visible_texts(view) == [view.hint] and "Ctrl+click a second run" in view.hint.text()
    click_row(qtbot, view, 1, Qt.KeyboardModifier.ControlModifier)
    qtbot.wait(20)
    comparison = view.comparison
    assert comparison.a is not None and comparison.title.isVisible()
    assert comparison.title.text().startswith("<b>A</b> = run 1")
    # The hint and the title (which runs are A and B) each keep their own room.
    for label in (view.hint, comparison.title):
        check_whole(label)
    hint = view.hint.geometry().translated(view.hint.parentWidget().mapTo(view, QPoint(0, 0)))
    title = comparison.title.geometry().translated(comparison.mapTo(view, QPoint(0, 0)))
    assert not hint.intersects(title)
    click_row(qtbot, view, 0)  # back to one run: the comparison's title goes, one hint stays
    assert visible_texts(view) == [view.hint] and comparison.a is None
    close(w)


def test_a_project_without_runs_leaves_no_old_comparison_behind(qtbot, tmp_path, project):
    w = make_window(tmp_path, (1100, 750))
    assert w.project.open_project(project)
    workspace = w.runs_workspace
    view = workspace.runs_view
    w.tabs.setCurrentWidget(workspace.runs_tab)
    qtbot.waitUntil(lambda: view.proxy.rowCount() == 2)
    click_row(qtbot, view, 0)
    click_row(qtbot, view, 1, Qt.KeyboardModifier.ControlModifier)
    comparison = view.comparison
    scroll = view.findChild(QScrollArea)
    scroll.ensureWidgetVisible(comparison.accuracy_plot)  # drawn: its axes take the curves' ranges
    qtbot.waitUntil(lambda: spans_the_curves(comparison))
    w.new_action.trigger()  # File > New: a project with no runs
    qtbot.waitUntil(lambda: view.proxy.rowCount() == 0)
    assert comparison.a is None and not comparison.title.isVisible()
    assert comparison.confusion.rowCount() == 0 and comparison.worse.count() == comparison.better.count() == 0
    for plot in (comparison.accuracy_plot, comparison.loss_plot):
        assert plot.getPlotItem().listDataItems() == [] and plot.viewRange() == [[0, 1], [0, 1]]
    assert visible_texts(view) == [view.hint]
    close(w)
