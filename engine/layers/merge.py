"""Layers that join branches: Add (element-wise sum) and Concatenate (along the last axis).

A merge layer takes a list of inputs in ``forward`` and returns one gradient per input from
``backward``. ``input_problems`` checks the inputs' shapes and explains each mismatch with the
numbers involved; ``labels`` are the names the user sees for the inputs (their layer names).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import ClassVar

import numpy as np

from engine.layers.base import ConfigError, Layer, Shape


def shape_text(shape: Shape) -> str:
    return "x".join(map(str, shape)) if len(shape) > 1 else f"{shape[0]}-value vector"


def projection_stride(source: Shape, target: Shape) -> int | None:
    """The stride of a 1x1 convolution mapping ``source`` maps to ``target``'s height and width, if any.

    A 1x1 convolution with stride s gives ceil(size / s) rows and columns, with or without padding.
    """
    if len(source) != 3 or len(target) != 3:
        return None
    for stride in range(1, 17):
        if -(-source[0] // stride) == target[0] and -(-source[1] // stride) == target[1]:
            return stride
    return None


class MergeLayer(Layer):
    category: ClassVar[str] = "Merge"
    min_inputs: ClassVar[int] = 2
    max_inputs: ClassVar[int | None] = None

    def input_problems(self, shapes: Sequence[Shape], labels: Sequence[str]) -> list[ConfigError]:
        """One error per input that does not fit the others (each with its ``input_index``)."""
        return []

    def output_shape(self, input_shapes: Sequence[Shape]) -> Shape:  # type: ignore[override]
        shapes = [tuple(s) for s in input_shapes]
        problems = self.input_problems(shapes, [f"input {i + 1}" for i in range(len(shapes))])
        if problems:
            raise problems[0]
        return self.merged_shape(shapes)

    def merged_shape(self, shapes: list[Shape]) -> Shape:
        raise NotImplementedError

    def forward(self, xs: Sequence[np.ndarray], training: bool = False) -> np.ndarray:  # type: ignore[override]
        raise NotImplementedError

    def backward(self, grad: np.ndarray) -> list[np.ndarray]:  # type: ignore[override]
        raise NotImplementedError


def _rank_problem(kind: str, shapes: Sequence[Shape], labels: Sequence[str]) -> ConfigError | None:
    ranks = [len(s) for s in shapes]
    if len(set(ranks)) == 1:
        return None
    odd = next(i for i, r in enumerate(ranks) if r != ranks[0])
    return ConfigError(
        f"cannot {kind} {labels[odd]}'s {shape_text(shapes[odd])} with {labels[0]}'s {shape_text(shapes[0])}",
        input_index=odd, value=shapes[odd],
        hint="Either every input is a feature map or every input is a vector. Add a Flatten or "
        "GlobalAvgPool2D layer on the feature-map branch, or merge before flattening.",
    )


class Add(MergeLayer):
    type_name = "Add"
    description = (
        "Adds two or more inputs of the same shape element by element, e.g. a residual block's output "
        "and its shortcut (the skip connection of ResNet)."
    )

    def input_problems(self, shapes: Sequence[Shape], labels: Sequence[str]) -> list[ConfigError]:
        rank = _rank_problem("add", shapes, labels)
        if rank is not None:
            return [rank]
        # The reference is the input a 1x1 projection can reach from the others: the smallest
        # maps, then the most channels (a residual branch's output, not its shortcut).
        target = min(range(len(shapes)), key=lambda i: (int(np.prod(shapes[i][:-1])), -shapes[i][-1], i))
        want = shapes[target]
        problems = []
        for i, shape in enumerate(shapes):
            if shape == want:
                continue
            message = (f"inputs must have one shape, but {labels[i]} gives {shape_text(shape)} and "
                       f"{labels[target]} gives {shape_text(want)}")
            hint = "Add sums its inputs element by element, so every input needs the same shape. "
            stride = projection_stride(shape, want)
            if stride is None:
                if len(shape) == 1:
                    hint += f"Give {labels[i]} {want[0]} units, or use Concatenate to join vectors of any length."
                else:
                    hint += (f"No 1x1 convolution maps {shape_text(shape)} to {shape_text(want)}; change the "
                             "strides or padding so both branches end at the same height and width.")
                problems.append(ConfigError(message, input_index=i, value=shape, hint=hint))
                continue
            h, w, _ = shape
            hint += (f"A 1x1 Conv2D with {want[2]} filters and stride {stride} on {labels[i]} (a projection "
                     f"shortcut, as in ResNet) maps it to ceil({h}/{stride}) x ceil({w}/{stride}) x {want[2]} = "
                     f"{shape_text(want)}.")
            problems.append(ConfigError(message, input_index=i, value=shape, hint=hint, fix="project_shortcut",
                                        fix_data={"filters": want[2], "stride": stride, "kernel_size": 1,
                                                  "shape": list(want)}))
        return problems

    def merged_shape(self, shapes: list[Shape]) -> Shape:
        return shapes[0]

    def forward(self, xs: Sequence[np.ndarray], training: bool = False) -> np.ndarray:  # type: ignore[override]
        self._cache = len(xs)
        out = np.add(xs[0], xs[1])
        for x in xs[2:]:
            out += x
        return out

    def backward(self, grad: np.ndarray) -> list[np.ndarray]:  # type: ignore[override]
        # Every input receives the same gradient; consumers never write into a gradient they get.
        return [grad] * self._cache


class Concatenate(MergeLayer):
    type_name = "Concatenate"
    description = (
        "Joins two or more inputs along the channels (feature maps of equal height and width) or "
        "along the features (vectors), e.g. the parallel branches of an Inception block."
    )

    def input_problems(self, shapes: Sequence[Shape], labels: Sequence[str]) -> list[ConfigError]:
        rank = _rank_problem("concatenate", shapes, labels)
        if rank is not None or len(shapes[0]) == 1:
            return [] if rank is None else [rank]
        # The reference size is the one most inputs have (the smaller on a tie).
        counts = Counter(s[:2] for s in shapes)
        want = min(counts, key=lambda hw: (-counts[hw], hw[0] * hw[1]))
        target = next(i for i, s in enumerate(shapes) if s[:2] == want)
        problems = []
        for i, shape in enumerate(shapes):
            if shape[:2] == want:
                continue
            message = (f"feature maps must have the same height and width, but {labels[i]} is "
                       f"{shape_text(shape)} and {labels[target]} is {shape_text(shapes[target])}")
            hint = ("Concatenate stacks its inputs along the channels, so every input needs the same height "
                    f"and width ({want[0]}x{want[1]} here). ")
            h, w = shape[:2]
            fix, data = None, {"size": list(want)}
            if h % want[0] == 0 and w % want[1] == 0 and h // want[0] == w // want[1] > 1:
                size = h // want[0]
                hint += (f"A MaxPool2D with pool_size {size} on {labels[i]} gives {h}/{size} x {w}/{size} = "
                         f"{want[0]}x{want[1]}; ")
                fix, data = "insert_pooling", {**data, "pool_size": size}
            hint += ("'same' padding keeps a branch's size (size / stride); give every branch the same "
                     "strides and 'same' padding.")
            problems.append(ConfigError(message, input_index=i, value=shape, hint=hint, fix=fix, fix_data=data))
        return problems

    def merged_shape(self, shapes: list[Shape]) -> Shape:
        return (*shapes[0][:-1], sum(s[-1] for s in shapes))

    def forward(self, xs: Sequence[np.ndarray], training: bool = False) -> np.ndarray:  # type: ignore[override]
        self._cache = np.cumsum([x.shape[-1] for x in xs])[:-1]
        return np.concatenate(xs, axis=-1)

    def backward(self, grad: np.ndarray) -> list[np.ndarray]:  # type: ignore[override]
        # Contiguous pieces: the kernels behind each input work on rows of whole channels.
        return [np.ascontiguousarray(part) for part in np.split(grad, self._cache, axis=-1)]
