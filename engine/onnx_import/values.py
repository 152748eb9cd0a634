"""What the importer knows about each ONNX tensor that carries data: which engine layer makes it,
and how ONNX's view of it (channels first) maps onto the engine's (channels last)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


class Unsupported(Exception):
    """A node the engine has no equivalent for; the message says why, in a few words."""


@dataclass(frozen=True)
class Value:
    """A tensor flowing through the network, per sample (the batch axis left out).

    ``layout`` is how ONNX sees a feature map the engine holds as (H, W, C): "nchw" (ONNX has it as
    (C, H, W), PyTorch's way) or "nhwc" (ONNX has it as (H, W, C) too, as a Keras model's input is
    and as tf2onnx transposes back before a Flatten); "vector" for (F,) features. ``onnx_shape`` is
    the ONNX shape: a pooled vector may still be (C, 1, 1) there. ``order`` (vectors only): engine
    feature j is ONNX feature order[j]; None when they agree. A feature map flattened channels first
    in ONNX is flattened (H, W, C) by the engine, so its features come in another order.
    """

    layer: str
    shape: tuple[int, ...]
    layout: str
    onnx_shape: tuple[int, ...]
    order: np.ndarray | None = None

    @property
    def is_map(self) -> bool:
        return self.layout in ("nchw", "nhwc")

    @property
    def size(self) -> int:
        return int(np.prod(self.shape))

    def describe(self) -> str:
        return "x".join(map(str, self.onnx_shape)) or "scalar"


def chw_order(shape: tuple[int, ...]) -> np.ndarray | None:
    """For an engine (H, W, C) map flattened: engine feature j is feature order[j] of the (C, H, W)
    flattening; None when the two agree (H = W = 1)."""
    h, w, c = shape
    if h * w == 1 or c == 1:
        return None
    return np.arange(h * w * c).reshape(c, h, w).transpose(1, 2, 0).ravel()


def same_order(a: np.ndarray | None, b: np.ndarray | None) -> bool:
    if a is None or b is None:
        return a is None and b is None
    return a.shape == b.shape and bool(np.array_equal(a, b))


def reorder(per_feature: np.ndarray, order: np.ndarray | None) -> np.ndarray:
    """Rows (first axis) of an ONNX per-feature array in the engine's feature order."""
    return per_feature if order is None else per_feature[order]
