"""Runs from the command line: a training process killed with SIGKILL mid-epoch and resumed with
``cnn-engine resume`` ends tensor for tensor where an uninterrupted run ends; ``runs`` lists;
``sweep`` trains a 2x2 grid; refusals are one line."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from engine.cli import main
from engine.runs import RunFolder
from tests.helpers.engine_factories import arch, stripes_dataset

NET = arch(
    {"type": "Conv2D", "filters": 6, "kernel_size": 3, "activation": "relu"},
    {"type": "MaxPool2D", "pool_size": 2},
    {"type": "Flatten"},
    {"type": "Dropout", "rate": 0.25},
    {"type": "Dense", "units": 16, "activation": "relu"},
    {"type": "Dense", "units": 3, "activation": "softmax"},
)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("runs_cli")
    data = stripes_dataset(2400, 48, size=16)
    npz = tmp / "stripes.npz"
    np.savez(npz, x=data.x_train[..., 0], y=data.y_train, x_test=data.x_test[..., 0], y_test=data.y_test,
             class_names=np.array(data.class_names))
    net = tmp / "net.json"
    net.write_text(json.dumps({**NET, "input": {"shape": [16, 16, 1]}}))
    return tmp, net, npz


def cli(*argv: str, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "engine", *argv], capture_output=True, text=True, cwd=cwd,
                          timeout=300)


def tensors(path) -> dict[str, np.ndarray]:
    with np.load(path, allow_pickle=False) as data:
        return {k: data[k] for k in data.files if not k.startswith("__")}


def train_args(net, npz, extra=()):
    return ["train", str(net), "--data", str(npz), "--epochs", "3", "--batch-size", "16", "--lr", "0.03",
            "--augment-shift", "1", "--seed", "5", *extra]


@pytest.mark.parametrize("processes", [1, 2])
def test_a_run_killed_mid_epoch_resumes_to_the_uninterrupted_result(files, tmp_path, processes):
    _, net, npz = files
    split = ["--processes", str(processes)] if processes != 1 else []
    whole = cli(*train_args(net, npz, split), "--run-dir", str(tmp_path / "whole"), "--out", str(tmp_path / "w.npz"))
    assert whole.returncode == 0, whole.stderr

    run = tmp_path / "killed"
    process = subprocess.Popen([sys.executable, "-m", "engine", *train_args(net, npz, split), "--run-dir", str(run)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    first = run / "checkpoints" / "epoch-0001.npz"
    deadline = time.monotonic() + 120
    while not first.exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)
    time.sleep(0.05)  # into epoch 2
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    process.stderr.close()
    assert process.returncode == -signal.SIGKILL
    folder = RunFolder.open(run)
    assert folder.status == "interrupted" and 1 <= folder.epochs_completed < 3, folder.record["status"]
    assert folder.weights_path() is None

    listing = cli("runs", str(tmp_path))
    assert listing.returncode == 0 and "interrupted" in listing.stdout and "completed" in listing.stdout

    resumed = cli("resume", str(run), "--out", str(tmp_path / "r.npz"))
    assert resumed.returncode == 0, resumed.stderr
    assert f"after epoch {folder.epochs_completed} of 3" in resumed.stdout
    expected, got = tensors(tmp_path / "w.npz"), tensors(tmp_path / "r.npz")
    assert list(got) == list(expected)
    for name in expected:
        np.testing.assert_array_equal(got[name], expected[name], err_msg=name)
    a, b = RunFolder.open(tmp_path / "whole").record, RunFolder.open(run).record
    assert b["status"] == "completed" and a["history"] == b["history"] and a["batches"] == b["batches"]
    assert a["results"] == b["results"]
    if processes == 2:
        assert "one process" not in whole.stderr + resumed.stderr  # the split really ran (no fall-back)


def test_resume_and_train_refusals(files, tmp_path):
    _, net, npz = files
    done = tmp_path / "done"
    assert cli(*train_args(net, npz, ["--epochs", "1", "--limit", "200"]), "--run-dir", str(done)).returncode == 0
    proc = cli("resume", str(done))
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "already completed its 1 epochs" in proc.stderr

    other = tmp_path / "other.json"
    other.write_text(json.dumps({**NET, "input": {"shape": [16, 16, 1]},
                                 "layers": NET["layers"][:4] + [{"type": "Dense", "units": 3,
                                                                 "activation": "softmax"}]}))
    proc = cli(*train_args(other, npz, ["--epochs", "1"]), "--run-dir", str(done))
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1
    assert "holds a run of another network (dense_1 (Dense) removed; -3,886 parameters)" in proc.stderr
    proc = cli(*train_args(net, npz, ["--epochs", "1"]), "--run-dir", str(done))
    assert proc.returncode == 2 and "already holds a run of this network" in proc.stderr
    proc = cli("resume", str(tmp_path / "nowhere"))
    assert proc.returncode == 2 and "no such folder" in proc.stderr


def test_early_stopping_from_the_command_line(files, tmp_path, capsys):
    _, net, npz = files
    code = main(["train", str(net), "--data", str(npz), "--epochs", "30", "--batch-size", "64", "--lr", "0.2",
                 "--limit", "300", "--early-stopping", "1", "--min-delta", "0.5", "--run-dir", str(tmp_path / "r")])
    out = capsys.readouterr().out
    assert code == 0 and "stopped early after epoch 2" in out
    rec = RunFolder.open(tmp_path / "r").record
    assert rec["status"] == "completed" and rec["epochs_completed"] == 2
    assert rec["early_stopping"]["stopped_early"] and rec["early_stopping"]["restored_epoch"] == 1
    assert rec["results"]["epoch"] == 1


def test_a_2x2_sweep(files, tmp_path, capsys):
    _, net, npz = files
    out = tmp_path / "sweep"
    code = main(["sweep", str(net), "--data", str(npz), "--limit", "400", "--epochs", "2",
                 "--grid", "lr=0.1,0.003", "--grid", "dense_1.units=4,16", "--out", str(out)])
    text = capsys.readouterr().out
    assert code == 0
    table = text[text.index("#  "):].splitlines()
    header, rows = table[0].split(), table[2:6]
    assert header[:3] == ["#", "learning_rate", "dense_1.units"]
    accuracies = [float(row.split()[4].rstrip("%")) for row in rows]
    assert accuracies == sorted(accuracies, reverse=True)
    assert sorted(row.split()[0] for row in rows) == ["1", "2", "3", "4"]
    folders = sorted(p.name for p in out.iterdir() if p.is_dir())
    assert folders == ["1-learning_rate=0.1-dense_1.units=4", "2-learning_rate=0.1-dense_1.units=16",
                       "3-learning_rate=0.003-dense_1.units=4", "4-learning_rate=0.003-dense_1.units=16"]
    for name in folders:
        rec = RunFolder.open(out / name).record
        assert rec["status"] == "completed" and rec["epochs_completed"] == 2
        assert rec["architecture"]["layers"][4]["units"] == rec["sweep"]["point"]["dense_1.units"]
        assert rec["config"]["learning_rate"] == rec["sweep"]["point"]["learning_rate"]
        assert [e for e, _ in RunFolder.open(out / name).checkpoints()] in ([1, 2], [2])  # best and last
    # The same command again finds every run completed and trains nothing.
    assert main(["sweep", str(net), "--data", str(npz), "--limit", "400", "--epochs", "2",
                 "--grid", "lr=0.1,0.003", "--grid", "dense_1.units=4,16", "--out", str(out)]) == 0
    assert capsys.readouterr().out.count("already completed") == 4
