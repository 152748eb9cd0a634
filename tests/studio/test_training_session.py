"""TrainingSession: a real worker thread training tiny networks, steered from the GUI thread.

Every wait is on a signal of the session, which lives on the GUI thread (waiting on the worker's own
signals directly would trip pytest-qt's timer warning).
"""

from __future__ import annotations

import time
import warnings

import numpy as np
import pytest
from PIL import Image

from cnn_studio.training.session import TrainingSession, live_threads
from cnn_studio.training.training_worker import TrainingWorker
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


@pytest.fixture(scope="module")
def data():
    return stripes_dataset(256, 64)


def record(signal) -> list:
    got: list = []
    signal.connect(lambda *args: got.append(args[0] if len(args) == 1 else args))
    return got


def test_trains_and_delivers_every_batch_and_epoch(qtbot, session, data):
    epochs, batches = record(session.epoch_end), []
    session.batches.connect(batches.extend)
    snapshots = record(session.model_changed)
    with qtbot.waitSignal(session.finished, timeout=WAIT_MS) as done:
        session.start(SMALL_CNN, data, TrainConfig(epochs=3, batch_size=32, learning_rate=0.05))
        assert session.running and not session.paused
    assert done.args[0].reason == "completed"
    assert [e.epoch for e in epochs] == [1, 2, 3]
    per_epoch = len(data.split(0.1, 0)[0]) // 32 + (len(data.split(0.1, 0)[0]) % 32 > 0)
    # Coalescing bundles batches but never drops one: the plots get every step.
    assert [b.step for b in batches] == list(range(1, 3 * per_epoch + 1))
    assert not session.running and session.epochs_completed == 3
    assert len(snapshots) >= 4  # the untrained network, then one per epoch
    assert epochs[-1].train_loss < epochs[0].train_loss


def test_gui_model_and_evaluation_match_the_engine(qtbot, session, data):
    with qtbot.waitSignal(session.evaluation_ready, timeout=WAIT_MS) as ready:
        session.start(SMALL_CNN, data, TrainConfig(epochs=4, batch_size=16, learning_rate=0.05))
    qtbot.waitUntil(lambda: not session.running, timeout=WAIT_MS)
    model = session.model()
    assert isinstance(model, Model) and model is session.model()
    expected = evaluate(model, data.normalized("test"), data.y_test)
    got = ready.args[0]
    assert got is session.evaluation()
    np.testing.assert_array_equal(got.confusion, expected.confusion)
    assert got.accuracy == pytest.approx(expected.accuracy)
    assert got.accuracy > 0.6  # three easy classes: well above chance after four epochs
    # The model handed out is a copy: training it further leaves the session's weights alone.
    before = session.weights()
    for array in model.parameters().values():
        array += 1.0
    after = session.weights()
    assert all(np.array_equal(before[k], after[k]) for k in before)


def test_batch_updates_are_coalesced_to_about_twenty_per_second(qtbot, session):
    many_batches = stripes_dataset(600, 16, seed=3)
    emits = record(session.batches)
    start = time.perf_counter()
    with qtbot.waitSignal(session.finished, timeout=WAIT_MS):
        session.start(SMALL_CNN, many_batches, TrainConfig(epochs=2, batch_size=2, validation_split=0.0))
    seconds = time.perf_counter() - start
    delivered = sum(len(e) for e in emits)
    assert delivered == 600  # 2 epochs of 150 batches
    # At most one bundle per 50 ms, plus the flushes at each epoch's end.
    assert len(emits) <= 20 * seconds + 2 * 2 + 2
    assert len(emits) < delivered


def test_pause_holds_training_and_resume_goes_on(qtbot, session, data):
    batches: list[BatchEnd] = []
    session.batches.connect(batches.extend)
    states = record(session.state_changed)
    with qtbot.waitSignal(session.batch_end, timeout=WAIT_MS):
        session.start(SMALL_CNN, data, TrainConfig(epochs=1000, batch_size=8))
    session.pause()
    assert session.paused and session.running
    qtbot.wait(300)  # the batch in flight and its bundle arrive
    held = len(batches)
    qtbot.wait(400)
    assert len(batches) == held, "no batch may run while paused"
    session.resume()
    assert not session.paused
    qtbot.waitUntil(lambda: len(batches) > held + 3, timeout=WAIT_MS)
    with qtbot.waitSignal(session.finished, timeout=WAIT_MS) as done:
        session.stop()
    assert done.args[0].reason == "stopped"
    assert len(states) >= 4  # start, pause, resume, stop/finish


def test_stop_mid_epoch_keeps_the_weights_and_plus_one_epoch_continues(qtbot, session):
    slow = stripes_dataset(512, 32, seed=1)
    # Far more epochs than can pass before stop() lands, however fast the engine gets.
    with qtbot.waitSignal(session.batch_end, timeout=WAIT_MS):
        session.start(SMALL_CNN, slow, TrainConfig(epochs=200, batch_size=4))
    with qtbot.waitSignal(session.finished, timeout=WAIT_MS) as done:
        session.stop()
    stopped = done.args[0]
    assert stopped.reason == "stopped" and "during epoch" in stopped.message
    assert stopped.epochs_completed < 200
    assert session.model() is not None and session.can_continue
    qtbot.waitUntil(lambda: live_threads() == [], timeout=WAIT_MS)  # between runs no thread is kept
    with qtbot.waitSignal(session.finished, timeout=WAIT_MS) as more:
        session.continue_training(1)
    assert more.args[0].reason == "completed"
    assert more.args[0].epochs_completed == stopped.epochs_completed + 1 == session.epochs_completed


def test_learning_rate_and_momentum_changes_reach_the_optimizer(qtbot, session, data):
    batches: list[BatchEnd] = []
    session.batches.connect(batches.extend)
    with qtbot.waitSignal(session.batch_end, timeout=WAIT_MS):
        session.start(SMALL_CNN, data, TrainConfig(epochs=1000, batch_size=8, learning_rate=0.01, momentum=0.9))
    with qtbot.waitSignal(session.rate_changed, timeout=WAIT_MS) as changed:
        session.set_learning_rate(0.0123)
    kind, value, step = changed.args
    assert (kind, value) == ("lr", pytest.approx(0.0123)) and step >= 1
    qtbot.waitUntil(lambda: batches and batches[-1].learning_rate == pytest.approx(0.0123), timeout=WAIT_MS)
    assert session.learning_rate == pytest.approx(0.0123)  # read from the worker's optimizer
    first_new = min(b.step for b in batches if b.learning_rate == pytest.approx(0.0123))
    assert first_new >= step and all(b.learning_rate == pytest.approx(0.01) for b in batches if b.step < step)
    session.set_momentum(0.5)
    qtbot.waitUntil(lambda: session.momentum == pytest.approx(0.5), timeout=WAIT_MS)
    with pytest.raises(ValueError, match="learning rate"):
        session.set_learning_rate(-1)
    with pytest.raises(ValueError, match="momentum"):
        session.set_momentum(1.5)
    with qtbot.waitSignal(session.finished, timeout=WAIT_MS):
        session.stop()


def test_huge_learning_rate_diverges_and_keeps_the_last_good_epoch(qtbot, session, data):
    with qtbot.waitSignal(session.finished, timeout=WAIT_MS):
        session.start(SMALL_CNN, data, TrainConfig(epochs=1, batch_size=32, learning_rate=0.05))
    good = session.weights()
    session.set_learning_rate(1e12)
    with qtbot.waitSignal(session.finished, timeout=WAIT_MS) as done:
        session.continue_training(1)
    event = done.args[0]
    assert event.reason == "diverged"
    assert "lower learning rate" in event.message and "end of epoch 1" in event.message
    kept = session.weights()
    assert all(np.array_equal(good[k], kept[k]) for k in good)
    assert all(np.isfinite(v).all() for v in session.model().get_weights().values())


def test_errors_in_the_worker_become_messages(qtbot, session, data, monkeypatch):
    failures = record(session.failed)
    with qtbot.waitSignal(session.failed, timeout=WAIT_MS) as failed:
        session.start(SMALL_CNN, data, TrainConfig(epochs=1, augment_rotation=500))
    assert failed.args[0].startswith("augmentation: rotation") and "500" in failed.args[0]
    assert not session.running

    def broken(self, x, y):
        raise RuntimeError("boom in a batch")

    monkeypatch.setattr(Trainer, "train_batch", broken)
    with qtbot.waitSignal(session.failed, timeout=WAIT_MS) as failed:
        session.start(SMALL_CNN, data, TrainConfig(epochs=1))
    assert failed.args[0] == "RuntimeError: boom in a batch"
    assert len(failures) == 2 and not session.running


def test_warnings_in_the_worker_reach_the_gui_once(qtbot, session, data, monkeypatch):
    original = Trainer.train_batch

    def warns(self, x, y):
        warnings.warn("the batch looks odd", UserWarning, stacklevel=1)
        return original(self, x, y)

    monkeypatch.setattr(Trainer, "train_batch", warns)
    got = record(session.warning)
    with warnings.catch_warnings(record=True) as leaked:
        warnings.simplefilter("always")
        with qtbot.waitSignal(session.finished, timeout=WAIT_MS):
            session.start(SMALL_CNN, data, TrainConfig(epochs=1, batch_size=32))
    assert got == ["UserWarning: the batch looks odd"]
    assert not [w for w in leaked if "looks odd" in str(w.message)]


def test_a_lost_replica_process_is_a_warning_and_training_completes(qtbot, session, data, monkeypatch):
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
    got = record(session.warning)
    try:
        with qtbot.waitSignal(session.finished, timeout=WAIT_MS) as done:
            session.start(SMALL_CNN, data, TrainConfig(epochs=2, batch_size=32, processes="auto"))
    finally:
        parallel.set_num_threads(threads)
        replica.shutdown()
        disabled = replica._disabled.is_set()
        replica._disabled.clear()
    assert done.args[0].reason == "completed" and session.epochs_completed == 2
    assert steps[1] is not None, "the replica process never served"
    assert disabled and len(got) == 1 and "training goes on in one process" in got[0]


def test_start_refuses_what_cannot_train_before_any_thread_starts(session, data):
    ten_classes = arch(*SMALL_CNN["layers"][:3], {"type": "Dense", "units": 10, "activation": "softmax"})
    with pytest.raises(ArchitectureError, match="10 outputs but the dataset has 3 classes"):
        session.start(ten_classes, data, TrainConfig())
    with pytest.raises(TrainingError, match="input is 16x16x1"):
        session.start({**SMALL_CNN, "input": {"shape": [16, 16, 1]}}, data, TrainConfig())
    broken = arch({"type": "Conv2D", "filters": 2, "kernel_size": 30})
    with pytest.raises(ArchitectureError, match="layer 1"):
        session.start(broken, data, TrainConfig())
    assert not session.running and live_threads() == []
    with pytest.raises(TrainingError, match="no finished run"):
        session.continue_training()


def test_probe_during_training_and_when_idle(qtbot, session, data):
    sample = data.normalized("test")[0]
    session.set_probe(sample)
    with qtbot.waitSignal(session.probe_ready, timeout=WAIT_MS) as probe:
        session.start(SMALL_CNN, data, TrainConfig(epochs=2, batch_size=32))
    result = probe.args[0]
    assert [name for name, _ in result.layer_outputs] == Model(SMALL_CNN).names
    assert result.layer_outputs[0][1].shape == (10, 10, 4)
    assert result.probabilities.shape == (3,) and result.probabilities.sum() == pytest.approx(1, abs=1e-5)
    qtbot.waitUntil(lambda: not session.running, timeout=WAIT_MS)
    with qtbot.waitSignal(session.probe_ready, timeout=WAIT_MS) as idle:
        session.set_probe(sample)
    expected = session.model().predict(sample)[0]
    np.testing.assert_allclose(idle.args[0].probabilities, expected, rtol=1e-5)


def test_set_model_adopts_imported_weights(qtbot, session, data):
    model = Model(SMALL_CNN, seed=7)
    with qtbot.waitSignal(session.model_changed):
        session.set_model(model, data)
    assert session.model() is model and session.dataset() is data
    assert not session.can_continue and session.evaluation() is None


def test_training_can_start_from_adopted_weights(qtbot, session, data):
    imported = Model(SMALL_CNN, seed=11)
    session.set_model(imported, data)
    other = arch(*SMALL_CNN["layers"][:3], {"type": "Dense", "units": 3})
    assert session.adopted_weights_for(other) is not None  # same tensors, names and shapes
    assert session.adopted_weights_for(arch({"type": "Flatten"}, {"type": "Dense", "units": 3})) is None
    weights = session.adopted_weights_for(SMALL_CNN)
    snapshots = record(session.model_changed)
    with qtbot.waitSignal(session.finished, timeout=WAIT_MS):
        # lr 0: the weights stay where they started, so the end state shows where training began.
        session.start(SMALL_CNN, data, TrainConfig(epochs=1, batch_size=64, learning_rate=0.0, momentum=0.0),
                      initial_weights=weights)
    assert snapshots
    trained = session.model().get_weights()
    assert all(np.array_equal(trained[k], v) for k, v in imported.get_weights().items())
    assert session.adopted_weights_for(SMALL_CNN) is None  # used once: the next Start is fresh


def test_shutdown_mid_run_joins_the_thread_and_keeps_the_weights(qtbot, session, data):
    with qtbot.waitSignal(session.batch_end, timeout=WAIT_MS):
        session.start(SMALL_CNN, data, TrainConfig(epochs=1000, batch_size=8))
    assert live_threads()
    assert session.shutdown(10_000)
    assert live_threads() == [] and not session.running
    assert session.model() is not None


def test_datasets_load_on_a_worker_thread(qtbot, session, tmp_path):
    path = tmp_path / "tiny.npz"
    rng = np.random.default_rng(0)
    np.savez(path, x=rng.integers(0, 255, (40, 8, 8), dtype=np.uint8), y=np.arange(40) % 2)
    with qtbot.waitSignal(session.dataset_loaded, timeout=WAIT_MS) as loaded:
        session.load_dataset(str(path))
    ref, dataset = loaded.args
    assert ref == str(path) and dataset.input_shape == (8, 8, 1) and dataset.num_classes == 2
    with qtbot.waitSignal(session.dataset_failed, timeout=WAIT_MS) as failed:
        session.load_dataset(str(tmp_path / "missing"))
    assert failed.args[0].endswith("missing") and "no such file or folder" in failed.args[1]


def test_loader_warnings_go_to_the_gui_not_stderr(qtbot, session, tmp_path):
    for name in ("cats", "dogs"):
        folder = tmp_path / "pets" / name
        folder.mkdir(parents=True)
        for i in range(3):
            Image.new("L", (6, 6), color=40 * i).save(folder / f"{i}.png")
    (tmp_path / "pets" / "cats" / "notes.txt").write_text("not a picture")
    got = record(session.warning)
    with qtbot.waitSignal(session.dataset_loaded, timeout=WAIT_MS):
        session.load_dataset(str(tmp_path / "pets"))
    assert any("notes.txt" in text and "not an image" in text for text in got)


def test_snapshots_and_probes_never_share_memory_with_the_live_model(data):
    # Run the worker synchronously on this thread to compare its outputs with the live arrays.
    worker = TrainingWorker(SMALL_CNN, data, TrainConfig(epochs=1, batch_size=64), probe_interval=0.0)
    snapshots, probes = [], []
    worker.snapshot.connect(snapshots.append)
    worker.probe_ready.connect(probes.append)
    worker.set_probe(data.normalized("test")[0])
    worker.run(0)
    live = worker.trainer.model.tensors()
    assert snapshots and probes
    for snap in snapshots:
        assert not any(np.shares_memory(snap.weights[k], live[k]) for k in live)
    # Probe arrays are fresh copies (they own their memory), not views of the layers' caches.
    assert all(array.base is None for _name, array in probes[-1].layer_outputs)
    assert probes[-1].probabilities.base is None
    worker.deleteLater()
