"""The Layer profile: where the time of a training step goes, layer by layer.

"Profile" (Train menu or the panel's button) builds the current design with the project's training
settings, runs a few training steps on the chosen dataset on a background thread (one warm-up, then
the timed ones; engine.profiler) and lists each step of the run plan with its forward and backward
time, its share of the step and the activation memory it keeps for the backward pass. The canvas can
colour its blocks by time (layers the engine fuses into one kernel split its time as they take it
one by one). A design edited since the profile is marked: its numbers belong to the design as it was.
"""

from __future__ import annotations

import threading
from typing import Any

import numpy as np
from PySide6.QtCore import QObject, Qt, Signal
from PySide6.QtGui import QColor
from PySide6.QtWidgets import (
    QCheckBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from engine.explain import Cancelled
from engine.profiler import Profile, profile_training

INTRODUCTION = ("Profile times each layer's forward and backward pass over a few training steps, with the "
                "project's batch size and optimizer.")
COLUMNS = ("Step of the run plan", "Forward ms", "Backward ms", "Total ms", "Share of the step", "Activations")


class _Relay(QObject):
    progressed = Signal(float)
    done = Signal(object)
    failed = Signal(str)


class ProfileRunner(QObject):
    """Profiles on a Python thread; signals arrive on the GUI thread: ``progressed(float)``,
    ``finished(Profile)``, ``failed(str)`` (a one-line reason; "" when cancelled)."""

    progressed = Signal(float)
    finished = Signal(object)
    failed = Signal(str)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._thread: threading.Thread | None = None
        self._cancel = threading.Event()
        self._relay = _Relay()
        self._relay.progressed.connect(self.progressed, Qt.ConnectionType.QueuedConnection)
        self._relay.done.connect(self._done, Qt.ConnectionType.QueuedConnection)
        self._relay.failed.connect(self._failed, Qt.ConnectionType.QueuedConnection)

    @property
    def running(self) -> bool:
        return self._thread is not None

    def start(self, architecture: dict[str, Any], dataset: Any, config: Any, steps: int) -> None:
        if self._thread is not None:
            return
        self._cancel.clear()
        self._thread = threading.Thread(target=self._run, args=(architecture, dataset, config, steps),
                                        name="layer-profile", daemon=True)
        self._thread.start()

    def cancel(self) -> None:
        self._cancel.set()

    def shutdown(self, timeout_s: float = 10.0) -> None:
        self._cancel.set()
        thread = self._thread
        if thread is not None:
            thread.join(timeout_s)

    def _run(self, architecture: dict[str, Any], dataset: Any, config: Any, steps: int) -> None:
        from engine.errors import EngineError
        from engine.training import prepare

        try:
            model, trainer = prepare(architecture, dataset, config)
            rows = trainer.train_idx[: config.batch_size * (steps + 1)]
            x = trainer.dataset.normalized("train", rows)
            y = trainer.dataset.y_train[rows]
            profile = profile_training(model, x, y, trainer.optimizer, config.batch_size, steps=steps,
                                       label_smoothing=config.label_smoothing, progress=self._relay.progressed.emit,
                                       cancelled=self._cancel.is_set)
        except Cancelled:
            self._relay.failed.emit("")
        except (EngineError, ValueError, MemoryError) as exc:
            self._relay.failed.emit(str(exc) if not isinstance(exc, MemoryError) else "not enough memory")
        except Exception as exc:  # the GUI must hear of it, whatever it is
            self._relay.failed.emit(f"{type(exc).__name__}: {exc}")
        else:
            self._relay.done.emit(profile)

    def _done(self, profile: Profile) -> None:
        self._join()
        self.finished.emit(profile)

    def _failed(self, message: str) -> None:
        self._join()
        self.failed.emit(message)

    def _join(self) -> None:
        if self._thread is not None:
            self._thread.join()
            self._thread = None


def _memory(n: int) -> str:
    if not n:
        return ""
    return f"{n / 2**20:.2f} MiB" if n >= 2**20 else f"{n / 2**10:.1f} KiB"


class ProfileView(QWidget):
    """The table of a Profile. Signals: ``profile_requested()``, ``cancel_requested()``, ``colour_toggled(bool)``."""

    profile_requested = Signal()
    cancel_requested = Signal()
    colour_toggled = Signal(bool)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.profile_button = QPushButton("Profile")
        self.profile_button.setToolTip("Run a few training steps and time every layer (Train > Profile Layers)")
        self.profile_button.clicked.connect(self.profile_requested)
        self.steps = QSpinBox()
        self.steps.setRange(1, 100)
        self.steps.setValue(5)
        self.steps.setToolTip("Timed training steps (after one warm-up step); more: steadier numbers")
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.clicked.connect(self.cancel_requested)
        self.progress = QProgressBar()
        self.progress.setRange(0, 100)
        self.progress.setMaximumWidth(150)
        self.colour_box = QCheckBox("Colour blocks by time")
        self.colour_box.setToolTip("Tint the canvas's blocks by their share of the step, the slowest reddest")
        self.colour_box.setChecked(True)
        self.colour_box.toggled.connect(self.colour_toggled)
        self.summary = QLabel(INTRODUCTION)
        self.summary.setWordWrap(True)
        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels(COLUMNS)
        self.table.verticalHeader().setVisible(False)
        self.table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.table.setSelectionBehavior(QTableWidget.SelectionBehavior.SelectRows)
        self.table.setSortingEnabled(False)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        for column in range(1, len(COLUMNS)):
            header.setSectionResizeMode(column, QHeaderView.ResizeMode.ResizeToContents)
        controls = QHBoxLayout()
        controls.addWidget(self.profile_button)
        controls.addWidget(QLabel("Steps"))
        controls.addWidget(self.steps)
        controls.addWidget(self.colour_box)
        controls.addStretch(1)
        controls.addWidget(self.progress)
        controls.addWidget(self.cancel_button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addLayout(controls)
        layout.addWidget(self.summary)
        layout.addWidget(self.table, 1)
        self.profile: Profile | None = None
        self.set_busy(False)

    def set_busy(self, busy: bool, fraction: float = 0.0) -> None:
        self.progress.setVisible(busy)
        self.cancel_button.setVisible(busy)
        self.profile_button.setEnabled(not busy)
        self.progress.setValue(int(round(100 * fraction)))

    def set_profile(self, profile: Profile, described: str) -> None:
        self.profile = profile
        rows = list(profile.rows)
        self.table.setRowCount(len(rows) + 2)
        slowest = max((r.total_s for r in rows), default=0.0) or 1.0
        for i, row in enumerate(rows):
            self._set_row(i, row.name, row.forward_s, row.backward_s, row.total_s, profile.share(row),
                          _memory(row.activation_bytes), row.total_s / slowest)
        overhead = profile.overhead_s
        self._set_row(len(rows), "(Python between the kernels)", None, None, overhead,
                      overhead / profile.step_s if profile.step_s else 0.0, "", 0.0, muted=True)
        self._set_row(len(rows) + 1, "Whole step", None, None, profile.step_s, 1.0,
                      _memory(sum(r.activation_bytes for r in rows)), 0.0, bold=True)
        self.summary.setText(
            f"{described}: one training step of {profile.batch_size} images takes {profile.step_s * 1e3:.1f} ms "
            f"({profile.images_per_second:,.0f} images/s), the mean of {profile.steps} steps. Layers the engine runs "
            "as one kernel (a convolution with its pooling, say) are timed together; on the canvas their time is split "
            "as they take it run one by one.")
        self.set_busy(False)

    def clear(self) -> None:
        """No profile: the table empty, the introduction shown (another project is open)."""
        self.profile = None
        self.table.setRowCount(0)
        self.summary.setText(INTRODUCTION)
        self.set_busy(False)

    def mark_stale(self) -> None:
        if self.profile is not None and "(an earlier design)" not in self.summary.text():
            self.summary.setText(f"<i>(an earlier design)</i> {self.summary.text()} Profile again for the design as "
                                 "it is now.")

    def _set_row(self, i: int, name: str, forward: float | None, backward: float | None, total: float, share: float,
                 memory: str, heat: float, muted: bool = False, bold: bool = False) -> None:
        values = [name, "" if forward is None else f"{forward * 1e3:.2f}",
                  "" if backward is None else f"{backward * 1e3:.2f}", f"{total * 1e3:.2f}", f"{share:.1%}", memory]
        for column, text in enumerate(values):
            item = QTableWidgetItem(text)
            if column:
                item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
            if muted:
                item.setForeground(Qt.GlobalColor.darkGray)
            if bold:
                font = item.font()
                font.setBold(True)
                item.setFont(font)
            if column == 4 and heat > 0:
                alpha = int(40 + 160 * heat)
                item.setBackground(QColor(231, 76, 60, alpha))
            self.table.setItem(i, column, item)

    def share_column(self) -> np.ndarray:
        """The shares shown, per row (tests)."""
        return np.array([float(self.table.item(i, 4).text().rstrip("%")) / 100 for i in range(self.table.rowCount())])
