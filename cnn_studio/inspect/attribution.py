"""Computing an attribution map for the Inside tab's Attribution view (on a worker's model copy)."""

from __future__ import annotations

from typing import Any

import numpy as np

from cnn_studio.inspect.attribution_view import CLASS_TRUE, FILLS, AttributionRequest, AttributionResult
from engine.explain import grad_cam, occlusion, smooth_grad
from engine.inspection import as_normalization, saliency
from engine.model import Model


def chosen_class(request: AttributionRequest, true_label: int | None) -> tuple[int | None, str]:
    """The class index to explain (None: the predicted one) and a note when the true class is unknown."""
    if request.class_choice == CLASS_TRUE:
        if true_label is None:
            return None, " (this sample has no known class: the predicted one is explained)"
        return int(true_label), ""
    return (request.class_choice if request.class_choice >= 0 else None), ""


def normalized_fill(value: float, preprocessing: dict[str, Any], channels: int) -> np.ndarray:
    """A pixel intensity (0..1) as the network sees it, per channel."""
    norm = as_normalization(preprocessing)
    return norm.center_inplace(np.full((1, 1, channels), value, np.float32)).reshape(channels)


def compute_attribution(model: Model, x: np.ndarray, request: AttributionRequest, true_label: int | None = None,
                        task: Any = None) -> AttributionResult:
    """The map ``request`` asks for, for the normalised sample ``x`` (H, W, C)."""
    wanted, note = chosen_class(request, true_label)
    progress = task.progress if task is not None else None
    cancelled = task.cancelled if task is not None else None
    if request.method == "gradcam":
        cam = grad_cam(model, x, request.layer, wanted)
        h, w, c = model.analysis.layers[model.index_of(cam.layer)].output_shape
        return AttributionResult(
            "gradcam", cam.normalized, cam.map, False, cam.class_index,
            f"The {c} feature maps of {cam.layer} ({h}x{w}) weighted by how much the score depends on each "
            f"(the mean of its gradient), summed, negatives cut; enlarged to the image bilinearly.{note}",
            cam.layer)
    if request.method == "occlusion":
        fill = normalized_fill(request.fill, model.preprocessing, x.shape[-1])
        result = occlusion(model, x, wanted, request.patch, request.stride, fill, progress=progress,
                           cancelled=cancelled)
        top = float(result.map.max())
        heat = np.clip(result.map, 0, None) / top if top > 0 else np.zeros_like(result.map)
        colour = next((name for name, value in FILLS if value == request.fill), f"{request.fill:g}")
        return AttributionResult(
            "occlusion", heat, result.map, True, result.class_index,
            f"A {request.patch}x{request.patch} {colour} patch every {request.stride} px hides part of the sample; "
            f"the class's probability is {result.probability:.1%} on the whole sample. Red: hiding it lowers the "
            f"probability; blue: raises it.{note}")
    if request.method == "smoothgrad":
        result = smooth_grad(model, x, wanted, request.samples, request.noise, progress=progress, cancelled=cancelled)
        return AttributionResult(
            "smoothgrad", result.magnitude, result.gradient.sum(axis=-1), True, result.class_index,
            f"The score's gradient averaged over {request.samples} copies with noise of {request.noise:.0%} of the "
            f"value range: bright where the score is sensitive to a pixel. Right: red raises the score when "
            f"the pixel gets brighter, blue lowers it.{note}")
    result = saliency(model, x, wanted)
    return AttributionResult(
        "gradient", result.magnitude, result.gradient.sum(axis=-1), True, result.class_index,
        f"Gradient of the score with respect to each input pixel. Bright heat: changing that pixel changes the "
        f"score most. Right: red raises the score when the pixel gets brighter, blue lowers it.{note}")
