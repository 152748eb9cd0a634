"""Everything that can be checked before training starts, in one place.

``training_problems`` looks at an architecture's analysis, a dataset and the training settings
together and returns every problem as a typed error (see engine.errors) carrying what a caller
needs to offer a fix: the two shapes of an input mismatch, both counts of a class mismatch, the
field of a setting out of range. ``engine.training.prepare`` and ``Trainer`` raise the first; the
studio and the CLI may show them all.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import fields
from numbers import Integral, Real
from typing import TYPE_CHECKING

from engine.architecture import Analysis, check_classifier
from engine.errors import (
    ArchitectureError,
    EngineError,
    InputShapeError,
    NoTrainingImagesError,
    SettingError,
    SoftmaxHeadError,
)
from engine.optimizers import OPTIMIZERS
from engine.schedules import MONITORS, SCHEDULES

if TYPE_CHECKING:
    from engine.data import Dataset
    from engine.training import TrainConfig

PROCESSES = (1, 2, "auto")


def _integer(value: object) -> bool:
    return isinstance(value, Integral) and not isinstance(value, bool)


def _number(value: object) -> bool:
    return isinstance(value, Real) and not isinstance(value, bool) and math.isfinite(float(value))


def _at_least(minimum: int) -> tuple[Callable[[object], bool], str]:
    return (lambda v: _integer(v) and v >= minimum), f"must be at least {minimum}"


def _fraction() -> tuple[Callable[[object], bool], str]:
    return (lambda v: _number(v) and 0 <= v < 1), "must be in [0, 1)"


def _positive() -> tuple[Callable[[object], bool], str]:
    return (lambda v: _number(v) and v > 0), "must be positive"


def _not_negative(requirement: str = "must be at least 0") -> tuple[Callable[[object], bool], str]:
    return (lambda v: _number(v) and v >= 0), requirement


def _flag() -> tuple[Callable[[object], bool], str]:
    return (lambda v: isinstance(v, bool)), "must be true or false"


def _one_of(choices: tuple[object, ...]) -> tuple[Callable[[object], bool], str]:
    return ((lambda v: any(type(v) is type(c) and v == c for c in choices)),
            "must be one of " + ", ".join(repr(c) for c in choices))


# Each TrainConfig field: (accepts the value?, what it must be).
RULES = {
    "epochs": _at_least(1),
    "batch_size": _at_least(1),
    "optimizer": _one_of(tuple(OPTIMIZERS)),
    "learning_rate": _not_negative("must be positive or 0"),  # 0: a run that leaves the weights as they are
    "momentum": _fraction(),
    "nesterov": _flag(),
    "weight_decay": _not_negative(),
    "schedule": _one_of(SCHEDULES),
    "warmup_epochs": _not_negative(),
    "step_epochs": _at_least(1),
    "step_gamma": _positive(),
    "validation_split": _fraction(),
    "label_smoothing": _fraction(),
    "seed": _at_least(0),
    "augment_shift": _at_least(0),
    "augment_hflip": _flag(),
    "augment_rotation": _not_negative(),
    "standardize": _flag(),
    "processes": _one_of(PROCESSES),
    "monitor": _one_of(MONITORS),
    "min_delta": _not_negative(),
    "early_stopping": _at_least(0),
    "restore_best": _flag(),
    "plateau_patience": _at_least(1),
    "plateau_factor": ((lambda v: _number(v) and 0 < v < 1), "must be between 0 and 1"),
    "plateau_min_lr": _not_negative(),
}


def setting_problem(field: str, value: object) -> SettingError | None:
    """What is wrong with ``value`` for the TrainConfig field ``field`` (e.g. read from a project
    file), or None when it is acceptable or the field has no rule."""
    rule = RULES.get(field)
    if rule is None or rule[0](value):
        return None
    return SettingError(field, value, rule[1])


def setting_problems(config: TrainConfig) -> list[SettingError]:
    """Every setting of ``config`` out of its range, in field order."""
    problems = (setting_problem(f.name, getattr(config, f.name)) for f in fields(config))
    return [problem for problem in problems if problem is not None]


def check_settings(config: TrainConfig) -> None:
    """Raise the first SettingError of ``config``, if any."""
    problems = setting_problems(config)
    if problems:
        raise problems[0]


def training_problems(analysis: Analysis, dataset: Dataset, config: TrainConfig) -> list[EngineError]:
    """Every reason the analysed network cannot train on ``dataset`` with ``config``: settings out of
    range, architecture problems, a network that is not a classifier of the dataset's classes (not
    ending in a vector, another class count, no softmax), another input shape, a validation split
    that leaves no training images. Empty when training can start."""
    problems: list[EngineError] = list(setting_problems(config))
    if analysis.problems:
        problems.extend(analysis.problems)
    else:
        try:
            check_classifier(analysis, dataset.num_classes)
        except ArchitectureError as problem:
            problems.append(problem)
        last = analysis.layers[-1]
        if last.type != "Softmax" and last.config.get("activation") != "softmax":
            problems.append(SoftmaxHeadError(last.index, last.type))
    if tuple(analysis.input_shape or ()) != tuple(dataset.input_shape):
        problems.append(InputShapeError(tuple(analysis.input_shape or ()), tuple(dataset.input_shape), dataset.name))
    split = config.validation_split
    train_size = len(dataset.y_train)
    if not any(p.field == "validation_split" for p in problems if isinstance(p, SettingError)):
        # As Dataset.split counts: round(split * N) images are held out.
        if train_size - min(round(split * train_size), train_size) < 1:
            problems.append(NoTrainingImagesError(dataset.name, train_size, split))
    return problems


def check_training(analysis: Analysis, dataset: Dataset, config: TrainConfig) -> None:
    """Raise the first of ``training_problems``, if any."""
    problems = training_problems(analysis, dataset, config)
    if problems:
        raise problems[0]
