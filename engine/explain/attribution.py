"""Where a network looks: Grad-CAM, SmoothGrad and occlusion sensitivity for one image.

Conventions as in engine.inspection: one image is (H, W, C) float32, normalised as the network's
dataset; a class score is the class's logit (before the softmax) unless said otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from engine.explain.progress import CancelCheck, Progress, Reporter
from engine.inspection import Saliency, saliency
from engine.model import Model, probabilities


# -- Grad-CAM ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class GradCam:
    """``map`` (h, w): ReLU(sum_k alpha_k A_k) over the layer's output A (after its activation), where
    alpha_k is the spatial mean of d(class score)/dA_k; ``upsampled`` (H, W): the map resized to the
    input bilinearly; ``weights`` (c,): the alpha_k; ``class_index``: the class explained."""

    map: np.ndarray
    upsampled: np.ndarray
    weights: np.ndarray
    class_index: int
    layer: str

    @property
    def normalized(self) -> np.ndarray:
        """``upsampled`` scaled to [0, 1] (all zeros when the map is zero everywhere)."""
        top = float(self.upsampled.max()) if self.upsampled.size else 0.0
        return self.upsampled / top if top > 0 else np.zeros_like(self.upsampled)


def spatial_layers(model: Model) -> list[str]:
    """Names of the layers whose output is a feature map (height x width x channels): Grad-CAM's choices."""
    return [info.name for info in model.analysis.layers
            if info.output_shape is not None and len(info.output_shape) == 3]


def default_cam_layer(model: Model) -> str | None:
    """The last layer with a feature-map output that the class score depends on (None if there is none)."""
    live = set(model.live_layers)
    names = [name for name in spatial_layers(model) if model.index_of(name) in live]
    return names[-1] if names else None


def describe_shape(shape: tuple[int, ...] | None) -> str:
    """A layer's output in words: "a vector of 128 values", "13x13x32 feature maps"."""
    if not shape:
        return "nothing usable"
    if len(shape) == 1:
        return f"a vector of {shape[0]} values"
    return f"{'x'.join(map(str, shape))} values"


def upsample_bilinear(values: np.ndarray, height: int, width: int) -> np.ndarray:
    """Resize a (h, w) map to (height, width) by bilinear interpolation with pixel centres aligned
    (the half-pixel convention of OpenCV's resize and PyTorch's align_corners=False)."""
    values = np.asarray(values, dtype=np.float64)
    h, w = values.shape

    def axis(size_in: int, size_out: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        source = (np.arange(size_out) + 0.5) * (size_in / size_out) - 0.5
        source = np.clip(source, 0, size_in - 1)
        low = np.floor(source).astype(int)
        high = np.minimum(low + 1, size_in - 1)
        return low, high, source - low

    r0, r1, fr = axis(h, height)
    c0, c1, fc = axis(w, width)
    rows = values[r0] * (1 - fr)[:, None] + values[r1] * fr[:, None]
    return rows[:, c0] * (1 - fc)[None, :] + rows[:, c1] * fc[None, :]


def grad_cam(model: Model, image: np.ndarray, layer: str, class_index: int | None = None) -> GradCam:
    """Grad-CAM (Selvaraju et al., 2017) of ``layer`` for one (H, W, C) image.

    ``class_index`` None explains the predicted class. Any layer whose output has a height and a
    width works, in chains and in branching networks. Overwrites the model's parameter gradients
    (like ``saliency``): never call it on a model that is being trained.
    """
    image = np.asarray(image)
    index = model.index_of(layer)
    shape = model.analysis.layers[index].output_shape
    name = model.names[index]
    if shape is None or len(shape) != 3:
        raise ValueError(f"Grad-CAM needs a layer with a feature-map output (height x width x channels); "
                         f"{name} outputs {describe_shape(shape)}")
    activation, gradient, used = model.activation_and_gradient(image, name, class_index)
    activation = np.asarray(activation, dtype=np.float64)
    alphas = np.asarray(gradient, dtype=np.float64).mean(axis=(0, 1))
    cam = np.maximum(activation @ alphas, 0.0)
    height, width = image.shape[:2]
    return GradCam(cam, upsample_bilinear(cam, height, width), alphas, int(used), name)


# -- SmoothGrad ------------------------------------------------------------------------------------------
def smooth_grad(model: Model, image: np.ndarray, class_index: int | None = None, samples: int = 25,
                noise: float = 0.15, seed: int = 0, progress: Progress | None = None,
                cancelled: CancelCheck | None = None) -> Saliency:
    """SmoothGrad (Smilkov et al., 2017): the input gradient averaged over ``samples`` copies of the
    image with Gaussian noise of standard deviation ``noise`` times the image's value range.

    The class is the one predicted for the clean image unless given; with ``noise`` 0 the result is
    the plain gradient (``saliency``). Returns a Saliency like the plain gradient's.
    """
    if samples < 1:
        raise ValueError(f"samples must be at least 1, got {samples}")
    if noise < 0:
        raise ValueError(f"noise must be 0 or more, got {noise}")
    image = np.asarray(image, dtype=model.dtype)
    reporter = Reporter(samples, progress, cancelled)
    if class_index is None:
        class_index = int(np.argmax(model.forward_logits(image[None])[0]))
    sigma = float(noise) * float(image.max() - image.min())
    rng = np.random.default_rng(seed)
    total = np.zeros(image.shape, np.float64)
    for _ in range(samples):
        noisy = image + rng.normal(0.0, sigma, image.shape).astype(image.dtype) if sigma > 0 else image
        gradient, _ = model.input_gradient(noisy, class_index)
        total += gradient
        reporter.step()
    mean = (total / samples).astype(np.float32)
    magnitude = np.abs(mean).max(axis=-1)
    top = float(magnitude.max())
    return Saliency(mean, magnitude / top if top > 0 else magnitude, int(class_index))


def gradient_map(model: Model, image: np.ndarray, class_index: int | None = None) -> Saliency:
    """The plain input gradient (``engine.inspection.saliency``), under the name the methods share."""
    return saliency(model, image, class_index)


# -- occlusion ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Occlusion:
    """``map`` (H, W): how much the class's probability drops, on average over the patches covering
    each pixel, when a patch hides it (negative: hiding it raises the probability).
    ``probability``: the class's probability on the whole image."""

    map: np.ndarray
    class_index: int
    probability: float
    patch: int
    stride: int
    fill: float | np.ndarray

    @property
    def normalized(self) -> np.ndarray:
        """``map`` divided by its largest absolute value, in [-1, 1]."""
        top = float(np.abs(self.map).max()) if self.map.size else 0.0
        return self.map / top if top > 0 else np.zeros_like(self.map)


def patch_starts(size: int, patch: int, stride: int) -> list[int]:
    """Where patches start along an axis of ``size`` pixels: every ``stride``, the last one flush with the edge."""
    patch = min(patch, size)
    starts = list(range(0, size - patch + 1, stride))
    if starts[-1] != size - patch:
        starts.append(size - patch)
    return starts


def occlusion(model: Model, image: np.ndarray, class_index: int | None = None, patch: int = 4, stride: int = 2,
              fill: float | np.ndarray = 0.0, batch_size: int = 64, progress: Progress | None = None,
              cancelled: CancelCheck | None = None) -> Occlusion:
    """Occlusion sensitivity (Zeiler and Fergus, 2014): slide a ``patch`` x ``patch`` square of the
    value ``fill`` (in the network's input units, i.e. normalised) over the image every ``stride``
    pixels and measure the drop of the class's probability. The class is the predicted one unless given.
    ``fill`` may also be one value per channel (C,), e.g. a grey normalised per channel.
    """
    if patch < 1 or stride < 1:
        raise ValueError(f"patch size and stride must be at least 1, got {patch} and {stride}")
    image = np.asarray(image, dtype=model.dtype)
    height, width = image.shape[:2]
    rows, cols = patch_starts(height, patch, stride), patch_starts(width, patch, stride)
    positions = [(r, c) for r in rows for c in cols]
    reporter = Reporter(-(-(len(positions) + 1) // batch_size), progress, cancelled)
    reporter.check()
    ph, pw = min(patch, height), min(patch, width)
    scores = np.empty(len(positions), np.float64)
    base = None
    # The whole image travels in the first batch, so it is scored exactly as its occluded copies are.
    queue = [None, *positions]
    for start in range(0, len(queue), batch_size):
        chunk = queue[start:start + batch_size]
        batch = np.repeat(image[None], len(chunk), axis=0)
        for j, where in enumerate(chunk):
            if where is not None:
                r, c = where
                batch[j, r:r + ph, c:c + pw, :] = fill
        probs = probabilities(model.forward(batch).astype(np.float64), model)
        if base is None:
            if class_index is None:
                class_index = int(np.argmax(probs[0]))
            base = float(probs[0, class_index])
        offset = start - 1  # queue position -> position index
        for j, where in enumerate(chunk):
            if where is not None:
                scores[offset + j] = probs[j, class_index]
        reporter.step()
    drops = np.zeros((height, width), np.float64)
    counts = np.zeros((height, width), np.float64)
    for (r, c), score in zip(positions, scores):
        drops[r:r + ph, c:c + pw] += base - score
        counts[r:r + ph, c:c + pw] += 1
    fill = float(fill) if np.ndim(fill) == 0 else np.array(fill, copy=True)
    return Occlusion(drops / np.maximum(counts, 1), int(class_index), float(base), int(patch), int(stride), fill)
