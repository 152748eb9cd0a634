"""Which input pixels each position of a layer's output can see: its receptive field.

Along one axis, output position i of a layer sees the input pixels ``start + i * jump`` up to
``start + i * jump + size - 1`` (``start`` may be negative: the window then reaches into the
padding). Convolutions and pooling widen the window by ``(kernel - 1) * jump`` and multiply the jump
by their stride; element-wise layers keep it; a merge sees what all its inputs see.
"""

from __future__ import annotations

from dataclasses import dataclass

from engine.layers import AvgPool2D, Conv2D, MaxPool2D, MergeLayer
from engine.model import Model
from engine.shapes import resolve_padding


@dataclass(frozen=True)
class Axis:
    size: int
    jump: int
    start: int

    def window(self, position: int) -> tuple[int, int]:
        """(first, last + 1) input pixel seen by output ``position``."""
        first = self.start + position * self.jump
        return first, first + self.size


@dataclass(frozen=True)
class ReceptiveField:
    rows: Axis
    cols: Axis

    def window(self, row: int, col: int) -> tuple[int, int, int, int]:
        """(top, bottom, left, right) of the input window seen by output position (row, col); the
        bounds may lie outside the image."""
        top, bottom = self.rows.window(row)
        left, right = self.cols.window(col)
        return top, bottom, left, right


def _through(axis: Axis, kernel: int, stride: int, pad_before: int) -> Axis:
    return Axis(axis.size + (kernel - 1) * axis.jump, axis.jump * stride, axis.start - pad_before * axis.jump)


def _merge(axes: list[Axis]) -> Axis:
    first = min(a.start for a in axes)
    last = max(a.start + a.size for a in axes)
    return Axis(last - first, max(a.jump for a in axes), first)


def receptive_fields(model: Model) -> dict[str, ReceptiveField]:
    """Every layer with a feature-map output -> its receptive field in the input image."""
    by_id: dict[str, ReceptiveField] = {"input": ReceptiveField(Axis(1, 1, 0), Axis(1, 1, 0))}
    fields: dict[str, ReceptiveField] = {}
    for layer, info, layer_id in zip(model.layers, model.analysis.layers, model.ids):
        sources = [by_id.get(ref) for ref in info.inputs]
        if any(s is None for s in sources) or info.output_shape is None or len(info.output_shape) != 3:
            continue  # vectors have no positions (and what follows them neither)
        if isinstance(layer, MergeLayer):
            field = ReceptiveField(_merge([s.rows for s in sources]), _merge([s.cols for s in sources]))
        elif isinstance(layer, (Conv2D, MaxPool2D, AvgPool2D)):
            source = sources[0]
            if isinstance(layer, Conv2D):
                kernel, stride = int(layer.config["kernel_size"]), int(layer.config["stride"])
            else:
                kernel, stride = int(layer.config["pool_size"]), int(layer.stride)
            in_h, in_w = info.input_shape[:2]
            pad_top, _ = resolve_padding(layer.config["padding"], kernel, stride, in_h)
            pad_left, _ = resolve_padding(layer.config["padding"], kernel, stride, in_w)
            field = ReceptiveField(_through(source.rows, kernel, stride, pad_top),
                                   _through(source.cols, kernel, stride, pad_left))
        else:
            field = sources[0]
        by_id[layer_id] = field
        fields[info.name] = field
    return fields
