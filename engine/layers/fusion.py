"""Layer pairs that Model runs as one kernel: a ReLU followed by non-overlapping max pooling.

Max pooling and ReLU commute, so pooling the raw values and rectifying the (pool*pool times
fewer) pooled values gives exactly the two layers' output. Conv2D(activation="relu") followed by
such a MaxPool2D runs convolution, pooling and ReLU block by block, so the full-size convolution
output (the largest array of a typical network) never reaches memory, in forward or backward; a
ReLU layer followed by one pools the ReLU's input directly. The layers keep their own settings,
parameters and gradients; ``Model.layer_outputs`` still runs them one by one, since there each
layer's own output is wanted.
"""

from __future__ import annotations

import numpy as np

from engine.kernels.conv import conv2d_maxpool_backward, conv2d_maxpool_forward
from engine.kernels.pooling import pool_backward, pool_forward
from engine.layers.activations import ReLU
from engine.layers.base import Layer
from engine.layers.conv import Conv2D
from engine.layers.pooling import MaxPool2D


def is_tiled_max_pool(layer: Layer) -> bool:
    """MaxPool2D whose windows do not overlap and need no padding."""
    return (isinstance(layer, MaxPool2D) and layer.stride == layer.config["pool_size"]
            and layer.config["padding"] in ("valid", 0))


class ConvMaxPool:
    """Conv2D with a ReLU activation, then a tiled MaxPool2D."""

    def __init__(self, conv: Conv2D, pool: MaxPool2D) -> None:
        self.conv, self.pool = conv, pool
        self._cache: tuple | None = None

    @staticmethod
    def fits(first: Layer, second: Layer) -> bool:
        return (isinstance(first, Conv2D) and first.config["activation"] == "relu"
                and is_tiled_max_pool(second))

    def _forward(self, x: np.ndarray, keep_winners: bool) -> tuple[np.ndarray, np.ndarray | None]:
        conv = self.conv
        return conv2d_maxpool_forward(
            x, conv.params["kernel"], conv.params.get("bias"), conv.config["stride"], conv.config["padding"],
            self.pool.config["pool_size"], conv.workspace, keep_winners,
        )

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        out, winners = self._forward(x, keep_winners=training)
        self._cache = (x, out, winners)
        return out

    def backward(self, grad: np.ndarray) -> np.ndarray | None:
        x, out, winners = self._cache
        if winners is None:  # backward after an inference forward (saliency)
            winners = self._forward(x, keep_winners=True)[1]
        conv = self.conv
        d_x, d_kernel, d_bias = conv2d_maxpool_backward(
            grad, out, winners, x, conv.params["kernel"], "bias" in conv.params, conv.config["stride"],
            conv.config["padding"], self.pool.config["pool_size"], conv.needs_input_grad, conv.workspace,
        )
        conv.grads["kernel"][...] = d_kernel
        if d_bias is not None:
            conv.grads["bias"][...] = d_bias
        return d_x


class ReluMaxPool:
    """A ReLU layer, then a tiled MaxPool2D: pooling of the ReLU's input, rectified."""

    def __init__(self, relu: ReLU, pool: MaxPool2D) -> None:
        self.relu, self.pool = relu, pool
        self._cache: tuple | None = None

    @staticmethod
    def fits(first: Layer, second: Layer) -> bool:
        return isinstance(first, ReLU) and is_tiled_max_pool(second)

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        size = self.pool.config["pool_size"]
        out, self._cache = pool_forward(x, size, size, "valid", "max", training, relu=True)
        return out

    def backward(self, grad: np.ndarray) -> np.ndarray:
        size = self.pool.config["pool_size"]
        return pool_backward(grad, self._cache, size, size, "max")


FUSIONS = (ConvMaxPool, ReluMaxPool)


def fuse(layers: list[Layer]) -> list[Layer | ConvMaxPool | ReluMaxPool]:
    """The layers in order, each fusable neighbouring pair replaced by its fused step."""
    steps: list[Layer | ConvMaxPool | ReluMaxPool] = []
    i = 0
    while i < len(layers):
        pair = next((f for f in FUSIONS if i + 1 < len(layers) and f.fits(layers[i], layers[i + 1])), None)
        if pair is None:
            steps.append(layers[i])
            i += 1
        else:
            steps.append(pair(layers[i], layers[i + 1]))
            i += 2
    return steps
