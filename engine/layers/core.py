"""Dense, Flatten and Dropout."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from engine.kernels.blocks import MIN_MACS, matmul
from engine.layers.activated import ACTIVATION_FIELD, ActivatedLayer
from engine.layers.base import Field, Layer, Shape, require_rank
from engine.layers.initializers import init_kernel
from engine.parallel import parallel_for


class Dense(ActivatedLayer):
    type_name = "Dense"
    category = "Core"
    description = (
        "Fully connected layer: every output is a weighted sum of all inputs plus a bias. "
        "The last Dense layer of a classifier has one unit per class."
    )
    fields = (
        Field("units", "int", 128, "Number of outputs.", minimum=1, maximum=65536),
        Field("use_bias", "bool", True, "Add a learnable bias per unit."),
        ACTIVATION_FIELD,
    )

    def output_shape(self, input_shape: Shape) -> Shape:
        require_rank(self, input_shape, 1, "vectors")
        return (self.config["units"],)

    def param_shapes(self, input_shape: Shape) -> dict[str, Shape]:
        shapes = {"kernel": (input_shape[0], self.config["units"])}
        if self.config["use_bias"]:
            shapes["bias"] = (self.config["units"],)
        return shapes

    def macs(self, input_shape: Shape) -> int:
        return input_shape[0] * self.config["units"]

    def init_param(self, name: str, shape: Shape, rng: np.random.Generator) -> np.ndarray:
        if name == "bias":
            return np.zeros(shape, np.float32)
        return init_kernel(shape, shape[0], shape[1], self.config["activation"], rng)

    def linear_forward(self, x: np.ndarray, training: bool, relu: bool) -> np.ndarray:
        out = matmul(x, self.params["kernel"])
        if "bias" in self.params:
            out += self.params["bias"]
        if relu:
            np.maximum(out, 0, out=out)
        self._cache = (x, out)
        return out

    def linear_backward(self, grad: np.ndarray, relu: bool) -> np.ndarray:
        x, out = self._cache
        if relu:
            grad = grad * (out > 0)
        kernel = self.params["kernel"]
        d_x = np.empty(x.shape, grad.dtype) if self.needs_input_grad else None

        def products(part: int, start: int, stop: int) -> None:
            # Product 0 is the kernel gradient, 1 the input gradient: two threads can take one each.
            if start == 0:
                matmul(x.T, grad, out=self.grads["kernel"])
                if "bias" in self.grads:
                    self.grads["bias"][...] = grad.sum(axis=0)
            if stop == 2:
                matmul(grad, kernel.T, out=d_x)

        # Each product alone is too small to split well (at batch 64), but the two can run side by side.
        parallel_for(1 if d_x is None else 2, products, min_items=1 if x.size * kernel.shape[1] >= MIN_MACS else 2)
        return d_x


class Flatten(Layer):
    type_name = "Flatten"
    category = "Core"
    description = "Unrolls feature maps (H, W, C) into one vector of H*W*C values, e.g. before Dense layers."

    def output_shape(self, input_shape: Shape) -> Shape:
        return (math.prod(input_shape),)

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        self._cache = x.shape
        return x.reshape(x.shape[0], -1)

    def backward(self, grad: np.ndarray) -> np.ndarray:
        return grad.reshape(self._cache)


class Dropout(Layer):
    type_name = "Dropout"
    category = "Regularization"
    description = (
        "During training, zeroes a random fraction of values (and scales the rest up) so the network "
        "cannot rely on any single unit. Does nothing at inference."
    )
    fields = (Field("rate", "float", 0.5, "Fraction of values dropped during training.", minimum=0.0,
                    maximum=0.95),)

    def __init__(self, **config: Any) -> None:
        super().__init__(**config)
        self.rng = np.random.default_rng(0)

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        rate = self.config["rate"]
        if not training or rate == 0:
            self._cache = None
            return x
        keep = 1.0 - rate
        # Inverted dropout: scale at training time so inference needs no change.
        self._cache = (self.rng.random(x.shape, dtype=np.float32) < keep).astype(x.dtype) / x.dtype.type(keep)
        return x * self._cache

    def backward(self, grad: np.ndarray) -> np.ndarray:
        return grad if self._cache is None else grad * self._cache
