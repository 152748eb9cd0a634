"""Explaining a trained network: attribution maps, filter atlases and embeddings.

    grad_cam, smooth_grad, occlusion, gradient_map     where the network looks for a class (one image)
    filter_atlas                                       the image patches each channel responds to most
    embed                                              one layer's activations for many images, in 2-D
    receptive_fields, layer_output                     the building blocks

Long computations take ``progress`` and ``cancelled`` callbacks (engine.explain.progress).
"""

from engine.explain.activations import layer_output, layer_outputs_for
from engine.explain.atlas import ChannelPatches, FilterAtlas, crop, filter_atlas
from engine.explain.attribution import (
    GradCam,
    Occlusion,
    default_cam_layer,
    grad_cam,
    gradient_map,
    occlusion,
    smooth_grad,
    spatial_layers,
    upsample_bilinear,
)
from engine.explain.embedding import (
    METHODS,
    Embedding,
    default_embedding_layer,
    embed,
    pca_2d,
    tsne_available,
    vector_layers,
)
from engine.explain.progress import Cancelled, Reporter
from engine.explain.receptive_field import ReceptiveField, receptive_fields

__all__ = [
    "METHODS", "Cancelled", "ChannelPatches", "Embedding", "FilterAtlas", "GradCam", "Occlusion", "ReceptiveField",
    "Reporter", "crop", "default_cam_layer", "default_embedding_layer", "embed", "filter_atlas", "grad_cam",
    "gradient_map", "layer_output", "layer_outputs_for", "occlusion", "pca_2d", "receptive_fields", "smooth_grad",
    "spatial_layers", "tsne_available", "upsample_bilinear", "vector_layers",
]
