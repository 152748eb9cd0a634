"""The memory estimate: what it counts, when it refuses (before allocating) and when it warns."""

from __future__ import annotations

import json
import subprocess
import sys
import tracemalloc
import warnings

import numpy as np
import pytest

from engine import memory
from engine.architecture import analyze
from engine.errors import ResourceError
from engine.memory import MemoryWarning, estimate_model, estimate_training, format_bytes
from engine.model import Model
from engine.training import TrainConfig, prepare
from tests.helpers.engine_factories import SMALL_CNN, arch, stripes_dataset

# The issue's network: 26x26x4096 values flattened into 4096 units, 11.3 billion weights.
HUGE = arch(
    {"type": "Conv2D", "filters": 4096, "kernel_size": 3, "activation": "relu"},
    {"type": "Flatten"},
    {"type": "Dense", "units": 4096, "activation": "relu"},
    {"type": "Dense", "units": 10, "activation": "softmax"},
    shape=(28, 28, 1),
)
GiB = 1 << 30


@pytest.fixture
def available(monkeypatch):
    """Pretend the machine has ``n`` bytes available."""
    def set_available(n: int | None) -> None:
        monkeypatch.setattr(memory, "_system_available", lambda: n)
        monkeypatch.delenv(memory.LIMIT_ENV, raising=False)
    return set_available


def test_the_estimate_counts_parameters_gradients_optimizer_and_activations():
    analysis = analyze(SMALL_CNN)
    params = analysis.trainable_params
    build = estimate_model(analysis)
    assert build.part("parameters") == 4 * params and build.part("gradients") == 4 * params
    sgd = estimate_training(analysis, 32, "sgd", momentum=0.9)
    plain = estimate_training(analysis, 32, "sgd", momentum=0.0)
    adam = estimate_training(analysis, 32, "adam")
    assert sgd.part("optimizer state") == 4 * params and plain.part("optimizer state") == 0
    assert adam.part("optimizer state") == 8 * params
    # Activations grow with the batch: every layer's output is kept for backward.
    outputs = 12 * 12 * 1 + 10 * 10 * 4 + 5 * 5 * 4 + 100 + 3
    assert estimate_training(analysis, 64).part("activations") == 2 * sgd.part("activations")
    assert sgd.part("activations") >= 32 * 4 * outputs
    assert estimate_training(analysis, 32, dataset_bytes=5000).part("dataset") == 5000
    assert estimate_training(analysis, 32, built=True).part("parameters") == 0


def test_the_issue_network_is_refused_before_a_byte_is_allocated(available):
    available(16 * GiB)
    tracemalloc.start()
    try:
        with pytest.raises(ResourceError) as caught:
            Model(HUGE)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    message = str(caught.value)
    assert peak < 50 << 20, f"{peak / 2**20:.0f} MiB allocated before refusing"
    assert "not enough memory: needs about 85 GiB to build this network but 16 GiB is available" in message
    assert "the Dense layer after Flatten has 11.3 billion weights" in message
    assert "add pooling or reduce filters" in message and "\n" not in message


def test_training_is_refused_before_the_model_is_built(available, monkeypatch):
    available(2 * GiB)
    wide = arch({"type": "Conv2D", "filters": 512, "kernel_size": 3, "padding": "same", "activation": "relu"},
                {"type": "Conv2D", "filters": 512, "kernel_size": 3, "padding": "same", "activation": "relu"},
                {"type": "GlobalAvgPool2D"}, {"type": "Dense", "units": 3, "activation": "softmax"},
                shape=(64, 64, 1))
    data = stripes_dataset(16, 4, size=64)
    built = []
    monkeypatch.setattr(Model, "__init__", lambda *a, **k: built.append(1))
    with pytest.raises(ResourceError) as caught:
        prepare(wide, data, TrainConfig(batch_size=256))
    assert not built
    assert "to train at batch size 256" in str(caught.value) and "reduce the batch size" in str(caught.value)


def test_more_than_half_of_the_memory_warns(available):
    need = estimate_model(analyze(SMALL_CNN)).total
    available(int(need * 1.5))
    with pytest.warns(MemoryWarning, match="more than half of the"):
        Model(SMALL_CNN)
    available(need * 4)
    with warnings.catch_warnings():
        warnings.simplefilter("error", MemoryWarning)
        Model(SMALL_CNN)


def test_the_limit_variable_caps_what_counts_as_available(monkeypatch):
    monkeypatch.setattr(memory, "_system_available", lambda: 64 * GiB)
    monkeypatch.setenv(memory.LIMIT_ENV, "1.5G")
    assert memory.available_memory() == int(1.5 * GiB)
    monkeypatch.setenv(memory.LIMIT_ENV, "512m")
    assert memory.available_memory() == 512 << 20
    monkeypatch.setenv(memory.LIMIT_ENV, "nonsense")
    assert memory.available_memory() == 64 * GiB
    monkeypatch.setattr(memory, "_system_available", lambda: None)
    monkeypatch.delenv(memory.LIMIT_ENV)
    assert memory.available_memory() is None
    Model(SMALL_CNN)  # nothing is refused when the available memory cannot be read


def test_readable_sizes():
    assert format_bytes(512) == "512 bytes" and format_bytes(3 * 1024**2 + 1) == "3.0 MiB"
    assert format_bytes(45 * GiB) == "45 GiB" and memory.format_count(11_341_402_112) == "11.3 billion"


def test_initial_weights_are_drawn_in_float32_without_float64_copies():
    layer_doc = arch({"type": "Flatten"}, {"type": "Dense", "units": 1000, "activation": "relu"},
                     {"type": "Dense", "units": 3, "activation": "softmax"}, shape=(100, 100, 1))
    kernel_bytes = 100 * 100 * 1000 * 4
    tracemalloc.start()
    try:
        model = Model(layer_doc)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    kernel = model.parameters()["dense_1.kernel"]
    assert kernel.dtype == np.float32
    # The kernel and its gradient array, nothing twice its size on the way (a float64 draw would be 2x).
    assert peak < 2 * kernel_bytes + (8 << 20), f"peak {peak / 2**20:.0f} MiB, kernel {kernel_bytes / 2**20:.0f} MiB"
    # He initialisation's spread survives the float32 draw.
    assert abs(float(kernel.std()) - np.sqrt(2 / 10000)) < 1e-3


def test_the_cli_refuses_the_issue_network_before_reading_data(tmp_path):
    path = tmp_path / "huge.json"
    path.write_text(json.dumps(HUGE))
    env_code = (f"import os; os.environ['{memory.LIMIT_ENV}'] = '16G'; from engine.cli import main; "
                f"raise SystemExit(main(['train', {str(path)!r}, '--data', '/no/such/data']))")
    proc = subprocess.run([sys.executable, "-c", env_code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr
    assert lines[0].startswith(f"cnn-engine: error: {path}: not enough memory: needs about 85 GiB")
    assert "/no/such/data" not in lines[0]  # refused before the dataset was even looked for
    summary = subprocess.run([sys.executable, "-m", "engine", "summary", str(path)], capture_output=True, text=True,
                             timeout=120, env={**__import__("os").environ, memory.LIMIT_ENV: "16G"})
    assert summary.returncode == 0 and "Will not fit: the Dense layer after Flatten has 11.3 billion" in summary.stdout
