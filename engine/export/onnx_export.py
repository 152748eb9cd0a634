"""The trained network as an ONNX model (opset 17) in inference form.

The graph takes the engine's input: "input", (N, H, W, C) float32 already normalized as the model's
``preprocessing`` says (kept in the model's metadata), with a symbolic batch dimension "N". It
transposes once to the NCHW layout ONNX operators expect, and back to (H, W, C) order before a
Flatten so Dense weights line up exactly as in the engine. Each layer's nodes come from its
export rules (engine/export/rules.py); branches become Add and Concat nodes. The output is "probabilities" (N, K)
when the network ends in a softmax, else "outputs" with the engine's output shape.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

import engine
from engine.architecture import INPUT_ID
from engine.atomic import atomic_write
from engine.errors import EngineError
from engine.export.formats import ExportError, require
from engine.export.plan import build_plan, ends_in_softmax
from engine.export.rules import rules_for
from engine.model import Model

OPSET = 17
_INSTALL = "pip install onnx onnxruntime"
_TO_NCHW = [0, 3, 1, 2]
_TO_NHWC = [0, 2, 3, 1]
_ELEMENTWISE = {"relu": "Relu", "sigmoid": "Sigmoid", "tanh": "Tanh"}


class OnnxGraph:
    """Collects nodes and initializers while the layers' rules (engine/export/rules.py) add theirs.

    Tensors are named by the node that makes them; feature maps are (N, C, H, W), vectors (N, F).
    """

    def __init__(self, helper: Any, numpy_helper: Any) -> None:
        self.helper = helper
        self.numpy_helper = numpy_helper
        self.nodes: list[Any] = []
        self.initializers: list[Any] = []
        self._names: set[str] = set()

    def initializer(self, name: str, value: np.ndarray) -> str:
        array = np.ascontiguousarray(np.asarray(value, dtype=np.float32))
        self.initializers.append(self.numpy_helper.from_array(array, name))
        return name

    def node(self, op: str, layer: str, inputs: list[str], **attributes: Any) -> str:
        """Append one node of ``layer`` reading ``inputs``; returns its output's name."""
        output, n = f"{layer}:{op}", 2
        while output in self._names:
            output, n = f"{layer}:{op}_{n}", n + 1
        self._names.add(output)
        self.nodes.append(self.helper.make_node(op, inputs, [output], name=output, **attributes))
        return output

    def to_nchw(self, layer: str, x: str) -> str:
        return self.node("Transpose", layer, [x], perm=_TO_NCHW)

    def to_nhwc(self, layer: str, x: str) -> str:
        return self.node("Transpose", layer, [x], perm=_TO_NHWC)

    def activation(self, layer: str, x: str, kind: str | None, alpha: float | None = None, rank: int = 1,
                   alone: bool = False) -> str:
        """``kind`` applied to ``x`` (a tensor of ``rank`` engine axes); ``alone``: an activation layer,
        which with no activation still needs a node of its own."""
        if kind is None:
            return self.node("Identity", layer, [x]) if alone else x
        if kind in _ELEMENTWISE:
            return self.node(_ELEMENTWISE[kind], layer, [x])
        if kind == "leaky_relu":
            return self.node("LeakyRelu", layer, [x], alpha=float(0.01 if alpha is None else alpha))
        if kind == "elu":
            return self.node("Elu", layer, [x], alpha=float(1.0 if alpha is None else alpha))
        if kind == "softmax":
            # The engine's softmax runs over the last axis: channels, which sit on axis 1 in NCHW.
            return self.node("Softmax", layer, [x], axis=1 if rank == 3 else -1)
        raise ExportError(f"layer {layer}: activation {kind!r} has no ONNX form")


def build_onnx_model(
    model: Model, weights: dict[str, np.ndarray] | None = None, class_names: list[str] | None = None
) -> Any:
    """The ``onnx.ModelProto`` of ``model`` (with the given tensor snapshot), checked by onnx's checker."""
    onnx = require("onnx", "Exporting ONNX", _INSTALL)
    helper, numpy_helper = onnx.helper, onnx.numpy_helper
    g = OnnxGraph(helper, numpy_helper)
    steps = build_plan(model, weights)
    tensors = {INPUT_ID: g.to_nchw("input", "input")}
    for step in steps:
        if step.live:  # a branch the output does not use has nothing to contribute
            tensors[step.id] = rules_for(step.type).onnx(g, step, [tensors[i] for i in step.inputs])
    result = tensors[steps[-1].id]
    if len(model.output_shape) == 3:
        result = g.to_nhwc("output", result)
    output_name = "probabilities" if ends_in_softmax(steps) else "outputs"
    g.nodes.append(helper.make_node("Identity", [result], [output_name], name="output"))
    graph = helper.make_graph(
        g.nodes,
        "cnn_studio_model",
        [helper.make_tensor_value_info("input", onnx.TensorProto.FLOAT, ["N", *model.input_shape])],
        [helper.make_tensor_value_info(output_name, onnx.TensorProto.FLOAT, ["N", *model.output_shape])],
        initializer=g.initializers,
    )
    opset = [helper.make_opsetid("", OPSET)]
    proto = helper.make_model(graph, opset_imports=opset, producer_name="CNN Studio",
                              producer_version=engine.__version__)
    proto.ir_version = helper.find_min_ir_version_for(opset)
    proto.doc_string = (
        "Exported by CNN Studio. Input: (N, H, W, C) float32, normalized as the 'preprocessing' metadata "
        "says ((pixel * scale - mean) / std per channel). Output: " + output_name + "."
    )
    metadata = {
        "architecture": json.dumps(model.architecture),
        "preprocessing": json.dumps(model.preprocessing),
        "input_layout": "NHWC",
    }
    if class_names:
        metadata["class_names"] = json.dumps(list(class_names))
    helper.set_model_props(proto, metadata)
    try:
        onnx.checker.check_model(proto, full_check=True)
    except onnx.checker.ValidationError as exc:  # a bug in this exporter, never the user's doing
        raise ExportError(f"the ONNX graph failed onnx's checker: {exc}") from None
    return proto


def export_onnx(
    model: Model,
    path: str | os.PathLike,
    weights: dict[str, np.ndarray] | None = None,
    class_names: list[str] | None = None,
) -> Path:
    """Write the ONNX model atomically; returns the path."""
    path = Path(path)
    data = build_onnx_model(model, weights, class_names).SerializeToString()
    with atomic_write(path) as handle:
        handle.write(data)
    return path


def run_onnx(path: str | os.PathLike, x: np.ndarray) -> np.ndarray:
    """Run an exported model with ONNX Runtime on a normalized (N, H, W, C) batch; returns its output."""
    ort = require("onnxruntime", "Running ONNX models", "pip install onnxruntime")
    try:
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        return session.run(None, {"input": np.ascontiguousarray(x, dtype=np.float32)})[0]
    except Exception as exc:  # onnxruntime's own exception types are not importable by a stable name
        raise ExportError(f"{path}: ONNX Runtime cannot run it ({exc})") from None


def max_difference(model: Model, path: str | os.PathLike, x: np.ndarray) -> float:
    """Largest absolute difference between ONNX Runtime's and the engine's outputs on a batch."""
    try:
        expected = model.predict(x)
    except (ValueError, EngineError) as exc:
        raise ExportError(f"cannot compare the ONNX model: {exc}") from None
    return float(np.max(np.abs(run_onnx(path, x) - expected))) if len(x) else 0.0
