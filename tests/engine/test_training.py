"""The trainer: learning, reproducibility, control from another thread, divergence, evaluation."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from engine import Model, TrainConfig, Trainer
from engine.data import load_dataset
from engine.errors import ArchitectureError, DataError, TrainingError
from engine.metrics import evaluate
from engine.optimizers import SGD, Adam, AdamW
from engine.resources import asset_path
from engine.schedules import Schedule
from engine.training import BatchEnd, EpochEnd, TrainingFinished
from tests.helpers.engine_factories import SMALL_CNN, arch, stripes_dataset


def test_small_cnn_learns_stripes_and_reports_events():
    data = stripes_dataset()
    trainer = Trainer(Model(SMALL_CNN), data, TrainConfig(epochs=3, batch_size=32, learning_rate=0.05))
    history = trainer.fit()
    assert history.finished.reason == "completed" and len(history.epochs) == 3
    assert len(history.batches) == 3 * trainer.batches_per_epoch
    assert history.epochs[-1].train_loss < history.epochs[0].train_loss
    result = trainer.evaluate()
    assert result.accuracy > 0.9
    assert result.confusion.sum() == len(data.y_test)
    np.testing.assert_array_equal(result.confusion.sum(axis=1), np.bincount(data.y_test, minlength=3))


def test_same_seed_gives_bit_identical_losses():
    def losses(seed: int) -> list[float]:
        config = TrainConfig(epochs=1, batch_size=16, seed=seed, augment_shift=1, augment_hflip=True)
        model = Model(arch(*SMALL_CNN["layers"][:3], {"type": "Dropout", "rate": 0.3}, SMALL_CNN["layers"][3]),
                      seed=seed)
        return [e.loss for e in Trainer(model, stripes_dataset(), config).fit().batches]

    assert losses(4) == losses(4)
    assert losses(4) != losses(5)


def _mini_or_skip():
    try:
        return load_dataset("fashion-mnist-mini")
    except DataError as exc:
        pytest.skip(f"bundled dataset not built: {exc}")


def test_seed_network_learns_fashion_mnist_subset():
    """The seed network, 300 steps of batch 32 on the bundled subset: 77% on 1,000 test images here
    (chance is 10%); the assertion leaves room for BLAS differences across machines."""
    data = _mini_or_skip().subset(9600, 1000, seed=0)
    model = Model.from_architecture(asset_path("architectures", "seed_sample.json"), seed=0)
    trainer = Trainer(model, data, TrainConfig(epochs=1, batch_size=32, learning_rate=0.05, validation_split=0.0))
    history = trainer.fit()
    assert len(history.batches) == 300
    accuracy = trainer.evaluate().accuracy
    assert accuracy > 0.6, accuracy


def test_pause_resume_and_stop_from_another_thread():
    trainer = Trainer(Model(SMALL_CNN), stripes_dataset(512), TrainConfig(epochs=50, batch_size=8))
    events = trainer.run()
    seen = [next(events), next(events)]  # TrainingStarted, first BatchEnd
    trainer.pause()
    resumed = threading.Event()

    def later():
        assert trainer.paused
        resumed.set()
        trainer.resume()

    timer = threading.Timer(0.2, later)
    timer.start()
    seen.append(next(events))  # blocks until resumed
    assert resumed.is_set() and isinstance(seen[-1], BatchEnd)
    trainer.stop()
    final = list(events)
    assert isinstance(final[-1], TrainingFinished) and final[-1].reason == "stopped"
    timer.join()


def test_pause_hooks_run_on_the_training_thread_before_the_pause_takes_hold():
    trainer = Trainer(Model(SMALL_CNN), stripes_dataset(512), TrainConfig(epochs=50, batch_size=8))
    calls: list[tuple[bool, str]] = []
    trainer.pause_hooks.append(lambda: calls.append((trainer.paused, threading.current_thread().name)))
    events = trainer.run()
    next(events), next(events)
    assert calls == []  # not paused: no hook
    trainer.pause()
    timer = threading.Timer(0.2, trainer.resume)
    timer.start()
    next(events)
    assert calls == [(True, threading.current_thread().name)]
    trainer.stop()
    list(events)
    timer.join()


def test_learning_rate_change_reaches_the_optimizer_at_the_next_batch():
    trainer = Trainer(Model(SMALL_CNN), stripes_dataset(), TrainConfig(epochs=1, batch_size=32, learning_rate=0.01))
    events = trainer.run()
    next(events)
    first = next(events)
    trainer.set_learning_rate(0.123)
    trainer.set_momentum(0.5)
    second = next(events)
    assert first.learning_rate == 0.01 and second.learning_rate == pytest.approx(0.123)
    assert trainer.optimizer.lr == pytest.approx(0.123) and trainer.optimizer.momentum == 0.5


def test_huge_learning_rate_diverges_and_keeps_last_good_weights():
    model = Model(SMALL_CNN)
    trainer = Trainer(model, stripes_dataset(), TrainConfig(epochs=1, batch_size=32, learning_rate=0.05))
    trainer.fit()
    good = model.get_weights()
    trainer.set_learning_rate(1e20)
    history = trainer.fit(epochs=2)
    assert history.finished.reason == "diverged"
    assert "lower learning rate" in history.finished.message and "end of epoch 1" in history.finished.message
    assert all(np.array_equal(good[k], v) for k, v in model.get_weights().items())


def test_continue_training_adds_epochs():
    trainer = Trainer(Model(SMALL_CNN), stripes_dataset(), TrainConfig(epochs=1, batch_size=64))
    trainer.fit()
    history = trainer.fit(epochs=1)
    assert [e.epoch for e in history.epochs] == [2] and trainer.epoch == 2
    assert isinstance(history.epochs[0], EpochEnd)


def test_trainer_refuses_mismatched_dataset():
    data = stripes_dataset()
    ten = arch(*SMALL_CNN["layers"][:3], {"type": "Dense", "units": 10, "activation": "softmax"})
    with pytest.raises(ArchitectureError, match="has 10 outputs but the dataset has 3 classes"):
        Trainer(Model(ten), data)
    with pytest.raises(TrainingError, match="input is 28x28x1 but the dataset 'stripes' has 12x12x1"):
        Trainer(Model(arch(*SMALL_CNN["layers"], shape=(28, 28, 1))), data)


def test_evaluate_per_class_accuracy_and_mistakes():
    data = stripes_dataset()
    model = Model(SMALL_CNN)
    x = data.normalized("test")
    result = evaluate(model, x, data.y_test)
    predictions = model.predict(x).argmax(axis=1)
    np.testing.assert_array_equal(result.predictions, predictions)
    np.testing.assert_array_equal(result.mistakes, np.flatnonzero(predictions != data.y_test))
    for k in range(3):
        mask = data.y_test == k
        assert result.per_class_accuracy[k] == pytest.approx((predictions[mask] == k).mean())


@pytest.mark.parametrize("cls", [SGD, Adam, AdamW])
def test_optimizers_minimise_a_quadratic(cls):
    p = {"w.kernel": np.array([3.0, -2.0])}
    opt = cls(lr=0.1)
    for _ in range(300):
        opt.step(p, {"w.kernel": 2 * p["w.kernel"]})
    assert np.abs(p["w.kernel"]).max() < 0.05


@pytest.mark.parametrize("cls", [Adam, AdamW])
def test_adam_steps_match_the_formulas(cls):
    # Adam (Kingma and Ba) with the bias correction folded into the step size, as in their paper's
    # efficient form and Keras: epsilon is added to sqrt(v), not to sqrt(v_hat). Weight decay on
    # kernels only: added to the gradient (Adam) or applied to the weights (AdamW, Loshchilov and Hutter).
    rng = np.random.default_rng(3)
    params = {"a.kernel": rng.standard_normal((4, 3)), "a.bias": rng.standard_normal(3)}
    expected = {k: v.copy() for k, v in params.items()}
    moments = {k: (np.zeros_like(v), np.zeros_like(v)) for k, v in params.items()}
    lr, b1, b2, eps, wd = 0.01, 0.8, 0.95, 1e-7, 0.1
    opt = cls(lr=lr, beta1=b1, beta2=b2, epsilon=eps, weight_decay=wd)
    for t in range(1, 6):
        grads = {k: rng.standard_normal(v.shape) for k, v in params.items()}
        opt.step(params, grads)
        for k, p in expected.items():
            g = grads[k]
            if k.endswith(".kernel") and cls is AdamW:
                p *= 1 - lr * wd
            elif k.endswith(".kernel"):
                g = g + wd * p
            m, v = moments[k]
            m[...] = b1 * m + (1 - b1) * g
            v[...] = b2 * v + (1 - b2) * g * g
            p -= lr * np.sqrt(1 - b2**t) / (1 - b1**t) * m / (np.sqrt(v) + eps)
        for k in params:
            np.testing.assert_allclose(params[k], expected[k], rtol=1e-12, atol=1e-14, err_msg=k)


def test_sgd_nesterov_and_weight_decay_match_formulas():
    p = {"a.kernel": np.array([1.0]), "a.bias": np.array([1.0])}
    opt = SGD(lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.5)
    opt.step(p, {"a.kernel": np.array([2.0]), "a.bias": np.array([2.0])})
    # kernel: g = 2 + 0.5*1 = 2.5; v = 2.5; step = g + 0.9 v = 4.75. Bias gets no decay: 2 + 1.8 = 3.8.
    assert p["a.kernel"][0] == pytest.approx(1 - 0.475) and p["a.bias"][0] == pytest.approx(1 - 0.38)


@pytest.mark.parametrize("settings", [
    {"cls": SGD, "momentum": 0.0}, {"cls": SGD, "momentum": 0.9, "weight_decay": 0.1},
    {"cls": SGD, "momentum": 0.9, "nesterov": True, "weight_decay": 0.1},
    {"cls": Adam, "weight_decay": 0.1}, {"cls": AdamW, "weight_decay": 0.1},
])
def test_large_parameters_update_piece_by_piece_as_whole(settings):
    # Parameters larger than an update's piece (and not a multiple of it), a gradient that is a
    # transposed view, a non-contiguous parameter: the same steps as one piece each.
    from engine import optimizers

    rng = np.random.default_rng(4)
    settings = dict(settings)
    cls = settings.pop("cls")
    params = {"big.kernel": rng.standard_normal((301, 700)), "big.bias": rng.standard_normal(optimizers.CHUNK + 5),
              "odd.kernel": rng.standard_normal((40, 30))[:, ::2]}
    whole = {k: v.copy() for k, v in params.items()}
    chunked, reference = cls(lr=0.01, **settings), cls(lr=0.01, **settings)
    for _ in range(3):
        grads = {k: rng.standard_normal(v.shape[::-1]).T for k, v in params.items()}
        chunked.step(params, grads)
        saved, optimizers.CHUNK = optimizers.CHUNK, 1 << 30
        try:
            reference.step(whole, grads)
        finally:
            optimizers.CHUNK = saved
    for k in params:
        np.testing.assert_array_equal(params[k], whole[k], err_msg=k)


def test_schedules():
    assert Schedule(0.1, "step", step_size=10, gamma=0.5).lr(25) == pytest.approx(0.025)
    cosine = Schedule(1.0, "cosine", total_steps=100)
    assert cosine.lr(0) == 1.0 and cosine.lr(50) == pytest.approx(0.5) and cosine.lr(100) == pytest.approx(0.0)
    warm = Schedule(1.0, "constant", warmup_steps=4)
    assert [warm.lr(s) for s in range(5)] == [0.25, 0.5, 0.75, 1.0, 1.0]
