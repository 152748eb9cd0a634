"""Small synthetic datasets and architectures for engine tests."""

from __future__ import annotations

import numpy as np

from engine.architecture import FORMAT
from engine.data import Dataset


def arch(*layers, shape=(12, 12, 1)) -> dict:
    return {"format": FORMAT, "input": {"shape": list(shape)}, "layers": list(layers)}


def stripes_dataset(n_train: int = 256, n_test: int = 64, size: int = 12, seed: int = 0) -> Dataset:
    """Three easy classes of uint8 images: horizontal stripes, vertical stripes, a bright centre blob."""
    rng = np.random.default_rng(seed)

    def make(n: int) -> tuple[np.ndarray, np.ndarray]:
        y = rng.integers(0, 3, n)
        yy, xx = np.mgrid[0:size, 0:size]
        pattern = np.stack([(yy // 2) % 2, (xx // 2) % 2,
                            ((yy - size / 2) ** 2 + (xx - size / 2) ** 2 < (size / 4) ** 2)]).astype(np.float64)
        x = pattern[y] * 200 + rng.normal(0, 30, (n, size, size))
        return np.clip(x, 0, 255).astype(np.uint8)[..., None], y

    x_train, y_train = make(n_train)
    x_test, y_test = make(n_test)
    return Dataset.from_arrays(x_train, y_train, x_test, y_test, ["horizontal", "vertical", "blob"], name="stripes")


SMALL_CNN = arch(
    {"type": "Conv2D", "filters": 4, "kernel_size": 3, "activation": "relu"},
    {"type": "MaxPool2D", "pool_size": 2},
    {"type": "Flatten"},
    {"type": "Dense", "units": 3, "activation": "softmax"},
)

EVERY_LAYER = arch(
    {"type": "Conv2D", "filters": 4, "kernel_size": 3, "padding": "same", "stride": 2},
    {"type": "BatchNorm"},
    {"type": "LeakyReLU", "alpha": 0.1},
    {"type": "Conv2D", "filters": 6, "kernel_size": 2, "padding": 1, "activation": "elu"},
    {"type": "AvgPool2D", "pool_size": 2, "padding": "same"},
    {"type": "MaxPool2D", "pool_size": 2, "stride": 1},
    {"type": "Conv2D", "filters": 5, "kernel_size": 1, "activation": "tanh"},
    {"type": "GlobalAvgPool2D"},
    {"type": "Flatten"},
    {"type": "Dense", "units": 8},
    {"type": "BatchNorm"},
    {"type": "ReLU"},
    {"type": "Dropout", "rate": 0.2},
    {"type": "Dense", "units": 6, "activation": "sigmoid"},
    {"type": "ELU"},
    {"type": "Tanh"},
    {"type": "Sigmoid"},
    {"type": "Dense", "units": 3},
    {"type": "Softmax"},
    shape=(11, 13, 3),
)


def layer_by_layer(model, x, grad, training: bool = True):
    """Forward and backward through the model's layers one at a time, without any fusion; ``grad``
    maps the logits to their gradient. Returns (logits, d_input, copies of the gradients)."""
    model.layers[0].needs_input_grad = True
    h = x
    for layer in model.layers[:-1]:
        h = layer.forward(h, training)
    logits = model.layers[-1].forward(h, training, logits=True)
    g = grad(logits)
    for layer in reversed(model.layers):
        g = layer.backward(g)
    model.layers[0].needs_input_grad = False
    return logits, g, {k: v.copy() for k, v in model.gradients().items()}


# Branching networks (format 2). RESIDUAL: two residual blocks, the second with a strided 1x1
# projection shortcut; CONCAT: the input feeds two layers, the stem feeds three branches joined by
# a Concatenate (and an Add with a skip), vectors are concatenated too.
RESIDUAL = arch(
    {"id": "stem", "type": "Conv2D", "filters": 4, "kernel_size": 3, "padding": "same", "activation": "relu"},
    {"id": "a1", "type": "Conv2D", "filters": 4, "kernel_size": 3, "padding": "same", "use_bias": False},
    {"id": "bn1", "type": "BatchNorm"},
    {"id": "r1", "type": "ReLU"},
    {"id": "a2", "type": "Conv2D", "filters": 4, "kernel_size": 3, "padding": "same"},
    {"id": "add1", "type": "Add", "inputs": ["a2", "stem"]},
    {"id": "r2", "type": "ReLU"},
    {"id": "b1", "type": "Conv2D", "filters": 6, "kernel_size": 3, "stride": 2, "padding": "same",
     "activation": "relu"},
    {"id": "b2", "type": "Conv2D", "filters": 6, "kernel_size": 3, "padding": "same"},
    {"id": "proj", "type": "Conv2D", "filters": 6, "kernel_size": 1, "stride": 2, "inputs": ["r2"]},
    {"id": "add2", "type": "Add", "inputs": ["b2", "proj"]},
    {"id": "r3", "type": "ReLU"},
    {"id": "gap", "type": "GlobalAvgPool2D"},
    {"id": "out", "type": "Dense", "units": 3, "activation": "softmax"},
    shape=(8, 8, 3),
)

# RESNET_BN: residual blocks as in ResNet: Conv -> BatchNorm -> ReLU -> Conv -> BatchNorm (no ReLU)
# -> Add -> ReLU, the second with a batch-normalised strided projection shortcut.
RESNET_BN = arch(
    {"id": "stem", "type": "Conv2D", "filters": 4, "kernel_size": 3, "padding": "same", "activation": "relu"},
    {"id": "a1", "type": "Conv2D", "filters": 4, "kernel_size": 3, "padding": "same", "use_bias": False},
    {"id": "an1", "type": "BatchNorm"},
    {"id": "ar", "type": "ReLU"},
    {"id": "a2", "type": "Conv2D", "filters": 4, "kernel_size": 3, "padding": "same", "use_bias": False},
    {"id": "an2", "type": "BatchNorm"},
    {"id": "add1", "type": "Add", "inputs": ["an2", "stem"]},
    {"id": "r1", "type": "ReLU"},
    {"id": "b1", "type": "Conv2D", "filters": 6, "kernel_size": 3, "stride": 2, "padding": "same"},
    {"id": "bn1", "type": "BatchNorm"},
    {"id": "br", "type": "ReLU"},
    {"id": "b2", "type": "Conv2D", "filters": 6, "kernel_size": 3, "padding": "same"},
    {"id": "bn2", "type": "BatchNorm"},
    {"id": "proj", "type": "Conv2D", "filters": 6, "kernel_size": 1, "stride": 2, "inputs": ["r1"]},
    {"id": "pn", "type": "BatchNorm"},
    {"id": "add2", "type": "Add", "inputs": ["bn2", "pn"]},
    {"id": "r2", "type": "ReLU"},
    {"id": "gap", "type": "GlobalAvgPool2D"},
    {"id": "out", "type": "Dense", "units": 3, "activation": "softmax"},
    shape=(8, 8, 3),
)

CONCAT = arch(
    {"id": "stem", "type": "Conv2D", "filters": 4, "kernel_size": 3, "padding": "same", "activation": "relu"},
    {"id": "b1", "type": "Conv2D", "filters": 3, "kernel_size": 1, "inputs": ["stem"]},
    {"id": "b2", "type": "Conv2D", "filters": 3, "kernel_size": 3, "padding": "same", "activation": "tanh",
     "inputs": ["stem"]},
    {"id": "b3", "type": "MaxPool2D", "pool_size": 3, "stride": 1, "padding": "same", "inputs": ["stem"]},
    {"id": "cat", "type": "Concatenate", "inputs": ["b1", "b2", "b3"]},
    {"id": "skip", "type": "Conv2D", "filters": 10, "kernel_size": 1, "inputs": ["input"]},
    {"id": "sum", "type": "Add", "inputs": ["cat", "skip"]},
    {"id": "pool", "type": "MaxPool2D", "pool_size": 2},
    {"id": "flat", "type": "Flatten"},
    {"id": "da", "type": "Dense", "units": 5, "activation": "elu", "inputs": ["flat"]},
    {"id": "db", "type": "Dense", "units": 4, "inputs": ["flat"]},
    {"id": "vcat", "type": "Concatenate", "inputs": ["da", "db", "da"]},
    {"id": "head", "type": "Dense", "units": 3},
    {"id": "probs", "type": "Softmax"},
    shape=(9, 9, 2),
)
