"""Looking inside a network: per-layer statistics, filter pictures, saliency and inputs from pictures.

Pure NumPy (and Pillow for reading pictures); the studio's "Inside" tab draws what these return.
Conventions as everywhere in the engine: a batch is (N, H, W, C) float32, one sample is (H, W, C),
conv kernels are (kh, kw, in_channels, filters).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Any

import numpy as np

from engine.errors import DataError
from engine.layers import Layer, ReLU
from engine.layers.activated import ActivatedLayer
from engine.model import Model, probabilities
from engine.pictures import picture_pixels

HISTOGRAM_BINS = 40


# -- histograms and per-layer statistics --------------------------------------------------------------
@dataclass(frozen=True)
class Histogram:
    """``counts`` (bins,) int64 of the values falling between ``edges`` (bins + 1,) float64."""

    counts: np.ndarray
    edges: np.ndarray

    @property
    def centers(self) -> np.ndarray:
        return (self.edges[:-1] + self.edges[1:]) / 2

    @property
    def total(self) -> int:
        return int(self.counts.sum())


def histogram(values: np.ndarray, bins: int = HISTOGRAM_BINS) -> Histogram:
    """Histogram of the finite values of any array; a constant array gets a unit-wide range around it."""
    flat = np.asarray(values, dtype=np.float64).ravel()
    flat = flat[np.isfinite(flat)]
    if flat.size == 0:
        return Histogram(np.zeros(bins, np.int64), np.linspace(0.0, 1.0, bins + 1))
    lo, hi = float(flat.min()), float(flat.max())
    if hi - lo < 1e-12:
        lo, hi = lo - 0.5, hi + 0.5
    counts, edges = np.histogram(flat, bins=bins, range=(lo, hi))
    return Histogram(counts.astype(np.int64), edges)


@dataclass(frozen=True)
class LayerStatistics:
    """What one layer's weights and outputs look like on a batch.

    ``weights`` is the histogram of the layer's kernel (or batch-norm gamma), None for layers without.
    ``zero_fraction`` is the share of all output values that are exactly zero.
    ``relu`` says the output passes through a ReLU; then ``dead_units`` counts the units (channels of a
    feature map, features of a vector) that are zero for every sample and position of the batch.
    """

    name: str
    type: str
    output_shape: tuple[int, ...]
    weight_label: str
    weights: Histogram | None
    weight_mean: float
    weight_std: float
    activations: Histogram
    activation_mean: float
    activation_std: float
    zero_fraction: float
    relu: bool
    units: int
    dead_units: int
    samples: int

    @property
    def dead_fraction(self) -> float | None:
        """Fraction of never-firing ReLU units, or None when the layer has no ReLU."""
        return self.dead_units / self.units if self.relu and self.units else None


def is_relu_output(layer: Layer) -> bool:
    """True for a ReLU layer and for a Conv2D/Dense whose own activation is relu."""
    return isinstance(layer, ReLU) or (
        isinstance(layer, ActivatedLayer) and layer.config.get("activation") == "relu"
    )


def dead_units(activations: np.ndarray) -> np.ndarray:
    """(N, ..., U) outputs -> (U,) bool: True where a unit is <= 0 for every sample and position."""
    a = np.asarray(activations)
    return ~(a > 0).reshape(-1, a.shape[-1]).any(axis=0)


def _weight_tensor(layer: Layer) -> tuple[str, np.ndarray] | None:
    if "kernel" in layer.params:
        return "kernel", layer.params["kernel"]
    if "gamma" in layer.params:
        return "gamma (scale)", layer.params["gamma"]
    return None


def layer_statistics(model: Model, x_batch: np.ndarray, bins: int = HISTOGRAM_BINS) -> list[LayerStatistics]:
    """One LayerStatistics per layer, in order, from an inference pass over ``x_batch`` (N, H, W, C)."""
    x_batch = np.asarray(x_batch)
    if x_batch.ndim == 3:
        x_batch = x_batch[None]
    stats = []
    for layer, (name, out) in zip(model.layers, model.layer_outputs(x_batch)):
        weights = _weight_tensor(layer)
        relu = is_relu_output(layer)
        units = int(out.shape[-1])
        stats.append(
            LayerStatistics(
                name=name,
                type=layer.type_name,
                output_shape=tuple(int(v) for v in out.shape[1:]),
                weight_label=weights[0] if weights else "",
                weights=histogram(weights[1], bins) if weights else None,
                weight_mean=float(weights[1].mean()) if weights else math.nan,
                weight_std=float(weights[1].std()) if weights else math.nan,
                activations=histogram(out, bins),
                activation_mean=float(out.mean(dtype=np.float64)),
                activation_std=float(out.std(dtype=np.float64)),
                zero_fraction=float(np.count_nonzero(out == 0) / out.size) if out.size else 0.0,
                relu=relu,
                units=units,
                dead_units=int(dead_units(out).sum()) if relu else 0,
                samples=len(x_batch),
            )
        )
    return stats


# -- filters ---------------------------------------------------------------------------------------------
def filter_images(kernel: np.ndarray, rgb: bool) -> np.ndarray:
    """Pictures of conv filters.

    kernel (kh, kw, C, F) ->
      rgb=True (needs C == 3): (F, kh, kw, 3) in [0, 1], each filter min-max stretched on its own, so
        the colour the filter responds to most shows as that colour;
      rgb=False: (F, C, kh, kw) in [-1, 1], each filter divided by its largest |weight| so that zero
        stays zero (draw with a diverging colour map: negative and positive weights look different).
    """
    k = np.asarray(kernel, dtype=np.float32)
    if k.ndim != 4:
        raise ValueError(f"a conv kernel has shape (kh, kw, in_channels, filters), got {k.shape}")
    per_filter = k.transpose(3, 0, 1, 2)  # (F, kh, kw, C)
    if rgb:
        if k.shape[2] != 3:
            raise ValueError(f"RGB filter pictures need 3 input channels, the kernel has {k.shape[2]}")
        lo = per_filter.min(axis=(1, 2, 3), keepdims=True)
        span = per_filter.max(axis=(1, 2, 3), keepdims=True) - lo
        return np.where(span > 0, (per_filter - lo) / np.where(span > 0, span, 1), 0.5).astype(np.float32)
    largest = np.abs(per_filter).max(axis=(1, 2, 3), keepdims=True)
    scaled = per_filter / np.where(largest > 0, largest, 1)
    return np.ascontiguousarray(scaled.transpose(0, 3, 1, 2), dtype=np.float32)


def conv_layer_names(model: Model) -> list[str]:
    """Names of the layers that hold a 4-D conv kernel, in order."""
    return [n for n, layer in zip(model.names, model.layers) if layer.params.get("kernel", np.empty(0)).ndim == 4]


# -- one sample through the network ------------------------------------------------------------------------
@dataclass(frozen=True)
class Probe:
    """Every layer's output for one sample, and its class probabilities (K,)."""

    layer_outputs: list[tuple[str, np.ndarray]]
    probabilities: np.ndarray


def probe(model: Model, x: np.ndarray) -> Probe:
    """Run one normalized (H, W, C) sample; the outputs are copies (one inference pass)."""
    outputs = model.layer_outputs(np.asarray(x))
    last = outputs[-1][1]
    probs = probabilities(last[None].astype(np.float64), model)[0] if last.ndim == 1 else np.asarray(last)
    return Probe(outputs, np.asarray(probs, dtype=np.float64))


@dataclass(frozen=True)
class Saliency:
    """``gradient`` (H, W, C): d(class score)/d(input); ``magnitude`` (H, W): max |gradient| over
    channels scaled to [0, 1]; ``class_index``: the class whose score was differentiated."""

    gradient: np.ndarray
    magnitude: np.ndarray
    class_index: int


def saliency(model: Model, x: np.ndarray, class_index: int | None = None) -> Saliency:
    """Gradient of a class score (the predicted class by default) with respect to one (H, W, C) input.

    Uses the engine's own backward pass (``Model.input_gradient``), which overwrites the model's
    parameter gradients: never call it on a model that is being trained.
    """
    grad, used = model.input_gradient(np.asarray(x), class_index)
    grad = np.asarray(grad, dtype=np.float32)
    magnitude = np.abs(grad).max(axis=-1)
    top = float(magnitude.max())
    return Saliency(grad, magnitude / top if top > 0 else magnitude, int(used))


# -- pictures in and out ------------------------------------------------------------------------------------
def as_normalization(normalization: Any) -> Any:
    """A Normalization from itself, its ``to_dict()`` form, or None (plain pixels / 255)."""
    from engine.data.normalization import Normalization

    if normalization is None:
        return Normalization()
    if isinstance(normalization, dict):
        return Normalization.from_dict(normalization)
    return normalization


def _to_pil(image: Any) -> Any:
    from PIL import Image, UnidentifiedImageError

    if isinstance(image, Image.Image):
        return image
    if isinstance(image, (str, os.PathLike)):
        try:
            with Image.open(image) as opened:
                opened.load()
                return opened.copy()
        except FileNotFoundError:
            raise DataError(f"{image}: no such file") from None
        except (UnidentifiedImageError, OSError) as exc:
            raise DataError(f"{image}: not a readable picture ({exc})") from None
    a = np.asarray(image)
    if a.ndim == 3 and a.shape[2] == 1:
        a = a[..., 0]
    if a.ndim not in (2, 3) or (a.ndim == 3 and a.shape[2] not in (3, 4)):
        raise DataError(f"an image array must be (H, W), (H, W, 1), (H, W, 3) or (H, W, 4), got {a.shape}")
    if a.dtype != np.uint8:
        a = np.asarray(a, dtype=np.float64)
        # Floats in [0, 1] are pixel intensities; anything larger is taken as 0..255 values.
        a = a * 255 if a.size and np.nanmax(a) <= 1.0 else a
        a = np.clip(np.nan_to_num(a), 0, 255).round().astype(np.uint8)
    return Image.fromarray(a)


def image_to_pixels(image: Any, input_shape: tuple[int, ...], invert: bool = False) -> np.ndarray:
    """A picture (path, PIL image or array) -> (H, W, C) uint8 pixels matched to ``input_shape``.

    The conversion is ``engine.pictures.picture_pixels``, the rule image folders and the exported
    ``predict.py`` use too: EXIF orientation, transparent parts black, luminance (C = 1) or RGB
    (C = 3), bilinear resizing. ``invert`` turns dark strokes on a light background into the
    datasets' convention.
    """
    h, w, c = (int(v) for v in input_shape)
    if c not in (1, 3):
        raise DataError(f"pictures can feed inputs with 1 or 3 channels, this network has {c}")
    try:
        pixels = picture_pixels(_to_pil(image), (h, w, c))
    except ValueError as exc:
        where = f"{image}: " if isinstance(image, (str, os.PathLike)) else ""
        raise DataError(f"{where}{exc}") from None
    return 255 - pixels if invert else pixels


def image_to_input(
    image: Any, input_shape: tuple[int, ...], normalization: Any = None, invert: bool = False
) -> np.ndarray:
    """A picture -> the (H, W, C) float32 input the network receives, normalized like its dataset.

    ``normalization``: an ``engine.data.Normalization``, its ``to_dict()`` form (``model.preprocessing``)
    or None (pixels / 255). Pixels are 0..255 whatever the dataset stores, so they are mapped to [0, 1]
    first and then centred with the dataset's mean and std.
    """
    pixels = image_to_pixels(image, input_shape, invert=invert)
    norm = as_normalization(normalization)
    unit = pixels.astype(np.float32) / np.float32(255)
    return norm.center_inplace(np.ascontiguousarray(unit))


def input_to_image(x: np.ndarray, normalization: Any = None) -> np.ndarray:
    """Undo the normalization of one (H, W, C) input: values in [0, 1] for display, float32."""
    norm = as_normalization(normalization)
    x = np.asarray(x, dtype=np.float32)
    if norm.mean is not None and norm.std is not None:
        x = x * np.asarray(norm.std, np.float32) + np.asarray(norm.mean, np.float32)
    return np.clip(x, 0.0, 1.0)


def raw_to_uint8(raw: np.ndarray, scale: float) -> np.ndarray:
    """Stored dataset pixels (uint8, or float32 with a scale to [0, 1]) -> uint8 for display."""
    raw = np.asarray(raw)
    if raw.dtype == np.uint8:
        return raw
    return np.clip(np.asarray(raw, np.float32) * np.float32(scale) * 255, 0, 255).round().astype(np.uint8)


# -- mistakes ----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Mistake:
    """A misclassified sample: its index in the evaluated set, the true and predicted class,
    the probability given to the prediction (confidence) and to the true class."""

    index: int
    true_class: int
    predicted_class: int
    confidence: float
    true_probability: float


MISTAKE_ORDERS = ("most confident", "least confident", "true class", "index")


def list_mistakes(evaluation: Any, order: str = "most confident") -> list[Mistake]:
    """The misclassified samples of an ``engine.metrics.Evaluation``, sorted by ``order``
    (one of MISTAKE_ORDERS; ties keep index order)."""
    if order not in MISTAKE_ORDERS:
        raise ValueError(f"order must be one of {', '.join(MISTAKE_ORDERS)}, got {order!r}")
    probs = np.asarray(evaluation.probabilities)
    labels = np.asarray(evaluation.labels)
    predictions = np.asarray(evaluation.predictions)
    idx = np.flatnonzero(predictions != labels)
    items = [
        Mistake(int(i), int(labels[i]), int(predictions[i]), float(probs[i, predictions[i]]),
                float(probs[i, labels[i]]))
        for i in idx
    ]
    if order == "most confident":
        items.sort(key=lambda m: -m.confidence)
    elif order == "least confident":
        items.sort(key=lambda m: m.confidence)
    elif order == "true class":
        items.sort(key=lambda m: (m.true_class, -m.confidence))
    return items


def grid_shape(count: int) -> tuple[int, int]:
    """(rows, columns) of a square-ish grid holding ``count`` cells, filled row by row."""
    if count <= 0:
        return 0, 0
    cols = math.ceil(math.sqrt(count))
    return math.ceil(count / cols), cols


# -- attribution maps (engine.explain) ------------------------------------------------------------------------
_EXPLAIN_NAMES = ("GradCam", "grad_cam", "smooth_grad", "occlusion", "Occlusion")


def __getattr__(name: str) -> Any:
    # Grad-CAM, SmoothGrad and occlusion live in engine.explain (which builds on this module); they are
    # reachable here too, looked up on first use so neither module imports the other at load time.
    if name in _EXPLAIN_NAMES:
        from engine.explain import attribution

        return getattr(attribution, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
