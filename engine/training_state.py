"""A trainer's complete state between two epochs, as plain values and arrays.

Everything a later epoch depends on is here: the model's tensors (parameters and batch-norm
statistics), the optimizer's settings, counters and slots, every random generator (the trainer's
shuffling and augmentation generator, each Dropout layer's generator and the replica process's
dropout generators), the learning-rate schedule's base rate and plateau factor, early stopping's
best value and best weights, the log of every epoch and batch so far, and the position in the data
order (epochs and steps done). Restoring it into a trainer built from the same architecture,
dataset and settings continues bit-identically to a run that never stopped.

``to_file_parts`` / ``from_file_parts`` turn it into JSON-safe values and named arrays (what a
checkpoint file stores) and back.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from engine.errors import TrainingError

STATE_VERSION = 1
# Settings that decide the data order and the optimizer's meaning: a state cannot move between
# trainers that differ in these.
BINDING_SETTINGS = ("batch_size", "seed", "validation_split", "optimizer", "standardize")


@dataclass
class TrainingLog:
    """Every finished epoch's metrics (dicts of EpochEnd's fields but its times and the span of
    the run() call) and every batch's loss, accuracy and learning rate, in order."""

    epochs: list[dict[str, Any]] = field(default_factory=list)
    batch_loss: list[float] = field(default_factory=list)
    batch_accuracy: list[float] = field(default_factory=list)
    batch_lr: list[float] = field(default_factory=list)

    def copy(self) -> TrainingLog:
        return TrainingLog([dict(e) for e in self.epochs], list(self.batch_loss), list(self.batch_accuracy),
                           list(self.batch_lr))


@dataclass
class TrainerState:
    """A trainer between epochs (see the module docstring). Arrays are copies owned by the state."""

    epoch: int
    step: int
    architecture: dict[str, Any]
    preprocessing: dict[str, Any]
    config: dict[str, Any]
    weights: dict[str, np.ndarray]
    optimizer: dict[str, Any]
    optimizer_slots: dict[str, np.ndarray]
    rngs: dict[str, Any]
    schedule: dict[str, Any]
    early_stopping: dict[str, Any] | None
    best_weights: dict[str, np.ndarray] | None
    log: TrainingLog
    version: int = STATE_VERSION

    # -- files ------------------------------------------------------------------------------------
    def to_file_parts(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        """(JSON-safe description, arrays by name) for a checkpoint file."""
        meta = {
            "version": self.version, "epoch": self.epoch, "step": self.step,
            "architecture": self.architecture, "preprocessing": self.preprocessing, "config": self.config,
            "weights": list(self.weights), "optimizer": self.optimizer, "optimizer_slots": list(self.optimizer_slots),
            "rngs": self.rngs, "schedule": self.schedule, "early_stopping": self.early_stopping,
            "best_weights": None if self.best_weights is None else list(self.best_weights),
            "epochs": [json_safe(e) for e in self.log.epochs],
        }
        arrays: dict[str, np.ndarray] = {}
        arrays.update({f"weights/{k}": v for k, v in self.weights.items()})
        arrays.update({f"optimizer/{k}": v for k, v in self.optimizer_slots.items()})
        if self.best_weights is not None:
            arrays.update({f"best/{k}": v for k, v in self.best_weights.items()})
        arrays["log/batch_loss"] = np.asarray(self.log.batch_loss, np.float64)
        arrays["log/batch_accuracy"] = np.asarray(self.log.batch_accuracy, np.float64)
        arrays["log/batch_lr"] = np.asarray(self.log.batch_lr, np.float64)
        return meta, arrays

    @classmethod
    def from_file_parts(cls, meta: dict[str, Any], arrays: dict[str, np.ndarray]) -> TrainerState:
        """The inverse of to_file_parts; KeyError/ValueError/TypeError when a part is missing or malformed."""
        if int(meta["version"]) > STATE_VERSION:
            raise ValueError(f"the state was written by a newer version (state {meta['version']})")

        def group(prefix: str, names: list[str]) -> dict[str, np.ndarray]:
            return {name: arrays[f"{prefix}/{name}"] for name in names}

        best_names = meta.get("best_weights")
        log = TrainingLog(
            [python_values(e) for e in meta["epochs"]],
            [float(v) for v in arrays["log/batch_loss"]],
            [float(v) for v in arrays["log/batch_accuracy"]],
            [float(v) for v in arrays["log/batch_lr"]],
        )
        return cls(
            epoch=int(meta["epoch"]), step=int(meta["step"]), architecture=meta["architecture"],
            preprocessing=meta["preprocessing"], config=meta["config"],
            weights=group("weights", meta["weights"]), optimizer=meta["optimizer"],
            optimizer_slots=group("optimizer", meta["optimizer_slots"]), rngs=meta["rngs"],
            schedule=meta["schedule"], early_stopping=meta["early_stopping"],
            best_weights=None if best_names is None else group("best", best_names), log=log,
            version=int(meta["version"]),
        )


def json_safe(d: dict[str, Any]) -> dict[str, Any]:
    """Non-finite floats become None (strict JSON has no NaN)."""
    return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in d.items()}


def python_values(d: dict[str, Any]) -> dict[str, Any]:
    """json_safe's inverse for metric dicts: None metrics become NaN again."""
    return {k: (float("nan") if v is None and k not in ("note",) else v) for k, v in d.items()}


# -- random generators ----------------------------------------------------------------------------------
def generator_state(rng: np.random.Generator) -> dict[str, Any]:
    """A generator's bit-generator state as JSON-safe values (Python ints are exact in JSON)."""
    return copy.deepcopy(rng.bit_generator.state)


def set_generator_state(rng: np.random.Generator, state: dict[str, Any]) -> None:
    if state.get("bit_generator") != type(rng.bit_generator).__name__:
        raise TrainingError(f"a saved random generator is {state.get('bit_generator')}, not "
                            f"{type(rng.bit_generator).__name__}")
    rng.bit_generator.state = copy.deepcopy(state)


def check_binding_settings(saved: dict[str, Any], current: dict[str, Any]) -> None:
    """Refuse a state whose data order or optimizer differs from the trainer's settings."""
    for key in BINDING_SETTINGS:
        if key in saved and key in current and saved[key] != current[key]:
            raise TrainingError(f"the saved training state has {key} = {saved[key]!r} but this trainer has "
                                f"{current[key]!r}; a run can only continue with the settings it started with")
