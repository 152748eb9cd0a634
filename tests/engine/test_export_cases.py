"""Architectures every export format is checked on, and the checks that they cover what they claim.

Together they hold every engine layer type, grayscale and RGB inputs, odd sizes (15x13, 17x11, 9x9),
branching networks (a residual network with a strided projection shortcut and an Add of three inputs,
an Inception-style block with fan-out of the input into four branches, an unused branch, Add and
Concatenate of vectors), average pooling that does not count padding,
stride 2, 'same' padding with an odd pixel, integer padding, batch norm after a conv and after a
dense layer (with a non-default epsilon), fused activations, a softmax head, a network without one,
and a network that ends in feature maps.
"""

from __future__ import annotations

import numpy as np

from engine.architecture import FORMAT
from engine.data import Dataset, Normalization
from engine.layers import LAYER_TYPES
from engine.model import Model
from engine.resources import asset_path
from engine.training import TrainConfig, Trainer


def _arch(shape: tuple[int, int, int], *layers: dict) -> dict:
    return {"format": FORMAT, "input": {"shape": list(shape)}, "layers": list(layers)}


ARCHITECTURES: dict[str, dict] = {
    "gray_odd_every_kind": _arch(
        (15, 13, 1),
        {"type": "Conv2D", "filters": 4, "kernel_size": 3, "stride": 2, "padding": "same", "activation": "relu"},
        {"type": "BatchNorm", "epsilon": 1e-3},
        {"type": "LeakyReLU", "alpha": 0.1},
        {"type": "MaxPool2D", "pool_size": 3, "stride": 2, "padding": "same"},
        {"type": "Conv2D", "filters": 6, "kernel_size": 2, "padding": 1, "activation": "elu", "use_bias": False},
        {"type": "AvgPool2D", "pool_size": 2, "stride": 1, "padding": "same"},
        {"type": "ELU", "alpha": 0.7},
        {"type": "Dropout", "rate": 0.3},
        {"type": "Flatten"},
        {"type": "Dense", "units": 10, "activation": "tanh"},
        {"type": "BatchNorm", "momentum": 0.8},
        {"type": "Sigmoid"},
        {"type": "Dense", "units": 5},
        {"type": "Softmax"},
    ),
    "rgb_global_pool": _arch(
        (17, 11, 3),
        {"type": "Conv2D", "filters": 8, "kernel_size": 5, "padding": "same", "activation": "leaky_relu",
         "name": "stem conv"},
        {"type": "AvgPool2D", "pool_size": 3, "stride": 2, "padding": 1},
        {"type": "Conv2D", "filters": 8, "kernel_size": 3, "stride": 2, "activation": "sigmoid"},
        {"type": "MaxPool2D", "pool_size": 2},
        {"type": "Tanh"},
        {"type": "ReLU"},
        {"type": "GlobalAvgPool2D"},
        {"type": "Dense", "units": 4, "activation": "softmax"},
    ),
    "feature_map_output": _arch(
        (9, 9, 2),
        {"type": "Conv2D", "filters": 3, "kernel_size": 4, "padding": "same", "activation": "tanh"},
        {"type": "Softmax"},
        {"type": "MaxPool2D", "pool_size": 2, "stride": 2, "padding": "same"},
    ),
    "residual": _arch(
        (12, 10, 3),
        {"id": "stem", "type": "Conv2D", "filters": 6, "kernel_size": 3, "padding": "same", "activation": "relu"},
        {"id": "down", "type": "Conv2D", "filters": 8, "kernel_size": 3, "stride": 2, "padding": "same",
         "use_bias": False},
        {"type": "BatchNorm"},
        {"type": "ReLU"},
        {"id": "main", "type": "Conv2D", "filters": 8, "kernel_size": 3, "padding": "same"},
        {"id": "shortcut", "type": "Conv2D", "filters": 8, "kernel_size": 1, "stride": 2, "inputs": ["stem"]},
        {"id": "sum", "type": "Add", "inputs": ["main", "shortcut"]},
        {"type": "ReLU"},
        {"id": "block2", "type": "Conv2D", "filters": 8, "kernel_size": 3, "padding": "same", "activation": "relu"},
        {"type": "Add", "inputs": ["block2", "relu_2", "relu_2"]},
        {"type": "GlobalAvgPool2D"},
        {"type": "Dense", "units": 4, "activation": "softmax"},
    ),
    "inception_fan_out": _arch(
        (9, 9, 2),
        {"id": "b1", "type": "Conv2D", "filters": 3, "kernel_size": 1, "activation": "relu"},
        {"id": "b2a", "type": "Conv2D", "filters": 2, "kernel_size": 1, "activation": "relu", "inputs": ["input"]},
        {"id": "b2", "type": "Conv2D", "filters": 3, "kernel_size": 3, "padding": "same", "activation": "relu"},
        {"id": "b3a", "type": "MaxPool2D", "pool_size": 3, "stride": 1, "padding": "same", "inputs": ["input"]},
        {"id": "b3", "type": "Conv2D", "filters": 2, "kernel_size": 1},
        {"id": "b4", "type": "AvgPool2D", "pool_size": 3, "stride": 1, "padding": 1, "count_include_pad": False,
         "inputs": ["input"]},
        {"id": "unused", "type": "Conv2D", "filters": 2, "kernel_size": 3, "inputs": ["b2a"]},
        {"id": "mixed", "type": "Concatenate", "inputs": ["b1", "b2", "b3", "b4"]},
        {"type": "MaxPool2D", "pool_size": 2, "padding": "same"},
        {"id": "flat", "type": "Flatten"},
        {"id": "va", "type": "Dense", "units": 6, "activation": "tanh"},
        {"id": "vb", "type": "Dense", "units": 6, "inputs": ["flat"]},
        {"id": "vsum", "type": "Add", "inputs": ["va", "vb"]},
        {"id": "vcat", "type": "Concatenate", "inputs": ["vsum", "vb"]},
        {"type": "Dense", "units": 3},
        {"type": "Softmax"},
    ),
    "dense_no_softmax": _arch(
        (6, 5, 3),
        {"type": "Flatten"},
        {"type": "Dense", "units": 7, "activation": "elu"},
        {"type": "BatchNorm"},
        {"type": "Dense", "units": 3, "use_bias": False},
    ),
}
SEED_SAMPLE = asset_path("architectures", "seed_sample.json")


def randomized_model(name: str, seed: int = 1) -> Model:
    """The named test architecture with every tensor (batch-norm running statistics too) made non-trivial."""
    model = Model.from_architecture(ARCHITECTURES[name], seed=seed)
    rng = np.random.default_rng(seed)
    for key, value in model.tensors().items():
        if key.endswith((".moving_variance", ".gamma")):
            value[...] = rng.uniform(0.5, 2.0, value.shape)
        elif key.endswith(".kernel"):
            value *= rng.uniform(0.8, 1.3)
        else:
            value[...] = rng.normal(0.0, 0.3, value.shape)
    return model


def raw_batch(model: Model, n: int = 12, seed: int = 0) -> np.ndarray:
    """Random uint8 pixels (n, H, W, C) for ``model``'s input."""
    return np.random.default_rng(seed).integers(0, 256, (n, *model.input_shape), dtype=np.uint8)


def normalized(model: Model, raw: np.ndarray) -> np.ndarray:
    return Normalization.from_dict(model.preprocessing).apply(raw)


def trained_model(name: str, steps: int = 6) -> Model:
    """The architecture after a few real training batches: batch-norm statistics come from data."""
    model = Model.from_architecture(ARCHITECTURES[name], seed=3)
    rng = np.random.default_rng(3)
    classes = model.output_shape[-1]
    x = rng.integers(0, 256, (steps * 8, *model.input_shape), dtype=np.uint8)
    y = rng.integers(0, classes, len(x))
    dataset = Dataset.from_arrays(x, y, x[:8], y[:8], [f"c{i}" for i in range(classes)], name="tiny")
    config = TrainConfig(epochs=1, batch_size=8, optimizer="adam", learning_rate=0.01, validation_split=0.0)
    Trainer(model, dataset, config).fit()
    return model


def test_cases_cover_every_layer_type() -> None:
    used = {layer["type"] for doc in ARCHITECTURES.values() for layer in doc["layers"]}
    assert used == set(LAYER_TYPES)


def test_cases_cover_the_tricky_configurations() -> None:
    docs = list(ARCHITECTURES.values())
    channels = {doc["input"]["shape"][2] for doc in docs}
    assert {1, 3} <= channels
    assert any(doc["input"]["shape"][0] % 2 and doc["input"]["shape"][0] != doc["input"]["shape"][1] for doc in docs)
    layers = [layer for doc in docs for layer in doc["layers"]]
    assert any(layer.get("stride") == 2 for layer in layers)
    assert any(layer.get("padding") == "same" for layer in layers)
    assert any(isinstance(layer.get("padding"), int) for layer in layers)
    after = {(doc["layers"][i - 1]["type"], layer["type"]) for doc in docs for i, layer in enumerate(doc["layers"])}
    assert ("Conv2D", "BatchNorm") in after and ("Dense", "BatchNorm") in after


def test_same_padding_cases_really_have_an_odd_pixel() -> None:
    from engine.export.plan import build_plan

    steps = build_plan(randomized_model("gray_odd_every_kind"))
    asymmetric = [s for s in steps if s.pads[0] != s.pads[1] or s.pads[2] != s.pads[3]]
    assert asymmetric, "no layer exercises the engine's after-side odd pixel"


def test_trained_model_has_data_driven_running_statistics() -> None:
    model = trained_model("gray_odd_every_kind")
    state = model.state()
    assert not np.allclose(state["batch_norm_1.moving_mean"], 0)
    assert not np.allclose(state["batch_norm_2.moving_variance"], 1)
