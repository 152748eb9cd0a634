"""A network built from an architecture document: a chain of layers or any graph of them.

Layers run in document order (each after its inputs). An output is held only until the last
layer taking it has run; backward runs in reverse and sums the gradients of an output that feeds
several layers. Runs of layers where each output feeds only the next layer are fused as in a
chain (engine/layers/fusion.py); a network that is one chain runs exactly as before.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from engine.architecture import INPUT_ID, Analysis, build_layer, summary, upgrade, validate
from engine.layers import Dropout, Layer, MergeLayer, Softmax
from engine.layers.activated import ActivatedLayer
from engine.layers.activations import softmax
from engine.layers.fusion import Step, fuse_counted
from engine.memory import check_model


@dataclass(frozen=True)
class _Node:
    """One step of a run plan: a layer or a fused run, the slots it reads and the slot it fills.

    Slot 0 holds the network's input, slot i + 1 the output of layer i. ``release`` are the
    slots this step is the last to read (forward drops them afterwards).
    """

    op: Step
    inputs: tuple[int, ...]
    output: int
    merge: bool
    first: Layer
    release: tuple[int, ...] = ()


class Model:
    """Layers in document order, each named as in the architecture (``conv2d_1``, ...).

    Parameters are exposed as ``"<layer name>.<param>"`` -> array (the live arrays: an optimizer
    updates them in place), in document order. Batches are (N, H, W, C) float32.
    """

    def __init__(self, architecture: dict[str, Any], seed: int = 0, dtype: Any = np.float32) -> None:
        self.analysis: Analysis = validate(architecture)
        # Refused here, before a single array is made, when the weights would not fit in memory.
        check_model(self.analysis)
        # Format 2, ids filled in: what weight files and exports record.
        self.architecture = upgrade(architecture)
        self.dtype = np.dtype(dtype)
        self.seed = seed
        self.input_shape = self.analysis.input_shape
        self.output_shape = self.analysis.output_shape
        infos = self.analysis.layers
        self.names = [info.name for info in infos]
        self.ids: list[str] = [str(info.id) for info in infos]
        # The ids each layer takes ("input" for the network's input).
        self.inputs: list[tuple[str, ...]] = [info.inputs for info in infos]
        self.layers: list[Layer] = [build_layer(spec, i) for i, spec in enumerate(architecture["layers"], 1)]
        self._logits_mode = False
        self.preprocessing: dict[str, Any] = {"scale": 1 / 255, "mean": None, "std": None}
        seeds = np.random.SeedSequence(seed)
        init_rng = np.random.default_rng(seeds.spawn(1)[0])
        for layer, info in zip(self.layers, infos):
            layer.build(info.input_shapes if isinstance(layer, MergeLayer) else info.input_shape, init_rng,
                        self.dtype)
            if isinstance(layer, Dropout):
                layer.rng = np.random.default_rng(seeds.spawn(1)[0])
            layer.trainable = info.trainable
        slot = {INPUT_ID: 0, **{layer_id: i + 1 for i, layer_id in enumerate(self.ids)}}
        self._slots = [tuple(slot[ref] for ref in refs) for refs in self.inputs]
        self._live = self._ancestors_of_output()
        # forward/backward run these: the live layers (those the output depends on), with fusable
        # runs fused. The last layer stays alone (forward_logits treats it specially).
        self._nodes = self._plan(fused=True)
        # Every live layer on its own, for activation_and_gradient.
        self._layer_steps = self._plan(fused=False)
        self._chain = all(node.inputs == (previous.output,) and not node.merge
                          for previous, node in zip([_Node(None, (), 0, False, None)] + self._nodes, self._nodes))
        self._steps = [node.op for node in self._nodes]
        # Layers reading the network's input compute an input gradient only for saliency maps.
        self._input_readers = [node.first for node in self._layer_steps if 0 in node.inputs and not node.merge]
        for layer in self._input_readers:
            layer.needs_input_grad = False
        self._plan_training_backward()

    def _plan_training_backward(self) -> None:
        """What a training backward may leave out: the steps whose outputs lead back to no trainable
        parameter. With a frozen backbone it stops at the first trainable layer, which then needs no
        input gradient either (``_cut``)."""
        learns = [False] * (len(self.layers) + 1)  # by slot: does a trainable parameter lie upstream?
        for i, layer in enumerate(self.layers):
            learns[i + 1] = (layer.trainable and bool(layer.params)) or any(learns[s] for s in self._slots[i])
        self._skip = frozenset(node.output for node in self._nodes if not learns[node.output])
        self._cut = [node.first for node in self._nodes if learns[node.output] and not node.merge
                     and 0 not in node.inputs and not any(learns[s] for s in node.inputs)]

    @classmethod
    def from_architecture(
        cls, doc_or_path: dict[str, Any] | str | os.PathLike, seed: int = 0, dtype: Any = np.float32
    ) -> Model:
        from engine.architecture import in_source, load_architecture_file
        from engine.errors import ArchitectureError, ResourceError

        if not isinstance(doc_or_path, (str, os.PathLike)):
            return cls(doc_or_path, seed=seed, dtype=dtype)
        doc = load_architecture_file(doc_or_path)
        try:
            return cls(doc, seed=seed, dtype=dtype)
        except ArchitectureError as exc:
            raise in_source(exc, doc_or_path) from None
        except ResourceError as exc:
            raise ResourceError(f"{doc_or_path}: {exc}") from None

    # -- the run plan ---------------------------------------------------------------------------------
    def _ancestors_of_output(self) -> list[int]:
        """Indices of the layers the output depends on (the output included), in document order."""
        live = {len(self.layers) - 1}
        for i in range(len(self.layers) - 1, -1, -1):
            if i in live:
                live.update(s - 1 for s in self._slots[i] if s)
        return sorted(live)

    def _plan(self, fused: bool) -> list[_Node]:
        live = set(self._live)
        readers = {s: 0 for s in range(len(self.layers) + 1)}
        for i in self._live:
            for s in set(self._slots[i]):
                readers[s] += 1
        last = len(self.layers) - 1
        nodes: list[_Node] = []
        position = 0
        while position < len(self._live):
            run = [self._live[position]]
            # Extend the run while the next layer takes only this one's output and nothing else does;
            # the output layer always runs alone.
            while fused and run[-1] + 1 < last and run[-1] + 1 in live and readers[run[-1] + 1] == 1 \
                    and self._slots[run[-1] + 1] == (run[-1] + 1,):
                run.append(run[-1] + 1)
            pieces = fuse_counted([self.layers[i] for i in run]) if fused else [(self.layers[run[0]], 1)]
            start = 0
            for op, size in pieces:
                first, end = run[start], run[start + size - 1]
                nodes.append(_Node(op, self._slots[first], end + 1, isinstance(self.layers[first], MergeLayer),
                                   self.layers[first]))
                start += size
            position += len(run)
        last_reader: dict[int, int] = {}
        for k, node in enumerate(nodes):
            for s in node.inputs:
                last_reader[s] = k
        return [_Node(node.op, node.inputs, node.output, node.merge, node.first,
                      tuple(s for s in dict.fromkeys(node.inputs) if last_reader[s] == k))
                for k, node in enumerate(nodes)]

    # -- structure --------------------------------------------------------------------------------
    @property
    def softmax_head(self) -> bool:
        """True when the network ends in a softmax, so training can use the fused loss on logits."""
        last = self.layers[-1]
        return isinstance(last, Softmax) or (
            isinstance(last, ActivatedLayer) and last.config.get("activation") == "softmax"
        )

    @property
    def is_chain(self) -> bool:
        """True when every layer takes the one before it: the network has no branches."""
        return self.analysis.is_chain

    @property
    def consumers(self) -> dict[str, tuple[str, ...]]:
        """Each id ("input" included) -> the ids of the layers taking its output."""
        return dict(self.analysis.consumers)

    @property
    def live_layers(self) -> tuple[int, ...]:
        """Indices of the layers the output depends on; the others are unused branches, which
        forward and backward skip (``layer_outputs`` still shows them)."""
        return tuple(self._live)

    @property
    def frozen_layers(self) -> tuple[str, ...]:
        """Names of the layers the document marks ``"trainable": false``."""
        return tuple(info.name for info in self.analysis.layers if not info.trainable)

    def index_of(self, layer: str) -> int:
        """The 0-based position of the layer with this name (or id); ValueError if there is none."""
        if layer in self.names:
            return self.names.index(layer)
        if layer in self.ids:
            return self.ids.index(layer)
        raise ValueError(f"the network has no layer named {layer!r} (layers: {', '.join(self.names)})")

    def summary(self) -> str:
        return summary(self.analysis)

    def parameters(self) -> dict[str, np.ndarray]:
        return {f"{n}.{k}": v for n, layer in zip(self.names, self.layers) for k, v in layer.params.items()}

    def trainable_parameters(self) -> dict[str, np.ndarray]:
        """The parameters an optimizer updates: those of the layers not frozen ("trainable": false)."""
        return {f"{n}.{k}": v for n, layer in zip(self.names, self.layers) if layer.trainable
                for k, v in layer.params.items()}

    def trainable_gradients(self) -> dict[str, np.ndarray]:
        """The gradients of ``trainable_parameters`` (a frozen layer's may be stale: nothing reads them)."""
        return {f"{n}.{k}": v for n, layer in zip(self.names, self.layers) if layer.trainable
                for k, v in layer.grads.items()}

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

    @staticmethod
    def _arguments(node: _Node, values: list[Any]) -> Any:
        return [values[s] for s in node.inputs] if node.merge else values[node.inputs[0]]

    def _run(self, nodes: Sequence[_Node], x: np.ndarray, training: bool, keep: bool = False) -> list[Any]:
        """Forward through ``nodes``; returns the slots (outputs dropped after their last reader
        unless ``keep``)."""
        values: list[Any] = [None] * (len(self.layers) + 1)
        values[0] = x
        for node in nodes:
            out = node.op.forward(self._arguments(node, values), training)
            if not keep:
                for s in node.release:
                    values[s] = None
            values[node.output] = out
        return values

    def _head(self, node: _Node, values: list[Any], training: bool) -> np.ndarray:
        """The output layer in logits mode: its raw class scores."""
        if isinstance(node.op, Softmax):
            return values[node.inputs[0]]
        return node.op.forward(self._arguments(node, values), training, logits=True)

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        """(N, H, W, C) -> network output, e.g. class probabilities (N, K)."""
        x = self._check_input(x)
        self._logits_mode = False
        if self._chain:
            for step in self._steps:
                x = step.forward(x, training)
            return x
        return self._run(self._nodes, x, training)[self._nodes[-1].output]

    def forward_logits(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        """Like forward, but stops before a final softmax and returns the raw class scores."""
        x = self._check_input(x)
        if not self.softmax_head:
            return self.forward(x, training)
        self._logits_mode = True
        if self._chain:
            for step in self._steps[:-1]:
                x = step.forward(x, training)
            last = self.layers[-1]
            if isinstance(last, Softmax):
                return x
            return last.forward(x, training, logits=True)
        return self._head(self._nodes[-1], self._run(self._nodes[:-1], x, training), training)

    def backward(self, grad: np.ndarray, input_grad: bool = False) -> np.ndarray | None:
        """Backpropagate the gradient of the last forward call's output (or logits).

        Fills every layer's ``grads``; returns d_input when ``input_grad`` is set, else None.
        """
        # Frozen layers that feed no trainable one need no backward in training (saliency needs it all).
        skip = self._skip if not input_grad else frozenset()
        for layer in (*self._input_readers, *self._cut):
            layer.needs_input_grad = input_grad
        try:
            skip_softmax = self._logits_mode and isinstance(self._steps[-1], Softmax)
            if self._chain:
                nodes = self._nodes[:-1] if skip_softmax else self._nodes
                for node in reversed(nodes):
                    if node.output in skip:
                        return None  # in a chain every step before this one is frozen too
                    grad = node.op.backward(grad)
                return grad
            nodes = self._nodes[:-1] if skip_softmax else self._nodes
            start = self._nodes[-1].inputs[0] if skip_softmax else self._nodes[-1].output
            grads = self._back(nodes, start, grad, input_grad, skip=skip)
            return grads[0] if input_grad else None
        finally:
            for layer in self._input_readers:
                layer.needs_input_grad = False
            for layer in self._cut:
                layer.needs_input_grad = layer not in self._input_readers

    def _back(self, nodes: Sequence[_Node], start: int, grad: np.ndarray, input_grad: bool,
              stop: int | None = None, skip: frozenset[int] = frozenset()) -> list[Any]:
        """Backward through ``nodes`` from ``grad`` at slot ``start``; gradients reaching one slot from
        several readers are summed. Stops before the node filling slot ``stop``, if given; leaves out
        the nodes filling the slots in ``skip``."""
        grads: list[Any] = [None] * (len(self.layers) + 1)
        owned = [False] * len(grads)  # the sum is an array of our own, to add into in place
        grads[start] = grad
        for node in reversed(nodes):
            if node.output == stop:
                break
            g, grads[node.output] = grads[node.output], None
            if g is None or node.output in skip:
                continue
            result = node.op.backward(g)
            for s, d in zip(node.inputs, result) if node.merge else ((node.inputs[0], result),):
                if d is None or (s == 0 and not input_grad):
                    continue
                if grads[s] is None:
                    grads[s] = d
                elif owned[s]:
                    grads[s] += d
                else:
                    grads[s], owned[s] = grads[s] + d, True
        return grads

    def predict(self, x: np.ndarray, batch_size: int = 256) -> np.ndarray:
        """Inference on any number of samples, in batches; returns the outputs (N, K)."""
        x = np.asarray(x)
        if x.ndim == 3:
            x = x[None]
        parts = [self.forward(x[i : i + batch_size]) for i in range(0, len(x), batch_size)]
        return np.concatenate(parts) if parts else np.zeros((0, *self.output_shape), self.dtype)

    def layer_outputs(self, x: np.ndarray) -> list[tuple[str, np.ndarray]]:
        """Every layer's output (inference mode, merge layers and unused branches included) for a
        batch or one (H, W, C) image, in document order."""
        single = x.ndim == 3
        values: list[Any] = [self._check_input(x[None] if single else x)]
        for layer, slots in zip(self.layers, self._slots):
            values.append(layer.forward([values[s] for s in slots] if isinstance(layer, MergeLayer)
                                        else values[slots[0]], False))
        return [(name, out[0].copy() if single else out.copy()) for name, out in zip(self.names, values[1:])]

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

    def activation_and_gradient(self, image: np.ndarray, layer_name: str,
                                class_index: int | None = None) -> tuple[np.ndarray, np.ndarray, int]:
        """One layer's output for one (H, W, C) image and d(class score)/d(that output) (for Grad-CAM).

        The score is the class's logit (pre-softmax) when the network ends in a softmax; the class
        is the predicted one unless given. Returns (activation, gradient, class index), both arrays
        shaped like the layer's output for one image, e.g. (h, w, c). For the output layer itself
        the activation is the class scores and the gradient picks the class. Runs every layer
        unfused in inference mode; like ``input_gradient`` it overwrites the parameter gradients.
        """
        target = self.index_of(layer_name)
        x = self._check_input(np.asarray(image)[None])
        nodes = self._layer_steps
        values = self._run(nodes[:-1], x, training=False, keep=True)
        head = nodes[-1]
        logits = self._head(head, values, False) if self.softmax_head else head.op.forward(
            self._arguments(head, values), False)
        scores = logits.reshape(1, -1)
        if class_index is None:
            class_index = int(np.argmax(scores[0]))
        if not 0 <= class_index < scores.shape[1]:
            raise ValueError(f"class index {class_index} is out of range (the network has {scores.shape[1]} outputs)")
        grad = np.zeros_like(logits)
        grad.reshape(1, -1)[0, class_index] = 1
        if target == len(self.layers) - 1:
            return logits[0].copy(), grad[0], class_index
        if target not in self._live:  # an unused branch: the score does not depend on it
            activation = dict(self.layer_outputs(np.asarray(image)))[self.names[target]]
            return activation, np.zeros_like(activation), class_index
        skip_softmax = self.softmax_head and isinstance(head.op, Softmax)
        grads = self._back(nodes[:-1] if skip_softmax else nodes, head.inputs[0] if skip_softmax else head.output,
                           grad, input_grad=False, stop=target + 1)
        return values[target + 1][0].copy(), np.array(grads[target + 1][0], copy=True), class_index


def probabilities(outputs: np.ndarray, model: Model) -> np.ndarray:
    """Class probabilities from a model's outputs (softmax is applied when the model has none)."""
    return outputs if model.softmax_head else softmax(outputs)
