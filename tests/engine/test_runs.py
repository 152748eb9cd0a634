"""Run folders: the record, one checkpoint per epoch and retention, resuming in-process, a damaged
checkpoint passed over, a folder of another network refused, a full disk survived, listing."""

from __future__ import annotations

import errno
import json
import warnings

import numpy as np
import pytest

from engine import atomic
from engine.architecture_diff import same_network
from engine.errors import RunError
from engine.model import Model
from engine.runs import (
    CheckpointFallbackWarning,
    Retention,
    RunFolder,
    RunWriteWarning,
    dataset_reference,
    list_runs,
    new_run,
    prepare_resume,
    runs_table,
    train_in_folder,
)
from engine.runs.checkpoint import CheckpointError, load_checkpoint
from engine.runs.lock import RunLock
from engine.training import TrainConfig
from tests.helpers.engine_factories import arch, stripes_dataset

NET = arch(
    {"type": "Conv2D", "filters": 4, "kernel_size": 3, "activation": "relu"},
    {"type": "MaxPool2D", "pool_size": 2},
    {"type": "Flatten"},
    {"type": "Dropout", "rate": 0.25},
    {"type": "Dense", "units": 3, "activation": "softmax"},
)
CONFIG = TrainConfig(epochs=3, batch_size=16, learning_rate=0.05, augment_shift=1)


@pytest.fixture(scope="module")
def data():
    return stripes_dataset(96, 24)


def train(path, data, config=CONFIG, retention=None, net=NET):
    folder, trainer = new_run(path, Model(net, seed=config.seed), data, config, dataset_reference(data, None),
                              retention=retention, architecture_name="net")
    return train_in_folder(folder, trainer)


def test_a_run_folder_holds_record_checkpoints_results_and_weights(tmp_path, data):
    outcome = train(tmp_path / "run", data)
    folder = RunFolder.open(tmp_path / "run")
    rec = folder.record
    assert folder.status == "completed" and rec["format"] == "cnn-studio.run/1"
    assert same_network(rec["architecture"], NET) and rec["config"] == CONFIG.to_dict() and rec["seed"] == 0
    assert rec["dataset"]["fingerprint"] and rec["dataset"]["class_names"] == ["horizontal", "vertical", "blob"]
    assert [e["epoch"] for e in rec["history"]] == [1, 2, 3] and rec["epochs_completed"] == 3
    assert set(rec["history"][0]) == {"epoch", "train_loss", "train_accuracy", "val_loss", "val_accuracy",
                                      "learning_rate", "note"}
    assert len(rec["batches"]["loss"]) == 3 * outcome.trainer.batches_per_epoch
    assert rec["best"]["epoch"] in (1, 2, 3) and rec["best"]["monitor"] == "val_loss"
    results = rec["results"]
    assert results["test_accuracy"] == pytest.approx(outcome.evaluation.accuracy)
    assert np.array(results["confusion"]).sum() == 24 and len(results["predictions"]) == 24
    assert len(rec["timings"]["epoch_seconds"]) == 3 and rec["timings"]["finished"]
    again = folder.load_evaluation()  # rebuilt without the network
    np.testing.assert_array_equal(again.predictions, outcome.evaluation.predictions)
    np.testing.assert_array_equal(again.labels, outcome.evaluation.labels)
    np.testing.assert_array_equal(again.confusion, outcome.evaluation.confusion)
    np.testing.assert_allclose(again.probabilities, outcome.evaluation.probabilities, rtol=1e-6)
    assert again.accuracy == outcome.evaluation.accuracy and len(again.mistakes) == len(outcome.evaluation.mistakes)
    assert [e for e, _ in folder.checkpoints()] == [1, 2, 3] == rec["checkpoints"]
    state = load_checkpoint(folder.checkpoint_path(2))
    assert state.epoch == 2 and state.step == 2 * outcome.trainer.batches_per_epoch
    assert set(state.rngs) == {"trainer", "dropout"} and "dropout_1" in state.rngs["dropout"]
    from engine.weights import load_weights

    final = load_weights(folder.weights_path())
    for name, value in outcome.trainer.model.tensors().items():
        np.testing.assert_array_equal(final.tensors()[name], value)
    json.loads((tmp_path / "run" / "run.json").read_text())  # strict JSON


@pytest.mark.parametrize("keep, expected", [("all", [1, 2, 3, 4]), ("2", [3, 4]), ("best", [2, 4])])
def test_retention(tmp_path, data, keep, expected, monkeypatch):
    from engine.runs import record

    monkeypatch.setattr(record, "best_epoch", lambda rec: {"epoch": 2} if rec["history"] else None)
    train(tmp_path / "run", data, TrainConfig(epochs=4, batch_size=32), retention=keep)
    assert [e for e, _ in RunFolder.open(tmp_path / "run").checkpoints()] == expected
    assert Retention.parse("last:3") == Retention("last", 3)
    with pytest.raises(ValueError):
        Retention.parse("some")


def test_resuming_an_interrupted_run_gives_the_uninterrupted_result(tmp_path, data):
    whole = train(tmp_path / "whole", data)
    # The same run, its process gone after epoch 1's checkpoint: the record says "running".
    folder, trainer = new_run(tmp_path / "cut", Model(NET), data, CONFIG, dataset_reference(data, None))
    with folder.training():
        folder.start_session(3, None, {})
        trainer.epoch_hooks.append(lambda event: folder.save_epoch(trainer.state_dict(), 0.1))
        trainer.fit(epochs=1)
        folder.record["status"] = "running"
        folder.write_record()
        folder.record["status"] = "killed"  # (leaves the context without marking it interrupted)
    assert RunFolder.open(tmp_path / "cut").status == "interrupted"
    folder, trainer = prepare_resume(tmp_path / "cut", data)
    assert trainer.epoch == 1
    outcome = train_in_folder(folder, trainer)
    assert outcome.status == "completed"
    for name, value in whole.trainer.model.tensors().items():
        np.testing.assert_array_equal(outcome.trainer.model.tensors()[name], value, err_msg=name)
    a, b = RunFolder.open(tmp_path / "whole").record, RunFolder.open(tmp_path / "cut").record
    assert a["history"] == b["history"] and a["batches"] == b["batches"]
    assert a["results"] == b["results"]
    assert [s["from_epoch"] for s in b["sessions"]] == [0, 1]


def test_a_damaged_checkpoint_falls_back_to_the_one_before(tmp_path, data):
    train(tmp_path / "run", data)
    folder = RunFolder.open(tmp_path / "run")
    last = folder.checkpoint_path(3)
    last.write_bytes(last.read_bytes()[: last.stat().st_size // 2])  # truncated
    middle = folder.checkpoint_path(2)
    raw = bytearray(middle.read_bytes())
    raw[len(raw) // 2] ^= 0xFF  # one flipped byte inside the arrays
    middle.write_bytes(bytes(raw))
    with pytest.raises(CheckpointError, match="epoch-0003.npz is damaged or truncated"):
        load_checkpoint(last)
    with pytest.raises(CheckpointError, match="epoch-0002.npz is damaged"):
        load_checkpoint(middle)
    with pytest.warns(CheckpointFallbackWarning) as caught:
        state = folder.latest_state()
    assert state.epoch == 1
    assert "epoch-0003.npz" in str(caught[0].message) and "epoch-0002.npz" in str(caught[1].message)
    # Resuming goes on from epoch 1 and ends as the run did.
    folder.record["status"] = "interrupted"
    folder.write_record()
    with pytest.warns(CheckpointFallbackWarning):
        folder, trainer = prepare_resume(tmp_path / "run", data)
    assert trainer.epoch == 1
    train_in_folder(folder, trainer)
    assert RunFolder.open(tmp_path / "run").record["epochs_completed"] == 3


def test_a_run_folder_of_another_network_is_refused(tmp_path, data):
    train(tmp_path / "run", data)
    state = RunFolder.open(tmp_path / "run").latest_state()
    other = arch(*NET["layers"][:4], {"type": "Dense", "units": 3, "activation": "softmax", "use_bias": False})
    from engine.errors import TrainingError
    from engine.training import Trainer

    with pytest.raises(TrainingError, match=r"another network \(dense_1 \(Dense\): use_bias true -> false; -3 param"):
        Trainer(Model(other), data, CONFIG).load_state_dict(state)
    with pytest.raises(RunError, match="already holds a run"):
        train(tmp_path / "run", data, net=other)


def test_the_dataset_must_be_the_same(tmp_path, data):
    train(tmp_path / "run", data, TrainConfig(epochs=1, batch_size=32))
    folder = RunFolder.open(tmp_path / "run")
    folder.record["status"], folder.record["epochs_planned"] = "stopped", 2
    folder.write_record()
    with pytest.raises(RunError, match="not the one the run was trained on"):
        prepare_resume(tmp_path / "run", stripes_dataset(96, 24, seed=1))
    with pytest.raises(RunError, match="given as arrays"):
        prepare_resume(tmp_path / "run")


def test_a_full_disk_stops_checkpointing_while_training_goes_on(tmp_path, data, monkeypatch):
    whole = train(tmp_path / "whole", data)
    real = atomic.atomic_write
    full = {"now": False}

    def full_disk(path, *args, **kwargs):
        if full["now"]:
            raise OSError(errno.ENOSPC, "No space left on device")
        full["now"] = "epoch-0001" in str(path)  # the disk fills up once epoch 1's checkpoint is written
        return real(path, *args, **kwargs)

    monkeypatch.setattr(atomic, "atomic_write", full_disk)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        outcome = train(tmp_path / "full", data)
    messages = [str(w.message) for w in caught if issubclass(w.category, RunWriteWarning)]
    assert len(messages) == 1 and "No space left on device" in messages[0]
    assert "checkpointing stops, training goes on" in messages[0]
    assert outcome.history.finished.reason == "completed" and outcome.trainer.epoch == 3
    for name, value in whole.trainer.model.tensors().items():
        np.testing.assert_array_equal(outcome.trainer.model.tensors()[name], value, err_msg=name)
    assert outcome.evaluation.accuracy == whole.evaluation.accuracy
    assert [e for e, _ in RunFolder(tmp_path / "full", {}).checkpoints()] == [1]
    assert not list((tmp_path / "full" / "checkpoints").glob(".*.tmp"))  # no half-written files left


def test_status_follows_the_lock_and_the_listing(tmp_path, data):
    train(tmp_path / "runs" / "a", data, TrainConfig(epochs=1, batch_size=32))
    folder, _ = new_run(tmp_path / "runs" / "b", Model(NET), data, TrainConfig(epochs=2, batch_size=32),
                        dataset_reference(data, None))
    assert RunFolder.open(tmp_path / "runs" / "b").status == "interrupted"  # "running", but no process
    lock = RunLock(tmp_path / "runs" / "b" / "run.lock")
    assert lock.acquire()
    try:
        assert RunFolder.open(tmp_path / "runs" / "b").status == "running"
        with pytest.raises(RunError, match="being trained"):
            prepare_resume(tmp_path / "runs" / "b", data)
    finally:
        lock.release()
    runs = list_runs(tmp_path / "runs")
    assert [(r.id, r.status, r.epochs_completed) for r in runs] == [("a", "completed", 1), ("b", "interrupted", 0)]
    table = runs_table(runs)
    assert table.splitlines()[0].split() == ["run", "network", "params", "optimizer", "lr", "batch", "epochs", "best",
                                             "val", "acc", "test", "acc", "time", "status"]
    assert "completed" in table and "interrupted" in table and "0/2" in table
    with pytest.raises(RunError, match="has already completed"):
        prepare_resume(tmp_path / "runs" / "a", data)


def test_a_run_cut_after_its_last_epoch_is_resumed_to_its_results(tmp_path, data):
    whole = train(tmp_path / "runs" / "run", data)
    folder = RunFolder.open(tmp_path / "runs" / "run")
    folder.record["status"], folder.record["results"] = "running", None  # killed before the evaluation
    folder.write_record()
    (tmp_path / "runs" / "run" / "weights.npz").unlink()
    assert RunFolder.open(tmp_path / "runs" / "run").resumable
    folder, trainer = prepare_resume(tmp_path / "runs" / "run", data)
    assert trainer.epoch == 3
    outcome = train_in_folder(folder, trainer)
    assert outcome.status == "completed" and outcome.evaluation.accuracy == whole.evaluation.accuracy
    assert RunFolder.open(tmp_path / "runs" / "run").weights_path() is not None


def test_training_time_leaves_out_pauses_and_counts_a_stopped_epoch(tmp_path, data):
    """The record's times come from the trainer's clock, as the studio's progress line shows them."""
    import threading
    import time

    from engine.training import BatchEnd, EpochEnd, TrainingStarted

    folder, trainer = new_run(tmp_path / "run", Model(NET, seed=0), data, CONFIG, dataset_reference(data, None))
    wall: dict[str, float] = {}
    latest: list[float] = []

    def callback(event) -> None:
        if isinstance(event, TrainingStarted):
            wall["start"] = time.perf_counter()
        elif isinstance(event, BatchEnd):
            latest.append(event.elapsed)
            if event.epoch == 1 and event.batch == 1:
                trainer.pause()  # takes hold before the next batch, for about half a second
                threading.Timer(0.5, trainer.resume).start()
            elif event.epoch == 2 and event.batch == 2:
                trainer.stop()
        elif isinstance(event, EpochEnd):
            wall["epoch 1"] = time.perf_counter() - wall["start"]

    train_in_folder(folder, trainer, callback)
    timings = RunFolder.open(tmp_path / "run").record["timings"]
    assert RunFolder.open(tmp_path / "run").status == "stopped"
    [first] = timings["epoch_seconds"]
    assert first < wall["epoch 1"] - 0.4  # the pause is not training time
    assert timings["unfinished_seconds"] > 0  # the two batches of epoch 2 are
    assert timings["training_seconds"] == pytest.approx(first + timings["unfinished_seconds"], abs=2e-3)
    assert timings["training_seconds"] == pytest.approx(latest[-1], abs=0.05)


def test_a_run_from_given_weights_stopped_before_its_first_checkpoint_resumes_from_them(tmp_path, data):
    """Fine-tuning: the folder keeps the starting weights, so an early stop does not lose them."""
    from engine.training import BatchEnd

    start = Model(NET, seed=7).get_weights()  # not what the run's seed (0) makes
    model = Model(NET, seed=CONFIG.seed)
    model.set_weights(start)
    folder, trainer = new_run(tmp_path / "run", model, data, CONFIG, dataset_reference(data, None),
                              from_weights=True)
    assert (tmp_path / "run" / "start-weights.npz").exists()

    def stop_at_once(event) -> None:
        if isinstance(event, BatchEnd):
            trainer.stop()

    train_in_folder(folder, trainer, stop_at_once)
    assert RunFolder.open(tmp_path / "run").checkpoints() == []
    _, resumed = prepare_resume(tmp_path / "run", data)
    assert resumed.epoch == 0
    for name, value in resumed.model.get_weights().items():
        np.testing.assert_array_equal(value, start[name], err_msg=name)
    # A run from the seed's weights keeps no such file and resumes from the seed's weights again.
    folder, trainer = new_run(tmp_path / "fresh", Model(NET, seed=CONFIG.seed), data, CONFIG,
                              dataset_reference(data, None))
    assert not (tmp_path / "fresh" / "start-weights.npz").exists() and folder.start_weights() is None


def test_fine_tuning_normalises_as_the_starting_weights_were_trained(tmp_path, data):
    """Weights trained on centred inputs (an import's --mean/--std) keep seeing such inputs, also
    after a resume from a checkpoint or from the starting weights."""
    from engine.training import prepare

    preprocessing = {"scale": 1 / 255, "mean": [0.25], "std": [0.5]}
    start = Model(NET, seed=7).get_weights()
    model, trainer = prepare(NET, data, CONFIG, weights=start, preprocessing=preprocessing)
    assert trainer.dataset.normalization.mean == (0.25,) and trainer.dataset.normalization.std == (0.5,)
    assert model.preprocessing["mean"] == [0.25] and model.preprocessing["scale"] == data.normalization.scale
    raw = data.x_train[:2]
    np.testing.assert_allclose(trainer.dataset.normalized("train", np.arange(2)),
                               (raw * np.float32(data.normalization.scale) - 0.25) / 0.5, rtol=1e-6)
    # Another channel count (a network adapted to other data) leaves the data's own normalisation.
    _, other = prepare(NET, data, CONFIG, preprocessing={"scale": 1.0, "mean": [0.4, 0.4, 0.4], "std": [0.2] * 3})
    assert other.dataset.normalization == data.normalization

    folder, trainer = new_run(tmp_path / "run", model, data, CONFIG, dataset_reference(data, None),
                              trainer=trainer, from_weights=True)
    _, resumed = prepare_resume(tmp_path / "run", data)  # from the starting weights
    assert resumed.dataset.normalization == trainer.dataset.normalization
    config = TrainConfig(epochs=1, batch_size=16)
    _, trainer = prepare(NET, data, config, weights=start, preprocessing=preprocessing)
    folder, trainer = new_run(tmp_path / "trained", trainer.model, data, config, dataset_reference(data, None),
                              trainer=trainer, from_weights=True)
    train_in_folder(folder, trainer)
    folder.record["status"], folder.record["epochs_planned"] = "stopped", 2
    folder.write_record()
    _, resumed = prepare_resume(tmp_path / "trained", data)  # from its epoch-1 checkpoint
    assert resumed.epoch == 1 and resumed.dataset.normalization == trainer.dataset.normalization


def test_unreadable_starting_weights_are_an_error_not_fresh_weights(tmp_path, data):
    model = Model(NET, seed=3)
    folder, _ = new_run(tmp_path / "run", model, data, CONFIG, dataset_reference(data, None), from_weights=True)
    folder.record["status"] = "stopped"
    folder.write_record()
    (tmp_path / "run" / "start-weights.npz").write_bytes(b"not a weight file")
    with pytest.raises(RunError, match="started from"):
        prepare_resume(tmp_path / "run", data)
