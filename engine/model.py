"""A sequential network built from an architecture document."""

from __future__ import annotations

import copy
import os
from typing import Any

import numpy as np

from engine.architecture import Analysis, build_layer, summary, validate
from engine.layers import Dropout, Layer, Softmax
from engine.layers.activated import ActivatedLayer
from engine.layers.activations import softmax
from engine.layers.fusion import fuse


class Model:
    """Layers in order, each named as in the architecture (``conv2d_1``, ...).

    Parameters are exposed as ``"<layer name>.<param>"`` -> array (the live arrays: an optimizer
    updates them in place). Batches are (N, H, W, C) float32.
    """

    def __init__(self, architecture: dict[str, Any], seed: int = 0, dtype: Any = np.float32) -> None:
        self.analysis: Analysis = validate(architecture)
        self.architecture = copy.deepcopy(architecture)
        self.dtype = np.dtype(dtype)
        self.seed = seed
        self.input_shape = self.analysis.input_shape
        self.output_shape = self.analysis.output_shape
        self.names = [info.name for info in self.analysis.layers]
        self.layers: list[Layer] = [build_layer(spec, i) for i, spec in enumerate(architecture["layers"], 1)]
        self._logits_mode = False
        self.preprocessing: dict[str, Any] = {"scale": 1 / 255, "mean": None, "std": None}
        seeds = np.random.SeedSequence(seed)
        init_rng = np.random.default_rng(seeds.spawn(1)[0])
        for layer, info in zip(self.layers, self.analysis.layers):
            layer.build(info.input_shape, init_rng, self.dtype)
            if isinstance(layer, Dropout):
                layer.rng = np.random.default_rng(seeds.spawn(1)[0])
        # The first layer's input gradient is only wanted for saliency maps.
        self.layers[0].needs_input_grad = False
        # forward/backward run these: the layers, with ReLU + max-pool pairs fused into one kernel
        # each. The last layer stays alone (forward_logits treats it specially).
        self._steps = [*fuse(self.layers[:-1]), self.layers[-1]]

    @classmethod
    def from_architecture(
        cls, doc_or_path: dict[str, Any] | str | os.PathLike, seed: int = 0, dtype: Any = np.float32
    ) -> Model:
        from engine.architecture import load_architecture_file

        doc = load_architecture_file(doc_or_path) if isinstance(doc_or_path, (str, os.PathLike)) else doc_or_path
        return cls(doc, seed=seed, dtype=dtype)

    # -- structure --------------------------------------------------------------------------------
    @property
    def softmax_head(self) -> bool:
        """True when the network ends in a softmax, so training can use the fused loss on logits."""
        last = self.layers[-1]
        return isinstance(last, Softmax) or (
            isinstance(last, ActivatedLayer) and last.config.get("activation") == "softmax"
        )

    def summary(self) -> str:
        return summary(self.analysis)

    def parameters(self) -> dict[str, np.ndarray]:
        return {f"{n}.{k}": v for n, layer in zip(self.names, self.layers) for k, v in layer.params.items()}

    def gradients(self) -> dict[str, np.ndarray]:
        return {f"{n}.{k}": v for n, layer in zip(self.names, self.layers) for k, v in layer.grads.items()}

    def state(self) -> dict[str, np.ndarray]:
        """Non-trainable tensors (batch-norm running statistics)."""
        return {f"{n}.{k}": v for n, layer in zip(self.names, self.layers) for k, v in layer.state.items()}

    def tensors(self) -> dict[str, np.ndarray]:
        """Every tensor a weight file holds, in layer order: parameters and state."""
        out: dict[str, np.ndarray] = {}
        for n, layer in zip(self.names, self.layers):
            out.update({f"{n}.{k}": v for k, v in layer.params.items()})
            out.update({f"{n}.{k}": v for k, v in layer.state.items()})
        return out

    def get_weights(self) -> dict[str, np.ndarray]:
        """A copy of every tensor: a snapshot that later training does not change."""
        return {k: v.copy() for k, v in self.tensors().items()}

    def set_weights(self, weights: dict[str, np.ndarray]) -> None:
        """Copy tensors in by name; every tensor of the model must be given with its exact shape."""
        from engine.errors import WeightsError

        own = self.tensors()
        for name, target in own.items():
            if name not in weights:
                raise WeightsError(f"tensor {name!r} is missing (expected shape {target.shape})")
            value = np.asarray(weights[name])
            if value.shape != target.shape:
                raise WeightsError(f"tensor {name!r} has shape {value.shape}, the model expects {target.shape}")
        extra = sorted(set(weights) - set(own))
        if extra:
            raise WeightsError(f"tensor {extra[0]!r} does not belong to this architecture")
        for name, target in own.items():
            target[...] = weights[name]

    # -- computation ------------------------------------------------------------------------------
    def _check_input(self, x: np.ndarray) -> np.ndarray:
        if x.ndim != 4 or tuple(x.shape[1:]) != tuple(self.input_shape):
            expected = ", ".join(map(str, self.input_shape))
            raise ValueError(f"input batch has shape {x.shape}, the model expects (N, {expected})")
        return x if x.dtype == self.dtype else x.astype(self.dtype)

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        """(N, H, W, C) -> network output, e.g. class probabilities (N, K)."""
        x = self._check_input(x)
        self._logits_mode = False
        for step in self._steps:
            x = step.forward(x, training)
        return x

    def forward_logits(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        """Like forward, but stops before a final softmax and returns the raw class scores."""
        x = self._check_input(x)
        if not self.softmax_head:
            return self.forward(x, training)
        self._logits_mode = True
        for step in self._steps[:-1]:
            x = step.forward(x, training)
        last = self.layers[-1]
        if isinstance(last, Softmax):
            return x
        return last.forward(x, training, logits=True)

    def backward(self, grad: np.ndarray, input_grad: bool = False) -> np.ndarray | None:
        """Backpropagate the gradient of the last forward call's output (or logits).

        Fills every layer's ``grads``; returns d_input when ``input_grad`` is set, else None.
        """
        self.layers[0].needs_input_grad = input_grad
        steps = self._steps
        if self._logits_mode and isinstance(steps[-1], Softmax):
            steps = steps[:-1]
        for step in reversed(steps):
            grad = step.backward(grad)
        self.layers[0].needs_input_grad = False
        return grad

    def predict(self, x: np.ndarray, batch_size: int = 256) -> np.ndarray:
        """Inference on any number of samples, in batches; returns the outputs (N, K)."""
        x = np.asarray(x)
        if x.ndim == 3:
            x = x[None]
        parts = [self.forward(x[i : i + batch_size]) for i in range(0, len(x), batch_size)]
        return np.concatenate(parts) if parts else np.zeros((0, *self.output_shape), self.dtype)

    def layer_outputs(self, x: np.ndarray) -> list[tuple[str, np.ndarray]]:
        """Every layer's output (inference mode) for a batch or one (H, W, C) image."""
        single = x.ndim == 3
        x = self._check_input(x[None] if single else x)
        outputs = []
        for name, layer in zip(self.names, self.layers):
            x = layer.forward(x, False)
            outputs.append((name, x[0].copy() if single else x.copy()))
        return outputs

    def input_gradient(self, x: np.ndarray, class_index: int | None = None) -> tuple[np.ndarray, int]:
        """Saliency: d(score of a class) / d(input) for one (H, W, C) image, by the engine's backward.

        The score is the class's logit (pre-softmax) when the network ends in a softmax. Returns
        (gradient (H, W, C), class index used: the predicted one unless given).
        """
        logits = self.forward_logits(x[None], training=False)
        if class_index is None:
            class_index = int(np.argmax(logits[0]))
        grad = np.zeros_like(logits)
        grad[0, class_index] = 1
        d_x = self.backward(grad, input_grad=True)
        return d_x[0], class_index


def probabilities(outputs: np.ndarray, model: Model) -> np.ndarray:
    """Class probabilities from a model's outputs (softmax is applied when the model has none)."""
    return outputs if model.softmax_head else softmax(outputs)


