"""Element-wise activations and softmax. Each caches the one array its backward needs."""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from engine.kernels.activation import (
    elu_backward,
    elu_forward,
    leaky_relu_backward,
    leaky_relu_forward,
    relu_backward,
    relu_forward,
    sigmoid_backward,
    sigmoid_forward,
    tanh_backward,
    tanh_forward,
)
from engine.layers.base import Field, Layer


class Activation(Layer):
    category: ClassVar[str] = "Activation"
    # Whether forward takes in_place=True: it may then overwrite x (an array the caller made for
    # it, e.g. a convolution's output), since backward needs only the output.
    works_in_place: ClassVar[bool] = False


class ReLU(Activation):
    type_name = "ReLU"
    description = "Rectified linear unit: keeps positive values and sets negatives to zero, max(0, x)."

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        # Training records the mask (a quarter of the bytes of the output) while the data is in
        # cache; after inference, a backward (saliency) derives it from the output.
        mask = np.empty(x.shape, bool) if training else None
        out = relu_forward(x, mask)
        self._cache = out if mask is None else mask
        return out

    def backward(self, grad: np.ndarray) -> np.ndarray:
        return relu_backward(grad, self._cache)


class LeakyReLU(Activation):
    type_name = "LeakyReLU"
    description = "Like ReLU, but negative values are scaled by a small slope alpha instead of zeroed."
    fields = (Field("alpha", "float", 0.01, "Slope for negative inputs.", minimum=0.0, maximum=1.0),)

    works_in_place = True

    def forward(self, x: np.ndarray, training: bool = False, in_place: bool = False) -> np.ndarray:
        out = leaky_relu_forward(x, self.config["alpha"], x if in_place else None)
        self._cache = out  # out > 0 exactly where x > 0
        return out

    def backward(self, grad: np.ndarray) -> np.ndarray:
        return leaky_relu_backward(grad, self._cache, self.config["alpha"])


class ELU(Activation):
    type_name = "ELU"
    description = "Exponential linear unit: x for x > 0, alpha * (exp(x) - 1) below; smooth around zero."
    fields = (Field("alpha", "float", 1.0, "Value the output approaches for very negative inputs.", minimum=0.0),)

    works_in_place = True

    def forward(self, x: np.ndarray, training: bool = False, in_place: bool = False) -> np.ndarray:
        out = elu_forward(x, self.config["alpha"], x if in_place else None)
        self._cache = out  # out > 0 exactly where x > 0
        return out

    def backward(self, grad: np.ndarray) -> np.ndarray:
        return elu_backward(grad, self._cache, self.config["alpha"])


class Sigmoid(Activation):
    type_name = "Sigmoid"
    description = "Squashes each value into (0, 1) with 1 / (1 + exp(-x))."

    works_in_place = True

    def forward(self, x: np.ndarray, training: bool = False, in_place: bool = False) -> np.ndarray:
        out = sigmoid_forward(x, x if in_place else None)
        self._cache = out
        return out

    def backward(self, grad: np.ndarray) -> np.ndarray:
        return sigmoid_backward(grad, self._cache)


class Tanh(Activation):
    type_name = "Tanh"
    description = "Hyperbolic tangent: squashes each value into (-1, 1), centred on zero."

    works_in_place = True

    def forward(self, x: np.ndarray, training: bool = False, in_place: bool = False) -> np.ndarray:
        out = tanh_forward(x, x if in_place else None)
        self._cache = out
        return out

    def backward(self, grad: np.ndarray) -> np.ndarray:
        return tanh_backward(grad, self._cache)


def softmax(x: np.ndarray) -> np.ndarray:
    """Softmax over the last axis, shifted by the maximum so exp never overflows."""
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


class Softmax(Activation):
    type_name = "Softmax"
    description = (
        "Turns scores into class probabilities that are positive and sum to 1. "
        "Used as the output of a classifier."
    )

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        out = softmax(x)
        self._cache = out
        return out

    def backward(self, grad: np.ndarray) -> np.ndarray:
        p = self._cache
        return p * (grad - (grad * p).sum(axis=-1, keepdims=True))


ACTIVATION_LAYERS: dict[str, type[Activation]] = {
    "relu": ReLU,
    "leaky_relu": LeakyReLU,
    "elu": ELU,
    "sigmoid": Sigmoid,
    "tanh": Tanh,
    "softmax": Softmax,
}
