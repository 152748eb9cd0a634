"""int8 ONNX export: static quantization calibrated on training images, size and accuracy reported."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tests.helpers.extras import require

onnx = require("onnx")
ort = require("onnxruntime")
require("onnxruntime.quantization")

from engine.cli import main  # noqa: E402
from engine.export.quantize import quantize_for_dataset  # noqa: E402
from engine.model import Model  # noqa: E402
from engine.training import TrainConfig, Trainer  # noqa: E402
from engine.weights import save_weights  # noqa: E402
from tests.helpers.engine_factories import arch, stripes_dataset  # noqa: E402

NET = arch(
    {"type": "Conv2D", "filters": 8, "kernel_size": 3, "activation": "relu"},
    {"type": "MaxPool2D", "pool_size": 2},
    {"type": "Flatten"},
    {"type": "Dense", "units": 64, "activation": "relu"},
    {"type": "Dense", "units": 3, "activation": "softmax"},
)


@pytest.fixture(scope="module")
def trained():
    data = stripes_dataset(n_train=300, n_test=90)
    model = Model(NET, seed=0)
    Trainer(model, data, TrainConfig(epochs=2, batch_size=32, learning_rate=0.05, validation_split=0.0)).fit()
    return model, data


def test_int8_model_is_smaller_and_classifies_like_the_float_one(tmp_path, trained):
    model, data = trained
    report = quantize_for_dataset(model, tmp_path / "net.onnx", data, count=100, class_names=data.class_names)
    assert report.path.exists() and report.path.stat().st_size == report.int8_bytes
    assert report.float_bytes / report.int8_bytes > 2  # float32 weights -> int8, plus scales and metadata
    assert report.float_accuracy > 0.8
    assert abs(report.int8_accuracy - report.float_accuracy) <= 0.05
    assert report.test_images == 90 and report.calibration_images == 100
    quantized = onnx.load(str(report.path))
    ops = {n.op_type for n in quantized.graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops
    assert any(t.data_type == onnx.TensorProto.INT8 for t in quantized.graph.initializer)
    metadata = {p.key: p.value for p in quantized.metadata_props}
    assert json.loads(metadata["class_names"]) == data.class_names and "int8" in metadata["quantization"]
    # It takes the engine's (N, H, W, C) normalized images, like the float export.
    session = ort.InferenceSession(str(report.path), providers=["CPUExecutionProvider"])
    x = data.normalized("test")[:10]
    probabilities = session.run(None, {"input": x})[0]
    assert probabilities.shape == (10, 3)
    assert (probabilities.argmax(axis=1) == model.predict(x).argmax(axis=1)).mean() >= 0.8


def test_cli_reports_size_and_accuracy_of_both_models(tmp_path, trained, capsys):
    model, data = trained
    weights = save_weights(model, tmp_path / "w.npz")
    np.savez(tmp_path / "stripes.npz", x=data.x_train, y=data.y_train, x_test=data.x_test, y_test=data.y_test)
    out = tmp_path / "small.onnx"
    assert main(["export", str(weights), "--out", str(out), "--quantize", "int8", "--data",
                 str(tmp_path / "stripes.npz"), "--calibration-images", "64"]) == 0
    printed = capsys.readouterr().out
    assert f"wrote {out}" in printed
    assert "float32 model:" in printed and "int8 model:" in printed and "smaller" in printed
    assert "test accuracy" in printed and "90 test images" in printed and "64 training images" in printed
    assert out.exists()


def test_cli_refuses_quantizing_without_data_or_to_another_format(tmp_path, trained, capsys):
    model, _ = trained
    weights = save_weights(model, tmp_path / "w.npz")
    assert main(["export", str(weights), "--out", str(tmp_path / "a.onnx"), "--quantize", "int8"]) == 2
    assert "needs --data" in capsys.readouterr().err
    assert main(["export", str(weights), "--out", str(tmp_path / "a.npz"), "--quantize", "int8", "--data",
                 "x"]) == 2
    assert "end --out in .onnx" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == [weights]
