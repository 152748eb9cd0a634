"""Early stopping (patience, minimum change, either metric, the best epoch restored) and the
reduce-on-plateau learning-rate schedule, driven by scripted validation results."""

from __future__ import annotations

import math

import numpy as np
import pytest

from engine.early_stopping import EarlyStopping
from engine.metrics import Evaluation
from engine.model import Model
from engine.schedules import ReduceOnPlateau, improved
from engine.training import BatchEnd, TrainConfig, Trainer
from tests.helpers.engine_factories import SMALL_CNN, stripes_dataset


def scripted(trainer: Trainer, losses: list[float], accuracies: list[float] | None = None) -> None:
    """Make the trainer's validation report these values, one epoch after another."""
    values = iter(zip(losses, accuracies or [0.5] * len(losses)))

    def validate():
        loss, accuracy = next(values)
        return Evaluation(accuracy, loss, np.zeros(3), np.zeros((3, 3)), np.zeros(0), np.zeros((0, 3)), np.zeros(0))

    trainer.validate = validate


def weights_by_epoch(trainer: Trainer) -> dict[int, dict[str, np.ndarray]]:
    kept: dict[int, dict[str, np.ndarray]] = {}
    trainer.epoch_hooks.append(lambda event: kept.update({event.epoch: trainer.model.get_weights()}))
    return kept


def test_early_stopping_ends_the_run_and_restores_the_best_epoch():
    config = TrainConfig(epochs=10, batch_size=32, learning_rate=0.05, early_stopping=2)
    trainer = Trainer(Model(SMALL_CNN), stripes_dataset(96, 16), config)
    scripted(trainer, [1.0, 0.5, 0.6, 0.55, 0.4])
    kept = weights_by_epoch(trainer)
    history = trainer.fit()
    finished = history.finished
    assert finished.reason == "completed" and finished.stopped_early and finished.best_epoch == 2
    assert [e.epoch for e in history.epochs] == [1, 2, 3, 4] and trainer.epoch == 4
    assert "did not improve" in finished.message and "epoch 2 were restored" in finished.message
    for name, value in trainer.model.tensors().items():
        np.testing.assert_array_equal(value, kept[2][name], err_msg=name)
    assert not np.array_equal(kept[2]["dense_1.kernel"], kept[4]["dense_1.kernel"])


def test_without_restore_the_last_epoch_stays_and_min_delta_counts():
    config = TrainConfig(epochs=10, batch_size=32, early_stopping=2, restore_best=False, min_delta=0.1)
    trainer = Trainer(Model(SMALL_CNN), stripes_dataset(96, 16), config)
    scripted(trainer, [1.0, 0.95, 0.92, 0.5])  # 0.95 and 0.92 are within min_delta of 1.0
    kept = weights_by_epoch(trainer)
    history = trainer.fit()
    assert history.finished.stopped_early and [e.epoch for e in history.epochs] == [1, 2, 3]
    for name, value in trainer.model.tensors().items():
        np.testing.assert_array_equal(value, kept[3][name])


def test_accuracy_is_monitored_upwards():
    config = TrainConfig(epochs=6, batch_size=32, early_stopping=1, monitor="val_accuracy")
    trainer = Trainer(Model(SMALL_CNN), stripes_dataset(96, 16), config)
    scripted(trainer, [1.0, 2.0, 3.0, 4.0], [0.5, 0.6, 0.55, 0.9])
    history = trainer.fit()
    assert history.finished.stopped_early and history.finished.best_epoch == 2 and len(history.epochs) == 3


def test_a_run_that_improves_completes_and_more_epochs_get_fresh_patience():
    config = TrainConfig(epochs=3, batch_size=32, early_stopping=1)
    trainer = Trainer(Model(SMALL_CNN), stripes_dataset(96, 16), config)
    scripted(trainer, [1.0, 0.9, 0.8, 0.9, 0.7])
    assert not trainer.fit().finished.stopped_early
    history = trainer.fit(epochs=1)  # epoch 4 is worse: patience 1 is used up
    assert history.finished.stopped_early and history.finished.best_epoch == 3
    history = trainer.fit(epochs=1)  # asked for more after stopping early: epoch 5 runs
    assert [e.epoch for e in history.epochs] == [5] and not history.finished.stopped_early


def test_plateau_lowers_the_learning_rate_after_patience_epochs():
    config = TrainConfig(epochs=6, batch_size=32, learning_rate=0.1, schedule="plateau", plateau_patience=2,
                         plateau_factor=0.5)
    trainer = Trainer(Model(SMALL_CNN), stripes_dataset(96, 16), config)
    scripted(trainer, [1.0, 1.0, 1.1, 0.5, 0.6, 0.7])
    rates: dict[int, set[float]] = {}
    history = trainer.fit(lambda e: rates.setdefault(e.epoch, set()).add(e.learning_rate)
                          if isinstance(e, BatchEnd) else None)
    assert rates == {1: {0.1}, 2: {0.1}, 3: {0.1}, 4: {0.05}, 5: {0.05}, 6: {0.05}}
    notes = [e.note for e in history.epochs]
    assert notes[2].startswith("learning rate lowered to 0.05") and notes[:2] == ["", ""] and not any(notes[3:5])
    assert notes[5].startswith("learning rate lowered to 0.025")


def test_plateau_and_stopper_units():
    plateau = ReduceOnPlateau("val_loss", factor=0.1, patience=1, min_lr=0.002)
    assert not plateau.update(1.0, base_lr=0.1)
    assert plateau.update(1.0, base_lr=0.1) and plateau.scale == pytest.approx(0.1)
    assert plateau.update(1.2, base_lr=0.1) and plateau.scale == pytest.approx(0.02)  # floor: min_lr / base
    assert not plateau.update(1.3, base_lr=0.1)  # at the floor already
    with pytest.raises(ValueError, match="monitor"):
        ReduceOnPlateau("loss")
    with pytest.raises(ValueError, match="patience"):
        EarlyStopping(patience=0)
    assert improved(0.5, None, "val_loss", 0.0) and not improved(math.nan, None, "val_loss", 0.0)
    assert improved(0.8, 0.7, "val_accuracy", 0.05) and not improved(0.74, 0.7, "val_accuracy", 0.05)


def test_without_validation_the_training_metric_stands_in():
    config = TrainConfig(epochs=8, batch_size=32, learning_rate=0.0, validation_split=0.0, early_stopping=2)
    trainer = Trainer(Model(SMALL_CNN), stripes_dataset(96, 16), config)
    history = trainer.fit()  # learning rate 0: the training loss stays where it is
    assert history.finished.stopped_early and len(history.epochs) < 8
