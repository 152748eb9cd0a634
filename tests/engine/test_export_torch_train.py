"""The PyTorch training project (export format "pytorch-train"): what it writes, and (with PyTorch
installed) that train.py trains alone and under torchrun, and its weights come back into the engine."""

from __future__ import annotations

import ast
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from engine.cli import main
from engine.export import export_model, load_weight_file
from engine.model import Model
from engine.weights import read_weight_file, save_weights
from tests.helpers.data_factories import make_cifar_folder, make_idx_folder, make_image_folder
from tests.helpers.engine_factories import arch, stripes_dataset
from tests.helpers.extras import require

NET = arch(
    {"type": "Conv2D", "filters": 4, "kernel_size": 3, "activation": "relu"},
    {"type": "BatchNorm"},
    {"type": "MaxPool2D", "pool_size": 2},
    {"type": "Flatten"},
    {"type": "Dense", "units": 3, "activation": "softmax"},
)
SETTINGS = {"epochs": 3, "batch_size": 32, "optimizer": "adam", "learning_rate": 0.01, "schedule": "cosine",
            "warmup_epochs": 0.5, "label_smoothing": 0.1, "seed": 7, "augment_shift": 1, "validation_split": 0.1}


def write_stripes(path: Path) -> Path:
    data = stripes_dataset(n_train=240, n_test=60)
    np.savez(path, x=data.x_train, y=data.y_train, x_test=data.x_test, y_test=data.y_test,
             class_names=np.array(data.class_names))
    return path


def project(tmp_path: Path, settings: dict | None = None, doc: dict = NET) -> Path:
    model = Model(doc, seed=1)
    export_model(model, tmp_path / "project", format="pytorch-train", class_names=["h", "v", "blob"],
                 train_settings=settings)
    return tmp_path / "project"


def generated_settings(folder: Path) -> tuple[dict, list]:
    tree = ast.parse((folder / "train.py").read_text())
    found = {}
    for node in tree.body:
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            if node.target.id in ("SETTINGS", "FROZEN"):
                found[node.target.id] = ast.literal_eval(node.value)
    return found["SETTINGS"], found["FROZEN"]


def test_the_project_holds_model_train_readme_and_both_starting_points(tmp_path):
    folder = project(tmp_path, SETTINGS)
    assert sorted(p.name for p in folder.iterdir()) == ["README.md", "initial.npz", "model.py", "train.py",
                                                        "weights.npz"]
    settings, frozen = generated_settings(folder)
    assert {k: settings[k] for k in SETTINGS} == SETTINGS
    assert settings["momentum"] == 0.9 and "processes" not in settings  # the rest: the engine's defaults
    assert frozen == []
    # initial.npz is the engine's own initialisation with the settings' seed; weights.npz the export.
    _, _, initial = read_weight_file(folder / "initial.npz")
    expected = Model(NET, seed=7).get_weights()
    assert all(np.array_equal(initial[k], expected[k]) for k in expected)
    _, _, exported = read_weight_file(folder / "weights.npz")
    assert np.array_equal(exported["conv2d_1.kernel"], Model(NET, seed=1).get_weights()["conv2d_1.kernel"])
    readme = (folder / "README.md").read_text()
    assert "torchrun --nproc_per_node" in readme and "--rdzv_endpoint" in readme
    assert "| `optimizer` | `'adam'` |" in readme


def test_train_script_needs_only_torch_numpy_and_the_standard_library(tmp_path):
    tree = ast.parse((project(tmp_path) / "train.py").read_text())
    top = set()
    # Module-level imports, those guarded by try/except ImportError included.
    nodes = [inner for node in tree.body for inner in ([node] + node.body if isinstance(node, ast.Try) else [node])]
    for node in nodes:
        if isinstance(node, ast.Import):
            top |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            top.add(node.module.split(".")[0])
    assert top - set(sys.stdlib_module_names) == {"numpy", "torch", "model"}
    # Pillow only inside the image-folder reader, with a clear message when it is missing.
    text = (tmp_path / "project" / "train.py").read_text()
    assert "from PIL import Image" in text and "needs Pillow" in text


def test_train_script_without_torch_says_so_in_one_line(tmp_path):
    folder = project(tmp_path)
    hidden = tmp_path / "no_torch"
    hidden.mkdir()
    (hidden / "torch.py").write_text("raise ImportError('No module named torch')\n")
    env = {**os.environ, "PYTHONPATH": str(hidden)}
    done = subprocess.run([sys.executable, "train.py", "--help"], cwd=folder, env=env, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert done.stderr.strip() == "train.py needs PyTorch: pip install torch (https://pytorch.org lists the builds)"


def test_cli_takes_the_settings_from_a_project_file(tmp_path, capsys):
    weights = save_weights(Model(NET, seed=0), tmp_path / "w.npz")
    (tmp_path / "run.cnnproj").write_text(json.dumps({"format": "cnn-studio.project/1", "architecture": NET,
                                                      "dataset": {}, "training": {"epochs": 9, "batch_size": 16}}))
    out = tmp_path / "out"
    assert main(["export", str(weights), "--format", "pytorch-train", "--out", str(out),
                 "--train-settings", str(tmp_path / "run.cnnproj")]) == 0
    assert "train.py" in capsys.readouterr().out
    settings, _ = generated_settings(out)
    assert settings["epochs"] == 9 and settings["batch_size"] == 16
    (tmp_path / "bad.json").write_text(json.dumps({"epochz": 3}))
    assert main(["export", str(weights), "--format", "pytorch-train", "--out", str(tmp_path / "o2"),
                 "--train-settings", str(tmp_path / "bad.json")]) == 2
    assert "unknown training setting 'epochz'" in capsys.readouterr().err


def test_weights_in_a_run_folder_bring_their_settings(tmp_path, capsys):
    run = tmp_path / "runs" / "first"
    run.mkdir(parents=True)
    weights = save_weights(Model(NET, seed=0), run / "weights.npz")
    (run / "run.json").write_text(json.dumps({"format": "cnn-studio.run/1", "config": {
        "epochs": 7, "optimizer": "sgd", "momentum": 0.8, "early_stopping": 3, "processes": 2}}))
    assert main(["export", str(weights), "--format", "pytorch-train", "--out", str(tmp_path / "job")]) == 0
    assert "training settings from" in capsys.readouterr().out
    settings, _ = generated_settings(tmp_path / "job")
    assert settings["epochs"] == 7 and settings["momentum"] == 0.8
    # The run folder itself works as --train-settings too.
    assert main(["export", str(weights), "--format", "pytorch-train", "--out", str(tmp_path / "job2"),
                 "--train-settings", str(run)]) == 0
    assert generated_settings(tmp_path / "job2")[0]["epochs"] == 7


# -- with PyTorch ------------------------------------------------------------------------------------------
def _run(args: list[str], cwd: Path, timeout: float = 240) -> subprocess.CompletedProcess:
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONWARNINGS="ignore")
    return subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


def accuracy(weights: Path, data: Path) -> float:
    model = load_weight_file(weights)
    with np.load(data) as d:
        x = d["x_test"].astype(np.float32) / 255
        return float((model.predict(x).argmax(axis=1) == d["y_test"]).mean())


def test_torchrun_with_two_processes_trains_and_the_weights_come_back(tmp_path):
    pytest.importorskip("torch", reason="PyTorch is not installed")
    require("safetensors")
    folder = project(tmp_path, {"epochs": 1, "batch_size": 16, "learning_rate": 0.05, "seed": 3})
    data = write_stripes(tmp_path / "stripes.npz")
    result = _run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "train.py",
                   "--data", str(data), "--out", str(tmp_path / "trained.safetensors")], folder)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 processes on cpu" in result.stdout and "epoch 1/1" in result.stdout
    assert result.stdout.count("test accuracy") == 1  # only the first process reports and writes
    # The engine reads the weights back (architecture and preprocessing inside) and they classify.
    assert accuracy(tmp_path / "trained.safetensors", data) > 0.6  # chance is 1/3
    before = read_weight_file(folder / "weights.npz")[2]["dense_1.kernel"]
    assert not np.allclose(load_weight_file(tmp_path / "trained.safetensors").tensors()["dense_1.kernel"], before)


def test_one_process_from_scratch_with_the_settings_and_an_npz_out(tmp_path):
    pytest.importorskip("torch", reason="PyTorch is not installed")
    folder = project(tmp_path, SETTINGS)
    data = write_stripes(tmp_path / "stripes.npz")
    result = _run([sys.executable, "train.py", "--data", str(data), "--from-scratch", "--epochs", "2",
                   "--out", str(tmp_path / "trained.npz")], folder)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "epoch 2/2" in result.stdout and "1 process on cpu" in result.stdout
    assert accuracy(tmp_path / "trained.npz", data) > 0.6


def load_train_module(folder: Path):
    """train.py as a module (its own folder's model.py beside it), to call its readers directly."""
    sys.modules.pop("model", None)
    spec = importlib.util.spec_from_file_location(f"train_{abs(hash(folder))}", folder / "train.py")
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(folder.resolve()))
        sys.modules.pop("model", None)
    return module


@pytest.mark.parametrize("kind", ["idx", "cifar", "images", "npz"])
def test_train_script_reads_every_dataset_format_like_the_engine(tmp_path, kind):
    pytest.importorskip("torch", reason="PyTorch is not installed")
    from engine.data import load_dataset

    if kind == "idx":
        path, shape = make_idx_folder(tmp_path / "idx"), (8, 8, 1)
    elif kind == "cifar":
        path, shape = make_cifar_folder(tmp_path / "cifar"), (32, 32, 3)
    elif kind == "images":
        path, shape = make_image_folder(tmp_path / "pics", per_class=5), (8, 10, 1)
    else:
        path, shape = write_stripes(tmp_path / "s.npz"), (12, 12, 1)
    doc = arch({"type": "Flatten"}, {"type": "Dense", "units": 10, "activation": "softmax"}, shape=shape)
    train = load_train_module(project(tmp_path, doc=doc))
    got = train.read_dataset(str(path))
    expected = load_dataset(str(path))
    np.testing.assert_array_equal(got.x_train, expected.x_train)
    np.testing.assert_array_equal(got.y_train, expected.y_train)
    np.testing.assert_array_equal(got.x_test, expected.x_test)
    np.testing.assert_array_equal(got.y_test, expected.y_test)
    assert got.scale == pytest.approx(expected.normalization.scale)
    assert list(got.class_names) == list(expected.class_names)


def test_train_script_augmentation_and_schedule_match_the_engine(tmp_path):
    pytest.importorskip("torch", reason="PyTorch is not installed")
    from engine.data import Augmentation
    from engine.schedules import Schedule

    settings = {**SETTINGS, "augment_hflip": True, "augment_rotation": 10.0, "schedule": "step", "step_epochs": 1}
    train = load_train_module(project(tmp_path, settings))
    x = np.random.default_rng(0).random((5, 12, 12, 1)).astype(np.float32)
    engine_aug = Augmentation(shift=1, hflip=True, rotation=10.0)(x, np.random.default_rng(4))
    np.testing.assert_allclose(train.augment(x, np.random.default_rng(4)), engine_aug, rtol=1e-6, atol=1e-6)
    for kind in ("step", "cosine", "constant"):
        train.SETTINGS["schedule"] = kind
        schedule = Schedule(1.0, kind, warmup_steps=5, step_size=10, gamma=0.5, total_steps=30)
        assert [train.learning_rate_factor(s, 10, 3) for s in range(30)] == pytest.approx(
            [schedule.lr(s) for s in range(30)])


FROZEN_NET = arch(
    {"type": "Conv2D", "filters": 4, "kernel_size": 3, "activation": "relu", "trainable": False},
    {"type": "BatchNorm", "trainable": False},
    {"type": "MaxPool2D", "pool_size": 2},
    {"type": "Flatten"},
    {"type": "Dense", "units": 3, "activation": "softmax"},
)


def test_frozen_layers_stay_frozen_in_pytorch(tmp_path):
    folder = project(tmp_path, {"epochs": 1, "batch_size": 16, "learning_rate": 0.05}, doc=FROZEN_NET)
    _, frozen = generated_settings(folder)
    assert frozen == ["conv2d_1.kernel", "conv2d_1.bias", "batch_norm_1.gamma", "batch_norm_1.beta"]
    pytest.importorskip("torch", reason="PyTorch is not installed")
    data = write_stripes(tmp_path / "stripes.npz")
    result = _run([sys.executable, "train.py", "--data", str(data), "--out", str(tmp_path / "t.npz")], folder)
    assert result.returncode == 0, result.stdout + result.stderr
    before = read_weight_file(folder / "weights.npz")[2]
    after = read_weight_file(tmp_path / "t.npz")[2]
    for name in (*frozen, "batch_norm_1.moving_mean", "batch_norm_1.moving_variance"):
        np.testing.assert_array_equal(after[name], before[name], err_msg=name)
    assert not np.array_equal(after["dense_1.kernel"], before["dense_1.kernel"])


def test_plateau_schedule_and_early_stopping_follow_the_engine(tmp_path):
    pytest.importorskip("torch", reason="PyTorch is not installed")
    train = load_train_module(project(tmp_path, {"schedule": "plateau", "plateau_patience": 1, "plateau_factor": 0.5,
                                                 "early_stopping": 2, "monitor": "val_accuracy", "min_delta": 0.01}))
    from engine.early_stopping import EarlyStopping
    from engine.schedules import ReduceOnPlateau

    plateau = ReduceOnPlateau("val_accuracy", 0.5, 1, 0.01)
    stopper = EarlyStopping("val_accuracy", 2, 0.01)
    watch = train.EpochWatch()
    net = train.Net()
    for epoch, value in enumerate([0.5, 0.505, 0.6, 0.6, 0.58, 0.7], start=1):
        watch.update(value, epoch, net)
        plateau.update(value, 0.01)
        stopper.update(value, epoch, {})
        assert watch.scale == pytest.approx(plateau.scale) and watch.stop == stopper.triggered
        assert watch.best_epoch == stopper.best_epoch
        if stopper.triggered:
            break
    assert watch.stop and watch.scale < 1


@pytest.mark.parametrize("options, expected", [
    (["--epochs", "0"], "train.py: error: argument --epochs: a whole number of at least 1, not '0'"),
    (["--batch-size", "-4"], "train.py: error: argument --batch-size: a whole number of at least 1, not '-4'"),
    (["--lr", "-1"], "train.py: error: argument --lr: a positive number, not '-1'"),
    (["--out", "{tmp}/missing/trained.safetensors"],
     "train.py: error: --out {tmp}/missing/trained.safetensors: the folder {tmp}/missing does not exist"),
    (["--out", "trained.pt"],
     "train.py: error: --out trained.pt: the weights are written as .safetensors or .npz; end the name in one of them"),
    (["--weights", "absent.npz"], "train.py: error: --weights absent.npz: no such file"),
    (["--weights", "{tmp}/other.npz"],
     "{tmp}/other.npz: tensor 'conv2d_1.kernel' is missing: the file holds a different network"),
])
def test_train_script_refuses_bad_options_in_one_line_before_training(tmp_path, options, expected):
    pytest.importorskip("torch", reason="PyTorch is not installed")
    folder = project(tmp_path)
    data = write_stripes(tmp_path / "stripes.npz")
    save_weights(Model(arch({"type": "Flatten"}, {"type": "Dense", "units": 3}), seed=0), tmp_path / "other.npz")
    result = _run([sys.executable, "train.py", "--data", str(data),
                   *[o.format(tmp=tmp_path) for o in options]], folder)
    assert result.returncode != 0 and "Traceback" not in result.stderr, result.stderr
    assert result.stderr.strip().splitlines()[-1] == expected.format(tmp=tmp_path)
    assert "epoch 1/" not in result.stdout and not (folder / "trained.safetensors").exists()


def test_train_script_says_a_studio_dataset_name_means_nothing_there(tmp_path):
    pytest.importorskip("torch", reason="PyTorch is not installed")
    folder = project(tmp_path)
    result = _run([sys.executable, "train.py", "--data", "fashion-mnist-mini"], folder)
    assert result.returncode == 1 and result.stderr.strip() == (
        "fashion-mnist-mini: no such file or folder (give an .npz file, an IDX, CIFAR-10 or image folder; CNN "
        "Studio's dataset names are not known here)")
    assert "mean nothing\nhere: give the folder or file" in (folder / "README.md").read_text()
