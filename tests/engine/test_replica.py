"""Training steps split with a replica process (engine.replica): the same gradients as one process,
the same training, and a clean fall-back when the replica cannot serve."""

from __future__ import annotations

import dataclasses
import multiprocessing
import os
import select
import signal
import subprocess
import sys
import threading
import time
import warnings
from multiprocessing import shared_memory

import numpy as np
import pytest

from engine import batch_sync, parallel, replica
from engine.kernels import winograd
from engine.kernels.batch_norm import WHOLE_BATCH
from engine.layers.normalization import BatchNorm
from engine.losses import softmax_cross_entropy
from engine.model import Model
from engine.optimizers import SGD
from engine.replica_process import Replica
from engine.replica_protocol import Layout
from engine.training import TrainConfig, Trainer, train_step
from tests.helpers.engine_factories import arch, stripes_dataset

NET = arch(
    {"type": "Conv2D", "filters": 6, "kernel_size": 3, "activation": "relu"},
    {"type": "MaxPool2D", "pool_size": 2},
    {"type": "Conv2D", "filters": 8, "kernel_size": 3, "padding": "same", "activation": "relu"},
    {"type": "Flatten"},
    {"type": "Dense", "units": 16, "activation": "relu"},
    {"type": "Dropout", "rate": 0.0},
    {"type": "Dense", "units": 3, "activation": "softmax"},
)


@pytest.fixture(autouse=True)
def small_steps_split(monkeypatch):
    """Split even these small test steps, on two engine threads whatever the machine has."""
    monkeypatch.setattr(replica, "MIN_STEP_MACS", 0)
    monkeypatch.delenv("CNN_ENGINE_PROCESSES", raising=False)
    threads = parallel.get_num_threads()
    parallel.set_num_threads(2)
    yield
    parallel.set_num_threads(threads)
    replica.shutdown()
    replica._disabled.clear()


def batch(n: int, dtype=np.float64, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, 12, 12, 1)).astype(dtype), rng.integers(0, 3, n)


def one_process_step(model: Model, x: np.ndarray, y: np.ndarray, smoothing: float) -> tuple[float, float]:
    logits = model.forward_logits(x, training=True)
    loss, grad, probs = softmax_cross_entropy(logits, y, smoothing)
    model.backward(grad)
    return loss, float((probs.argmax(axis=1) == y).mean())


@pytest.mark.parametrize("n, smoothing", [(32, 0.0), (17, 0.1), (40, 0.0)])
def test_split_step_gives_the_whole_batch_gradient(n, smoothing):
    model = Model(NET, seed=3, dtype=np.float64)
    x, y = batch(n)
    expected_loss, expected_accuracy = one_process_step(model, x, y, smoothing)
    expected = {k: v.copy() for k, v in model.gradients().items()}
    for g in model.gradients().values():
        g[...] = np.nan  # nothing of the one-process step may survive
    result = replica.train_gradients(model, x, y, smoothing)
    assert result is not None, "the step was not split"
    loss, accuracy = result
    assert loss == pytest.approx(expected_loss, rel=1e-12)
    assert accuracy == expected_accuracy
    for name, g in model.gradients().items():
        np.testing.assert_allclose(g, expected[name], rtol=1e-10, atol=1e-14, err_msg=name)


def test_replica_follows_parameter_changes_and_new_architectures():
    model = Model(NET, seed=0, dtype=np.float64)
    x, y = batch(20)
    replica.train_gradients(model, x, y)
    for p in model.parameters().values():
        p *= 1.5
    expected_loss, _ = one_process_step(model, x, y, 0.0)
    expected = {k: v.copy() for k, v in model.gradients().items()}
    loss, _ = replica.train_gradients(model, x, y)
    assert loss == pytest.approx(expected_loss, rel=1e-12)
    for name, g in model.gradients().items():
        np.testing.assert_allclose(g, expected[name], rtol=1e-10, atol=1e-14, err_msg=name)

    wider = arch({"type": "Conv2D", "filters": 5, "kernel_size": 3, "activation": "relu"}, {"type": "Flatten"},
                 {"type": "Dense", "units": 3, "activation": "softmax"})
    other = Model(wider, seed=1, dtype=np.float64)
    expected_loss, _ = one_process_step(other, x, y, 0.0)
    assert replica.train_gradients(other, x, y)[0] == pytest.approx(expected_loss, rel=1e-12)


def test_training_with_the_replica_matches_one_process(monkeypatch):
    dataset = stripes_dataset(n_train=192, n_test=32)
    config = TrainConfig(epochs=2, batch_size=32, optimizer="sgd", learning_rate=0.05, momentum=0.9,
                         validation_split=0.0, seed=0, processes="auto")
    calls = []
    split = replica.train_gradients
    monkeypatch.setattr(replica, "train_gradients", lambda *a, **k: calls.append(split(*a, **k)) or calls[-1])
    history = Trainer(Model(NET, seed=0), dataset, config).fit()
    assert calls and all(result is not None for result in calls), "training did not use the replica"

    calls.clear()
    alone = Trainer(Model(NET, seed=0), dataset, dataclasses.replace(config, processes=1)).fit()
    assert not calls
    losses = [b.loss for b in history.batches]
    assert losses == pytest.approx([b.loss for b in alone.batches], rel=1e-4)
    assert losses[-1] < losses[0]
    accuracies = [e.train_accuracy for e in alone.epochs]
    assert [e.train_accuracy for e in history.epochs] == pytest.approx(accuracies, abs=0.02)


def test_small_steps_stay_in_one_process(monkeypatch):
    model = Model(NET)
    assert replica.wanted(model, 64)
    assert not replica.wanted(model, 2 * replica.MIN_ROWS - 1)
    monkeypatch.setattr(replica, "MIN_STEP_MACS", 1 << 26)
    assert not replica.wanted(model, 64)  # few multiply-adds and few outputs
    # Few multiply-adds but many outputs to pass over (like LeNet-5's tanh and average pooling).
    wide = Model(arch({"type": "Conv2D", "filters": 2, "kernel_size": 3, "padding": "same", "activation": "tanh"},
                      {"type": "Flatten"}, {"type": "Dense", "units": 3, "activation": "softmax"}, shape=(64, 64, 1)))
    assert wide.analysis.macs * 64 < replica.MIN_STEP_MACS
    assert replica.wanted(wide, 64)
    monkeypatch.setattr(replica, "MIN_STEP_MACS", 0)
    parallel.set_num_threads(1)
    assert not replica.wanted(model, 64)


def test_two_processes_split_every_step_that_can_be_split(monkeypatch):
    model = Model(NET, seed=0, dtype=np.float64)
    monkeypatch.setattr(replica, "MIN_STEP_MACS", 1 << 40)  # "auto" would never split
    parallel.set_num_threads(1)
    assert not replica.wanted(model, 64)
    assert replica.wanted(model, 2, always=True) and not replica.wanted(model, 1, always=True)
    x, y = batch(6)
    expected_loss, _ = one_process_step(Model(NET, seed=0, dtype=np.float64), x, y, 0.0)
    loss, _ = train_step(model, SGD(lr=0.0), x, y, processes=2)
    assert replica._replica is not None, "the step was not split"
    assert loss == pytest.approx(expected_loss, rel=1e-12)


def test_the_environment_can_keep_auto_in_one_process(monkeypatch):
    model = Model(NET)
    monkeypatch.setenv("CNN_ENGINE_PROCESSES", "1")
    assert not replica.wanted(model, 64)
    assert replica.wanted(model, 64, always=True)  # an explicit 2 is the caller's choice


def test_a_trainer_with_the_default_config_starts_no_process(monkeypatch):
    """Everything here would make "auto" split (see the fixture); the library default is one process."""
    started = []
    popen = subprocess.Popen.__init__
    monkeypatch.setattr(subprocess.Popen, "__init__",
                        lambda self, *args, **kwargs: started.append(args) or popen(self, *args, **kwargs))
    monkeypatch.setattr(multiprocessing.Process, "start", lambda self: started.append(self))
    if hasattr(os, "fork"):
        monkeypatch.setattr(os, "fork", lambda: started.append("fork") or pytest.fail("forked"))
    dataset = stripes_dataset(n_train=192, n_test=32)
    assert TrainConfig().processes == 1
    history = Trainer(Model(NET, seed=0), dataset).fit()
    assert history.finished.reason == "completed"
    assert started == [] and replica._replica is None
    # The spy sees a process when one is asked for.
    Trainer(Model(NET, seed=0), dataset, TrainConfig(epochs=1, processes="auto")).fit()
    assert started and replica._replica is not None


def conv_bn(filters: int, padding: str = "valid") -> list[dict]:
    return [{"type": "Conv2D", "filters": filters, "kernel_size": 3, "padding": padding}, {"type": "BatchNorm"},
            {"type": "ReLU"}]


# Every batch-norm path: fused with a pooled first convolution (its sums through the im2col Gram
# matrix), fused without pooling with z recomputed or kept, fused and pooled with an input
# gradient, the plain layer after a convolution and after a dense layer.
BN_NETS = {
    "pooled first": arch(*conv_bn(3), {"type": "MaxPool2D", "pool_size": 2}, *conv_bn(8, "same"), *conv_bn(8),
                         {"type": "MaxPool2D", "pool_size": 2}, {"type": "Flatten"},
                         {"type": "Dense", "units": 16}, {"type": "BatchNorm"}, {"type": "ReLU"},
                         {"type": "Dense", "units": 3, "activation": "softmax"}),
    "unpooled first": arch(*conv_bn(4), {"type": "Conv2D", "filters": 5, "kernel_size": 3, "activation": "relu"},
                           {"type": "BatchNorm"}, {"type": "MaxPool2D", "pool_size": 2}, {"type": "Flatten"},
                           {"type": "Dense", "units": 3, "activation": "softmax"}),
    # A 5x5 convolution the engine runs through the Fourier transform, its batch norm unfused.
    "spectral": arch(*conv_bn(16, "same"), {"type": "MaxPool2D", "pool_size": 2},
                     {"type": "Conv2D", "filters": 16, "kernel_size": 5, "padding": "same"}, {"type": "BatchNorm"},
                     {"type": "ReLU"}, {"type": "MaxPool2D", "pool_size": 2}, {"type": "Flatten"},
                     {"type": "Dense", "units": 3, "activation": "softmax"}),
    # A 128-channel 3x3 convolution the engine runs through Winograd's transform, its batch norm unfused.
    "winograd": arch(*conv_bn(128, "same"), {"type": "MaxPool2D", "pool_size": 2},
                     {"type": "Conv2D", "filters": 128, "kernel_size": 3, "padding": "same"}, {"type": "BatchNorm"},
                     {"type": "ReLU"}, {"type": "MaxPool2D", "pool_size": 2}, {"type": "Flatten"},
                     {"type": "Dense", "units": 3, "activation": "softmax"}),
}


@pytest.mark.parametrize("n", [32, 19])
@pytest.mark.parametrize("net", list(BN_NETS))
def test_batch_norm_statistics_and_gradients_cover_the_whole_batch(net, n):
    split, alone = Model(BN_NETS[net], seed=2, dtype=np.float64), Model(BN_NETS[net], seed=2, dtype=np.float64)
    for model in (split, alone):  # both signs of gamma (the fused kernels flip channels with gamma < 0)
        for name, gamma in model.parameters().items():
            if name.endswith("gamma"):
                gamma[::2] *= -0.5
    x, y = batch(n)
    x += 50  # far from zero: each process's sums are about its own reference
    assert replica.wanted(split, n)
    if net in ("spectral", "winograd"):  # each half, even of an odd batch
        channels = split.layers[4].params["kernel"].shape[2]
        path = split.layers[4].transform_path((n // 2, 6, 6, channels), training=True)
        assert path is not None and path.name == net
    expected_loss, expected_accuracy = one_process_step(alone, x, y, 0.0)
    loss, accuracy = replica.train_gradients(split, x, y)
    assert loss == pytest.approx(expected_loss, rel=1e-10)
    assert accuracy == expected_accuracy
    for name, g in split.gradients().items():
        np.testing.assert_allclose(g, alone.gradients()[name], rtol=1e-8, atol=1e-12, err_msg=name)
    for name, value in split.state().items():
        np.testing.assert_allclose(value, alone.state()[name], rtol=1e-10, err_msg=name)


@pytest.mark.parametrize("net", list(BN_NETS))
def test_the_batch_norm_hook_gives_two_parts_the_whole_batch_statistics(net):
    """The hook alone, without processes: two models in two threads, each on part of the batch,
    their batch-norm layers swapping sums through batch_sync.exchanged, add up to one model on it all."""
    models = [Model(BN_NETS[net], seed=2, dtype=np.float64) for _ in range(3)]
    for model in models:
        for name, gamma in model.parameters().items():
            if name.endswith("gamma"):
                gamma[::2] *= -0.5
    x, y = batch(23)
    x += 50
    parts = [slice(0, 9), slice(9, 23)]
    slots: list = [None, None]
    meet = threading.Barrier(2, timeout=60)

    def exchange(side: int):
        def swap(mine: np.ndarray) -> np.ndarray:
            slots[side] = mine.copy()
            meet.wait()
            theirs = slots[1 - side].copy()
            meet.wait()  # both have read before either writes again
            return theirs
        return swap

    results: list = [None, None]

    def part(side: int) -> None:
        model, rows = models[side], parts[side]
        with parallel.serial(), batch_sync.exchanged(model, exchange(side)):
            logits = model.forward_logits(x[rows], training=True)
            loss, grad, _ = softmax_cross_entropy(logits, y[rows])
            model.backward(grad * (len(y[rows]) / len(y)))
        results[side] = loss

    threads = [threading.Thread(target=part, args=(side,)) for side in (0, 1)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert results[0] is not None and results[1] is not None
    whole = models[2]
    one_process_step(whole, x, y, 0.0)
    for name, g in whole.gradients().items():
        np.testing.assert_allclose(models[0].gradients()[name] + models[1].gradients()[name], g, rtol=1e-8,
                                   atol=1e-12, err_msg=name)
    for model in models[:2]:
        for name, value in model.state().items():
            np.testing.assert_allclose(value, whole.state()[name], rtol=1e-10, err_msg=name)
        # Outside the step every layer is back to its own batch.
        assert all(layer.stats_reducer is WHOLE_BATCH for layer in model.layers if isinstance(layer, BatchNorm))


def test_the_kernels_need_nothing_of_the_inter_process_layer():
    code = ("import sys, pkgutil, importlib, engine.kernels as kernels\n"
            "for module in pkgutil.iter_modules(kernels.__path__):\n"
            "    importlib.import_module('engine.kernels.' + module.name)\n"
            "print([m for m in sys.modules if m.startswith(('engine.replica', 'engine.batch_sync', 'engine.layers'))])")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and proc.stdout.strip() == "[]", proc.stdout + proc.stderr


def test_training_with_batch_norm_matches_one_process(monkeypatch):
    dataset = stripes_dataset(n_train=160, n_test=32)
    config = TrainConfig(epochs=2, batch_size=32, optimizer="adam", learning_rate=0.01, validation_split=0.0, seed=0,
                         processes="auto")
    net = BN_NETS["pooled first"]
    history = Trainer(Model(net, seed=0), dataset, config).fit()
    assert replica._replica is not None, "training did not use the replica"
    alone = Trainer(Model(net, seed=0), dataset, dataclasses.replace(config, processes=1)).fit()
    assert [b.loss for b in history.batches] == pytest.approx([b.loss for b in alone.batches], rel=1e-3)


def test_a_stopped_replica_leaves_training_in_this_process():
    model = Model(NET, seed=0, dtype=np.float64)
    optimizer = SGD(lr=0.1)
    x, y = batch(24)
    train_step(model, optimizer, x, y, processes="auto")
    replica._replica.process.kill()
    replica._replica.process.wait()

    expected_model = Model(NET, seed=0, dtype=np.float64)
    expected_model.set_weights(model.get_weights())
    expected_loss, _ = one_process_step(expected_model, x, y, 0.0)
    with pytest.warns(RuntimeWarning, match="replica process stopped.*training goes on in one process"):
        loss, _ = train_step(model, optimizer, x, y, processes="auto")
    assert loss == pytest.approx(expected_loss, rel=1e-12)
    assert not replica.wanted(model, 24)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        train_step(model, optimizer, x, y, processes="auto")  # quietly in this process from now on


def test_replica_reports_its_errors_by_message():
    process = replica.ReplicaProcess()
    try:
        process.start_step(4, 0.0, 1.0)
        with pytest.raises(replica.ReplicaError, match="a step came before the model"):
            process.finish_step()
    finally:
        process.close()
    assert process.process.returncode == 0


def test_shutdown_stops_the_process_and_frees_the_shared_block():
    model = Model(NET, seed=0)
    x, y = batch(16, np.float32)
    replica.train_gradients(model, x, y)
    process = replica._replica
    name = process.block.name
    replica.shutdown()
    assert process.process.returncode == 0
    with pytest.raises(FileNotFoundError):
        shared_memory.SharedMemory(name)


def test_replica_dropout_masks_are_its_own():
    dropout = arch({"type": "Flatten"}, {"type": "Dropout", "rate": 0.5}, {"type": "Dense", "units": 3,
                                                                          "activation": "softmax"})
    model = Model(dropout, seed=0)
    layout = Layout({k: v.shape for k, v in model.parameters().items()}, model.dtype, model.input_shape, 4)
    block = shared_memory.SharedMemory(create=True, size=layout.nbytes)
    try:
        copy = Replica({"architecture": dropout, "seed": 0, "layout": layout.to_dict(), "block": block.name})
        try:
            ours, theirs = model.layers[1].rng.random(8), copy.model.layers[1].rng.random(8)
            assert not np.allclose(ours, theirs)
        finally:
            copy.close()
    finally:
        block.close()
        block.unlink()


def test_serial_keeps_kernels_on_the_calling_thread():
    parts = []
    with parallel.serial():
        assert parallel.is_serial()
        parallel.parallel_for(100, lambda part, start, stop: parts.append((part, start, stop)))
    assert parts == [(0, 0, 100)]
    parts.clear()
    parallel.parallel_for(100, lambda part, start, stop: parts.append((part, start, stop)))
    assert len(parts) == 2


def test_an_interrupted_step_starts_a_fresh_replica():
    model = Model(NET, seed=0, dtype=np.float64)
    x, y = batch(20)
    replica.train_gradients(model, x, y)
    stale = replica._replica
    stale.start_step(10, 0.0, 0.5)  # as if Ctrl+C had struck before the reply was read
    expected_loss, _ = one_process_step(model, x, y, 0.0)
    assert replica.train_gradients(model, x, y)[0] == pytest.approx(expected_loss, rel=1e-12)
    assert replica._replica is not stale and stale.process.returncode is not None


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_the_replica_ignores_ctrl_c():
    model = Model(NET, seed=0)
    x, y = batch(16, np.float32)
    replica.train_gradients(model, x, y)
    process = replica._replica.process
    process.send_signal(signal.SIGINT)
    assert replica.train_gradients(model, x, y) is not None
    assert process.poll() is None


@pytest.mark.skipif(not hasattr(os, "fork"), reason="POSIX fork")
def test_a_forked_child_gets_its_own_engine_threads():
    a, b = np.ones((4096, 64), np.float32), np.ones((64, 64), np.float32)
    from engine.kernels.blocks import matmul

    assert matmul(a, b)[0, 0] == 64
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: the inherited pool's helper threads do not exist here
        try:
            ok = matmul(a, b)[0, 0] == 64 and parallel._pool.pid == os.getpid()
            os.write(write, b"1" if ok else b"0")
        finally:
            os._exit(0)
    os.close(write)
    try:
        ready = select.select([read], [], [], 60)[0]  # a hung child must fail the test, not hang it
        answer = os.read(read, 1) if ready else b"timeout"
    finally:
        if not ready:
            os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        os.close(read)
    assert answer == b"1"


def test_a_failure_in_this_half_leaves_no_replica_waiting():
    model = Model(BN_NETS["pooled first"], seed=0, dtype=np.float64)
    x, y = batch(20)
    replica.train_gradients(model, x, y)
    stale = replica._replica

    def broken(grad, input_grad=False):
        raise MemoryError("out of memory in backward")

    # The replica is then waiting for this half's batch-norm sums of backward.
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(model, "backward", broken)
        with pytest.raises(MemoryError):
            replica.train_gradients(model, x, y)
    alone = Model(BN_NETS["pooled first"], seed=0, dtype=np.float64)
    alone.set_weights(model.get_weights())
    expected_loss, _ = one_process_step(alone, x, y, 0.0)
    assert replica.train_gradients(model, x, y)[0] == pytest.approx(expected_loss, rel=1e-10)
    assert replica._replica is not stale and stale.process.returncode is not None


def test_a_replica_lost_mid_step_leaves_the_statistics_as_one_step_would(monkeypatch):
    model = Model(BN_NETS["pooled first"], seed=0, dtype=np.float64)
    optimizer = SGD(lr=0.1)
    x, y = batch(20)
    train_step(model, optimizer, x, y, processes="auto")
    alone = Model(BN_NETS["pooled first"], seed=0, dtype=np.float64)
    alone.set_weights(model.get_weights())
    one_process_step(alone, x, y, 0.0)

    swap = replica.ReplicaProcess.exchange
    calls = []

    def dying(self, mine):  # the replica dies after the first batch-norm layer's forward
        calls.append(len(mine))
        if len(calls) == 2:
            self.process.kill()
            self.process.wait()
        return swap(self, mine)

    monkeypatch.setattr(replica.ReplicaProcess, "exchange", dying)
    with pytest.warns(RuntimeWarning, match="replica process stopped during a training step"):
        train_step(model, SGD(lr=0.0), x, y, processes="auto")
    for name, value in model.state().items():
        np.testing.assert_allclose(value, alone.state()[name], rtol=1e-12, err_msg=name)
    for name, g in model.gradients().items():
        np.testing.assert_allclose(g, alone.gradients()[name], rtol=1e-9, atol=1e-12, err_msg=name)


@pytest.mark.parametrize("command, message", [
    (("/no/such/python",), "the replica process did not start"),
    ((sys.executable, "-c", "raise SystemExit(3)"), "the replica process stopped"),
])
def test_a_replica_that_cannot_start_leaves_training_in_this_process(monkeypatch, command, message):
    monkeypatch.setattr(replica, "COMMAND", command)
    model, alone = Model(NET, seed=0, dtype=np.float64), Model(NET, seed=0, dtype=np.float64)
    x, y = batch(20)
    expected_loss, _ = one_process_step(alone, x, y, 0.0)
    with pytest.warns(RuntimeWarning, match=f"^{message}.*; training goes on in one process$"):
        loss, _ = train_step(model, SGD(lr=0.0), x, y, processes="auto")
    assert loss == pytest.approx(expected_loss, rel=1e-12)
    for name, g in model.gradients().items():
        np.testing.assert_allclose(g, alone.gradients()[name], rtol=1e-12, err_msg=name)
    assert replica._replica is None and not replica.wanted(model, 20, always=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        train_step(model, SGD(lr=0.0), x, y, processes=2)  # quietly in this process from now on


def faulty(where: str, nth: int) -> tuple[str, ...]:
    """The command of a replica that raises in its nth step or at its nth batch-norm exchange."""
    return sys.executable, "-m", "tests.helpers.faulty_replica", where, str(nth)


def test_an_error_inside_the_replica_is_reported_and_the_step_redone_here(monkeypatch):
    monkeypatch.setattr(replica, "COMMAND", faulty("step", 2))
    model = Model(NET, seed=0, dtype=np.float64)
    x, y = batch(20)
    train_step(model, SGD(lr=0.1), x, y, processes="auto")
    process = replica._replica.process
    alone = Model(NET, seed=0, dtype=np.float64)
    alone.set_weights(model.get_weights())
    expected_loss, _ = one_process_step(alone, x, y, 0.0)
    with pytest.warns(RuntimeWarning) as caught:
        loss, _ = train_step(model, SGD(lr=0.0), x, y, processes="auto")
    assert [str(w.message) for w in caught] == [
        "the replica process failed during a training step: RuntimeError: injected fault in step 2; "
        "training goes on in one process"]
    assert loss == pytest.approx(expected_loss, rel=1e-12)
    for name, g in model.gradients().items():
        np.testing.assert_allclose(g, alone.gradients()[name], rtol=1e-10, atol=1e-14, err_msg=name)
    assert process.returncode is not None and replica._replica is None  # closed, not left behind


def test_an_error_inside_the_replica_mid_batch_norm_leaves_the_statistics_as_one_step_would(monkeypatch):
    net = BN_NETS["pooled first"]  # four batch-norm layers: eight exchanges per step
    monkeypatch.setattr(replica, "COMMAND", faulty("exchange", 8 + 2))  # after the second step's first layer
    model = Model(net, seed=0, dtype=np.float64)
    x, y = batch(20)
    train_step(model, SGD(lr=0.1), x, y, processes="auto")
    alone = Model(net, seed=0, dtype=np.float64)
    alone.set_weights(model.get_weights())
    one_process_step(alone, x, y, 0.0)
    with pytest.warns(RuntimeWarning, match="failed during a training step: RuntimeError: injected fault at exchange"):
        train_step(model, SGD(lr=0.0), x, y, processes="auto")
    for name, value in model.state().items():
        np.testing.assert_allclose(value, alone.state()[name], rtol=1e-12, err_msg=name)
    for name, g in model.gradients().items():
        np.testing.assert_allclose(g, alone.gradients()[name], rtol=1e-9, atol=1e-12, err_msg=name)


def test_a_busy_replica_leaves_the_step_to_this_process():
    model, alone = Model(NET, seed=0, dtype=np.float64), Model(NET, seed=0, dtype=np.float64)
    x, y = batch(20)
    expected_loss, _ = one_process_step(alone, x, y, 0.0)
    assert replica._lock.acquire(blocking=False)  # as when another trainer's step holds the replica
    try:
        assert replica.train_gradients(model, x, y, always=True) is None
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            loss, _ = train_step(model, SGD(lr=0.0), x, y, processes=2)
    finally:
        replica._lock.release()
    assert loss == pytest.approx(expected_loss, rel=1e-12) and replica._replica is None


def test_two_trainers_at_once_share_the_replica_and_both_train_right():
    """Steps of two models in two threads: whichever finds the replica busy runs in its own process."""
    x, y = batch(24)
    expected = []
    for seed in (0, 1):
        alone = Model(NET, seed=seed, dtype=np.float64)
        expected.append([train_step(alone, SGD(lr=0.05), x, y)[0] for _ in range(6)])
    losses: list[list[float]] = [[], []]

    def train(seed: int) -> None:
        model, optimizer = Model(NET, seed=seed, dtype=np.float64), SGD(lr=0.05)
        for _ in range(6):
            losses[seed].append(train_step(model, optimizer, x, y, processes=2)[0])

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        threads = [threading.Thread(target=train, args=(seed,)) for seed in (0, 1)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(120)
    assert replica._replica is not None
    for seed in (0, 1):
        assert losses[seed] == pytest.approx(expected[seed], rel=1e-9)


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_a_replica_that_stops_answering_is_given_up(monkeypatch):
    model = Model(NET, seed=0, dtype=np.float64)
    x, y = batch(20)
    replica.train_gradients(model, x, y)
    monkeypatch.setattr(replica, "REPLY_TIMEOUT", 0.5)
    stuck = replica._replica.process
    stuck.send_signal(signal.SIGSTOP)  # alive, but never answers
    expected_loss, _ = one_process_step(model, x, y, 0.0)
    with pytest.warns(RuntimeWarning, match="no answer within 0.5 s.*training goes on in one process"):
        loss, _ = train_step(model, SGD(lr=0.0), x, y, processes="auto")
    assert loss == pytest.approx(expected_loss, rel=1e-12)
    assert stuck.returncode is not None  # killed, not left behind


def replica_environment(monkeypatch: pytest.MonkeyPatch, name: str) -> str:
    """The value of environment variable ``name`` in a replica process started now."""
    monkeypatch.setattr(replica, "COMMAND", (sys.executable, "-c", f"import os; print(os.environ.get('{name}'))"))
    process = replica.ReplicaProcess()
    try:
        return process.process.stdout.read().decode().strip()
    finally:
        process.close()


def test_the_replica_takes_this_process_s_winograd_threshold(monkeypatch):
    """Both halves of a split step must take the same convolution paths, so the replica is given
    the threshold this process measured rather than timing its own products."""
    monkeypatch.setattr(winograd, "machine_min_channels", lambda: 77)
    assert replica_environment(monkeypatch, winograd.ENVIRONMENT) == "77"


def test_the_replica_keeps_the_memory_it_has_used(monkeypatch):
    """Its fresh arrays would otherwise fault their pages in again every step (glibc's settings)."""
    for name, value in replica.KEEP_FREED_MEMORY.items():
        monkeypatch.delenv(name, raising=False)
        assert replica_environment(monkeypatch, name) == value
    monkeypatch.setenv("MALLOC_TRIM_THRESHOLD_", "4096")  # a user's own setting wins
    assert replica_environment(monkeypatch, "MALLOC_TRIM_THRESHOLD_") == "4096"


@pytest.mark.skipif(os.name != "posix", reason="polling a pipe needs select on pipes")
@pytest.mark.parametrize("delay", [0.0, 0.01, 0.08])
def test_a_polling_read_gets_words_that_come_during_or_after_its_poll(delay):
    # A word that comes while the reader polls, and one that comes after it has given up polling
    # and blocked, both arrive whole; the poll itself never consumes anything.
    from engine.replica_protocol import SYNC, read_reply, write_all

    read_fd, write_fd = os.pipe()
    writer = threading.Timer(delay, write_all, (write_fd, SYNC + b"K"))
    writer.start()
    try:
        assert read_reply(read_fd, SYNC, timeout=5, spin=0.03) is None
        assert read_reply(read_fd, b"K", timeout=5, spin=0.03) is None
    finally:
        writer.join()
        os.close(read_fd)
        os.close(write_fd)


def test_polling_gives_up_after_its_time():
    from engine.replica_protocol import poll

    read_fd, write_fd = os.pipe()
    try:
        started = time.perf_counter()
        poll(read_fd, 0.02)
        assert 0.015 <= time.perf_counter() - started < 1.0
        assert not select.select([read_fd], [], [], 0)[0]
    finally:
        os.close(read_fd)
        os.close(write_fd)


@pytest.mark.skipif(os.name != "posix", reason="descriptor numbers and select are POSIX matters")
def test_waits_work_on_descriptors_numbered_past_select_limits():
    # select.select refuses descriptors from 1024 on; a studio with many files open can get such
    # pipes to its replica.
    import resource

    from engine.replica_protocol import SYNC, read_reply, write_all

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = 1500
    if soft <= wanted + 1:
        if hard != resource.RLIM_INFINITY and hard <= wanted + 1:
            pytest.skip("this system allows too few open files")
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted + 2, hard))
    read_fd, write_fd = os.pipe()
    high = os.dup2(read_fd, wanted)
    try:
        write_all(write_fd, SYNC)
        assert read_reply(high, SYNC, timeout=5, spin=0.01) is None
        writer = threading.Timer(0.05, write_all, (write_fd, SYNC))
        writer.start()
        assert read_reply(high, SYNC, timeout=5, spin=0.001) is None
        writer.join()
    finally:
        for fd in (high, read_fd, write_fd):
            os.close(fd)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
