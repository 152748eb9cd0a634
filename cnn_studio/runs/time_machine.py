"""The time machine: a slider (and a play button) over a kept run's epochs. The Inside tab shows the
network as it was at that epoch (feature maps, filters, statistics, saliency, prediction of the same
sample) and the Train tab its confusion matrix on the test set.

Checkpoints load on a worker thread; only the latest position asked for is loaded (positions passed
while scrubbing are skipped), and recent epochs stay cached, so the slider never waits on the disk.
"""

from __future__ import annotations

import html
import math
import re
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, QSize, Qt, QTimer, Signal, Slot
from PySide6.QtGui import QPaintEvent
from PySide6.QtWidgets import (
    QComboBox,
    QLabel,
    QPushButton,
    QSizePolicy,
    QSlider,
    QStyle,
    QStyleOptionComboBox,
    QStylePainter,
    QWidget,
)

from cnn_studio.flow_layout import FlowLayout
from cnn_studio.training.threads import new_thread, register
from engine.errors import EngineError
from engine.inspection import as_normalization
from engine.metrics import Evaluation, evaluate
from engine.model import Model
from engine.runs import RunFolder
from engine.weights import build_model

CACHED_EPOCHS = 12
PLAY_INTERVAL_MS = 700
RUN_BOX_TIP = "The run whose epochs the slider goes through"


@dataclass(frozen=True)
class EpochView:
    """A run's network after ``epoch``, and (when asked for) its test evaluation."""

    run_id: str
    epoch: int
    model: Model
    evaluation: Evaluation | None
    label: str


@dataclass(frozen=True)
class _Request:
    path: Path
    epoch: int
    dataset: Any  # evaluated on its test part when given
    label: str


class CheckpointLoader(QObject):
    """Lives on a worker thread: loads the latest requested checkpoint, builds its model, evaluates it.

    Signals: loaded(EpochView), failed(str).
    """

    loaded = Signal(object)
    failed = Signal(str)
    _poke = Signal()

    def __init__(self) -> None:
        super().__init__()
        self._lock = threading.Lock()
        self._wanted: _Request | None = None
        self._cache: OrderedDict[tuple[str, int], tuple[Model, Evaluation | None]] = OrderedDict()
        self._poke.connect(self._work, Qt.ConnectionType.QueuedConnection)

    def request(self, request: _Request) -> None:
        """(any thread) Load this one next; an earlier request not started yet is dropped."""
        with self._lock:
            self._wanted = request
        self._poke.emit()

    @Slot()
    def _work(self) -> None:
        with self._lock:
            request, self._wanted = self._wanted, None
        if request is None:
            return  # already served by an earlier poke
        key = (str(request.path), request.epoch)
        try:
            model, evaluation = self._cache.get(key, (None, None))
            if model is None:
                architecture, preprocessing, tensors = RunFolder.open(request.path).epoch_weights(request.epoch)
                model = build_model(architecture, preprocessing, tensors, source=request.path.name)
            if evaluation is None and request.dataset is not None and len(request.dataset.y_test) \
                    and tuple(request.dataset.input_shape) == tuple(model.input_shape):
                x = as_normalization(model.preprocessing).apply(request.dataset.x_test)
                evaluation = evaluate(model, x, request.dataset.y_test)
        except (EngineError, OSError, ValueError) as exc:
            self.failed.emit(f"epoch {request.epoch}: {exc}")
            return
        self._cache[key] = (model, evaluation)
        self._cache.move_to_end(key)
        while len(self._cache) > CACHED_EPOCHS:
            self._cache.popitem(last=False)
        with self._lock:
            superseded = self._wanted is not None
        if not superseded:
            self.loaded.emit(EpochView(request.path.name, request.epoch, model, evaluation, request.label))


class TimeMachine(QObject):
    """Which run and epoch are being looked at. Views (scrubbers) set them; ``shown(EpochView)`` brings the
    network of that epoch, ``released()`` says the latest weights are shown again.

    Signals: runs_changed(), position_changed(), shown(EpochView), released(), failed(str).
    """

    runs_changed = Signal()
    position_changed = Signal()
    shown = Signal(object)
    released = Signal()
    failed = Signal(str)

    def __init__(self, store: Any, datasets: Any, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.store = store
        self.datasets = datasets  # the session's DatasetSource: its test images are evaluated
        self.runs: list[tuple[str, str]] = []  # (run folder, label) of runs with checkpoints, newest first
        self.run_id = ""  # the chosen run's folder ("" when none)
        self.epochs: list[int] = []
        self._rates: dict[int, float] = {}  # the chosen run's learning rate per epoch, as trained
        self._base_rate: float | None = None  # ... and as set when it started
        self.epoch = 0
        self.active = False  # a past epoch is shown (not the latest weights)
        self.enabled = True  # False while a run trains
        self.evaluate_epochs = True
        # Says whose the latest weights (the trained network) are, e.g. "run 3 · 0 epochs · stopped": they
        # need not be the chosen run's last epoch (a run stopped before its first epoch keeps no epoch).
        self.describe_latest: Callable[[], str] = lambda: ""
        self._numbers: dict[str, int] = {}
        self._loader = CheckpointLoader()
        self._thread = new_thread("checkpoint-loader", self._loader)
        self._loader.loaded.connect(self._on_loaded)
        self._loader.failed.connect(self.failed)
        self._play = QTimer(self)
        self._play.setInterval(PLAY_INTERVAL_MS)
        self._play.timeout.connect(self._advance)

    # -- runs -----------------------------------------------------------------------------------------------
    def refresh(self, prefer: str = "") -> None:
        """Re-read the project's runs (those with checkpoints), keeping the chosen one if it is still there."""
        runs = []
        self._numbers: dict[str, int] = {}
        for number, summary in reversed(list(enumerate(self.store.runs(), start=1))):
            kept = [e for e, _ in RunFolder(summary.path, summary.record).checkpoints()]  # (no record read again)
            if kept:
                # Numbered as the Train tab's run list numbers them (oldest first).
                self._numbers[str(summary.path)] = number
                runs.append((str(summary.path), f"Run {number}: {summary.optimizer} lr {summary.learning_rate:g} "
                                                f"bs {summary.batch_size} · {summary.status}"))
        self.runs = runs
        ids = [r for r, _ in runs]
        preferred = [r for r in ids if prefer and Path(r).name == prefer]
        wanted = preferred[0] if preferred else self.run_id if self.run_id in ids else (ids[0] if ids else "")
        self.runs_changed.emit()
        self.choose_run(wanted, force=True)

    def choose_run(self, run_id: str, force: bool = False) -> None:
        if run_id == self.run_id and not force:
            return
        self.run_id = run_id
        self._rates, self._base_rate = {}, None
        try:
            folder = RunFolder.open(run_id) if run_id else None
            self.epochs = [e for e, _ in folder.checkpoints()] if folder is not None else []
        except EngineError:
            folder, self.epochs = None, []
        if folder is not None:
            # Each epoch's learning rate as trained (a schedule or a change made during the run moves it).
            self._rates = {int(entry["epoch"]): float(entry["learning_rate"])
                           for entry in folder.record.get("history") or []
                           if isinstance(entry.get("learning_rate"), (int, float))}
            rate = (folder.record.get("config") or {}).get("learning_rate")
            self._base_rate = float(rate) if isinstance(rate, (int, float)) else None
        if self.epoch not in self.epochs:
            self.epoch = self.epochs[-1] if self.epochs else 0
        self.position_changed.emit()
        if self.active:
            self._load()

    # -- position -------------------------------------------------------------------------------------------
    def go_to(self, epoch: int) -> None:
        """Show the network after ``epoch`` (the nearest kept one)."""
        if not self.epochs or not self.enabled:
            return
        nearest = min(self.epochs, key=lambda e: (abs(e - epoch), e))
        self.epoch = nearest
        self.active = True
        self.position_changed.emit()
        self._load()

    def release(self) -> None:
        """Back to the latest weights (the trained network)."""
        self._play.stop()
        if self.active:
            self.active = False
            self.position_changed.emit()
            self.released.emit()

    def latest_text(self) -> str:
        """The scrubber's words for the latest weights."""
        said = self.describe_latest()
        if said:
            return f"latest: {said}"
        return f"latest ({self.epochs[-1]} epochs)" if self.epochs else "latest"

    @property
    def playing(self) -> bool:
        return self._play.isActive()

    def play(self, on: bool = True) -> None:
        """Step through the epochs from the current one (from the first when at the last)."""
        if not on or not self.epochs or not self.enabled:
            self._play.stop()
            self.position_changed.emit()
            return
        if not self.active or self.epoch == self.epochs[-1]:
            self.go_to(self.epochs[0])
        self._play.start()
        self.position_changed.emit()

    def _advance(self) -> None:
        later = [e for e in self.epochs if e > self.epoch]
        if not later:
            self._play.stop()
            self.position_changed.emit()
            return
        self.go_to(later[0])

    def set_enabled(self, enabled: bool) -> None:
        """While a run trains the views show it live: the time machine waits."""
        self.enabled = enabled
        if not enabled:
            self.release()
        self.position_changed.emit()

    def _load(self) -> None:
        if not self.run_id:
            return
        if not self._thread.isRunning():
            register(self._thread)
            self._thread.start()
        dataset = self.datasets.current if self.evaluate_epochs else None
        label = f"Epoch {self.epoch} of run {self._numbers.get(self.run_id, Path(self.run_id).name)}"
        rate = self._rates.get(self.epoch)
        if rate is not None and self._base_rate is not None and not math.isclose(rate, self._base_rate, rel_tol=1e-6):
            label += f" (lr {rate:.3g})"
        self._loader.request(_Request(Path(self.run_id), self.epoch, dataset, label))

    def _on_loaded(self, view: EpochView) -> None:
        if self.active and view.run_id == Path(self.run_id).name and view.epoch == self.epoch:
            self.shown.emit(view)

    def shutdown(self) -> None:
        self._play.stop()
        if self._thread.isRunning():
            self._thread.quit()
            self._thread.wait()


def shorten_run_label(label: str, fits: Callable[[str], bool]) -> str:
    """``label`` whole if it fits, else cut after its last whole part that fits, marked '…': the status goes
    first, then the batch size, the learning rate... A setting keeps its value ('lr 0.05', never 'lr'),
    and the run's number always stays ('Run 2: sgd lr 0.05 bs 32 · completed' -> 'Run 2: sgd lr 0.05…')."""
    if fits(label):
        return label
    parts = re.findall(r"(?:Run|lr|bs) \S+|\S+", label)
    for count in range(len(parts) - 1, 0, -1):
        short = " ".join(parts[:count]).rstrip(" ·:") + "\u2026"
        if fits(short):
            return short
    return parts[0].rstrip(":") + "\u2026" if parts else label


class RunBox(QComboBox):
    """The run chooser. It asks for the width of its longest run label (a row with room shows them whole)
    and, where it gets less, shows the chosen label cut at a whole part (shorten_run_label) instead of
    clipping it mid-word ('Run 2: sgd lr 0.05 b'); the tooltip and the list it opens have every label whole."""

    def sizeHint(self) -> QSize:  # noqa: N802 (Qt)
        hint = super().sizeHint()
        widest = max((self.fontMetrics().horizontalAdvance(self.itemText(i)) for i in range(self.count())), default=0)
        option = QStyleOptionComboBox()
        self.initStyleOption(option)
        needed = self.style().sizeFromContents(QStyle.ContentsType.CT_ComboBox, option,
                                               QSize(widest + 4, hint.height()), self).width()
        return QSize(min(max(hint.width(), needed), self.maximumWidth()), hint.height())

    def text_room(self) -> int:
        option = QStyleOptionComboBox()
        self.initStyleOption(option)
        return self.style().subControlRect(QStyle.ComplexControl.CC_ComboBox, option,
                                           QStyle.SubControl.SC_ComboBoxEditField, self).width()

    def shown_text(self) -> str:
        """The chosen run's label as the box shows it, shortened to its room."""
        metrics, room = self.fontMetrics(), self.text_room()
        return shorten_run_label(self.currentText(), lambda text: metrics.horizontalAdvance(text) <= room)

    def paintEvent(self, _event: QPaintEvent) -> None:  # noqa: N802 (Qt)
        # QComboBox's own painting, but with the label shortened to the box's room.
        painter = QStylePainter(self)
        option = QStyleOptionComboBox()
        self.initStyleOption(option)
        painter.drawComplexControl(QStyle.ComplexControl.CC_ComboBox, option)
        option.currentText = self.shown_text()
        painter.drawControl(QStyle.ControlElement.CE_ComboBoxLabel, option)


class EpochScrubber(QWidget):
    """A run chooser, a slider over its kept epochs, play, and "Latest"; follows and steers a TimeMachine."""

    def __init__(self, machine: TimeMachine, parent: QWidget | None = None) -> None:
        """One row where there is room; in a narrow place the slider wraps below the run chooser."""
        super().__init__(parent)
        self.machine = machine
        self.title = QLabel("<b>Time machine</b>")
        self.title.setToolTip("Look at the network as it was after any kept epoch of a run")
        self.run_box = RunBox()
        self.run_box.setToolTip(RUN_BOX_TIP)
        self.run_box.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.run_box.setMinimumContentsLength(10)
        # It grows with the room its row leaves, so that a run's whole label shows where there is space.
        self.run_box.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self.run_box.setMaximumWidth(360)
        self.slider = QSlider(Qt.Orientation.Horizontal)
        self.slider.setToolTip("Drag to go through the epochs (arrow keys step)")
        self.slider.setPageStep(1)
        self.play_button = QPushButton()
        self.play_button.setIcon(self.style().standardIcon(QStyle.StandardPixmap.SP_MediaPlay))
        self.play_button.setToolTip("Play the epochs one after another")
        self.play_button.setCheckable(True)
        self.latest_button = QPushButton("Latest")
        self.latest_button.setToolTip("Back to the latest weights (the trained network)")
        self.position = QLabel("")
        self.position.setMinimumWidth(90)
        self.slider.setMinimumWidth(80)
        layout = FlowLayout(self, spacing=6, row_spacing=2)
        layout.addWidget(self.title)
        layout.glue_last()
        layout.addWidget(self.run_box)
        layout.addWidget(self.play_button)
        layout.glue_last()
        layout.addWidget(self.slider)
        layout.addWidget(self.position)
        layout.glue_last()
        layout.addWidget(self.latest_button)

        self.run_box.activated.connect(lambda i: machine.choose_run(self.run_box.itemData(i)))
        self.slider.valueChanged.connect(self._on_slider)
        self.play_button.toggled.connect(machine.play)
        self.latest_button.clicked.connect(machine.release)
        machine.runs_changed.connect(self._fill_runs)
        machine.position_changed.connect(self._show_position)
        self._fill_runs()

    def _fill_runs(self) -> None:
        self.run_box.blockSignals(True)
        self.run_box.clear()
        for run_id, label in self.machine.runs:
            self.run_box.addItem(label, run_id)
            self.run_box.setItemData(self.run_box.count() - 1, f"{label}\n{run_id}", Qt.ItemDataRole.ToolTipRole)
        # The box elides a long label where its row is short of room; the list it opens shows every label whole.
        view = self.run_box.view()
        view.setTextElideMode(Qt.TextElideMode.ElideNone)
        metrics = view.fontMetrics()
        widest = max((metrics.horizontalAdvance(label) for _, label in self.machine.runs), default=0)
        view.setMinimumWidth(widest + 2 * view.frameWidth() + 32 if widest else 0)  # 32: the items' margins
        self.run_box.updateGeometry()  # it asks for the width of its longest label: the row makes room again
        self.run_box.blockSignals(False)
        self._show_position()

    def _on_slider(self, index: int) -> None:
        epochs = self.machine.epochs
        if 0 <= index < len(epochs) and (epochs[index] != self.machine.epoch or not self.machine.active):
            self.machine.go_to(epochs[index])

    def _slider_index(self) -> int:
        """Where the handle goes: the shown epoch; the last position while the latest weights are shown (the
        machine keeps the epoch last looked at, for play, but the handle must not claim it is shown)."""
        m = self.machine
        if not m.active or m.epoch not in m.epochs:
            return max(len(m.epochs) - 1, 0)
        return m.epochs.index(m.epoch)

    def _show_position(self) -> None:
        m = self.machine
        index = self.run_box.findData(m.run_id)
        if index >= 0 and index != self.run_box.currentIndex():
            self.run_box.blockSignals(True)
            self.run_box.setCurrentIndex(index)
            self.run_box.blockSignals(False)
        current = self.run_box.currentText()
        self.run_box.setToolTip(f"<b>{html.escape(current)}</b><br>{RUN_BOX_TIP}" if current else RUN_BOX_TIP)
        self.slider.blockSignals(True)
        self.slider.setRange(0, max(len(m.epochs) - 1, 0))
        self.slider.setValue(self._slider_index())
        self.slider.blockSignals(False)
        usable = bool(m.epochs) and m.enabled
        for widget in (self.run_box, self.slider, self.play_button):
            widget.setEnabled(usable)
        self.latest_button.setEnabled(m.active)
        self.play_button.blockSignals(True)
        self.play_button.setChecked(m.playing)
        self.play_button.setIcon(self.style().standardIcon(
            QStyle.StandardPixmap.SP_MediaPause if m.playing else QStyle.StandardPixmap.SP_MediaPlay))
        self.play_button.blockSignals(False)
        if not m.enabled:
            self.position.setText("while training: live")
        elif not m.epochs:
            self.position.setText(f"{m.latest_text()} · no kept epochs" if m.describe_latest() else "no kept epochs")
        elif m.active:
            self.position.setText(f"epoch {m.epoch} / {m.epochs[-1]}")
        else:
            self.position.setText(m.latest_text())
