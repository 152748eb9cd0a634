"""Every engine layer type, by the name used in architecture documents."""

from engine.layers.activations import ELU, LeakyReLU, ReLU, Sigmoid, Softmax, Tanh
from engine.layers.base import ACTIVATIONS, ConfigError, Field, Layer, Shape
from engine.layers.conv import Conv2D
from engine.layers.core import Dense, Dropout, Flatten
from engine.layers.merge import Add, Concatenate, MergeLayer
from engine.layers.normalization import BatchNorm
from engine.layers.pooling import AvgPool2D, GlobalAvgPool2D, MaxPool2D

LAYER_TYPES: dict[str, type[Layer]] = {
    cls.type_name: cls
    for cls in (
        Conv2D, MaxPool2D, AvgPool2D, GlobalAvgPool2D, BatchNorm,
        ReLU, LeakyReLU, ELU, Sigmoid, Tanh, Softmax, Dropout, Flatten, Dense, Add, Concatenate,
    )
}

CATEGORIES = ("Convolution", "Pooling", "Normalization", "Activation", "Regularization", "Core", "Merge")

__all__ = [
    "ACTIVATIONS", "CATEGORIES", "LAYER_TYPES", "ConfigError", "Field", "Layer", "MergeLayer", "Shape",
    "Add", "AvgPool2D", "BatchNorm", "Concatenate", "Conv2D", "Dense", "Dropout", "ELU", "Flatten", "GlobalAvgPool2D",
    "LeakyReLU", "MaxPool2D", "ReLU", "Sigmoid", "Softmax", "Tanh",
]
