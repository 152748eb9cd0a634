"""The trainer's clock: time spent paused counts in no images-per-second figure, elapsed time or ETA."""

from __future__ import annotations

import threading

import pytest

import engine.training as training_module
from engine import Model, TrainConfig, Trainer
from engine.training import BatchEnd, EpochEnd
from tests.helpers.engine_factories import SMALL_CNN, stripes_dataset

PAUSE_SECONDS = 100.0
BATCH_SECONDS = 0.5  # each training step "takes" this long on the fake clock


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def perf_counter(self) -> float:
        return self.now


class PauseOnce:
    """Stands in for the trainer's running flag: unset before one chosen batch, and waiting on it takes
    PAUSE_SECONDS of the fake clock."""

    def __init__(self, clock: FakeClock, before_batch: int) -> None:
        self.clock = clock
        self.calls = 0
        self.before_batch = before_batch
        self.inner = threading.Event()
        self.inner.set()

    def is_set(self) -> bool:
        self.calls += 1
        return self.calls != self.before_batch

    def wait(self, timeout: float | None = None) -> bool:
        self.clock.now += PAUSE_SECONDS
        return True

    def set(self) -> None:
        self.inner.set()

    def clear(self) -> None:
        self.inner.clear()


def run_events(monkeypatch: pytest.MonkeyPatch, pause_before: int | None) -> list:
    clock = FakeClock()
    monkeypatch.setattr(training_module, "time", clock)
    trainer = Trainer(Model(SMALL_CNN), stripes_dataset(160, 16), TrainConfig(epochs=2, batch_size=16))
    step = trainer.train_batch

    def timed_step(x, y):
        clock.now += BATCH_SECONDS
        return step(x, y)

    trainer.train_batch = timed_step
    if pause_before is not None:
        trainer._running = PauseOnce(clock, pause_before)
    return [e for e in trainer.run() if isinstance(e, (BatchEnd, EpochEnd))]


def test_paused_time_counts_in_no_rate_elapsed_or_eta(monkeypatch):
    plain = run_events(monkeypatch, None)
    paused = run_events(monkeypatch, pause_before=4)
    assert len(plain) == len(paused)
    for a, b in zip(plain, paused):
        assert b.elapsed == pytest.approx(a.elapsed), (a, b)
        if isinstance(a, BatchEnd):
            assert b.images_per_second == pytest.approx(a.images_per_second)
            assert b.eta == pytest.approx(a.eta)
    assert plain[-1].elapsed == pytest.approx(2 * 9 * BATCH_SECONDS)  # 144 training images: 9 batches an epoch
