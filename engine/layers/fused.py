"""Shared handling of the optional ``activation`` setting of Conv2D and Dense."""

from __future__ import annotations

from typing import Any

import numpy as np

from engine.layers.activations import ACTIVATION_LAYERS, ReLU
from engine.layers.base import ACTIVATIONS, Field, Layer

ACTIVATION_FIELD = Field(
    "activation",
    "choice",
    None,
    "Activation applied to the output (none = linear).",
    choices=(None, *ACTIVATIONS),
    optional=True,
)


class ActivatedLayer(Layer):
    """A layer computing ``activation(linear(x))``; subclasses write linear_forward/linear_backward.

    ``forward(..., logits=True)`` skips the activation: the model uses it to feed raw scores to
    the fused softmax cross-entropy loss.
    """

    def __init__(self, **config: Any) -> None:
        super().__init__(**config)
        name = self.config.get("activation")
        self.activation = ACTIVATION_LAYERS[name]() if name else None
        self._activated = False

    def forward(self, x: np.ndarray, training: bool = False, *, logits: bool = False) -> np.ndarray:
        z = self.linear_forward(x, training)
        self._activated = self.activation is not None and not logits
        if not self._activated:
            return z
        if isinstance(self.activation, ReLU):
            # z is a fresh array of this layer's own: rectify it in place, saving a full-size pass.
            return self.activation.forward_inplace(z)
        return self.activation.forward(z, training)

    def backward(self, grad: np.ndarray) -> np.ndarray:
        if self._activated:
            grad = self.activation.backward(grad)
        return self.linear_backward(grad)

    def linear_forward(self, x: np.ndarray, training: bool) -> np.ndarray:
        raise NotImplementedError

    def linear_backward(self, grad: np.ndarray) -> np.ndarray:
        raise NotImplementedError
