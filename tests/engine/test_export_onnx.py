"""ONNX export: a valid opset-17 model whose ONNX Runtime outputs match the engine's within 1e-4."""

from __future__ import annotations

import json

import numpy as np
import pytest

from engine.export import export_model
from engine.model import Model
from engine.training import TrainConfig, Trainer
from tests.engine.test_export_cases import (
    ARCHITECTURES,
    SEED_SAMPLE,
    normalized,
    randomized_model,
    raw_batch,
    trained_model,
)
from tests.helpers.extras import require

onnx = require("onnx")
ort = require("onnxruntime")

TOLERANCE = 1e-4


def run_onnxruntime(path, x: np.ndarray) -> np.ndarray:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {"input": x})[0]


@pytest.mark.parametrize("name", sorted(ARCHITECTURES))
def test_onnxruntime_matches_the_engine(tmp_path, name) -> None:
    model = randomized_model(name)
    path = export_model(model, tmp_path / "net.onnx")[0]
    # Odd batch sizes on purpose: the batch dimension is symbolic.
    for n in (1, 7):
        x = normalized(model, raw_batch(model, n, seed=n))
        expected = model.predict(x)
        got = run_onnxruntime(path, x)
        assert got.shape == expected.shape
        assert np.max(np.abs(got - expected)) < TOLERANCE


def test_onnxruntime_matches_after_real_training_steps(tmp_path) -> None:
    model = trained_model("gray_odd_every_kind")
    path = export_model(model, tmp_path / "trained.onnx")[0]
    x = normalized(model, raw_batch(model, 16))
    assert np.max(np.abs(run_onnxruntime(path, x) - model.predict(x))) < TOLERANCE


def test_bundled_test_images_give_the_engines_probabilities(tmp_path) -> None:
    from engine.data import load_dataset

    dataset = load_dataset("fashion-mnist-mini").subset(256, 300, seed=0)
    model = Model.from_architecture(SEED_SAMPLE, seed=0)
    Trainer(model, dataset, TrainConfig(epochs=1, batch_size=64, validation_split=0.0)).fit()
    path = export_model(model, tmp_path / "seed.onnx", class_names=dataset.class_names)[0]
    x = dataset.normalized("test")
    expected = model.predict(x)
    got = run_onnxruntime(path, x)
    assert np.max(np.abs(got - expected)) < TOLERANCE
    assert np.array_equal(got.argmax(1), expected.argmax(1))
    metadata = {p.key: p.value for p in onnx.load(str(path)).metadata_props}
    assert json.loads(metadata["class_names"]) == dataset.class_names


def test_model_passes_the_full_checker_with_opset_17_and_a_symbolic_batch(tmp_path) -> None:
    model = randomized_model("gray_odd_every_kind")
    path = export_model(model, tmp_path / "net.onnx")[0]
    proto = onnx.load(str(path))
    onnx.checker.check_model(proto, full_check=True)
    assert [(o.domain, o.version) for o in proto.opset_import] == [("", 17)]
    assert proto.ir_version == onnx.helper.find_min_ir_version_for(list(proto.opset_import))
    (graph_input,) = proto.graph.input
    dims = graph_input.type.tensor_type.shape.dim
    assert graph_input.name == "input" and dims[0].dim_param == "N"
    assert [d.dim_value for d in dims[1:]] == [15, 13, 1]
    (graph_output,) = proto.graph.output
    assert graph_output.name == "probabilities"
    assert graph_output.type.tensor_type.shape.dim[0].dim_param == "N"
    metadata = {p.key: p.value for p in proto.metadata_props}
    assert json.loads(metadata["architecture"]) == model.architecture
    assert json.loads(metadata["preprocessing"]) == model.preprocessing


def test_graph_uses_the_engines_padding_epsilon_and_pool_divisor(tmp_path) -> None:
    model = randomized_model("gray_odd_every_kind")
    proto = onnx.load(str(export_model(model, tmp_path / "net.onnx")[0]))

    def attributes(op: str) -> list[dict]:
        return [{a.name: onnx.helper.get_attribute_value(a) for a in n.attribute}
                for n in proto.graph.node if n.op_type == op]

    conv = attributes("Conv")[0]
    # 15x13 input, kernel 3, stride 2, 'same': 2 pixels of padding in height split 1 + 1, in width 1 + 1.
    assert conv["pads"] == [1, 1, 1, 1] and conv["strides"] == [2, 2]
    maxpool = attributes("MaxPool")[0]
    assert maxpool["pads"] == [0, 1, 1, 1] and maxpool["ceil_mode"] == 0  # odd pixel after, as the engine
    assert attributes("AveragePool")[0]["count_include_pad"] == 1
    assert sorted(round(a["epsilon"], 8) for a in attributes("BatchNormalization")) == [1e-5, 1e-3]


def test_network_without_softmax_names_its_output_outputs(tmp_path) -> None:
    model = randomized_model("dense_no_softmax")
    proto = onnx.load(str(export_model(model, tmp_path / "net.onnx")[0]))
    assert [o.name for o in proto.graph.output] == ["outputs"]


def test_max_difference_helper_reports_the_gap(tmp_path) -> None:
    from engine.export.onnx_export import max_difference

    model = randomized_model("rgb_global_pool")
    path = export_model(model, tmp_path / "net.onnx")[0]
    x = normalized(model, raw_batch(model, 5))
    assert max_difference(model, path, x) < TOLERANCE
    model.tensors()["dense_1.kernel"][...] *= 3.0  # the engine's model moved on; the file did not
    assert max_difference(model, path, x) > 1e-3
