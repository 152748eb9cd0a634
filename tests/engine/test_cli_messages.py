"""cnn-engine says what happens and what to do: weights not saved, a wrong kind of file, warnings
as one line, an input or class count that does not match the dataset (and the options that adapt)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from engine.cli import main
from engine.weights import load_weights
from tests.helpers.data_factories import make_image_folder, write_stripes_npz
from tests.helpers.engine_factories import SMALL_CNN


@pytest.fixture
def files(tmp_path):
    npz = write_stripes_npz(tmp_path / "stripes.npz")
    arch = tmp_path / "small.json"
    arch.write_text(json.dumps(SMALL_CNN))
    return tmp_path, arch, npz


def run_cli(tmp_path, *argv: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "engine", *argv], capture_output=True, text=True, cwd=tmp_path)


def test_train_without_out_says_before_and_after_that_nothing_is_saved(files, capsys):
    tmp, arch, npz = files
    assert main(["train", str(arch), "--data", str(npz), "--epochs", "1", "--batch-size", "16",
                 "--processes", "1"]) == 0
    out = capsys.readouterr().out
    note = out.index("the trained weights will not be saved: add --out FILE.npz")
    assert note < out.index("epoch 1/1")
    assert out.rstrip().endswith("weights not saved (no --out given)")
    assert main(["train", str(arch), "--data", str(npz), "--epochs", "1", "--batch-size", "16",
                 "--processes", "1", "--out", str(tmp / "w.npz")]) == 0
    out = capsys.readouterr().out
    assert "not be saved" not in out and "not saved" not in out and f"weights saved to {tmp / 'w.npz'}" in out


@pytest.mark.parametrize(("name", "content", "kind"), [
    ("small.json", None, "an architecture file (JSON)"),
    ("notes.npz", "{\"a\": 1", "a text file that looks like JSON"),
    ("picture.npz", b"\x89PNG\r\n\x1a\n0000", "a PNG picture"),
])
def test_evaluate_on_a_file_that_is_not_a_weight_file_says_what_it_is(files, name, content, kind):
    tmp, _arch, npz = files
    path = tmp / name
    if isinstance(content, str):
        path.write_text(content)
    elif content is not None:
        path.write_bytes(content)
    proc = run_cli(tmp, "evaluate", str(path), "--data", str(npz))
    assert proc.returncode == 2
    (line,) = proc.stderr.strip().splitlines()
    assert line.startswith(f"cnn-engine: error: {path}: not a CNN Studio weight file: it is {kind}, not the .npz")
    assert "cnn-engine train --out" in line and "pickle" not in line


def test_python_warnings_are_one_clean_line_each(tmp_path):
    folder = make_image_folder(tmp_path / "pictures", ("cat", "dog"), per_class=4, size=(12, 12))
    (folder / "cat" / "notes.txt").write_text("not a picture")
    arch = tmp_path / "small.json"
    arch.write_text(json.dumps(SMALL_CNN))
    proc = run_cli(tmp_path, "summary", str(arch))
    assert proc.returncode == 0
    proc = run_cli(tmp_path, "train", str(arch), "--data", str(folder), "--epochs", "1", "--adapt-output",
                   "--validation-split", "0", "--processes", "1")
    warning_lines = [line for line in proc.stderr.splitlines() if "notes.txt" in line]
    assert warning_lines == [f"cnn-engine: warning: {folder / 'cat' / 'notes.txt'}: not an image, skipped"]
    assert "warnings.warn" not in proc.stderr and "UserWarning" not in proc.stderr
    assert not [line for line in proc.stderr.splitlines() if line.startswith(" ")]  # no source lines


def test_a_class_count_mismatch_suggests_adapt_output_which_sets_the_last_dense_layer(files, capsys):
    tmp, _arch, npz = files
    ten = tmp / "ten.json"
    ten.write_text(json.dumps({**SMALL_CNN, "layers": [*SMALL_CNN["layers"][:-1],
                                                       {"type": "Dense", "units": 10, "activation": "softmax"}]}))
    proc = run_cli(tmp, "train", str(ten), "--data", str(npz), "--epochs", "1")
    assert proc.returncode == 2
    (line,) = proc.stderr.strip().splitlines()
    assert "has 10 outputs but the dataset has 3 classes" in line
    assert line.endswith("(--adapt-output gives the last Dense layer 3 units)")

    out = tmp / "adapted.npz"
    assert main(["train", str(ten), "--data", str(npz), "--epochs", "1", "--batch-size", "16", "--adapt-output",
                 "--processes", "1", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "--adapt-output: dense_1 now has 3 units (it had 10), one per class of the dataset" in printed
    assert load_weights(out).output_shape == (3,)


def test_adapt_output_follows_the_output_up_to_its_dense_layer_and_needs_one(files, capsys):
    tmp, _arch, npz = files
    branching = tmp / "branching.json"
    branching.write_text(json.dumps({
        "format": "cnn-studio.architecture/2", "input": {"shape": [12, 12, 1]},
        "layers": [
            {"id": "conv", "type": "Conv2D", "filters": 4, "kernel_size": 3, "activation": "relu"},
            {"id": "flat", "type": "Flatten"},
            {"id": "side", "type": "Dense", "units": 7, "inputs": ["flat"]},
            {"id": "head", "type": "Dense", "units": 5, "inputs": ["flat"]},
            {"id": "soft", "type": "Softmax", "inputs": ["head"]},
        ]}))
    assert main(["train", str(branching), "--data", str(npz), "--epochs", "1", "--adapt-output",
                 "--processes", "1"]) == 0
    assert "dense_2 now has 3 units (it had 5)" in capsys.readouterr().out
    no_dense = tmp / "gap.json"
    no_dense.write_text(json.dumps({"format": "cnn-studio.architecture/1", "input": {"shape": [12, 12, 1]},
                                    "layers": [{"type": "Conv2D", "filters": 3, "kernel_size": 3},
                                               {"type": "GlobalAvgPool2D"}]}))
    proc = run_cli(tmp, "train", str(no_dense), "--data", str(npz), "--adapt-output")
    assert proc.returncode == 2 and "--adapt-output: no Dense layer makes the network's output" in proc.stderr


def test_an_input_mismatch_suggests_the_options_that_fix_it(files, tmp_path):
    tmp, arch, npz = files
    wide = tmp / "wide.json"
    wide.write_text(json.dumps({**SMALL_CNN, "input": {"shape": [16, 16, 1]}}))
    proc = run_cli(tmp, "train", str(wide), "--data", str(npz))
    assert "(--adapt-input gives the network the dataset's shape)" in proc.stderr
    weights = tmp / "w.npz"
    assert main(["train", str(arch), "--data", str(npz), "--epochs", "1", "--processes", "1",
                 "--out", str(weights)]) == 0
    folder = make_image_folder(tmp / "photos", ("a", "b", "c"), per_class=2, size=(20, 20), mode="RGB")
    proc = run_cli(tmp, "evaluate", str(weights), "--data", str(folder))
    (line,) = proc.stderr.strip().splitlines()
    assert "expects 12x12x1 images" in line and line.endswith("--image-size 12 12 --color grayscale)")
