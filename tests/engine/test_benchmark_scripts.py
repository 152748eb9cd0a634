"""The benchmark scripts still run (engine alone, a few steps): speed is measured there, not here."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


def run(script: str, *args: str) -> str:
    result = subprocess.run([sys.executable, str(BENCHMARKS / script), *args], capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_engine_vs_torch_prints_each_network_and_the_peak_memory():
    out = run("engine_vs_torch.py", "--no-torch", "--rounds", "1", "--steps", "1", "--nets", "seed", "seed+bn")
    for label in ("seed train b64", "seed infer b256", "seed+bn train b64", "seed+bn infer b256"):
        assert re.search(rf"{re.escape(label)}\s+ours\s+\d+ img/s", out), out
    assert re.search(r"engine peak RSS .*: \d+ MB", out), out


def test_engine_vs_torch_pairs_two_processes_with_one():
    out = run("engine_vs_torch.py", "--split-vs-threads", "--rounds", "1", "--steps", "1", "--nets", "seed")
    assert re.search(r"seed train b64 +2 processes +\d+ img/s +1 process +\d+ img/s +ratio 2/1 median", out), out


def test_per_core_benchmark_times_the_engine_on_one_thread():
    out = run("per_core.py", "--no-torch", "--rounds", "1", "--steps", "1", "--nets", "seed", "s2same")
    for name in ("seed", "s2same"):
        assert re.search(rf"{name}\s+ours\s+[\d.]+ ms", out), out


def test_epoch_benchmark_trains_an_epoch_and_reports_accuracy():
    out = run("epoch.py", "--no-torch", "--epochs", "1", "--dataset", "fashion-mnist-mini", "--pause", "0")
    accuracy = float(re.search(r"epoch 1: ours\s+[\d.]+ s \(test accuracy ([\d.]+)\)", out).group(1))
    assert accuracy > 0.6, out  # one epoch of the seed network on the bundled subset (chance: 0.1)
    assert re.search(r"engine peak RSS \(its own process\): \d+ MB", out), out


def test_doctor_overhead_compares_epochs_with_and_without_the_doctor():
    out = run("doctor_overhead.py", "--rounds", "1", "--images", "256")
    assert re.search(r"median ratio \(with / without\): \d+\.\d+", out), out


def test_paths_benchmark_pairs_a_path_on_and_off():
    out = run("paths_ab.py", "--path", "spectral", "--rounds", "1", "--steps", "1", "--nets", "k7")
    assert re.search(r"k7\s+on\s+[\d.]+ ms\s+off\s+[\d.]+ ms\s+speed on/off median [\d.]+", out), out
