"""Fine-tuning from the command line: a weight file (an imported network, or one trained before) given
where an architecture goes starts training from its weights; --adapt-output gives it a fresh head for
the dataset's classes, --freeze keeps layers as they are."""

from __future__ import annotations

import json

import numpy as np
import pytest

from engine.cli import main
from engine.model import Model
from engine.weights import load_weights, save_weights
from tests.helpers.data_factories import write_stripes_npz
from tests.helpers.engine_factories import arch, stripes_dataset

# Trained elsewhere on five classes: the head must become a three-class one for the stripes.
PRETRAINED = arch(
    {"type": "Conv2D", "filters": 4, "kernel_size": 3, "activation": "relu", "name": "conv"},
    {"type": "MaxPool2D", "pool_size": 2, "name": "pool"},
    {"type": "Flatten", "name": "flat"},
    {"type": "Dense", "units": 5, "activation": "softmax", "name": "head"},
)


@pytest.fixture
def files(tmp_path):
    npz = write_stripes_npz(tmp_path / "stripes.npz")
    weights = save_weights(Model(PRETRAINED, seed=3), tmp_path / "pretrained.npz")
    return tmp_path, weights, npz


def train(*argv: str) -> int:
    return main(["train", *argv, "--epochs", "1", "--batch-size", "16", "--lr", "0.05", "--processes", "1"])


def test_a_new_head_on_a_frozen_backbone_keeps_the_backbone_and_trains_the_head(files, capsys):
    tmp, weights, npz = files
    out = tmp / "tuned.npz"
    assert train(str(weights), "--data", str(npz), "--adapt-output", "--freeze", "backbone", "--out", str(out)) == 0
    printed = capsys.readouterr().out
    assert ("--adapt-output: head now has 3 units (it had 5), one per class of the dataset, with fresh weights; "
            "every other layer keeps its trained weights\n") in printed
    assert f"starting from the weights in {weights}\n" in printed
    before, after = load_weights(weights), load_weights(out)
    for name in ("conv.kernel", "conv.bias"):
        np.testing.assert_array_equal(after.tensors()[name], before.tensors()[name])
    assert after.tensors()["head.kernel"].shape == (4 * 5 * 5, 3)
    trainable = {spec["name"]: spec.get("trainable", True) for spec in after.architecture["layers"]}
    assert trainable == {"conv": False, "pool": False, "flat": False, "head": True}


def test_without_freezing_every_layer_trains_on_from_the_weights(files, capsys):
    tmp, weights, npz = files
    out = tmp / "tuned.npz"
    assert train(str(weights), "--data", str(npz), "--adapt-output", "--out", str(out)) == 0
    before, after = load_weights(weights), load_weights(out)
    moved = after.tensors()["conv.kernel"] - before.tensors()["conv.kernel"]
    # Trained on from the file's weights: a small step away from them, not a fresh initialisation.
    assert 0 < np.abs(moved).max() < np.abs(before.tensors()["conv.kernel"]).max()


def test_named_layers_freeze_and_an_unknown_name_lists_the_layers(files, capsys):
    tmp, weights, npz = files
    out = tmp / "tuned.npz"
    assert train(str(weights), "--data", str(npz), "--adapt-output", "--freeze", "nope", "--out", str(out)) == 2
    assert capsys.readouterr().err.strip() == (
        "cnn-engine: error: --freeze: the network has no layer named 'nope' (its layers: conv, pool, flat, head; or "
        "backbone)")
    assert train(str(weights), "--data", str(npz), "--adapt-output", "--freeze", "conv", "--out", str(out)) == 0
    np.testing.assert_array_equal(load_weights(out).tensors()["conv.kernel"],
                                  load_weights(weights).tensors()["conv.kernel"])


def test_weights_keep_their_input_and_a_sweep_wants_an_architecture(files, tmp_path, capsys):
    tmp, weights, _ = files
    data = stripes_dataset(48, 12, size=10)
    other = tmp / "small.npz"
    np.savez(other, x=data.x_train[..., 0], y=data.y_train, x_test=data.x_test[..., 0], y_test=data.y_test)
    assert train(str(weights), "--data", str(other), "--adapt-input", "--adapt-output") == 2
    assert capsys.readouterr().err.strip() == (
        f"cnn-engine: error: --adapt-input: the weights in {weights} are for 12x12x1 images, and small has 10x10x1; "
        "trained weights keep their input, so train on images of that size (--image-size for a folder of images)")
    assert main(["sweep", str(weights), "--grid", "lr=0.1", "--out", str(tmp / "sweep")]) == 2
    assert capsys.readouterr().err.strip() == (
        f"cnn-engine: error: {weights}: a weight file; a sweep trains every run from fresh weights, so give it an "
        "architecture file")
    assert not (tmp / "sweep").exists()


def test_summary_shows_the_network_a_weight_file_holds(files, capsys):
    _, weights, _ = files
    assert main(["summary", str(weights)]) == 0
    printed = capsys.readouterr().out
    assert "head (Dense)" in printed and "Total params: 545" in printed


def test_an_onnx_file_given_as_the_architecture_says_how_to_import_it(tmp_path, capsys):
    model = tmp_path / "net.onnx"
    model.write_bytes(b"\x08\x08\x12\x07pytorch" + bytes(range(200)))
    for command in ("summary", "train"):
        assert main([command, str(model)]) == 2
        assert capsys.readouterr().err.strip() == (
            f"cnn-engine: error: {model}: an ONNX model, not an architecture file: `cnn-engine import {model} --out "
            f"net.npz` makes it an engine weight file, which {command} takes")


def test_an_architecture_file_still_trains_from_fresh_weights(files, capsys):
    tmp, _, npz = files
    doc = tmp / "net.json"
    doc.write_text(json.dumps(PRETRAINED))
    assert train(str(doc), "--data", str(npz), "--adapt-output", "--freeze", "conv") == 0
    printed = capsys.readouterr().out
    assert "starting from the weights" not in printed and "head now has 3 units (it had 5)" in printed


def test_weights_trained_on_centred_inputs_fine_tune_on_centred_inputs(files, capsys):
    """An import's --mean/--std (or a run with standardised inputs) stays how the data is normalised."""
    tmp, _, npz = files
    model = Model(PRETRAINED, seed=3)
    model.preprocessing = {"scale": 1 / 255, "mean": [0.2], "std": [0.3]}
    weights = save_weights(model, tmp / "centred.npz")
    out, run = tmp / "tuned.npz", tmp / "run"
    assert train(str(weights), "--data", str(npz), "--adapt-output", "--out", str(out)) == 0
    assert load_weights(out).preprocessing["mean"] == [0.2] and load_weights(out).preprocessing["std"] == [0.3]
    assert train(str(weights), "--data", str(npz), "--adapt-output", "--run-dir", str(run)) == 0
    assert load_weights(run / "start-weights.npz").preprocessing["mean"] == [0.2]
