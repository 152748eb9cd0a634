"""Composite blocks of the palette: several layers dropped as one edit.

Each builder takes the shape of the tensor the block receives (None when unknown) and returns
the block's layers with fresh ids; the first layers take ``graph.ENTRY`` and the last layer is the
block's output. Settings follow the incoming width, so nothing needs to be asked:

* Residual block: two 3x3 convolutions with batch norm, added to the block's input (ResNet's
  basic block), then ReLU. The same width and size in and out, so the shortcut is the input itself.
* Residual block, downsampling: the same with stride 2 and twice the width; the shortcut becomes
  a 1x1 convolution with stride 2 (a projection shortcut), so both branches match.
* Inception block: 1x1, 1x1 -> 3x3, 1x1 -> 5x5 and 3x3 max pooling -> 1x1 branches side by side,
  concatenated along the channels (GoogLeNet's module, narrow).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from cnn_studio.document import new_layer_id
from cnn_studio.graph import ENTRY

Shape = tuple[int, ...]
DEFAULT_WIDTH = 32


@dataclass(frozen=True)
class Composite:
    title: str
    description: str
    build: Callable[[Shape | None], list[dict[str, Any]]]


def incoming_width(shape: Shape | None) -> int:
    """The channel count a block receives (a sensible default when unknown or not a feature map)."""
    if shape is not None and len(shape) == 3:
        return int(shape[2])
    return DEFAULT_WIDTH


def _conv(filters: int, kernel: int, stride: int = 1, activation: str | None = None,
          bias: bool = True) -> dict[str, Any]:
    return {"id": new_layer_id(), "type": "Conv2D", "filters": filters, "kernel_size": kernel, "stride": stride,
            "padding": "same", "activation": activation, "use_bias": bias}


def _batch_norm() -> dict[str, Any]:
    return {"id": new_layer_id(), "type": "BatchNorm", "momentum": 0.9, "epsilon": 1e-5}


def _relu() -> dict[str, Any]:
    return {"id": new_layer_id(), "type": "ReLU"}


def _chain(specs: list[dict[str, Any]], source: str) -> list[dict[str, Any]]:
    """Wire ``specs`` one after the other, the first taking ``source``."""
    for spec in specs:
        spec["inputs"] = [source]
        source = spec["id"]
    return specs


def residual_block(shape: Shape | None, downsample: bool = False) -> list[dict[str, Any]]:
    width_in = incoming_width(shape)
    # Very narrow inputs (an image's 1 or 3 channels) get a useful width, and with it a projection.
    width = max(16, width_in * 2 if downsample else width_in)
    stride = 2 if downsample else 1
    main = _chain([_conv(width, 3, stride, bias=False), _batch_norm(), _relu(),
                   _conv(width, 3, 1, bias=False), _batch_norm()], ENTRY)
    layers = list(main)
    shortcut = ENTRY
    if stride != 1 or width != width_in or shape is None or len(shape) != 3:
        projection = _chain([_conv(width, 1, stride, bias=False), _batch_norm()], ENTRY)
        layers += projection
        shortcut = projection[-1]["id"]
    add = {"id": new_layer_id(), "type": "Add", "inputs": [main[-1]["id"], shortcut]}
    out = _relu()
    out["inputs"] = [add["id"]]
    return layers + [add, out]


def inception_block(shape: Shape | None) -> list[dict[str, Any]]:
    scale = max(1, incoming_width(shape) // 32)
    branches = [
        _chain([_conv(16 * scale, 1, activation="relu")], ENTRY),
        _chain([_conv(16 * scale, 1, activation="relu"), _conv(24 * scale, 3, activation="relu")], ENTRY),
        _chain([_conv(8 * scale, 1, activation="relu"), _conv(8 * scale, 5, activation="relu")], ENTRY),
        _chain([{"id": new_layer_id(), "type": "MaxPool2D", "pool_size": 3, "stride": 1, "padding": "same"},
                _conv(8 * scale, 1, activation="relu")], ENTRY),
    ]
    concat = {"id": new_layer_id(), "type": "Concatenate", "inputs": [b[-1]["id"] for b in branches]}
    return [spec for branch in branches for spec in branch] + [concat]


COMPOSITES: dict[str, Composite] = {
    "residual": Composite(
        "Residual block",
        "ResNet's basic block: 3x3 Conv2D, BatchNorm, ReLU, 3x3 Conv2D, BatchNorm, added to the block's input "
        "(the skip connection), then ReLU. Keeps the incoming size and width; a narrow input gets 16 "
        "channels and a 1x1 projection on the shortcut.",
        lambda shape: residual_block(shape, downsample=False),
    ),
    "residual_down": Composite(
        "Residual block, stride 2",
        "A residual block that halves the height and width and doubles the channels: stride 2 on its first "
        "convolution and a 1x1 Conv2D with stride 2 on the shortcut (a projection), so both branches match.",
        lambda shape: residual_block(shape, downsample=True),
    ),
    "inception": Composite(
        "Inception block",
        "GoogLeNet's module: 1x1, 1x1 then 3x3, 1x1 then 5x5, and 3x3 max pooling then 1x1 branches side "
        "by side, concatenated along the channels. Keeps the height and width.",
        inception_block,
    ),
}
