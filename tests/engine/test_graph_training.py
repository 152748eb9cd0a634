"""Branching networks train like chains: in one process, split with the replica process (batch norm
synchronised across both), and through the Trainer."""

from __future__ import annotations

import numpy as np
import pytest

from engine import parallel, replica
from engine.losses import softmax_cross_entropy
from engine.metrics import evaluate
from engine.model import Model
from engine.training import TrainConfig, Trainer
from tests.helpers.engine_factories import CONCAT, RESIDUAL, arch, stripes_dataset


@pytest.fixture
def split_small_steps(monkeypatch):
    monkeypatch.setattr(replica, "MIN_STEP_MACS", 0)
    monkeypatch.delenv("CNN_ENGINE_PROCESSES", raising=False)
    threads = parallel.get_num_threads()
    parallel.set_num_threads(2)
    yield
    parallel.set_num_threads(threads)
    replica.shutdown()
    replica._disabled.clear()


@pytest.mark.parametrize("doc", [RESIDUAL, CONCAT], ids=["residual", "concat"])
def test_split_step_of_a_graph_gives_the_whole_batch_gradient(doc, split_small_steps):
    model = Model(doc, seed=3, dtype=np.float64)
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(24, *model.input_shape)), rng.integers(0, 3, 24)
    state = {k: v.copy() for k, v in model.state().items()}
    logits = model.forward_logits(x, training=True)
    expected_loss, grad, _ = softmax_cross_entropy(logits, y)
    model.backward(grad)
    expected = {k: v.copy() for k, v in model.gradients().items()}
    expected_state = {k: v.copy() for k, v in model.state().items()}
    for name, value in model.state().items():
        value[...] = state[name]
    for g in model.gradients().values():
        g[...] = np.nan
    result = replica.train_gradients(model, x, y)
    assert result is not None, "the step was not split"
    assert result[0] == pytest.approx(expected_loss, rel=1e-12)
    for name, g in model.gradients().items():
        np.testing.assert_allclose(g, expected[name], rtol=1e-9, atol=1e-13, err_msg=name)
    # Batch norm saw the whole batch in both processes: the same running statistics.
    for name, value in model.state().items():
        np.testing.assert_allclose(value, expected_state[name], rtol=1e-10, err_msg=name)


def test_a_residual_network_learns_the_stripes():
    dataset = stripes_dataset(n_train=192, n_test=48)
    doc = arch(
        {"id": "stem", "type": "Conv2D", "filters": 6, "kernel_size": 3, "padding": "same", "activation": "relu"},
        {"id": "a", "type": "Conv2D", "filters": 6, "kernel_size": 3, "padding": "same", "use_bias": False},
        {"type": "BatchNorm"},
        {"type": "ReLU"},
        {"id": "sum", "type": "Add", "inputs": ["relu_1", "stem"]},
        {"type": "MaxPool2D", "pool_size": 2},
        {"type": "Flatten"},
        {"type": "Dense", "units": 3, "activation": "softmax"},
    )
    config = TrainConfig(epochs=3, batch_size=32, learning_rate=0.05, validation_split=0.0, seed=0)
    model = Model(doc, seed=0)
    trainer = Trainer(model, dataset, config)
    history = trainer.fit()
    assert history.finished.reason == "completed"
    assert history.epochs[-1].train_loss < history.epochs[0].train_loss
    result = evaluate(model, dataset.normalized("test"), dataset.y_test)
    assert result.accuracy > 0.8
