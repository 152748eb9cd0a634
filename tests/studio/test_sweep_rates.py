"""A sweep over optimizers in the studio: each gets its usual learning rate unless the user chose one."""

from __future__ import annotations

import pytest

from cnn_studio.runs.sweep_panel import optimizer_rates
from engine.optimizers import DEFAULT_LEARNING_RATES
from engine.runs.sweep import apply_point, parse_axis
from engine.training import TrainConfig
from tests.helpers.engine_factories import SMALL_CNN


def rates(config: TrainConfig, *axes: str) -> dict[str, float]:
    parsed = [parse_axis(text, SMALL_CNN) for text in axes]
    defaults = optimizer_rates(parsed, config)
    return {optimizer: apply_point(SMALL_CNN, config, {"optimizer": optimizer}, defaults)[1].learning_rate
            for optimizer in ("sgd", "adam", "adamw")}


def test_the_usual_rate_of_the_docks_optimizer_becomes_each_optimizers_usual_rate():
    assert rates(TrainConfig(optimizer="sgd", learning_rate=0.01), "optimizer=sgd,adam,adamw") == \
        DEFAULT_LEARNING_RATES
    assert rates(TrainConfig(optimizer="adam", learning_rate=0.001), "optimizer=sgd,adam") == DEFAULT_LEARNING_RATES


@pytest.mark.parametrize("config,axes", [
    (TrainConfig(optimizer="sgd", learning_rate=0.05), ("optimizer=sgd,adam",)),  # a rate the user chose
    (TrainConfig(optimizer="sgd", learning_rate=0.01), ("optimizer=sgd,adam", "lr=0.1,0.01")),  # swept itself
    (TrainConfig(optimizer="sgd", learning_rate=0.01), ("batch_size=16,32",)),  # optimizer not swept
])
def test_otherwise_the_docks_rate_applies_to_every_optimizer(config, axes):
    assert optimizer_rates([parse_axis(text, SMALL_CNN) for text in axes], config) is None
