"""One layer's outputs for many images, running only the layers that layer depends on."""

from __future__ import annotations

from typing import Any

import numpy as np

from engine.explain.progress import CancelCheck, Progress, Reporter
from engine.layers import MergeLayer
from engine.model import Model

INPUT = "input"


def _plan(model: Model, index: int) -> tuple[list[int], dict[str, int]]:
    """The layers (document order) that layer ``index`` depends on, itself included, and for each
    value (the input or a layer id) the position in that list of its last reader."""
    by_id = dict(zip(model.ids, range(len(model.layers))))
    needed = {index}
    for i in range(index, -1, -1):
        if i in needed:
            needed.update(by_id[ref] for ref in model.inputs[i] if ref != INPUT)
    order = sorted(needed)
    last_reader: dict[str, int] = {}
    for position, i in enumerate(order):
        for ref in model.inputs[i]:
            last_reader[ref] = position
    return order, last_reader


def layer_output(model: Model, x: np.ndarray, layer: str) -> np.ndarray:
    """The output of ``layer`` (name or id) for a batch (N, H, W, C), in inference mode."""
    index = model.index_of(layer)
    x = np.asarray(x, dtype=model.dtype)
    if x.ndim == 3:
        x = x[None]
    if x.shape[1:] != tuple(model.input_shape):
        expected = "x".join(map(str, model.input_shape))
        raise ValueError(f"images of shape {'x'.join(map(str, x.shape[1:]))} do not fit the network's {expected} input")
    order, last_reader = _plan(model, index)
    values: dict[str, Any] = {INPUT: x}
    for position, i in enumerate(order):
        refs = model.inputs[i]
        layer_obj = model.layers[i]
        arguments = [values[r] for r in refs] if isinstance(layer_obj, MergeLayer) else values[refs[0]]
        values[model.ids[i]] = layer_obj.forward(arguments, False)
        for ref in refs:  # dropped after their last reader: only live outputs stay in memory
            if last_reader.get(ref) == position and ref != model.ids[index]:
                values.pop(ref, None)
    return values[model.ids[index]]


def layer_outputs_for(model: Model, x: np.ndarray, layer: str, batch_size: int = 128,
                      progress: Progress | None = None, cancelled: CancelCheck | None = None,
                      reduce: Any = None) -> np.ndarray:
    """``layer``'s outputs for every image of ``x`` (N, H, W, C), batch by batch.

    ``reduce(batch_output) -> array`` shrinks each batch's outputs before they are kept (e.g. the
    largest value per channel), so a large layer over a whole test set need not fit in memory.
    """
    x = np.asarray(x)
    n = len(x)
    reporter = Reporter(-(-n // batch_size), progress, cancelled)
    reporter.check()
    parts = []
    for start in range(0, n, batch_size):
        out = layer_output(model, x[start:start + batch_size], layer)
        parts.append(reduce(out) if reduce is not None else np.array(out, copy=True))
        reporter.step()
    if not parts:
        shape = model.analysis.layers[model.index_of(layer)].output_shape or ()
        return np.zeros((0, *shape), model.dtype)
    return np.concatenate(parts)
