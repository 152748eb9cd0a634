"""``cnn-engine``'s exit statuses, run as the real executable: 0 on success, 2 for a mistake in the
command or its files, 3 for training that did not complete (a diverged loss), 130 for Ctrl+C. A failure
says why in exactly one line on stderr, with no traceback, and leaves no partial output file."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from tests.helpers.engine_factories import SMALL_CNN, stripes_dataset


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> tuple[Path, Path, Path]:
    folder = tmp_path_factory.mktemp("cli")
    data = stripes_dataset(128, 32)
    npz = folder / "stripes.npz"
    np.savez(npz, x=data.x_train[..., 0], y=data.y_train, x_test=data.x_test[..., 0], y_test=data.y_test,
             class_names=np.array(data.class_names))
    arch = folder / "small.json"
    arch.write_text(json.dumps(SMALL_CNN))
    return folder, arch, npz


def cnn_engine(*argv: object, cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "engine", *map(str, argv)], capture_output=True, text=True,
                          cwd=cwd, timeout=timeout)


def one_error_line(proc: subprocess.CompletedProcess) -> str:
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if not line.startswith("cnn-engine: warning:")]
    assert len(lines) == 1, proc.stderr
    return lines[0]


def test_divergence_exits_3_with_one_line(files):
    folder, arch, npz = files
    proc = cnn_engine("train", arch, "--data", npz, "--lr", "1e20", "--epochs", "2", "--processes", "1", cwd=folder)
    assert proc.returncode == 3, proc.stdout + proc.stderr
    line = one_error_line(proc)
    assert line.startswith("cnn-engine: error: training diverged: the loss became nan")
    assert "lower learning rate" in line


@pytest.mark.parametrize("value, expected", [
    ("0", "--batch-size must be at least 1, not 0"),
    ("-5", "--batch-size must be at least 1, not -5"),
    ("abc", "argument --batch-size: invalid int value: 'abc'"),
    ("1.5", "argument --batch-size: invalid int value: '1.5'"),
])
def test_a_bad_batch_size_exits_2_with_one_line(files, value, expected):
    folder, arch, npz = files
    proc = cnn_engine("train", arch, "--data", npz, "--batch-size", value, "--out", folder / "never.npz", cwd=folder)
    assert proc.returncode == 2
    assert expected in one_error_line(proc)
    assert not (folder / "never.npz").exists()


def test_evaluate_on_a_dataset_of_another_shape_exits_2_with_one_line(files, tmp_path):
    folder, arch, npz = files
    weights = tmp_path / "w.npz"
    assert cnn_engine("train", arch, "--data", npz, "--epochs", "1", "--out", weights, cwd=tmp_path).returncode == 0
    other = tmp_path / "other.npz"
    np.savez(other, x=np.zeros((12, 9, 9), np.uint8), y=np.arange(12) % 3)
    proc = cnn_engine("evaluate", weights, "--data", other, cwd=tmp_path)
    assert proc.returncode == 2
    line = one_error_line(proc)
    assert str(weights) in line and "12x12x1" in line and "9x9x1" in line


@pytest.mark.skipif(not hasattr(os, "killpg"), reason="POSIX process groups")
@pytest.mark.parametrize("run_dir", [False, True])
def test_ctrl_c_exits_130_with_one_line_and_no_partial_file(tmp_path, run_dir):
    # The bundled subset with many epochs: long enough to be interrupted mid-epoch.
    out = tmp_path / "weights.npz"
    argv = ["train", SMALL_CNN_FILE(tmp_path), "--data", "fashion-mnist-mini", "--epochs", "50",
            "--adapt-input", "--adapt-output", "--out", out]
    if run_dir:
        argv += ["--run-dir", tmp_path / "run"]
    # Ctrl+C in a terminal signals the whole foreground process group (a replica process too).
    proc = subprocess.Popen([sys.executable, "-m", "engine", *map(str, argv)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=tmp_path, start_new_session=True,
                            preexec_fn=_ctrl_c_as_in_a_terminal)
    try:
        seen = ""
        deadline = time.monotonic() + 120
        while "training on" not in seen and time.monotonic() < deadline and proc.poll() is None:
            seen += proc.stdout.readline()
        assert "training on" in seen, seen + (proc.stderr.read() if proc.poll() is not None else "")
        time.sleep(0.5)
        os.killpg(proc.pid, signal.SIGINT)
        _, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr
    lines = [line for line in stderr.splitlines() if not line.startswith("cnn-engine: warning:")]
    assert len(lines) == 1 and lines[0].startswith("cnn-engine: interrupted"), stderr
    if run_dir:
        assert "cnn-engine resume" in lines[0]
    assert not out.exists() and not [p for p in tmp_path.iterdir() if p.name.startswith(".weights.npz")]


def _ctrl_c_as_in_a_terminal() -> None:
    # A runner that started this suite in the background (SIGINT ignored) would pass that on: a
    # program started with SIGINT ignored keeps ignoring it, as it should outside this test.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def SMALL_CNN_FILE(folder: Path) -> Path:  # noqa: N802 - reads like the constant it writes
    path = folder / "small.json"
    path.write_text(json.dumps(SMALL_CNN))
    return path
