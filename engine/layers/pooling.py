"""Pooling layers over (N, H, W, C) batches."""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from engine.kernels.im2col import conv_pads
from engine.kernels.pooling import pool_backward, pool_forward
from engine.layers.base import ConfigError, Field, Layer, Shape, require_rank
from engine.shapes import output_size


class _Pool2D(Layer):
    category = "Pooling"
    mode: ClassVar[str] = ""
    fields = (
        Field("pool_size", "size", 2, "Height and width of each pooling window.", minimum=1, maximum=16),
        Field("stride", "int", None, "Step between windows (empty = pool_size).", minimum=1, maximum=16,
              optional=True),
        Field("padding", "padding", "valid", "'valid' (none), 'same' or pixels per side."),
    )

    def __init__(self, **config: Any) -> None:
        super().__init__(**config)
        p = self.config["padding"]
        if isinstance(p, int) and p * 2 > self.config["pool_size"]:
            raise ConfigError(
                f"padding {p} is more than half of pool_size {self.config['pool_size']}",
                field="padding",
                value=p,
                hint="A window would then hold nothing but padding. Use a smaller padding.",
            )

    @property
    def stride(self) -> int:
        return self.config["stride"] or self.config["pool_size"]

    def output_shape(self, input_shape: Shape) -> Shape:
        require_rank(self, input_shape, 3, "feature maps (height x width x channels)")
        h, w, c = input_shape
        k, s = self.config["pool_size"], self.stride
        top, bottom, left, right = conv_pads(h, w, k, k, s, self.config["padding"])
        ho, wo = output_size(h, k, s, top, bottom), output_size(w, k, s, left, right)
        if ho < 1 or wo < 1:
            axis, size, out = ("height", h, ho) if ho < 1 else ("width", w, wo)
            raise ConfigError(
                f"pool_size {k} is larger than its {h}x{w} input",
                field="pool_size",
                value=k,
                hint=f"output {axis} ({size} + {top + bottom if axis == 'height' else left + right} - {k}) "
                f"/ {s} + 1 = {out}; the window is larger than its {h}x{w} input. Use a smaller "
                "pool_size, padding 'same', or remove this pooling layer.",
                fix="padding_same",
            )
        return ho, wo, c

    def macs(self, input_shape: Shape) -> int:
        return 0

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        out, self._cache = pool_forward(
            x, self.config["pool_size"], self.stride, self.config["padding"], self.mode, training,
            count_include_pad=self.config.get("count_include_pad", True),
        )
        return out

    def backward(self, grad: np.ndarray) -> np.ndarray:
        return pool_backward(grad, self._cache, self.config["pool_size"], self.stride, self.mode)


class MaxPool2D(_Pool2D):
    type_name = "MaxPool2D"
    mode = "max"
    description = (
        "Keeps the largest value of each window, shrinking the feature maps while keeping the "
        "strongest responses."
    )


class AvgPool2D(_Pool2D):
    type_name = "AvgPool2D"
    mode = "avg"
    description = (
        "Replaces each window by its average, shrinking the feature maps. Padded pixels count as zeros "
        "in the average unless count_include_pad is off."
    )
    fields = (
        *_Pool2D.fields,
        Field("count_include_pad", "bool", True,
              "Divide by the whole window, padded zeros included (PyTorch's default); off divides by the "
              "real pixels only (Keras, TensorFlow)."),
    )


class GlobalAvgPool2D(Layer):
    type_name = "GlobalAvgPool2D"
    category = "Pooling"
    description = "Averages each feature map to a single number: (H, W, C) becomes a vector of C values."

    def output_shape(self, input_shape: Shape) -> Shape:
        require_rank(self, input_shape, 3, "feature maps (height x width x channels)")
        return (input_shape[2],)

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        self._cache = x.shape
        n, h, w, c = x.shape
        # Each image's pixels times a row of 1 / (H W): one short product per image, where numpy's
        # mean over the two middle axes ran ten times slower for few channels.
        weights = np.full((1, h * w), 1 / (h * w), x.dtype)
        return np.matmul(weights, np.ascontiguousarray(x).reshape(n, h * w, c))[:, 0]

    def backward(self, grad: np.ndarray) -> np.ndarray:
        n, h, w, c = self._cache
        return np.broadcast_to((grad / (h * w))[:, None, None, :], self._cache).copy()
