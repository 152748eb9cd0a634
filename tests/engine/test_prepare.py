"""engine.training.prepare: everything checked once, before anything is built, as typed errors that
carry what a fix needs; the settings; one process unless asked."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys

import pytest

from engine import training
from engine.architecture import analyze
from engine.errors import (
    ArchitectureError,
    ClassCountError,
    ClassifierHeadError,
    InputShapeError,
    NoTrainingImagesError,
    SettingError,
    SoftmaxHeadError,
    TrainingError,
)
from engine.model import Model
from engine.preflight import setting_problem, training_problems
from engine.training import TrainConfig, Trainer, prepare
from tests.helpers.engine_factories import SMALL_CNN, arch, stripes_dataset

CONV, POOL, FLATTEN = SMALL_CNN["layers"][:3]


def test_prepare_builds_what_a_direct_build_would():
    data = stripes_dataset()
    config = TrainConfig(epochs=1, batch_size=32, learning_rate=0.05, seed=3)
    model, trainer = prepare(SMALL_CNN, data, config)
    assert trainer.model is model and trainer.config is config and model.seed == 3
    direct = Trainer(Model(SMALL_CNN, seed=3), data, config)
    assert [b.loss for b in trainer.fit().batches] == [b.loss for b in direct.fit().batches]


def test_prepare_reads_a_file_and_starts_from_given_weights(tmp_path):
    path = tmp_path / "small.json"
    path.write_text(json.dumps(SMALL_CNN))
    weights = {k: v + 1 for k, v in Model(SMALL_CNN, seed=9).get_weights().items()}
    model, _ = prepare(path, stripes_dataset(), weights=weights)
    assert all((model.get_weights()[k] == v).all() for k, v in weights.items())


def test_prepare_refuses_before_building_the_model(monkeypatch):
    monkeypatch.setattr(training, "Model", lambda *args, **kwargs: pytest.fail("a model was built"))
    with pytest.raises(InputShapeError) as info:
        prepare(arch(*SMALL_CNN["layers"], shape=(28, 28, 1)), stripes_dataset(), TrainConfig())
    error = info.value
    assert isinstance(error, TrainingError) and error.fix == "adapt_input"
    assert error.network_shape == (28, 28, 1) and error.dataset_shape == (12, 12, 1)
    assert error.dataset_name == "stripes"
    assert str(error) == "the network's input is 28x28x1 but the dataset 'stripes' has 12x12x1 images"


def test_class_count_and_head_problems_carry_their_numbers():
    data = stripes_dataset()
    with pytest.raises(ClassCountError) as info:
        prepare(arch(CONV, POOL, FLATTEN, {"type": "Dense", "units": 10, "activation": "softmax"}), data)
    error = info.value
    assert isinstance(error, ArchitectureError)
    assert (error.outputs, error.classes, error.layer_index, error.fix) == (10, 3, 4, "set_output_units")
    assert error.message == "layer 4 (Dense): has 10 outputs but the dataset has 3 classes"

    with pytest.raises(ClassifierHeadError) as info:
        prepare(arch(CONV, POOL), data)
    assert info.value.output_shape == (5, 5, 4) and info.value.fix == "append_classifier"
    assert "3 units" in info.value.hint

    with pytest.raises(SoftmaxHeadError) as info:
        prepare(arch(CONV, POOL, FLATTEN, {"type": "Dense", "units": 3}), data)
    assert isinstance(info.value, TrainingError) and (info.value.layer_index, info.value.layer_type) == (4, "Dense")

    broken = arch({"type": "Conv2D", "filters": 2, "kernel_size": 30}, FLATTEN, SMALL_CNN["layers"][3])
    with pytest.raises(ArchitectureError, match="kernel_size"):
        prepare(broken, data)


def test_a_split_that_leaves_no_training_images():
    data = stripes_dataset(n_train=4)
    with pytest.raises(NoTrainingImagesError) as info:
        prepare(SMALL_CNN, data, TrainConfig(validation_split=0.9))
    assert (info.value.train_size, info.value.validation_split) == (4, 0.9)
    prepare(SMALL_CNN, data, TrainConfig(validation_split=0.5))  # two of four left


@pytest.mark.parametrize("field, value", [
    ("epochs", 0), ("epochs", 2.5), ("batch_size", 0), ("batch_size", True),
    ("learning_rate", -1), ("learning_rate", math.nan), ("learning_rate", math.inf), ("learning_rate", "0.1"),
    ("momentum", 1.0), ("momentum", -0.1), ("weight_decay", -1e-4), ("optimizer", "rmsprop"),
    ("schedule", "linear"), ("validation_split", 1.0), ("label_smoothing", 1.0), ("step_epochs", 0),
    ("step_gamma", 0), ("warmup_epochs", -1), ("seed", -1), ("augment_shift", -1), ("augment_rotation", -5),
    ("nesterov", 1), ("processes", 3), ("processes", "2"), ("processes", 2.0), ("processes", None),
])
def test_settings_out_of_range_are_refused_by_name(field, value):
    config = TrainConfig(**{field: value})
    for build in (lambda: prepare(SMALL_CNN, stripes_dataset(), config),
                  lambda: Trainer(Model(SMALL_CNN), stripes_dataset(), config)):
        with pytest.raises(SettingError) as info:
            build()
        assert info.value.field == field and info.value.value is value
        assert str(info.value).startswith(f"{field} must be ")
    assert setting_problem(field, value) is not None


def test_settings_in_range_pass():
    for config in (TrainConfig(), TrainConfig(processes=2), TrainConfig(processes="auto", optimizer="adamw",
                   schedule="cosine", momentum=0.0, validation_split=0.0, learning_rate=10, batch_size=1)):
        prepare(SMALL_CNN, stripes_dataset(), config)
    assert setting_problem("processes", "auto") is None and setting_problem("unknown", object()) is None


def test_every_problem_at_once():
    ten = arch(CONV, POOL, FLATTEN, {"type": "Dense", "units": 10, "activation": "softmax"}, shape=(16, 16, 1))
    problems = training_problems(analyze(ten), stripes_dataset(), TrainConfig(batch_size=0))
    assert [type(p) for p in problems] == [SettingError, ClassCountError, InputShapeError]


def test_project_files_keep_the_processes_setting():
    assert TrainConfig.from_dict({"epochs": 3}).processes == 1  # written before the setting existed
    for processes in (1, 2, "auto"):
        config = TrainConfig(processes=processes)
        assert TrainConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config


def test_a_default_trainer_starts_no_process_and_loads_no_inter_process_code():
    """In a fresh interpreter, with two engine threads and a network "auto" would split: the default
    trains with no child process and never imports the replica; "auto" then starts one."""
    code = """
import json, os, sys
import numpy as np
from engine import Model, Trainer, TrainConfig
from engine.data import Dataset

def children():  # live child processes, where Linux tells
    tasks = f"/proc/{os.getpid()}/task"
    try:
        return sum(len(open(f"{tasks}/{t}/children").read().split()) for t in os.listdir(tasks))
    except OSError:
        return None

rng = np.random.default_rng(0)
x, y = rng.integers(0, 255, (200, 28, 28, 1), dtype=np.uint8), rng.integers(0, 10, 200)
data = Dataset.from_arrays(x, y, x[:20], y[:20], [str(k) for k in range(10)], name="noise")
model = Model.from_architecture(sys.argv[1], seed=0)
Trainer(model, data, TrainConfig(epochs=1)).fit()
alone = {"children": children(), "replica": "engine.replica" in sys.modules}
Trainer(model, data, TrainConfig(epochs=1, processes="auto")).fit()
print(json.dumps({"alone": alone, "auto": {"children": children(), "replica": "engine.replica" in sys.modules}}))
"""
    from engine.resources import asset_path

    env = {**os.environ, "CNN_ENGINE_THREADS": "2"}
    env.pop("CNN_ENGINE_PROCESSES", None)
    proc = subprocess.run([sys.executable, "-c", code, str(asset_path("architectures", "seed_sample.json"))],
                          capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["alone"]["replica"] is False and result["auto"]["replica"] is True
    if result["alone"]["children"] is not None:
        # the replica, and multiprocessing's resource tracker for the shared block
        assert result["alone"]["children"] == 0 and result["auto"]["children"] >= 1
