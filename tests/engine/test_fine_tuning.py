"""Transfer learning: a new head for another dataset; frozen layers that do not change in training."""

from __future__ import annotations

import numpy as np
import pytest

from engine.errors import ArchitectureError
from engine.fine_tuning import head_index, replace_head, replace_head_document
from engine.model import Model
from engine.training import TrainConfig, Trainer
from tests.helpers.engine_factories import arch, stripes_dataset

BACKBONE = (
    {"type": "Conv2D", "filters": 4, "kernel_size": 3, "activation": "relu"},
    {"type": "BatchNorm"},
    {"type": "MaxPool2D", "pool_size": 2},
    {"type": "Flatten"},
    {"type": "Dense", "units": 16, "activation": "relu"},
)
TEN_CLASSES = arch(*BACKBONE, {"type": "Dropout", "rate": 0.1}, {"type": "Dense", "units": 10, "activation": "softmax"})


def test_replace_head_keeps_every_other_tensor_and_fits_the_classes():
    model = Model(TEN_CLASSES, seed=0)
    model.preprocessing = {"scale": 1 / 255, "mean": [0.5], "std": [0.25]}
    new = replace_head(model, 3, seed=5)
    assert new.output_shape == (3,)
    old, fresh = model.tensors(), new.tensors()
    head = new.names[-1]
    assert fresh[f"{head}.kernel"].shape == (16, 3) and fresh[f"{head}.bias"].shape == (3,)
    for name, value in old.items():
        if not name.startswith(f"{head}."):
            np.testing.assert_array_equal(fresh[name], value)
    assert new.preprocessing == model.preprocessing
    assert new.architecture["layers"][-1]["activation"] == "softmax"
    # The original is untouched.
    assert model.output_shape == (10,)


def test_a_logits_network_gets_a_softmax_head_and_trains():
    """An imported network often ends in a Dense without softmax; the new head makes it a classifier."""
    logits = arch(*BACKBONE, {"type": "Dense", "units": 7})
    model = replace_head(Model(logits, seed=0), 3)
    assert model.softmax_head
    history = Trainer(model, stripes_dataset(n_train=96, n_test=30),
                      TrainConfig(epochs=1, batch_size=32, validation_split=0.0)).fit()
    assert history.finished.reason == "completed"


def test_a_softmax_layer_after_the_head_stays_and_the_head_stays_linear():
    doc = arch(*BACKBONE, {"type": "Dense", "units": 10}, {"type": "Softmax"})
    new = replace_head_document(doc, 4)
    assert new["layers"][-2]["units"] == 4 and "activation" not in new["layers"][-2]
    assert new["layers"][-1] == {"type": "Softmax"}
    assert head_index(new) == len(new["layers"]) - 2


def test_replace_head_refuses_networks_without_a_dense_head():
    with pytest.raises(ArchitectureError, match="no Dense layer"):
        replace_head_document(arch({"type": "Conv2D", "filters": 2, "kernel_size": 3}, {"type": "GlobalAvgPool2D"}), 3)
    with pytest.raises(ArchitectureError, match="followed by a BatchNorm"):
        replace_head_document(arch(*BACKBONE, {"type": "BatchNorm"}), 3)
    with pytest.raises(ArchitectureError, match="whole number of classes"):
        replace_head_document(TEN_CLASSES, 0)
