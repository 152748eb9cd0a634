"""ONNX graph -> engine architecture document and tensors, node by node.

The walk keeps, for every ONNX tensor, either its value (an initializer, a Constant node, or
anything computed from constants alone: shape arithmetic is folded with onnx's reference
evaluator) or a ``Value``: the engine layer that produces it and how ONNX's channels-first view
of it maps onto the engine's channels-last one. Each supported node adds an engine layer, joins
its neighbour (a bias Add into the Dense a MatMul made; a ReLU into the Conv before it when
nothing else reads the Conv) or only changes the view (Transpose, Identity, Flatten of a
vector). Every node that cannot be expressed is collected with its reason, so one message can
name them all.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from engine.architecture import FORMAT, build_layer, default_name
from engine.errors import ArchitectureError
from engine.layers import LAYER_TYPES
from engine.onnx_import.loading import opset_version
from engine.onnx_import.ops import HANDLERS, attributes, form_problem, missing_layer
from engine.onnx_import.values import Unsupported, Value

_FLOAT = 1  # TensorProto.FLOAT
# Nodes that compute without reading data are folded only when every input is known.
# Operators whose node is a module of its own (it holds the weights), named by its module path alone.
_WEIGHTED = {"Conv", "Gemm", "MatMul", "BatchNormalization"}
_NO_FOLD = {"RandomNormal", "RandomUniform", "RandomNormalLike", "RandomUniformLike", "Multinomial", "Bernoulli"}
# CNN Studio's own exporter (engine/export/onnx_export.py, OnnxGraph.node) names every node
# "<layer name>:<operator>", "<layer name>:<operator>_2" for a layer's second node of one operator.
_EXPORTED_NODE = re.compile(r"(?P<layer>[A-Za-z_][0-9A-Za-z_]*):(?P<op>[A-Za-z][0-9A-Za-z]*)(?:_\d+)?")


@dataclass
class Converted:
    """What the walk produced: the document, tensors by "<layer>.<param>", and what to tell the user."""

    architecture: dict[str, Any]
    tensors: dict[str, np.ndarray]
    input_layout: str
    notes: list[str] = field(default_factory=list)


@dataclass
class Problem:
    """A node that cannot be imported (its operator, name and why), or with ``op`` "" a problem of the
    model as a whole (its inputs or outputs), whose reason is then a whole clause about the model."""

    op: str
    name: str
    reason: str

    @property
    def whole_model(self) -> bool:
        return not self.op

    def __str__(self) -> str:
        return self.reason if self.whole_model else f"{self.op} {self.name!r} ({self.reason})"


class Converter:
    """One ONNX model's conversion; ``run`` returns a Converted or the list of problems."""

    def __init__(self, model: Any) -> None:
        from onnx import numpy_helper

        self.onnx_model = model
        self.graph = model.graph
        self.opset = opset_version(model)
        self.to_array = numpy_helper.to_array
        self.constants: dict[str, np.ndarray] = {t.name: self.to_array(t) for t in self.graph.initializer}
        self.values: dict[str, Value] = {}
        self.poisoned: set[str] = set()
        self.problems: list[Problem] = []
        self.notes: list[str] = []
        self.specs: dict[str, dict[str, Any]] = {}  # layer id -> spec (settings, "inputs")
        self.layer_tensors: dict[str, dict[str, np.ndarray]] = {}
        self.tensor_names: dict[str, list[str]] = {}  # layer id -> ONNX tensors that hold its output
        self.names: set[str] = {"input"}
        self.type_counts: Counter[str] = Counter()
        self.batch = 1
        self.nodes = self._reachable_nodes()
        self.consumers: Counter[str] = Counter(i for node in self.nodes for i in node.input if i)
        self.consumers.update(o.name for o in self.graph.output)
        # Reads by nodes whose output is the same layer's output again (views, absorbed biases and
        # activations): the layer's output still has only the readers of the newer tensor.
        self.passed_on: Counter[str] = Counter()

    # -- the walk ------------------------------------------------------------------------------
    def run(self) -> Converted | list[Problem]:
        layout = self._read_input()
        for index, node in enumerate(self.nodes):
            self._convert(node, index)
        if not self.problems:
            self._check_output()
        if self.problems:
            return self.problems
        return Converted(self._document(), self._tensors(), layout, self.notes)

    def _reachable_nodes(self) -> list[Any]:
        producer = {o: node for node in self.graph.node for o in node.output if o}
        wanted: set[int] = set()
        stack = [o.name for o in self.graph.output]
        while stack:
            node = producer.get(stack.pop())
            if node is None or id(node) in wanted:
                continue
            wanted.add(id(node))
            stack.extend(i for i in node.input if i)
        return [node for node in self.graph.node if id(node) in wanted]

    def _read_input(self) -> str:
        inputs = [i for i in self.graph.input if i.name not in self.constants]
        if len(inputs) != 1:
            names = ", ".join(repr(i.name) for i in inputs)
            self.problems.append(Problem("", "inputs", f"it has {len(inputs)} data inputs ({names}); the engine's "
                                         "networks take one batch of images" if inputs else "it has no data input"))
            self.poisoned.update(i.name for i in inputs)
            return "NCHW"
        graph_input = inputs[0]
        tensor_type = graph_input.type.tensor_type
        dims = [d.dim_value if d.HasField("dim_value") else None for d in tensor_type.shape.dim]
        shown = "(" + ", ".join(str(d.dim_value) if d.HasField("dim_value") else (d.dim_param or "?")
                                for d in tensor_type.shape.dim) + ")"
        fail = None
        if tensor_type.elem_type != _FLOAT:
            fail = f"its input {graph_input.name!r} is {_type_name(tensor_type.elem_type)}, not float32"
        elif len(dims) != 4:
            fail = (f"its input {graph_input.name!r} is {shown}, {len(dims)} dimensions; the engine's networks take "
                    "images, (N, C, H, W) or (N, H, W, C)")
        elif any(d is None or d < 1 for d in dims[1:]):
            fail = (f"its input {graph_input.name!r} is {shown}: the height, width and channels must be fixed "
                    "numbers (export it with one image size; only the batch may vary)")
        if fail:
            self.problems.append(Problem("", graph_input.name, fail))
            self.poisoned.add(graph_input.name)
            return "NCHW"
        self.batch = dims[0] if dims[0] else 1
        readers = [node for node in self.nodes if graph_input.name in node.input]
        # A Keras model (through tf2onnx) takes channels-last images and transposes them first thing.
        nhwc = bool(readers) and all(
            node.op_type == "Transpose" and list(attributes(node).get("perm", [])) == [0, 3, 1, 2] for node in readers)
        per_sample = tuple(int(d) for d in dims[1:])
        # Each note is a whole sentence: the CLI prints them one a line, the studio as a list.
        if nhwc:
            shape = per_sample
            self.notes.append(f"The input {graph_input.name!r} takes (N, {', '.join(map(str, per_sample))}) images "
                              "channels last, as the engine does, so they go in unchanged.")
        else:
            c, h, w = per_sample
            shape = (h, w, c)
            self.notes.append(f"The input {graph_input.name!r} takes (N, {c}, {h}, {w}) images, channels first; "
                              f"the imported network takes them channels last, as (N, {h}, {w}, {c}).")
        self.input_shape = shape
        self.values[graph_input.name] = Value("input", shape, "nhwc" if nhwc else "nchw", per_sample)
        return "NHWC" if nhwc else "NCHW"

    def _convert(self, node: Any, index: int) -> None:
        name = node.name or f"{node.op_type}_{index}"
        inputs = [i for i in node.input if i]
        if any(i in self.poisoned for i in inputs):
            # What this node reads is unknown, but some nodes are refused whatever they read.
            self.poisoned.update(node.output)
            missing = missing_layer(node, [i for i in inputs if i not in self.constants])
            if node.op_type not in HANDLERS and node.domain in ("", "ai.onnx"):
                self.problems.append(Problem(node.op_type, name, "not supported"))
            elif missing:
                self.problems.append(Problem(node.op_type, name, f"the engine has no {missing} layer"))
            elif (reason := form_problem(self, node)) is not None:
                self.problems.append(Problem(node.op_type, name, reason))
            return
        if node.domain not in ("", "ai.onnx"):
            self._fail(node, name, f"operator of the {node.domain!r} domain")
            return
        if all(i in self.constants for i in inputs) and node.op_type not in _NO_FOLD and (
                inputs or node.op_type == "Constant"):
            try:
                self._fold(node)
            except Exception as exc:  # the reference evaluator's own errors
                self._fail(node, name, f"cannot be evaluated: {' '.join(str(exc).split())[:120]}")
            return
        handler = HANDLERS.get(node.op_type)
        if handler is None:
            self._fail(node, name, "not supported")
            return
        try:
            handler(self, node, name)
        except Unsupported as exc:
            self._fail(node, name, str(exc))

    def _fail(self, node: Any, name: str, reason: str) -> None:
        self.problems.append(Problem(node.op_type, name, reason))
        self.poisoned.update(node.output)

    def _fold(self, node: Any) -> None:
        from onnx import helper
        from onnx.reference import ReferenceEvaluator

        inputs = [i for i in node.input if i]
        graph = helper.make_graph(
            [node], "fold", [helper.make_tensor_value_info(i, helper.np_dtype_to_tensor_dtype(self.constants[i].dtype),
                                                           None) for i in inputs],
            [helper.make_tensor_value_info(o, 0, None) for o in node.output if o])
        model = helper.make_model(graph, opset_imports=list(self.onnx_model.opset_import))
        results = ReferenceEvaluator(model).run(None, {i: self.constants[i] for i in inputs})
        for output, value in zip([o for o in node.output if o], results):
            self.constants[output] = np.asarray(value)

    # -- helpers the handlers use ----------------------------------------------------------------
    def value(self, node: Any, position: int = 0) -> Value:
        name = node.input[position] if position < len(node.input) else ""
        if name in self.constants:
            raise Unsupported(f"input {position + 1} is a constant where the engine needs data")
        if name not in self.values:
            raise Unsupported(f"input {name!r} is not known")
        return self.values[name]

    def constant(self, node: Any, position: int, what: str, required: bool = True) -> np.ndarray | None:
        name = node.input[position] if position < len(node.input) else ""
        if not name:
            if required:
                raise Unsupported(f"{what} is missing")
            return None
        if name not in self.constants:
            raise Unsupported(f"{what} is computed from data; the engine needs it fixed")
        return self.constants[name]

    def feature_map(self, node: Any, position: int = 0) -> Value:
        """The input as a channels-first feature map, as ONNX's convolution and pooling read it."""
        v = self.value(node, position)
        if v.layout != "nchw":
            raise Unsupported(f"expects a (C, H, W) feature map, not a {v.describe()} tensor")
        return v

    def emit(self, node: Any, name: str, type_name: str, sources: list[Value], settings: dict[str, Any],
             tensors: dict[str, np.ndarray] | None = None) -> str:
        """Add an engine layer reading ``sources``; returns its id (also its name)."""
        if type_name not in LAYER_TYPES:
            raise Unsupported(f"the engine has no {type_name} layer")
        spec = {"type": type_name, **settings}
        try:
            build_layer(spec, len(self.specs) + 1)
        except ArchitectureError as exc:
            raise Unsupported(str(exc.message).split(": ", 1)[-1]) from None
        layer_id = self._unique_name(node, name, type_name)
        self.specs[layer_id] = {"id": layer_id, "name": layer_id, **spec, "inputs": [s.layer for s in sources]}
        self.layer_tensors[layer_id] = {k: np.ascontiguousarray(v, dtype=np.float32)
                                        for k, v in (tensors or {}).items()}
        self.tensor_names[layer_id] = []
        return layer_id

    def bind(self, output: str, value: Value, passes: str | None = None) -> None:
        """``output`` holds ``value``; ``passes`` (when given) is the tensor it was made from without a
        new layer, whose read passes on to ``output``'s readers."""
        self.values[output] = value
        if value.layer in self.tensor_names:
            self.tensor_names[value.layer].append(output)
        if passes is not None:
            self.passed_on[passes] += 1

    def sole_reader(self, node: Any, value: Value) -> bool:
        """Whether ``node`` is the only reader of every tensor holding ``value``'s layer output, so the
        layer itself may absorb the node (a bias, an activation)."""
        if value.layer not in self.specs:
            return False
        names = self.tensor_names[value.layer]
        reads = sum(self.consumers[n] - self.passed_on[n] for n in names)
        return reads == sum(1 for i in node.input if i in names)

    def _unique_name(self, node: Any, name: str, type_name: str) -> str:
        # A CNN Studio export gets its layers' own names back (the first layer made from a layer's nodes:
        # the one with its weights, whose tensor names then match too); the others are read as any name.
        exported = _exported_layer_name(name, node.op_type)
        if exported and exported not in self.names:
            self.names.add(exported)
            return exported
        candidate = _readable(name, node.op_type)
        if candidate and not candidate[0].isdigit() and candidate in self.names:
            base, count = candidate, 2
            while candidate in self.names:
                candidate, count = f"{base}_{count}", count + 1
        if not candidate or candidate[0].isdigit():
            while True:
                self.type_counts[type_name] += 1
                candidate = default_name(type_name, self.type_counts[type_name])
                if candidate not in self.names:
                    break
        self.names.add(candidate)
        return candidate

    # -- the result ------------------------------------------------------------------------------
    def _check_output(self) -> None:
        outputs = list(self.graph.output)
        if len(outputs) != 1:
            names = ", ".join(repr(o.name) for o in outputs)
            self.problems.append(Problem("", "outputs", f"it has {len(outputs)} outputs ({names}); the engine's "
                                         "networks have one (export the classifier's output alone)"))
            return
        out = outputs[0].name
        if out in self.constants:
            self.problems.append(Problem("", out, f"its output {out!r} does not depend on the input"))
            return
        v = self.values[out]
        if v.layer == "input":
            self.problems.append(Problem("", out, f"its output {out!r} is its input: the network has no layers"))
        elif v.order is not None:
            self.problems.append(Problem("", out, f"its output {out!r} is a feature map flattened channels first; "
                                         "the engine flattens (H, W, C)"))
        elif v.layout == "nchw" and v.size != v.shape[-1]:
            h, w, c = v.shape
            self.notes.append(f"The output {out!r} is ({c}, {h}, {w}) per image in the ONNX model; the imported "
                              f"network gives ({h}, {w}, {c}).")
        self.output_layer = v.layer

    def _document(self) -> dict[str, Any]:
        """The layers the output depends on, each after its inputs, the output last."""
        order: list[str] = []
        seen: set[str] = set()

        def visit(layer_id: str) -> None:
            stack = [(layer_id, False)]
            while stack:
                current, done = stack.pop()
                if done:
                    order.append(current)
                    continue
                if current in seen or current == "input":
                    continue
                seen.add(current)
                stack.append((current, True))
                stack.extend((i, False) for i in reversed(self.specs[current]["inputs"]))

        visit(self.output_layer)
        layers = []
        previous = "input"
        for layer_id in order:
            spec = dict(self.specs[layer_id])
            if spec["inputs"] == [previous]:
                del spec["inputs"]  # a chain needs no links
            layers.append(spec)
            previous = layer_id
        self.order = order
        return {"format": FORMAT, "input": {"shape": list(self.input_shape)}, "layers": layers}

    def _tensors(self) -> dict[str, np.ndarray]:
        return {f"{layer_id}.{key}": value for layer_id in self.order
                for key, value in self.layer_tensors[layer_id].items()}


def _type_name(elem_type: int) -> str:
    """'int64', 'float16', ... for an ONNX element type."""
    from onnx import TensorProto

    try:
        return TensorProto.DataType.Name(elem_type).lower()
    except ValueError:
        return f"of element type {elem_type}"


def _exported_layer_name(node_name: str, op_type: str) -> str:
    """The engine layer name a node of CNN Studio's own export carries ("relu_7:Relu" -> "relu_7"), or ""
    for any other node name (another exporter's, or a layer name the importer could not use as it is)."""
    match = _EXPORTED_NODE.fullmatch(node_name)
    return match["layer"] if match and match["op"] == op_type else ""


def _readable(node_name: str, op_type: str) -> str:
    """A layer name from an exporter's node name: "/layer1/layer1.0/conv1/Conv" -> "layer1_0_conv1",
    "sequential/dense/MatMul" -> "sequential_dense". A node without weights of its own (an activation,
    a pooling, an Add) may be a function called inside a bigger module, so its operator is kept:
    "/layer1/Relu" -> "layer1_relu"."""
    parts = [p for p in re.split(r"[/:]", node_name) if p]
    dropped = len(parts) > 1 and (parts[-1].split("_")[0] in (op_type, "Conv2D", "BiasAdd", "MatMul", "Add", "Relu")
                                  or parts[-1].lower().startswith(op_type.lower()))
    if dropped:
        parts = parts[:-1]
    kept = [p for i, p in enumerate(parts) if not (i + 1 < len(parts) and parts[i + 1].startswith(p + "."))]
    if dropped and op_type not in _WEIGHTED:
        kept.append(op_type.lower())
    text = re.sub(r"[^0-9A-Za-z_]+", "_", "_".join(kept)).strip("_")
    return text[:60]
