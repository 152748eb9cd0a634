"""cnn-engine and the files it is given: an --out it cannot write is refused before any training, an
ONNX model where a weight file belongs says how to import it, and a reader that closes the pipe early
(`| head`) ends the command quietly."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from engine.cli import main
from engine.model import Model
from engine.weights import save_weights
from tests.helpers.engine_factories import SMALL_CNN

ONNX_BYTES = b"\x08\x08\x12\x07pytorch" + bytes(range(200))  # how a PyTorch export begins (ir_version 8)


@pytest.fixture
def architecture(tmp_path) -> Path:
    path = tmp_path / "small.json"
    path.write_text(json.dumps(SMALL_CNN))
    return path


def error_line(capsys) -> str:
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1, lines
    return lines[0]


@pytest.mark.parametrize("command", ["train", "resume"])
def test_an_out_in_a_missing_folder_is_refused_before_anything_runs(tmp_path, architecture, capsys, command):
    out = tmp_path / "results" / "w.npz"
    # No dataset of that name exists either: the --out problem is found first, before any loading.
    first = [str(architecture), "--data", str(tmp_path / "absent")] if command == "train" else [str(tmp_path)]
    assert main([command, *first, "--out", str(out)]) == 2
    assert error_line(capsys) == (f"cnn-engine: error: --out {out}: the folder {out.parent} does not exist (create it "
                                  "first)")


def test_train_refuses_a_weight_file_named_as_another_format(tmp_path, architecture, capsys):
    out = tmp_path / "w.safetensors"
    assert main(["train", str(architecture), "--out", str(out)]) == 2
    assert error_line(capsys) == (f"cnn-engine: error: --out {out}: the weight file must end in .npz, e.g. "
                                  f"{tmp_path / 'w.npz'} (then `cnn-engine export w.npz --out w.safetensors` "
                                  "converts it)")


@pytest.mark.parametrize("command", ["evaluate", "export"])
def test_an_onnx_model_where_weights_belong_says_how_to_import_it(tmp_path, capsys, command):
    model = tmp_path / "net.onnx"
    model.write_bytes(ONNX_BYTES)
    extra = ["--out", str(tmp_path / "back.onnx")] if command == "export" else []
    assert main([command, str(model), *extra]) == 2
    assert error_line(capsys) == (f"cnn-engine: error: {model}: an ONNX model, not a CNN Studio weight file: import "
                                  f"it first with `cnn-engine import {model} --out net.npz` (in the studio: File > "
                                  "Import ONNX Model)")


def test_export_names_a_missing_folder_in_the_options_words(tmp_path, capsys):
    weights = save_weights(Model(SMALL_CNN, seed=0), tmp_path / "w.npz")
    out = tmp_path / "nowhere" / "net.onnx"
    assert main(["export", str(weights), "--format", "safetensors", "--out", str(out)]) == 2
    assert error_line(capsys) == (f"cnn-engine: error: --out {out}: the folder {out.parent} does not exist (create "
                                  "it first)")


def test_a_closed_pipe_ends_the_command_quietly(tmp_path, architecture):
    # `cnn-engine summary net.json | head -1`: the reader has gone before the table is written.
    proc = subprocess.Popen([sys.executable, "-m", "engine", "summary", str(architecture)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, cwd=tmp_path)
    proc.stdout.close()
    _, err = proc.communicate(timeout=120)
    assert err.decode() == "" and proc.returncode == 1


def test_an_out_that_can_be_written_still_is(tmp_path, architecture):
    data = np.zeros((8, 12, 12), np.uint8)
    npz = tmp_path / "d.npz"
    np.savez(npz, x=data, y=np.arange(8) % 3)
    assert main(["train", str(architecture), "--data", str(npz), "--epochs", "1", "--batch-size", "4",
                 "--validation-split", "0", "--processes", "1", "--out", str(tmp_path / "w.npz")]) == 0
    assert (tmp_path / "w.npz").exists()
