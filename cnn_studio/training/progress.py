"""The progress readout: a bar counting the run's batches and a line with epoch, batch, speed, time and ETA."""

from __future__ import annotations

import math

from PySide6.QtWidgets import QBoxLayout, QHBoxLayout, QLabel, QProgressBar, QVBoxLayout, QWidget

from engine.training import BatchEnd


def format_duration(seconds: float) -> str:
    """0:42, 12:05 or 1:02:03; '—' when unknown."""
    if not math.isfinite(seconds) or seconds < 0:
        return "—"
    total = int(round(seconds))
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def describe_batch(event: BatchEnd, last_epoch: int, paused: bool = False) -> str:
    """'Epoch 2/5 · batch 40/169 · 1,234 img/s · elapsed 0:42 · ETA 1:10' for one batch event."""
    text = (f"Epoch {event.epoch}/{last_epoch} · batch {event.batch}/{event.batches} · "
            f"{event.images_per_second:,.0f} img/s · elapsed {format_duration(event.elapsed)} · "
            f"ETA {format_duration(event.eta)}")
    return ("Paused · " + text) if paused else text


class TrainingProgress(QWidget):
    """A progress bar over the run's batches and the readout line beside it."""

    def __init__(self, parent: QWidget | None = None, bar_width: int = 180, vertical: bool = False) -> None:
        super().__init__(parent)
        self.bar = QProgressBar()
        if not vertical:
            self.bar.setFixedWidth(bar_width)
        self.bar.setRange(0, 1)
        self.bar.setValue(0)
        self.bar.setFormat("%p%")
        self.label = QLabel("")
        self.label.setWordWrap(vertical)
        layout: QBoxLayout = QVBoxLayout(self) if vertical else QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.bar)
        layout.addWidget(self.label, 1)
        self._first_epoch = 1
        self._epochs = 1
        self._last: BatchEnd | None = None

    def begin(self, epochs_done_before: int, epochs: int, batches_per_epoch: int) -> None:
        """A run of ``epochs`` epochs starts after ``epochs_done_before`` (nonzero for "+1 epoch")."""
        self._first_epoch = epochs_done_before + 1
        self._epochs = epochs
        self._last = None
        self.bar.setRange(0, max(1, epochs * batches_per_epoch))
        self.bar.setValue(0)
        self.label.setText(f"Epoch {self._first_epoch}/{epochs_done_before + epochs} · starting…")

    def show_batch(self, event: BatchEnd, paused: bool = False, text: bool = True) -> None:
        """Move the bar to ``event``; with ``text`` also rewrite the readout line (costlier: it re-lays out)."""
        self._last = event
        done = (event.epoch - self._first_epoch) * event.batches + event.batch
        self.bar.setValue(min(self.bar.maximum(), done))
        if text:
            self.label.setText(describe_batch(event, self._first_epoch + self._epochs - 1, paused))

    def set_paused(self, paused: bool) -> None:
        if self._last is not None:
            self.show_batch(self._last, paused)
        elif paused:
            self.label.setText("Paused · " + self.label.text())

    def reset(self) -> None:
        """Nothing to show (another project)."""
        self._last = None
        self.bar.setRange(0, 1)
        self.bar.setValue(0)
        self.label.setText("")

    def busy(self, text: str) -> None:
        """An indeterminate bar (e.g. while a dataset loads)."""
        self.bar.setRange(0, 0)
        self.label.setText(text)

    def done(self, text: str, complete: bool = True) -> None:
        self._last = None
        if self.bar.maximum() == 0:
            self.bar.setRange(0, 1)
        if complete:
            self.bar.setValue(self.bar.maximum())
        self.label.setText(text)
