"""The training session's pieces: a real worker thread training tiny networks, steered from the GUI thread
by the runner, what it trains recorded in the trained network, datasets loaded in the background.

Every wait is on a signal of a piece that lives on the GUI thread (waiting on the worker's own signals
directly would trip pytest-qt's timer warning).
"""

from __future__ import annotations

import math
import time
import warnings
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image

import cnn_studio.training.training_worker as worker_module
from cnn_studio.training.session import TrainingSession, live_threads
from cnn_studio.training.trained import WeightSnapshot
from cnn_studio.training.training_worker import BATCH_EMITS_PER_SECOND, ProbeResult, TrainingWorker
from engine.errors import ArchitectureError, TrainingError
from engine.metrics import evaluate
from engine.model import Model
from engine.training import BatchEnd, TrainConfig, Trainer
from tests.helpers.engine_factories import SMALL_CNN, arch, stripes_dataset

WAIT_MS = 30_000


@pytest.fixture
def session(qtbot):
    s = TrainingSession()
    yield s
    assert s.shutdown(10_000)
    assert live_threads() == []
    s.deleteLater()


@pytest.fixture
def runner(session):
    return session.runner


@pytest.fixture
def trained(session):
    return session.trained


@pytest.fixture(scope="module")
def data():
    return stripes_dataset(256, 64)


def record(signal) -> list:
    got: list = []
    signal.connect(lambda *args: got.append(args[0] if len(args) == 1 else args))
    return got


def test_trains_and_delivers_every_batch_and_epoch(qtbot, runner, trained, data):
    epochs, batches = record(runner.epoch_end), []
    runner.batches.connect(batches.extend)
    snapshots = record(trained.model_changed)
    with qtbot.waitSignal(runner.finished, timeout=WAIT_MS) as done:
        runner.start(SMALL_CNN, data, TrainConfig(epochs=3, batch_size=32, learning_rate=0.05))
        assert runner.running and not runner.paused
    assert done.args[0].reason == "completed"
    assert [e.epoch for e in epochs] == [1, 2, 3]
    per_epoch = len(data.split(0.1, 0)[0]) // 32 + (len(data.split(0.1, 0)[0]) % 32 > 0)
    # Coalescing bundles batches but never drops one: the plots get every step.
    assert [b.step for b in batches] == list(range(1, 3 * per_epoch + 1))
    assert not runner.running and trained.epochs_completed == 3
    assert len(snapshots) >= 4  # the untrained network, then one per epoch
    assert epochs[-1].train_loss < epochs[0].train_loss


def test_gui_model_and_evaluation_match_the_engine(qtbot, runner, trained, data):
    delivered = []
    trained.evaluation_changed.connect(lambda: delivered.append(trained.evaluation()))
    with qtbot.waitSignal(trained.evaluation_changed, timeout=WAIT_MS):
        runner.start(SMALL_CNN, data, TrainConfig(epochs=4, batch_size=16, learning_rate=0.05))
    qtbot.waitUntil(lambda: not runner.running, timeout=WAIT_MS)
    model = trained.model()
    assert isinstance(model, Model) and model is trained.model()
    expected = evaluate(model, data.normalized("test"), data.y_test)
    got = delivered[-1]
    assert got is trained.evaluation()
    np.testing.assert_array_equal(got.confusion, expected.confusion)
    assert got.accuracy == pytest.approx(expected.accuracy)
    assert got.accuracy > 0.6  # three easy classes: well above chance after four epochs
    # The model handed out is a copy: training it further leaves the session's weights alone.
    before = trained.weights()
    for array in model.parameters().values():
        array += 1.0
    after = trained.weights()
    assert all(np.array_equal(before[k], after[k]) for k in before)


def test_batch_updates_are_coalesced_to_at_most_ten_per_second(qtbot, runner, monkeypatch):
    # The worker's clock is replaced by one that moves a fixed tick per reading (one reading per batch),
    # so the bound is checked exactly, whatever the machine's speed.
    tick = 1 / 64
    clock = [0.0]

    def perf_counter() -> float:
        clock[0] += tick
        return clock[0]

    monkeypatch.setattr(worker_module, "time", SimpleNamespace(perf_counter=perf_counter, sleep=time.sleep))
    many_batches = stripes_dataset(600, 16, seed=3)
    bundles = record(runner.batches)
    with qtbot.waitSignal(runner.finished, timeout=WAIT_MS):
        runner.start(SMALL_CNN, many_batches, TrainConfig(epochs=2, batch_size=2, validation_split=0.0))
    delivered = sum(len(e) for e in bundles)
    assert delivered == 600  # 2 epochs of 150 batches
    # A bundle goes out once 1/10 s has passed since the last one; only an epoch's last batch (and a pause
    # or a stop) sends one sooner.
    min_batches = math.ceil((1.0 / BATCH_EMITS_PER_SECOND) / tick)
    for bundle in bundles:
        if bundle[-1].batch != bundle[-1].batches:
            assert len(bundle) >= min_batches, [len(b) for b in bundles]
    seconds = 600 * tick
    assert len(bundles) <= BATCH_EMITS_PER_SECOND * seconds + 2  # + one early flush per epoch
    assert len(bundles) < delivered


def test_pause_holds_training_and_resume_goes_on(qtbot, runner, data, monkeypatch):
    original, calls = Trainer.train_batch, []

    def counted(self, x, y):
        calls.append(1)
        return original(self, x, y)

    monkeypatch.setattr(Trainer, "train_batch", counted)
    batches: list[BatchEnd] = []
    runner.batches.connect(batches.extend)
    states = record(runner.state_changed)
    with qtbot.waitSignal(runner.batches, timeout=WAIT_MS):
        runner.start(SMALL_CNN, data, TrainConfig(epochs=1000, batch_size=8))
    runner.pause()
    assert runner.paused and runner.running
    at_pause = len(calls)
    # The batch in flight (if any) finishes and its bundle arrives ...
    qtbot.waitUntil(lambda: len(batches) == len(calls), timeout=WAIT_MS)
    qtbot.wait(400)  # ... and then nothing more may start, however long the pause lasts
    assert len(calls) <= at_pause + 1 and len(batches) == len(calls), "no batch may run while paused"
    held = len(batches)
    runner.resume()
    assert not runner.paused
    qtbot.waitUntil(lambda: len(batches) > held + 3, timeout=WAIT_MS)
    with qtbot.waitSignal(runner.finished, timeout=WAIT_MS) as done:
        runner.stop()
    assert done.args[0].reason == "stopped"
    assert len(states) >= 4  # start, pause, resume, stop/finish


def test_stop_mid_epoch_keeps_the_weights_and_plus_one_epoch_continues(qtbot, runner, trained):
    slow = stripes_dataset(512, 32, seed=1)
    # Far more epochs than can pass before stop() lands, however fast the engine gets.
    with qtbot.waitSignal(runner.batches, timeout=WAIT_MS):
        runner.start(SMALL_CNN, slow, TrainConfig(epochs=200, batch_size=4))
    with qtbot.waitSignal(runner.finished, timeout=WAIT_MS) as done:
        runner.stop()
    stopped = done.args[0]
    assert stopped.reason == "stopped" and "during epoch" in stopped.message
    assert stopped.epochs_completed < 200
    assert trained.model() is not None and runner.can_continue
    qtbot.waitUntil(lambda: live_threads() == [], timeout=WAIT_MS)  # between runs no thread is kept
    with qtbot.waitSignal(runner.finished, timeout=WAIT_MS) as more:
        runner.continue_training(1)
    assert more.args[0].reason == "completed"
    assert more.args[0].epochs_completed == stopped.epochs_completed + 1 == trained.epochs_completed


def test_learning_rate_and_momentum_changes_reach_the_optimizer(qtbot, runner, data):
    batches: list[BatchEnd] = []
    runner.batches.connect(batches.extend)
    with qtbot.waitSignal(runner.batches, timeout=WAIT_MS):
        runner.start(SMALL_CNN, data, TrainConfig(epochs=1000, batch_size=8, learning_rate=0.01, momentum=0.9))
    with qtbot.waitSignal(runner.rate_changed, timeout=WAIT_MS) as changed:
        runner.set_learning_rate(0.0123)
    kind, value, step = changed.args
    assert (kind, value) == ("lr", pytest.approx(0.0123)) and step >= 1
    qtbot.waitUntil(lambda: batches and batches[-1].learning_rate == pytest.approx(0.0123), timeout=WAIT_MS)
    assert runner.learning_rate == pytest.approx(0.0123)  # read from the worker's optimizer
    first_new = min(b.step for b in batches if b.learning_rate == pytest.approx(0.0123))
    assert first_new >= step and all(b.learning_rate == pytest.approx(0.01) for b in batches if b.step < step)
    runner.set_momentum(0.5)
    qtbot.waitUntil(lambda: runner.momentum == pytest.approx(0.5), timeout=WAIT_MS)
    with pytest.raises(ValueError, match="learning rate"):
        runner.set_learning_rate(-1)
    with pytest.raises(ValueError, match="momentum"):
        runner.set_momentum(1.5)
    with qtbot.waitSignal(runner.finished, timeout=WAIT_MS):
        runner.stop()


def test_huge_learning_rate_diverges_and_keeps_the_last_good_epoch(qtbot, runner, trained, data):
    with qtbot.waitSignal(runner.finished, timeout=WAIT_MS):
        runner.start(SMALL_CNN, data, TrainConfig(epochs=1, batch_size=32, learning_rate=0.05))
    good = trained.weights()
    runner.set_learning_rate(1e20)
    with qtbot.waitSignal(runner.finished, timeout=WAIT_MS) as done:
        runner.continue_training(1)
    event = done.args[0]
    assert event.reason == "diverged"
    assert "lower learning rate" in event.message and "end of epoch 1" in event.message
    kept = trained.weights()
    assert all(np.array_equal(good[k], kept[k]) for k in good)
    assert all(np.isfinite(v).all() for v in trained.model().get_weights().values())


def test_errors_in_the_worker_become_messages(qtbot, runner, data, monkeypatch):
    failures = record(runner.failed)
    with qtbot.waitSignal(runner.failed, timeout=WAIT_MS) as failed:
        runner.start(SMALL_CNN, data, TrainConfig(epochs=1, augment_rotation=500))
    assert failed.args[0].startswith("augmentation: rotation") and "500" in failed.args[0]
    assert not runner.running

    def broken(self, x, y):
        raise RuntimeError("boom in a batch")

    monkeypatch.setattr(Trainer, "train_batch", broken)
    with qtbot.waitSignal(runner.failed, timeout=WAIT_MS) as failed:
        runner.start(SMALL_CNN, data, TrainConfig(epochs=1))
    assert failed.args[0] == "RuntimeError: boom in a batch"
    assert len(failures) == 2 and not runner.running


def test_warnings_in_the_worker_reach_the_gui_once(qtbot, runner, data, monkeypatch):
    original = Trainer.train_batch

    def warns(self, x, y):
        warnings.warn("the batch looks odd", UserWarning, stacklevel=1)
        return original(self, x, y)

    monkeypatch.setattr(Trainer, "train_batch", warns)
    got = record(runner.warning)
    with warnings.catch_warnings(record=True) as leaked:
        warnings.simplefilter("always")
        with qtbot.waitSignal(runner.finished, timeout=WAIT_MS):
            runner.start(SMALL_CNN, data, TrainConfig(epochs=1, batch_size=32))
    assert got == ["UserWarning: the batch looks odd"]
    assert not [w for w in leaked if "looks odd" in str(w.message)]


def test_a_lost_replica_process_is_a_warning_and_training_completes(qtbot, runner, trained, data, monkeypatch):
    from engine import parallel, replica

    monkeypatch.setattr(replica, "MIN_STEP_MACS", 0)  # split even this small network's steps
    monkeypatch.delenv("CNN_ENGINE_PROCESSES", raising=False)
    threads = parallel.get_num_threads()
    parallel.set_num_threads(2)
    original, steps = Trainer.train_batch, []

    def killing(self, x, y):
        steps.append(replica._replica)
        if len(steps) == 3:  # as if the system had killed it
            steps[-1].process.kill()
            steps[-1].process.wait()
        return original(self, x, y)

    monkeypatch.setattr(Trainer, "train_batch", killing)
    got = record(runner.warning)
    try:
        with qtbot.waitSignal(runner.finished, timeout=WAIT_MS) as done:
            runner.start(SMALL_CNN, data, TrainConfig(epochs=2, batch_size=32, processes="auto"))
    finally:
        parallel.set_num_threads(threads)
        replica.shutdown()
        disabled = replica._disabled.is_set()
        replica._disabled.clear()
    assert done.args[0].reason == "completed" and trained.epochs_completed == 2
    assert steps[1] is not None, "the replica process never served"
    assert disabled and len(got) == 1 and "training goes on in one process" in got[0]


def test_start_refuses_what_cannot_train_before_any_thread_starts(runner, data):
    ten_classes = arch(*SMALL_CNN["layers"][:3], {"type": "Dense", "units": 10, "activation": "softmax"})
    with pytest.raises(ArchitectureError, match="10 outputs but the dataset has 3 classes"):
        runner.start(ten_classes, data, TrainConfig())
    with pytest.raises(TrainingError, match="input is 16x16x1"):
        runner.start({**SMALL_CNN, "input": {"shape": [16, 16, 1]}}, data, TrainConfig())
    broken = arch({"type": "Conv2D", "filters": 2, "kernel_size": 30})
    with pytest.raises(ArchitectureError, match="layer 1"):
        runner.start(broken, data, TrainConfig())
    assert not runner.running and live_threads() == []
    with pytest.raises(TrainingError, match="no finished run"):
        runner.continue_training()


def test_probe_during_training_and_when_idle(qtbot, runner, trained, data):
    sample = data.normalized("test")[0]
    runner.set_probe(sample)
    with qtbot.waitSignal(runner.probe_ready, timeout=WAIT_MS) as probe:
        runner.start(SMALL_CNN, data, TrainConfig(epochs=2, batch_size=32))
    result = probe.args[0]
    assert [name for name, _ in result.layer_outputs] == Model(SMALL_CNN).names
    assert result.layer_outputs[0][1].shape == (10, 10, 4)
    assert result.probabilities.shape == (3,) and result.probabilities.sum() == pytest.approx(1, abs=1e-5)
    qtbot.waitUntil(lambda: not runner.running, timeout=WAIT_MS)
    with qtbot.waitSignal(runner.probe_ready, timeout=WAIT_MS) as idle:
        runner.set_probe(sample)
    expected = trained.model().predict(sample)[0]
    np.testing.assert_allclose(idle.args[0].probabilities, expected, rtol=1e-5)


def test_adopting_a_model_takes_imported_weights(qtbot, runner, trained, data):
    model = Model(SMALL_CNN, seed=7)
    with qtbot.waitSignal(trained.model_changed):
        trained.adopt(model, data)
    assert trained.model() is model and trained.dataset() is data
    assert not runner.can_continue and trained.evaluation() is None


def test_training_can_start_from_adopted_weights(qtbot, runner, trained, data):
    imported = Model(SMALL_CNN, seed=11)
    trained.adopt(imported, data)
    other = arch(*SMALL_CNN["layers"][:3], {"type": "Dense", "units": 3})
    assert trained.start_weights_for(other) is not None  # same tensors, names and shapes
    assert trained.start_weights_for(arch({"type": "Flatten"}, {"type": "Dense", "units": 3})) is None
    weights = trained.start_weights_for(SMALL_CNN)
    snapshots = record(trained.model_changed)
    with qtbot.waitSignal(runner.finished, timeout=WAIT_MS):
        # lr 0: the weights stay where they started, so the end state shows where training began.
        runner.start(SMALL_CNN, data, TrainConfig(epochs=1, batch_size=64, learning_rate=0.0, momentum=0.0),
                     initial_weights=weights)
    assert snapshots
    got = trained.model().get_weights()
    assert all(np.array_equal(got[k], v) for k, v in imported.get_weights().items())
    assert trained.start_weights_for(SMALL_CNN) is None  # used once: the next Start is fresh


def test_a_cleared_trained_network_leaves_nothing_to_continue_or_start_from(qtbot, runner, trained, data):
    with qtbot.waitSignal(runner.finished, timeout=WAIT_MS):
        runner.start(SMALL_CNN, data, TrainConfig(epochs=1, batch_size=32))
    assert runner.can_continue and trained.model() is not None and trained.evaluation() is not None
    trained.clear()  # the project was replaced
    assert not runner.can_continue and trained.empty
    assert trained.model() is None and trained.evaluation() is None and trained.architecture() is None
    trained.adopt(Model(SMALL_CNN, seed=3), data)
    trained.clear()
    assert trained.start_weights_for(SMALL_CNN) is None  # imported weights went with their project


def test_shutdown_mid_run_joins_the_thread_and_keeps_the_weights(qtbot, session, runner, trained, data):
    with qtbot.waitSignal(runner.batches, timeout=WAIT_MS):
        runner.start(SMALL_CNN, data, TrainConfig(epochs=1000, batch_size=8))
    assert live_threads()
    assert session.shutdown(10_000)
    assert live_threads() == [] and not runner.running
    assert trained.model() is not None


def test_datasets_load_on_a_worker_thread(qtbot, session, tmp_path):
    datasets = session.datasets
    path = tmp_path / "tiny.npz"
    rng = np.random.default_rng(0)
    np.savez(path, x=rng.integers(0, 255, (40, 8, 8), dtype=np.uint8), y=np.arange(40) % 2)
    with qtbot.waitSignal(datasets.loaded, timeout=WAIT_MS) as loaded:
        datasets.request(str(path))
    ref, dataset = loaded.args
    assert ref == str(path) and dataset.input_shape == (8, 8, 1) and dataset.num_classes == 2
    assert datasets.current is dataset and datasets.has(str(path))
    with qtbot.waitSignal(datasets.failed, timeout=WAIT_MS) as failed:
        datasets.request(str(tmp_path / "missing"))
    assert failed.args[0].endswith("missing") and "no such file or folder" in failed.args[1]


def test_loader_warnings_go_to_the_gui_not_stderr_every_time(qtbot, session, tmp_path):
    for name in ("cats", "dogs"):
        folder = tmp_path / "pets" / name
        folder.mkdir(parents=True)
        for i in range(3):
            Image.new("L", (6, 6), color=40 * i).save(folder / f"{i}.png")
    (tmp_path / "pets" / "cats" / "notes.txt").write_text("not a picture")
    datasets = session.datasets
    for ref in (str(tmp_path / "pets"), "elsewhere", str(tmp_path / "pets")):  # chosen again: said again
        if ref == "elsewhere":
            datasets.use(stripes_dataset(8, 4), ref)
            continue
        with qtbot.waitSignal(datasets.loaded, timeout=WAIT_MS):
            datasets.request(ref)
        assert any("notes.txt" in text and "not an image" in text for text in datasets.warnings)


def test_snapshots_and_probes_never_share_memory_with_the_live_model(data):
    # Run the worker synchronously on this thread to compare its outputs with the live arrays.
    worker = TrainingWorker(SMALL_CNN, data, TrainConfig(epochs=1, batch_size=64), probe_interval=0.0)
    events = []
    worker.event.connect(lambda _worker, event: events.append(event))
    worker.set_probe(data.normalized("test")[0])
    worker.run(0)
    snapshots = [e for e in events if isinstance(e, WeightSnapshot)]
    probes = [e for e in events if isinstance(e, ProbeResult)]
    live = worker.trainer.model.tensors()
    assert snapshots and probes
    for snap in snapshots:
        assert not any(np.shares_memory(snap.weights[k], live[k]) for k in live)
    # Probe arrays are fresh copies (they own their memory), not views of the layers' caches.
    assert all(array.base is None for _name, array in probes[-1].layer_outputs)
    assert probes[-1].probabilities.base is None
    worker.deleteLater()
