"""Element-wise activations and softmax. Each caches the one array its backward needs."""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from engine.kernels.activation import relu_backward, relu_forward
from engine.layers.base import Field, Layer


class Activation(Layer):
    category: ClassVar[str] = "Activation"


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

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        positive = x > 0
        self._cache = positive
        return np.where(positive, x, x * x.dtype.type(self.config["alpha"]))

    def backward(self, grad: np.ndarray) -> np.ndarray:
        return np.where(self._cache, grad, grad * grad.dtype.type(self.config["alpha"]))


class ELU(Activation):
    type_name = "ELU"
    description = "Exponential linear unit: x for x > 0, alpha * (exp(x) - 1) below; smooth around zero."
    fields = (Field("alpha", "float", 1.0, "Value the output approaches for very negative inputs.", minimum=0.0),)

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        alpha = x.dtype.type(self.config["alpha"])
        negative = alpha * np.expm1(np.minimum(x, 0))
        out = np.where(x > 0, x, negative)
        self._cache = (x > 0, negative)
        return out

    def backward(self, grad: np.ndarray) -> np.ndarray:
        positive, negative = self._cache
        alpha = grad.dtype.type(self.config["alpha"])
        return np.where(positive, grad, grad * (negative + alpha))


class Sigmoid(Activation):
    type_name = "Sigmoid"
    description = "Squashes each value into (0, 1) with 1 / (1 + exp(-x))."

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        # 0.5 * (1 + tanh(x / 2)) is the logistic function without overflow for large |x|.
        out = 0.5 * (1 + np.tanh(0.5 * x))
        self._cache = out
        return out

    def backward(self, grad: np.ndarray) -> np.ndarray:
        return grad * self._cache * (1 - self._cache)


class Tanh(Activation):
    type_name = "Tanh"
    description = "Hyperbolic tangent: squashes each value into (-1, 1), centred on zero."

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        out = np.tanh(x)
        self._cache = out
        return out

    def backward(self, grad: np.ndarray) -> np.ndarray:
        return grad * (1 - self._cache * self._cache)


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
