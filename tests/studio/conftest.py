"""Fixtures shared by the Inside tab's tests."""

from __future__ import annotations

import pytest

from cnn_studio.inspect.panel import InsidePanel
from engine.model import Model
from tests.helpers.engine_factories import SMALL_CNN, stripes_dataset


@pytest.fixture
def panel(qtbot):
    """An Inside panel shown at 1200x800, shut down (its workers stopped) after the test."""
    widget = InsidePanel()
    qtbot.addWidget(widget)
    widget.resize(1200, 800)
    widget.show()
    yield widget
    widget.shutdown()


@pytest.fixture
def small():
    """A small conv net and the stripes dataset (12x12x1, 3 classes), with a standardizing normalization."""
    dataset = stripes_dataset(n_train=60, n_test=40).standardized()
    model = Model.from_architecture(SMALL_CNN, seed=0)
    model.preprocessing = dataset.normalization.to_dict()
    return model, dataset
