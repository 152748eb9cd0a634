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

    ReLU, the common case, is fused: the subclass applies it inside its own kernel (in place, on
    data still in cache) and masks the gradient itself in backward, so it costs no extra pass.
    ``forward(..., logits=True)`` skips the activation: the model uses it to feed raw scores to
    the fused softmax cross-entropy loss.
    """

    def __init__(self, **config: Any) -> None:
        super().__init__(**config)
        name = self.config.get("activation")
        self.activation = ACTIVATION_LAYERS[name]() if name else None
        self._activated = False
        self._fused_relu = False

    def forward(self, x: np.ndarray, training: bool = False, *, logits: bool = False) -> np.ndarray:
        self._activated = self.activation is not None and not logits
        self._fused_relu = self._activated and isinstance(self.activation, ReLU)
        z = self.linear_forward(x, training, relu=self._fused_relu)
        if self._activated and not self._fused_relu:
            if self.activation.works_in_place:  # z is this layer's own new array: no second one
                return self.activation.forward(z, training, in_place=True)
            return self.activation.forward(z, training)
        return z

    def backward(self, grad: np.ndarray) -> np.ndarray:
        if self._activated and not self._fused_relu:
            grad = self.activation.backward(grad)
        return self.linear_backward(grad, relu=self._fused_relu)

    def linear_forward(self, x: np.ndarray, training: bool, relu: bool) -> np.ndarray:
        """The linear part; with ``relu`` also max(., 0), keeping what backward needs to mask."""
        raise NotImplementedError

    def linear_backward(self, grad: np.ndarray, relu: bool) -> np.ndarray:
        """Backward of linear_forward; with ``relu`` grad is first zeroed where the output was 0."""
        raise NotImplementedError
