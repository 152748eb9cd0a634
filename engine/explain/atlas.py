"""What each filter of a convolution has learned: the image patches that excite it most.

For every channel of a layer's output, the ``top_k`` images whose strongest response in that channel
is largest, the position of that response, and the patch of the image it sees (its receptive field),
beside the channel's own weights.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from engine.explain.activations import layer_outputs_for
from engine.explain.attribution import describe_shape
from engine.explain.progress import CancelCheck, Progress
from engine.explain.receptive_field import ReceptiveField, receptive_fields
from engine.model import Model


@dataclass(frozen=True)
class ChannelPatches:
    """The images exciting one channel most, strongest first.

    ``indices`` (k,) into the images given; ``activations`` (k,) the channel's largest value in each;
    ``positions`` (k, 2) where in the layer's output (row, column); ``windows`` (k, 4) the input
    window seen there (top, bottom, left, right; may reach beyond the image); ``patches``
    (k, rh, rw, C) those windows cut from the pictures (outside the image: ``fill``).
    """

    channel: int
    indices: np.ndarray
    activations: np.ndarray
    positions: np.ndarray
    windows: np.ndarray
    patches: np.ndarray


@dataclass(frozen=True)
class FilterAtlas:
    """``channels``: one ChannelPatches per output channel; ``weights`` (kh, kw, in_channels, filters)
    of the layer when it is a convolution (None otherwise); ``field``: its receptive field."""

    layer: str
    channels: list[ChannelPatches]
    weights: np.ndarray | None
    field: ReceptiveField
    images: int

    @property
    def patch_shape(self) -> tuple[int, int]:
        return self.field.rows.size, self.field.cols.size


def crop(picture: np.ndarray, window: tuple[int, int, int, int], fill: float | int = 0) -> np.ndarray:
    """The (bottom - top, right - left, C) part of an (H, W, C) picture inside ``window``; what lies
    outside the picture is ``fill``."""
    top, bottom, left, right = (int(v) for v in window)
    height, width = picture.shape[:2]
    out = np.full((bottom - top, right - left, picture.shape[2]), fill, dtype=picture.dtype)
    r0, r1, c0, c1 = max(top, 0), min(bottom, height), max(left, 0), min(right, width)
    if r0 < r1 and c0 < c1:
        out[r0 - top:r1 - top, c0 - left:c1 - left] = picture[r0:r1, c0:c1]
    return out


def filter_atlas(model: Model, images: np.ndarray, layer: str, top_k: int = 9, pictures: np.ndarray | None = None,
                 batch_size: int = 128, fill: float | int = 0, progress: Progress | None = None,
                 cancelled: CancelCheck | None = None) -> FilterAtlas:
    """The top-``top_k`` patches of every channel of ``layer`` over ``images`` (N, H, W, C), the network's
    normalised inputs. Patches are cut from ``pictures`` (the same images as shown to people, e.g.
    uint8 pixels; the inputs themselves when None)."""
    index = model.index_of(layer)
    name = model.names[index]
    fields = receptive_fields(model)
    if name not in fields:
        raise ValueError(f"a filter atlas needs a layer with a feature-map output; {name} outputs "
                         f"{describe_shape(model.analysis.layers[index].output_shape)}")
    field = fields[name]
    images = np.asarray(images)
    pictures = images if pictures is None else np.asarray(pictures)
    if pictures.shape[:3] != images.shape[:3]:
        raise ValueError(f"pictures {pictures.shape} do not match the images {images.shape}")
    if pictures.ndim == 3:
        pictures = pictures[..., None]
    _, out_w, channels = model.analysis.layers[index].output_shape

    def strongest(out: np.ndarray) -> np.ndarray:
        flat = out.reshape(len(out), -1, out.shape[-1])
        where = flat.argmax(axis=1)  # (B, C): the flat position of each channel's largest value
        value = np.take_along_axis(flat, where[:, None, :], axis=1)[:, 0, :]
        return np.stack([value.astype(np.float64), where.astype(np.float64)], axis=1)

    summary = layer_outputs_for(model, images, name, batch_size, progress, cancelled, reduce=strongest)
    values, where = summary[:, 0, :], summary[:, 1, :].astype(np.int64)  # (N, C) each
    k = min(top_k, len(images))
    result = []
    for c in range(channels):
        # Largest first; among equal values the earlier image (a stable, reproducible order).
        order = np.lexsort((np.arange(len(values)), -values[:, c]))[:k]
        positions = np.stack([where[order, c] // out_w, where[order, c] % out_w], axis=1)
        windows = np.array([field.window(int(r), int(col)) for r, col in positions], dtype=np.int64).reshape(-1, 4)
        patches = np.stack([crop(pictures[i], w, fill) for i, w in zip(order, windows)]) if k else \
            np.zeros((0, field.rows.size, field.cols.size, pictures.shape[3]), pictures.dtype)
        result.append(ChannelPatches(c, order, values[order, c], positions, windows, patches))
    kernel = model.layers[index].params.get("kernel")
    weights = np.array(kernel, copy=True) if kernel is not None and kernel.ndim == 4 else None
    return FilterAtlas(name, result, weights, field, len(images))
