"""A trainer's complete state between epochs: continuing from it is bit-identical to never
stopping (weights, optimizer, every random generator, schedule, early stopping, log), in one
process and split with the replica process; a state of another network or settings is refused."""

from __future__ import annotations

import json

import numpy as np
import pytest

from engine import parallel, replica
from engine.errors import TrainingError
from engine.model import Model
from engine.optimizers import SGD, Adam
from engine.training import TrainConfig, Trainer
from engine.training_state import TrainerState
from tests.helpers.engine_factories import arch, stripes_dataset

NET = arch(
    {"type": "Conv2D", "filters": 4, "kernel_size": 3, "activation": "relu"},
    {"type": "MaxPool2D", "pool_size": 2},
    {"type": "Flatten"},
    {"type": "Dropout", "rate": 0.3},
    {"type": "Dense", "units": 8, "activation": "relu"},
    {"type": "Dropout", "rate": 0.2},
    {"type": "Dense", "units": 3, "activation": "softmax"},
)
BN_NET = arch(
    {"type": "Conv2D", "filters": 4, "kernel_size": 3},
    {"type": "BatchNorm"},
    {"type": "ReLU"},
    {"type": "MaxPool2D", "pool_size": 2},
    {"type": "Flatten"},
    {"type": "Dense", "units": 3, "activation": "softmax"},
)


def through_a_file(state: TrainerState) -> TrainerState:
    """The state as a checkpoint file would give it back: JSON text and array copies."""
    meta, arrays = state.to_file_parts()
    return TrainerState.from_file_parts(json.loads(json.dumps(meta)), {k: v.copy() for k, v in arrays.items()})


def state_after(net, data, config, epoch, seed=1):
    trainer = Trainer(Model(net, seed=seed), data, config)
    saved = []
    trainer.epoch_hooks.append(lambda event: saved.append(trainer.state_dict()) if event.epoch == epoch else None)
    trainer.fit(epochs=epoch)
    return through_a_file(saved[0])


def assert_same_training(a: Trainer, b: Trainer) -> None:
    for name, value in a.model.tensors().items():
        np.testing.assert_array_equal(b.model.tensors()[name], value, err_msg=name)
    assert a.log.epochs == b.log.epochs or _nan_equal(a.log.epochs, b.log.epochs)
    assert a.log.batch_loss == b.log.batch_loss
    assert a.step == b.step and a.epoch == b.epoch
    sa, sb = a.optimizer.state_dict(), b.optimizer.state_dict()
    assert sa[0] == sb[0]
    for name in sa[1]:
        np.testing.assert_array_equal(sa[1][name], sb[1][name], err_msg=name)


def _nan_equal(x, y) -> bool:
    return json.dumps(x) == json.dumps(y)


CONFIGS = {
    "sgd-augment": TrainConfig(epochs=4, batch_size=16, learning_rate=0.05, augment_shift=1, augment_hflip=True,
                               augment_rotation=10.0),
    "adam-plateau-early": TrainConfig(epochs=4, batch_size=16, optimizer="adam", learning_rate=0.02,
                                      schedule="plateau", plateau_patience=1, early_stopping=3,
                                      monitor="val_accuracy", weight_decay=1e-3, label_smoothing=0.1),
    "adamw-cosine-warmup": TrainConfig(epochs=4, batch_size=16, optimizer="adamw", learning_rate=0.01,
                                       schedule="cosine", warmup_epochs=0.5, standardize=True),
}


@pytest.mark.parametrize("name", list(CONFIGS))
def test_continuing_from_a_state_is_bit_identical(name):
    data = stripes_dataset(96, 24)
    config = CONFIGS[name]
    whole = Trainer(Model(NET, seed=1), data, config)
    whole.fit()
    state = state_after(NET, data, config, 2)
    # A fresh model of another seed: everything must come from the state.
    resumed = Trainer(Model(NET, seed=99), data, config)
    resumed.load_state_dict(state)
    assert resumed.epoch == 2
    history = resumed.fit(epochs=config.epochs - resumed.epoch)
    assert [e.epoch for e in history.epochs] == [3, 4]
    assert_same_training(whole, resumed)


def test_batch_norm_statistics_come_back_too():
    data = stripes_dataset(64, 16)
    config = TrainConfig(epochs=3, batch_size=16, learning_rate=0.05)
    whole = Trainer(Model(BN_NET, seed=2), data, config)
    whole.fit()
    resumed = Trainer(Model(BN_NET, seed=2), data, config)
    resumed.load_state_dict(state_after(BN_NET, data, config, 1, seed=2))
    resumed.fit(epochs=2)
    assert_same_training(whole, resumed)
    assert any(name.endswith("moving_mean") or "mean" in name for name in whole.model.state())


@pytest.fixture
def split_steps(monkeypatch):
    """Steps split with the replica process (processes=2), on two engine threads."""
    monkeypatch.delenv("CNN_ENGINE_PROCESSES", raising=False)
    threads = parallel.get_num_threads()
    parallel.set_num_threads(2)
    yield
    parallel.set_num_threads(threads)
    replica.shutdown()
    replica._disabled.clear()


def test_split_training_continues_bit_identically_with_a_new_replica(split_steps):
    data = stripes_dataset(96, 24)
    config = TrainConfig(epochs=3, batch_size=32, optimizer="adam", learning_rate=0.01, processes=2)
    whole = Trainer(Model(NET, seed=1), data, config)
    whole.fit()
    assert replica._replica is not None, "the steps were not split"
    assert set(whole.state_dict().rngs["replica"]) == {"dropout_1", "dropout_2"}
    state = state_after(NET, data, config, 1)
    replica.shutdown()  # as after a crash: a fresh replica process for the resumed run
    resumed = Trainer(Model(NET, seed=1), data, config)
    resumed.load_state_dict(state)
    resumed.fit(epochs=2)
    assert_same_training(whole, resumed)
    # The replica's dropout generators are part of the state: without them the masks differ.
    state.rngs["replica"] = {}
    other = Trainer(Model(NET, seed=1), data, config)
    other.load_state_dict(state)
    other.fit(epochs=2)
    assert not np.array_equal(other.model.tensors()["dense_2.kernel"], whole.model.tensors()["dense_2.kernel"])


def test_state_is_refused_mid_epoch_and_for_another_network_or_data_order():
    data = stripes_dataset(64, 16)
    config = TrainConfig(epochs=1, batch_size=16)
    trainer = Trainer(Model(NET), data, config)
    for event in trainer.run():
        if type(event).__name__ == "BatchEnd":
            with pytest.raises(TrainingError, match="between epochs"):
                trainer.state_dict()
            trainer.stop()
    state = state_after(NET, data, config, 1)
    wider = arch(*NET["layers"][:4], {"type": "Dense", "units": 16, "activation": "relu"}, *NET["layers"][5:])
    with pytest.raises(TrainingError, match=r"another network \(dense_1 \(Dense\): units 8 -> 16"):
        Trainer(Model(wider), data, config).load_state_dict(state)
    with pytest.raises(TrainingError, match="batch_size = 16 .* 32"):
        Trainer(Model(NET), data, TrainConfig(epochs=1, batch_size=32)).load_state_dict(state)


def test_optimizer_state_round_trip():
    params = {"w.kernel": np.ones((2, 2), np.float32), "w.bias": np.zeros(2, np.float32)}
    grads = {k: np.full_like(v, 0.5) for k, v in params.items()}
    for make in (lambda: SGD(0.1, momentum=0.9, nesterov=True, weight_decay=0.01), lambda: Adam(0.01)):
        a = make()
        a.step(params, grads)
        b = make()
        b.load_state_dict(*a.state_dict())
        pa = {k: v.copy() for k, v in params.items()}
        pb = {k: v.copy() for k, v in params.items()}
        a.step(pa, grads)
        b.step(pb, grads)
        for k in pa:
            np.testing.assert_array_equal(pa[k], pb[k])
    with pytest.raises(ValueError, match="adam"):
        SGD(0.1).load_state_dict(*Adam(0.1).state_dict())
