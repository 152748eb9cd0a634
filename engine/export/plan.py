"""A model described layer by layer with every static number an exporter needs.

The ONNX graph, the PyTorch code and the checks all read the same plan, so they agree on the
padding the engine resolves for 'same' (odd pixel after), on pooling strides, on which tensors
each layer owns and on which layers feed which. Shapes exclude the batch axis and are in the
engine's (H, W, C) order.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from engine.kernels.im2col import conv_pads
from engine.layers import Layer, Softmax
from engine.layers.activated import ActivatedLayer
from engine.model import Model

Pads = tuple[int, int, int, int]  # (top, bottom, left, right)


@dataclass(frozen=True)
class LayerStep:
    """One engine layer: its type, name, settings and the numbers its exporters need.

    ``pads`` is the explicit (top, bottom, left, right) padding for Conv2D and pooling layers
    (zeros elsewhere); ``stride`` is the resolved stride (a pooling layer's defaults to pool_size);
    ``activation`` is the fused activation of Conv2D/Dense or None; ``tensors`` maps each parameter
    name ("kernel", "bias", "gamma", ...) to its array in the engine's layout. ``inputs`` are the
    ids of the layers it takes ("input" for the network's input) and ``input_shapes`` their
    shapes (``input_shape`` is the first); ``live`` is False for a branch the output does not use.
    """

    index: int
    type: str
    name: str
    config: dict[str, Any]
    input_shape: tuple[int, ...]
    output_shape: tuple[int, ...]
    pads: Pads
    stride: int
    activation: str | None
    tensors: dict[str, np.ndarray]
    id: str = ""
    inputs: tuple[str, ...] = ()
    input_shapes: tuple[tuple[int, ...], ...] = ()
    live: bool = True

    @property
    def spatial(self) -> bool:
        """True when the layer receives feature maps (H, W, C) rather than a vector."""
        return len(self.input_shape) == 3


def build_plan(model: Model, weights: dict[str, np.ndarray] | None = None) -> list[LayerStep]:
    """One LayerStep per layer of ``model``; tensors come from ``weights`` (a snapshot) if given."""
    source = weights if weights is not None else model.tensors()
    live = set(model.live_layers)
    steps = []
    for i, (name, layer, info) in enumerate(zip(model.names, model.layers, model.analysis.layers)):
        tensors = {key: np.asarray(source[f"{name}.{key}"]) for key in (*layer.params, *layer.state)}
        steps.append(
            LayerStep(
                index=i,
                type=layer.type_name,
                name=name,
                config=dict(layer.config),
                input_shape=tuple(info.input_shape),
                output_shape=tuple(info.output_shape),
                pads=_pads(layer, tuple(info.input_shape)),
                stride=_stride(layer),
                activation=layer.config.get("activation") if isinstance(layer, ActivatedLayer) else None,
                tensors=tensors,
                id=str(info.id),
                inputs=tuple(info.inputs),
                input_shapes=tuple(tuple(s) for s in info.input_shapes),
                live=i in live,
            )
        )
    return steps


def ends_in_softmax(steps: list[LayerStep]) -> bool:
    """True when the last layer is a Softmax or has the softmax activation (the network's head)."""
    last = steps[-1] if steps else None
    return last is not None and (last.type == Softmax.type_name or last.activation == "softmax")


def _pads(layer: Layer, input_shape: tuple[int, ...]) -> Pads:
    if layer.type_name not in ("Conv2D", "MaxPool2D", "AvgPool2D"):
        return (0, 0, 0, 0)
    kernel = layer.config["kernel_size"] if layer.type_name == "Conv2D" else layer.config["pool_size"]
    h, w = input_shape[0], input_shape[1]
    return conv_pads(h, w, kernel, kernel, _stride(layer), layer.config["padding"])


def _stride(layer: Layer) -> int:
    if layer.type_name == "Conv2D":
        return int(layer.config["stride"])
    if layer.type_name in ("MaxPool2D", "AvgPool2D"):
        return int(layer.config["stride"] or layer.config["pool_size"])
    return 1
