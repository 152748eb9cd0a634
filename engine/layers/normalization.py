"""Batch normalization, per channel after a conv and per feature after a dense layer."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from engine.kernels.batch_norm import WHOLE_BATCH, StatsReducer, batch_norm_backward, batch_norm_forward
from engine.kernels.blocks import Workspace
from engine.layers.base import ConfigError, Field, Layer, Shape


class BatchNorm(Layer):
    type_name = "BatchNorm"
    category = "Normalization"
    description = (
        "Normalises each channel with the batch mean and variance, then scales and shifts it with "
        "learned gamma and beta. Stabilises and speeds up training; at inference it uses running averages."
    )
    fields = (
        Field("momentum", "float", 0.9, "Weight of the old running statistics in each update.",
              minimum=0.0, maximum=1.0),
        Field("epsilon", "float", 1e-5, "Small constant added to the variance to avoid division by zero.",
              minimum=0.0, maximum=1.0),
    )

    def __init__(self, **config: Any) -> None:
        super().__init__(**config)
        # Per-thread scratch blocks, reused from step to step.
        self.workspace = Workspace()
        # Where training statistics come from: this batch (a step split across processes installs
        # one that adds the other process's part, see engine.batch_sync; the fused steps use it too).
        self.stats_reducer: StatsReducer = WHOLE_BATCH

    def output_shape(self, input_shape: Shape) -> Shape:
        if len(input_shape) not in (1, 3):
            raise ConfigError(f"expects a vector or feature maps, not {input_shape}", value=input_shape)
        return tuple(input_shape)

    def param_shapes(self, input_shape: Shape) -> dict[str, Shape]:
        return {"gamma": (input_shape[-1],), "beta": (input_shape[-1],)}

    def state_shapes(self, input_shape: Shape) -> dict[str, Shape]:
        return {"moving_mean": (input_shape[-1],), "moving_variance": (input_shape[-1],)}

    def macs(self, input_shape: Shape) -> int:
        return math.prod(input_shape)

    def init_param(self, name: str, shape: Shape, rng: np.random.Generator) -> np.ndarray:
        return np.ones(shape, np.float32) if name == "gamma" else np.zeros(shape, np.float32)

    def init_state(self, name: str, shape: Shape) -> np.ndarray:
        return np.ones(shape, np.float32) if name == "moving_variance" else np.zeros(shape, np.float32)

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        gamma, beta = self.params["gamma"], self.params["beta"]
        eps = self.config["epsilon"]
        if not training or not self.trainable:
            # Inference, or a frozen layer: a per-channel affine map by the running statistics.
            scale = gamma / np.sqrt(self.state["moving_variance"] + eps)
            # Inference is a per-channel affine map; its backward (for saliency) needs x and the scale.
            self._cache = ("inference", x, scale)
            return (x * scale + (beta - self.state["moving_mean"] * scale)).astype(x.dtype, copy=False)
        reducer = self.stats_reducer
        out, (mean, inv_std, var, count) = batch_norm_forward(x, gamma, beta, eps, self.workspace, reducer)
        self.update_running_statistics(mean, var)
        # x itself, not the normalised values: backward recomputes those block by block in cache.
        self._cache = ("training", x, mean, inv_std, count, reducer)
        return out

    def update_running_statistics(self, mean: np.ndarray, var: np.ndarray) -> None:
        """Fold one training batch's per-channel mean and biased variance into the running averages."""
        m = self.config["momentum"]
        # Keras convention: the running average keeps `momentum` of its old value; biased variance.
        self.state["moving_mean"] *= m
        self.state["moving_mean"] += (1 - m) * mean
        self.state["moving_variance"] *= m
        self.state["moving_variance"] += (1 - m) * var

    def backward(self, grad: np.ndarray) -> np.ndarray:
        if self._cache[0] == "inference":
            _, x, scale = self._cache
            axes = tuple(range(grad.ndim - 1))
            x_hat = (x - self.state["moving_mean"]) / np.sqrt(self.state["moving_variance"] + self.config["epsilon"])
            self.grads["gamma"][...] = (grad * x_hat).sum(axis=axes)
            self.grads["beta"][...] = grad.sum(axis=axes)
            return (grad * scale).astype(grad.dtype, copy=False)
        _, x, mean, inv_std, count, reducer = self._cache
        d_x, d_gamma, d_beta = batch_norm_backward(grad, x, self.params["gamma"], mean, inv_std, self.workspace,
                                                   count, reducer)
        self.grads["gamma"][...] = d_gamma
        self.grads["beta"][...] = d_beta
        return d_x
