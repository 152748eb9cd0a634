"""Runs of layers that Model executes as one kernel: a ReLU followed by non-overlapping max pooling.

Max pooling and ReLU commute, so pooling the raw values and rectifying the (pool*pool times
fewer) pooled values gives exactly the two layers' output. Conv2D(activation="relu") followed by
such a MaxPool2D runs convolution, pooling and ReLU block by block, so the full-size convolution
output (the largest array of a typical network) never reaches memory, in forward or backward; a
ReLU layer followed by one pools the ReLU's input directly. The layers keep their own settings,
parameters and gradients; ``Model.layer_outputs`` still runs them one by one, since there each
layer's own output is wanted.

Conv2D -> BatchNorm -> ReLU -> such a MaxPool2D goes further: batch statistics and pooling are
taken from each block of the convolution's output while it is in cache, and only the pooled
values are normalised (engine/kernels/conv_batch_norm.py says why that is exact). Conv2D ->
BatchNorm [-> ReLU] without pooling takes its statistics in cache and normalises (and rectifies)
in one pass (engine/kernels/conv_batch_norm_relu.py).
"""

from __future__ import annotations

import numpy as np

from engine.kernels.activation import add_relu_forward, relu_backward
from engine.kernels.conv import conv2d_maxpool_backward, conv2d_maxpool_forward
from engine.kernels.conv_batch_norm import (
    ConvBatchNormCache,
    conv_bn_relu_maxpool_backward,
    conv_bn_relu_maxpool_forward,
)
from engine.kernels.conv_batch_norm_relu import ConvBatchNormReluCache, conv_bn_relu_backward, conv_bn_relu_forward
from engine.kernels.pooling import pool_backward, pool_forward
from engine.layers.activations import ReLU
from engine.layers.base import Layer
from engine.layers.conv import Conv2D
from engine.layers.merge import Add
from engine.layers.normalization import BatchNorm
from engine.layers.pooling import MaxPool2D


def is_tiled_max_pool(layer: Layer) -> bool:
    """MaxPool2D whose windows do not overlap and need no padding."""
    return (isinstance(layer, MaxPool2D) and layer.stride == layer.config["pool_size"]
            and layer.config["padding"] in ("valid", 0))


class ConvMaxPool:
    """Conv2D with a ReLU activation, then a tiled MaxPool2D."""

    def __init__(self, conv: Conv2D, pool: MaxPool2D) -> None:
        self.conv, self.pool = conv, pool
        self._cache: tuple | None = None

    @staticmethod
    def fits(layers: list[Layer]) -> bool:
        first, second = layers
        return (isinstance(first, Conv2D) and first.config["activation"] == "relu"
                and is_tiled_max_pool(second))

    def _forward(self, x: np.ndarray, keep_winners: bool) -> tuple[np.ndarray, np.ndarray | None]:
        conv = self.conv
        return conv2d_maxpool_forward(
            x, conv.params["kernel"], conv.params.get("bias"), conv.config["stride"], conv.config["padding"],
            self.pool.config["pool_size"], conv.workspace, keep_winners,
        )

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        conv, size = self.conv, self.pool.config["pool_size"]
        path = conv.transform_path(x.shape, training)
        if path is not None:
            # Through a transform the whole output exists at once: pool it as the ReLU ->
            # MaxPool2D step does.
            z, kept = path.forward(x, conv.params["kernel"], conv.params.get("bias"), conv.config["padding"],
                                   keep=training, workspace=conv.workspace)
            out, pooling = pool_forward(z, size, size, "valid", "max", training, relu=True)
            self._cache = ("transform", x, (path, kept), pooling)
            return out
        out, winners = self._forward(x, keep_winners=training)
        self._cache = ("blocks", x, out, winners)
        return out

    def backward(self, grad: np.ndarray) -> np.ndarray | None:
        conv, size = self.conv, self.pool.config["pool_size"]
        if self._cache[0] == "transform":
            _, x, (path, kept), pooling = self._cache
            d_x, d_kernel, d_bias = path.backward(
                pool_backward(grad, pooling, size, size, "max"), x, kept, conv.params["kernel"],
                "bias" in conv.params, conv.config["padding"], conv.needs_input_grad, workspace=conv.workspace,
            )
        else:
            _, x, out, winners = self._cache
            if winners is None:  # backward after an inference forward (saliency)
                winners = self._forward(x, keep_winners=True)[1]
            d_x, d_kernel, d_bias = conv2d_maxpool_backward(
                grad, out, winners, x, conv.params["kernel"], "bias" in conv.params, conv.config["stride"],
                conv.config["padding"], size, conv.needs_input_grad, conv.workspace,
            )
        conv.grads["kernel"][...] = d_kernel
        if d_bias is not None:
            conv.grads["bias"][...] = d_bias
        return d_x


class ReluMaxPool:
    """A ReLU layer, then a tiled MaxPool2D: pooling of the ReLU's input, rectified."""

    def __init__(self, relu: ReLU, pool: MaxPool2D) -> None:
        self.relu, self.pool = relu, pool
        self._cache: tuple | None = None

    @staticmethod
    def fits(layers: list[Layer]) -> bool:
        first, second = layers
        return isinstance(first, ReLU) and is_tiled_max_pool(second)

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        size = self.pool.config["pool_size"]
        out, self._cache = pool_forward(x, size, size, "valid", "max", training, relu=True)
        return out

    def backward(self, grad: np.ndarray) -> np.ndarray:
        size = self.pool.config["pool_size"]
        return pool_backward(grad, self._cache, size, size, "max")


# Whether a Conv2D -> BatchNorm [-> ReLU] step (no pooling) with an input gradient trains through
# the fused kernel (see ConvBatchNorm._layer_by_layer).
FUSE_TRAINING_WITH_INPUT_GRADIENT = False

# A fused Conv2D -> BatchNorm step's cache while its layers run one by one.
_LAYER_BY_LAYER = ("layer by layer",)


class _ConvBatchNormStep:
    """What the fused steps starting with Conv2D -> BatchNorm share: running statistics, gradients,
    and running their layers one by one where the convolution takes a transform path (the fused
    kernels work on the direct convolution's blocks)."""

    conv: Conv2D
    norm: BatchNorm
    _cache: tuple | None

    def layers(self) -> list[Layer]:
        raise NotImplementedError

    def _layer_by_layer(self, x: np.ndarray, training: bool) -> bool:
        return self.conv.transform_path(x.shape, training) is not None

    def _forward_layers(self, x: np.ndarray, training: bool) -> np.ndarray:
        for layer in self.layers():
            x = layer.forward(x, training)
        self._cache = _LAYER_BY_LAYER
        return x

    def _backward_layers(self, grad: np.ndarray) -> np.ndarray | None:
        for layer in reversed(self.layers()):
            grad = layer.backward(grad)
        return grad

    def _remember(self, x: np.ndarray, out: np.ndarray, cache: object,
                  batch_stats: tuple[np.ndarray, np.ndarray] | None) -> np.ndarray:
        if batch_stats is not None:
            self.norm.update_running_statistics(*batch_stats)
        self._cache = (x, cache)
        return out

    def _store(self, d_kernel: np.ndarray, d_bias: np.ndarray | None, d_gamma: np.ndarray,
               d_beta: np.ndarray) -> None:
        self.conv.grads["kernel"][...] = d_kernel
        if d_bias is not None:
            self.conv.grads["bias"][...] = d_bias
        self.norm.grads["gamma"][...] = d_gamma
        self.norm.grads["beta"][...] = d_beta


class ConvBatchNormReluMaxPool(_ConvBatchNormStep):
    """Conv2D without activation, BatchNorm, ReLU, then a tiled MaxPool2D."""

    def __init__(self, conv: Conv2D, norm: BatchNorm, relu: ReLU, pool: MaxPool2D) -> None:
        self.conv, self.norm, self.relu, self.pool = conv, norm, relu, pool
        self._cache: tuple | None = None

    @staticmethod
    def fits(layers: list[Layer]) -> bool:
        conv, norm, relu, pool = layers
        return (isinstance(conv, Conv2D) and conv.config["activation"] is None and isinstance(norm, BatchNorm)
                and isinstance(relu, ReLU) and is_tiled_max_pool(pool))

    def _forward(self, x: np.ndarray, training: bool,
                 keep_winners: bool) -> tuple[np.ndarray, ConvBatchNormCache, tuple[np.ndarray, np.ndarray] | None]:
        conv, norm = self.conv, self.norm
        # Batch statistics in training; the running ones at inference and for a frozen batch norm.
        moving = None if training and norm.trainable else (norm.state["moving_mean"], norm.state["moving_variance"])
        return conv_bn_relu_maxpool_forward(
            x, conv.params["kernel"], conv.params.get("bias"), conv.config["stride"], conv.config["padding"],
            self.pool.config["pool_size"], norm.params["gamma"], norm.params["beta"], norm.config["epsilon"],
            moving, conv.workspace, keep_winners, norm.stats_reducer,
        )

    def layers(self) -> list[Layer]:
        return [self.conv, self.norm, self.relu, self.pool]

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        if self._layer_by_layer(x, training):
            return self._forward_layers(x, training)
        return self._remember(x, *self._forward(x, training, keep_winners=training))

    def backward(self, grad: np.ndarray) -> np.ndarray | None:
        if self._cache is _LAYER_BY_LAYER:
            return self._backward_layers(grad)
        x, cache = self._cache
        if cache.winners is None:  # backward after an inference forward (saliency)
            cache = self._forward(x, training=False, keep_winners=True)[1]
        conv, norm = self.conv, self.norm
        d_x, d_kernel, d_bias, d_gamma, d_beta = conv_bn_relu_maxpool_backward(
            grad, cache, x, conv.params["kernel"], "bias" in conv.params, conv.config["stride"],
            conv.config["padding"], self.pool.config["pool_size"], norm.params["gamma"], conv.needs_input_grad,
            conv.workspace,
        )
        self._store(d_kernel, d_bias, d_gamma, d_beta)
        return d_x


class ConvBatchNorm(_ConvBatchNormStep):
    """Conv2D without activation, then BatchNorm, not followed by a ReLU (e.g. the last convolution
    of a residual branch, or a projection shortcut, before an Add)."""

    relu = False

    def __init__(self, conv: Conv2D, norm: BatchNorm) -> None:
        self.conv, self.norm = conv, norm
        self._cache: tuple | None = None

    @staticmethod
    def fits(layers: list[Layer]) -> bool:
        conv, norm = layers[:2]
        return isinstance(conv, Conv2D) and conv.config["activation"] is None and isinstance(norm, BatchNorm)

    def _forward(self, x: np.ndarray,
                 training: bool) -> tuple[np.ndarray, ConvBatchNormReluCache, tuple[np.ndarray, np.ndarray] | None]:
        conv, norm = self.conv, self.norm
        # Batch statistics in training; the running ones at inference and for a frozen batch norm.
        moving = None if training and norm.trainable else (norm.state["moving_mean"], norm.state["moving_variance"])
        return conv_bn_relu_forward(
            x, conv.params["kernel"], conv.params.get("bias"), conv.config["stride"], conv.config["padding"],
            norm.params["gamma"], norm.params["beta"], norm.config["epsilon"], moving, conv.workspace,
            keep_z=conv.needs_input_grad, reducer=norm.stats_reducer, relu=self.relu,
        )

    def layers(self) -> list[Layer]:
        return [self.conv, self.norm]

    def _layer_by_layer(self, x: np.ndarray, training: bool) -> bool:
        # In training the fused kernel pays only for a first layer (no input gradient), whose batch
        # norm terms go through the im2col Gram matrix: elsewhere the layers one by one were as fast
        # or faster once batch norm alone worked in cache-sized blocks (benchmarks/README.md).
        # Inference keeps the fused kernel: batch norm folds into the kernel matrix there.
        if training and self.conv.needs_input_grad and not FUSE_TRAINING_WITH_INPUT_GRADIENT:
            return True
        return super()._layer_by_layer(x, training)

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        if self._layer_by_layer(x, training):
            return self._forward_layers(x, training)
        return self._remember(x, *self._forward(x, training))

    def backward(self, grad: np.ndarray) -> np.ndarray | None:
        if self._cache is _LAYER_BY_LAYER:
            return self._backward_layers(grad)
        x, cache = self._cache
        conv, norm = self.conv, self.norm
        d_x, d_kernel, d_bias, d_gamma, d_beta = conv_bn_relu_backward(
            grad, cache, x, conv.params["kernel"], "bias" in conv.params, conv.config["stride"],
            conv.config["padding"], norm.params["gamma"], conv.needs_input_grad, conv.workspace,
        )
        self._store(d_kernel, d_bias, d_gamma, d_beta)
        return d_x


class ConvBatchNormRelu(ConvBatchNorm):
    """Conv2D without activation, BatchNorm, then ReLU (not followed by a tiled MaxPool2D)."""

    relu = True

    def __init__(self, conv: Conv2D, norm: BatchNorm, relu: ReLU) -> None:
        super().__init__(conv, norm)
        self.relu_layer = relu

    @staticmethod
    def fits(layers: list[Layer]) -> bool:
        return ConvBatchNorm.fits(layers[:2]) and isinstance(layers[2], ReLU)

    def layers(self) -> list[Layer]:
        return [self.conv, self.norm, self.relu_layer]


class AddRelu:
    """Add, then ReLU (a residual block's end): the sum is rectified while in cache, and backward
    masks the gradient once for every input."""

    def __init__(self, add: Add, relu: ReLU) -> None:
        self.add, self.relu = add, relu
        self._cache: tuple[int, np.ndarray] | None = None

    @staticmethod
    def fits(layers: list[Layer]) -> bool:
        first, second = layers
        return isinstance(first, Add) and isinstance(second, ReLU)

    def forward(self, xs: list[np.ndarray], training: bool = False) -> np.ndarray:
        # Training keeps the mask; after inference, a backward (saliency) derives it from the output.
        mask = np.empty(xs[0].shape, bool) if training else None
        out = add_relu_forward(xs, mask)
        self._cache = (len(xs), out if mask is None else mask)
        return out

    def backward(self, grad: np.ndarray) -> list[np.ndarray]:
        count, mask = self._cache
        # Every input receives the same gradient; consumers never write into a gradient they get.
        return [relu_backward(grad, mask)] * count


Step = Layer | ConvMaxPool | ReluMaxPool | ConvBatchNormReluMaxPool | ConvBatchNormRelu | ConvBatchNorm | AddRelu
# Longest first: a Conv2D -> BatchNorm -> ReLU -> MaxPool2D run is not split into smaller fusions.
FUSIONS = ((4, ConvBatchNormReluMaxPool), (3, ConvBatchNormRelu), (2, ConvBatchNorm), (2, ConvMaxPool),
           (2, ReluMaxPool), (2, AddRelu))


def fuse(layers: list[Layer]) -> list[Step]:
    """The layers in order, each fusable run of neighbours replaced by its fused step."""
    return [step for step, _ in fuse_counted(layers)]


def fuse_counted(layers: list[Layer]) -> list[tuple[Step, int]]:
    """Like fuse, with the number of layers each step runs."""
    steps: list[tuple[Step, int]] = []
    i = 0
    while i < len(layers):
        size, fusion = next(((size, f) for size, f in FUSIONS if i + size <= len(layers)
                             and f.fits(layers[i : i + size])), (1, None))
        steps.append((layers[i] if fusion is None else fusion(*layers[i : i + size]), size))
        i += size
    return steps
