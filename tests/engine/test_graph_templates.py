"""The bundled branching templates: ResNet-8 and Inception-lite, on grayscale and colour inputs."""

from __future__ import annotations

import numpy as np
import pytest

from engine.architecture import check_classifier, load_architecture_file, validate, with_input_shape
from engine.cli import main
from engine.model import Model
from engine.resources import asset_path

TEMPLATES = ["resnet8", "inception_lite"]


@pytest.mark.parametrize("shape", [(28, 28, 1), (32, 32, 3)])
@pytest.mark.parametrize("key", TEMPLATES)
def test_template_is_a_ten_class_classifier_on_both_input_shapes(key, shape):
    doc = with_input_shape(load_architecture_file(asset_path("templates", f"{key}.json")), shape)
    analysis = validate(doc)
    assert not analysis.warnings and not analysis.is_chain
    check_classifier(analysis, 10)
    model = Model(doc)
    probabilities = model.predict(np.random.default_rng(0).random((3, *shape), dtype=np.float32))
    assert probabilities.shape == (3, 10)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1, rtol=1e-5)


def test_resnet8_has_three_stages_with_projection_shortcuts():
    analysis = validate(asset_path("templates", "resnet8.json"))
    adds = [info for info in analysis.layers if info.type == "Add"]
    assert [info.output_shape for info in adds] == [(28, 28, 16), (14, 14, 32), (7, 7, 64)]
    # Stage 1 keeps size and width: an identity shortcut; stages 2 and 3 project with a strided 1x1.
    assert adds[0].inputs[1] == "stem_relu"
    for stage, width in (("s2", 32), ("s3", 64)):
        projection = analysis.layer(f"{stage}_proj")
        assert (projection.config["kernel_size"], projection.config["stride"], projection.config["filters"]) == \
            (1, 2, width)
    weighted = [info for info in analysis.layers if info.type in ("Conv2D", "Dense") and "proj" not in info.id]
    assert len(weighted) == 8


def test_inception_lite_blocks_concatenate_four_branches():
    analysis = validate(asset_path("templates", "inception_lite.json"))
    merges = [info for info in analysis.layers if info.type == "Concatenate"]
    assert [len(info.inputs) for info in merges] == [4, 4]
    assert [info.output_shape for info in merges] == [(14, 14, 56), (7, 7, 112)]
    assert {analysis.layer(i).config["kernel_size"] for i in ("a_1x1", "a_3x3", "a_5x5")} == {1, 3, 5}


def test_resnet8_trains_from_the_command_line(capsys):
    path = str(asset_path("templates", "resnet8.json"))
    assert main(["train", path, "--data", "fashion-mnist-mini", "--epochs", "1", "--adapt-input", "--limit", "128",
                 "--batch-size", "32", "--processes", "1"]) == 0
    out = capsys.readouterr().out
    assert "epoch 1/1" in out and "test accuracy" in out
