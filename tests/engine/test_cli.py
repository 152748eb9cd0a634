"""cnn-engine from the command line: figures on success, one-line errors without tracebacks."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from engine.cli import main
from tests.helpers.engine_factories import SMALL_CNN, stripes_dataset
from tests.helpers.extras import require
from tests.helpers.training_project import write_like_train_py


@pytest.fixture
def files(tmp_path):
    data = stripes_dataset(128, 32)
    npz = tmp_path / "stripes.npz"
    np.savez(npz, x=data.x_train[..., 0], y=data.y_train, x_test=data.x_test[..., 0], y_test=data.y_test,
             class_names=np.array(data.class_names))
    arch = tmp_path / "small.json"
    arch.write_text(json.dumps(SMALL_CNN))
    return tmp_path, arch, npz


def test_summary_prints_the_table(files, capsys):
    _, arch, _ = files
    assert main(["summary", str(arch)]) == 0
    out = capsys.readouterr().out
    assert "conv2d_1 (Conv2D)" in out and "Total params: 343" in out


def test_train_then_evaluate(files, capsys):
    tmp, arch, npz = files
    weights = tmp / "w.npz"
    assert main(["train", str(arch), "--data", str(npz), "--epochs", "2", "--batch-size", "16",
                 "--lr", "0.05", "--out", str(weights)]) == 0
    out = capsys.readouterr().out
    assert "epoch 1/2" in out and "epoch 2/2" in out and "test accuracy" in out and weights.exists()
    assert main(["evaluate", str(weights), "--data", str(npz)]) == 0
    out = capsys.readouterr().out
    assert "test accuracy" in out and "horizontal" in out


def test_evaluate_takes_the_safetensors_export_and_train_py_weights_like_the_npz(files, capsys):
    require("safetensors")
    from engine.export import export_model
    from engine.model import Model

    tmp, _, npz = files
    model = Model(SMALL_CNN, seed=3)
    model.preprocessing = {"scale": 1 / 255, "mean": [0.5], "std": [0.25]}
    paths = [*export_model(model, tmp / "w.npz"), *export_model(model, tmp / "w.safetensors"),
             # What the PyTorch training project writes, and under a name that hides its kind.
             write_like_train_py(model, tmp / "trained.safetensors"), write_like_train_py(model, tmp / "trained.w")]
    outputs = []
    for path in paths:
        assert main(["evaluate", str(path), "--data", str(npz)]) == 0, capsys.readouterr().err
        outputs.append(capsys.readouterr().out)
    assert "test accuracy" in outputs[0] and outputs == [outputs[0]] * len(paths)


def test_evaluate_without_the_safetensors_package_names_the_file_and_the_install(files, capsys, monkeypatch):
    tmp, _, npz = files
    from engine.model import Model

    path = write_like_train_py(Model(SMALL_CNN, seed=3), tmp / "trained.safetensors")  # needs no package
    for module in ("safetensors", "safetensors.numpy"):
        monkeypatch.setitem(sys.modules, module, None)  # importing it raises ImportError, as where absent
    assert main(["evaluate", str(path), "--data", str(npz)]) == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith(f"cnn-engine: error: Reading {path} (a .safetensors weight file) needs the "
                           "'safetensors' package, which is not installed")
    assert "pip install safetensors" in line


def test_evaluate_of_a_safetensors_file_without_the_architecture_says_so(files, capsys):
    require("safetensors")
    from safetensors.numpy import save_file

    tmp, _, npz = files
    foreign = tmp / "foreign.safetensors"
    save_file({"w": np.zeros(3, np.float32)}, str(foreign))
    marked = tmp / "marked.safetensors"
    save_file({"w": np.zeros(3, np.float32)}, str(marked), metadata={"format": "cnn-studio.weights/1"})
    for path, words in ((foreign, "no 'cnn-studio.weights/1' format marker, so no architecture"),
                        (marked, "the metadata has no architecture record, so the network cannot be built")):
        assert main(["evaluate", str(path), "--data", str(npz)]) == 2
        (line,) = capsys.readouterr().err.splitlines()
        assert line.startswith(f"cnn-engine: error: {path}: ") and words in line


@pytest.mark.parametrize(
    "argv,message",
    [
        (["summary", "missing.json"], "missing.json: no such file"),
        (["train", "{arch}", "--data", "/no/such/place"], "/no/such/place"),
        (["train", "{arch}", "--data", "{npz}", "--epochs", "0"], "--epochs must be at least 1"),
        (["train", "{arch}", "--data", "{npz}", "--lr", "-1"], "--lr must be positive"),
        (["train", "{arch}", "--data", "{npz}", "--batch-size", "0"], "--batch-size must be at least 1"),
        (["train", "{arch}", "--data", "{npz}", "--validation-split", "1"], "--validation-split must be in [0, 1)"),
        (["train", "{wide}", "--data", "{npz}"], "the network's input is 16x16x1 but the dataset 'stripes' has "
                                                 "12x12x1 images (--adapt-input gives the network the dataset's"),
        (["evaluate", "{npz}", "--data", "{npz}"], "not a CNN Studio weight file"),
    ],
)
def test_errors_are_one_line(files, argv, message):
    tmp, arch, npz = files
    wide = tmp / "wide.json"
    wide.write_text(json.dumps({**SMALL_CNN, "input": {"shape": [16, 16, 1]}}))
    argv = [a.format(arch=arch, npz=npz, wide=wide) for a in argv]
    proc = subprocess.run([sys.executable, "-m", "engine", *argv], capture_output=True, text=True, cwd=tmp)
    assert proc.returncode != 0
    assert message in proc.stderr and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr


@pytest.mark.parametrize("processes", ["1", "2", "auto"])
def test_train_on_one_or_two_processes(files, capsys, processes):
    from engine import replica

    _, arch, npz = files
    try:
        assert main(["train", str(arch), "--data", str(npz), "--epochs", "1", "--batch-size", "16",
                     "--processes", processes]) == 0
        split = replica._replica is not None
    finally:
        replica.shutdown()
    assert "test accuracy" in capsys.readouterr().out
    if processes == "2":
        assert split
    elif processes == "1":
        assert not split


def test_processes_must_be_one_two_or_auto(files, capsys):
    _, arch, npz = files
    with pytest.raises(SystemExit) as exit_info:
        main(["train", str(arch), "--data", str(npz), "--processes", "3"])
    assert exit_info.value.code == 2 and "choose 1, 2 or auto, not '3'" in capsys.readouterr().err


def test_engine_never_imports_qt():
    code = ("import sys, engine, engine.cli, engine.training, engine.data, engine.weights, engine.metrics, "
            "engine.functional; import pkgutil, importlib\n"
            "for m in pkgutil.walk_packages(engine.__path__, 'engine.'):\n"
            "    # __main__ runs the CLI; *_template files are code generated for users (e.g. PyTorch code).\n"
            "    if m.name != 'engine.__main__' and not m.name.endswith('_template'):\n"
            "        importlib.import_module(m.name)\n"
            "bad = [m for m in sys.modules if m.split('.')[0] in ('PySide6', 'shiboken6', 'pyqtgraph', 'cnn_studio')]\n"
            "print(bad); assert not bad")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_graph_summary_shows_connections(tmp_path, capsys):
    from tests.helpers.engine_factories import RESIDUAL

    path = tmp_path / "residual.json"
    path.write_text(json.dumps(RESIDUAL))
    assert main(["summary", str(path)]) == 0
    out = capsys.readouterr().out
    assert "Connected to" in out
    assert any(line.startswith("add_1 (Add)") and line.endswith("conv2d_3, conv2d_1") for line in out.splitlines())


def test_every_graph_problem_is_named_in_one_line(tmp_path, capsys):
    from tests.helpers.engine_factories import arch

    doc = arch(
        {"id": "a", "type": "Conv2D", "filters": 4, "kernel_size": 3},
        {"id": "lost", "type": "ReLU", "inputs": ["a"]},
        {"type": "Add", "inputs": ["a", "nowhere"]},
        {"type": "Conv2D", "filters": 2, "kernel_size": 1, "inputs": ["a", "a"]},
        {"type": "Concatenate", "inputs": ["a"]},
        {"type": "Flatten"},
        {"type": "Dense", "units": 3, "activation": "softmax"},
    )
    path = tmp_path / "broken.json"
    path.write_text(json.dumps(doc))
    assert main(["summary", str(path)]) == 2
    # A failing command says so in one line (scripts read one line); every problem is in it.
    err = capsys.readouterr().err.splitlines()
    assert err == [
        f"cnn-engine: error: {path}: 3 problems: layer 3 (Add): input 'nowhere' is not the id of any layer; "
        "layer 4 (Conv2D): takes one input but is given 2: conv2d_1, conv2d_1; "
        "layer 5 (Concatenate): Concatenate joins two or more inputs but is given 1 (conv2d_1)"
    ]


def test_warnings_of_a_sound_graph_are_printed(tmp_path, capsys):
    from tests.helpers.engine_factories import arch

    doc = arch(
        {"id": "a", "type": "Conv2D", "filters": 4, "kernel_size": 3},
        {"id": "lost", "type": "ReLU", "inputs": ["a"]},
        {"type": "Flatten", "inputs": ["a"]},
        {"type": "Dense", "units": 3, "activation": "softmax"},
    )
    path = tmp_path / "branch.json"
    path.write_text(json.dumps(doc))
    assert main(["summary", str(path)]) == 0
    err = capsys.readouterr().err.splitlines()
    assert any(line.startswith("cnn-engine: warning: layer 2 (ReLU): the output of relu_1 is used by no layer")
               for line in err)
