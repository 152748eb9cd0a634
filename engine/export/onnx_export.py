"""The trained network as an ONNX model (opset 17) in inference form.

The graph takes the engine's input: "input", (N, H, W, C) float32 already normalized as the model's
``preprocessing`` says (kept in the model's metadata), with a symbolic batch dimension "N". It
transposes once to the NCHW layout ONNX operators expect, and back to (H, W, C) order before a
Flatten so Dense weights line up exactly as in the engine. The output is "probabilities" (N, K)
when the network ends in a softmax, else "outputs" with the engine's output shape.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

import engine
from engine.atomic import atomic_write
from engine.errors import EngineError
from engine.export.formats import ExportError, require
from engine.export.plan import LayerStep, build_plan, ends_in_softmax
from engine.model import Model

OPSET = 17
_INSTALL = "pip install onnx onnxruntime"
_TO_NCHW = [0, 3, 1, 2]
_TO_NHWC = [0, 2, 3, 1]
_ELEMENTWISE = {"relu": "Relu", "sigmoid": "Sigmoid", "tanh": "Tanh"}


class _GraphBuilder:
    """Collects nodes and initializers while walking the layers; tracks the current tensor's layout."""

    def __init__(self, helper: Any, numpy_helper: Any) -> None:
        self.helper = helper
        self.numpy_helper = numpy_helper
        self.nodes: list[Any] = []
        self.initializers: list[Any] = []
        self.current = "input"
        self.nchw = False  # True while the current tensor is a (N, C, H, W) feature map

    def tensor(self, name: str, value: np.ndarray) -> str:
        array = np.ascontiguousarray(np.asarray(value, dtype=np.float32))
        self.initializers.append(self.numpy_helper.from_array(array, name))
        return name

    def node(self, op: str, name: str, inputs: list[str], **attributes: Any) -> str:
        """Append one node reading ``inputs`` (the current tensor first); returns its output name."""
        output = f"{name}:{op}"
        self.nodes.append(self.helper.make_node(op, inputs, [output], name=output, **attributes))
        self.current = output
        return output

    def to_nchw(self, name: str) -> None:
        if not self.nchw:
            self.node("Transpose", name, [self.current], perm=_TO_NCHW)
            self.nchw = True

    def to_nhwc(self, name: str) -> None:
        if self.nchw:
            self.node("Transpose", name, [self.current], perm=_TO_NHWC)
            self.nchw = False

    def activation(self, name: str, kind: str | None, alpha: float | None = None) -> None:
        if kind is None:
            return
        if kind in _ELEMENTWISE:
            self.node(_ELEMENTWISE[kind], name, [self.current])
        elif kind == "leaky_relu":
            self.node("LeakyRelu", name, [self.current], alpha=float(0.01 if alpha is None else alpha))
        elif kind == "elu":
            self.node("Elu", name, [self.current], alpha=float(1.0 if alpha is None else alpha))
        elif kind == "softmax":
            # The engine's softmax runs over the last axis: channels, which sit on axis 1 in NCHW.
            self.node("Softmax", name, [self.current], axis=1 if self.nchw else -1)
        else:
            raise ExportError(f"layer {name}: activation {kind!r} has no ONNX form")


def _onnx_pads(pads: tuple[int, int, int, int]) -> list[int]:
    top, bottom, left, right = pads
    return [top, left, bottom, right]  # ONNX: all begins, then all ends


def _add_layer(g: _GraphBuilder, step: LayerStep) -> None:
    name, cfg, t = step.name, step.config, step.tensors
    if step.spatial and step.type != "Flatten":
        g.to_nchw(name)
    if step.type == "Conv2D":
        inputs = [g.current, g.tensor(f"{name}.weight", t["kernel"].transpose(3, 2, 0, 1))]  # OIHW
        if "bias" in t:
            inputs.append(g.tensor(f"{name}.bias", t["bias"]))
        k = cfg["kernel_size"]
        g.node("Conv", name, inputs, kernel_shape=[k, k], strides=[step.stride] * 2, pads=_onnx_pads(step.pads))
        g.activation(name, step.activation)
    elif step.type in ("MaxPool2D", "AvgPool2D"):
        k = cfg["pool_size"]
        attributes: dict[str, Any] = dict(kernel_shape=[k, k], strides=[step.stride] * 2,
                                          pads=_onnx_pads(step.pads), ceil_mode=0)
        if step.type == "AvgPool2D":
            # The engine divides by the full window, padded zeros included.
            g.node("AveragePool", name, [g.current], count_include_pad=1, **attributes)
        else:
            g.node("MaxPool", name, [g.current], **attributes)
    elif step.type == "GlobalAvgPool2D":
        g.node("GlobalAveragePool", name, [g.current])
        g.node("Flatten", name, [g.current], axis=1)
        g.nchw = False
    elif step.type == "Flatten":
        g.to_nhwc(name)  # the engine flattens in (H, W, C) order
        g.node("Flatten", name, [g.current], axis=1)
    elif step.type == "Dense":
        inputs = [g.current, g.tensor(f"{name}.weight", t["kernel"].T)]  # (units, in) for transB
        if "bias" in t:
            inputs.append(g.tensor(f"{name}.bias", t["bias"]))
        g.node("Gemm", name, inputs, transB=1)
        g.activation(name, step.activation)
    elif step.type == "BatchNorm":
        inputs = [g.current] + [
            g.tensor(f"{name}.{key}", t[key]) for key in ("gamma", "beta", "moving_mean", "moving_variance")
        ]
        g.node("BatchNormalization", name, inputs, epsilon=float(cfg["epsilon"]))
    elif step.type == "Dropout":
        g.node("Identity", name, [g.current])  # inference: dropout does nothing
    elif step.type in ("ReLU", "Sigmoid", "Tanh", "Softmax", "LeakyReLU", "ELU"):
        kind = {"ReLU": "relu", "LeakyReLU": "leaky_relu", "ELU": "elu"}.get(step.type, step.type.lower())
        g.activation(name, kind, cfg.get("alpha"))
    else:
        raise ExportError(f"layer {name}: {step.type} has no ONNX form yet")


def build_onnx_model(
    model: Model, weights: dict[str, np.ndarray] | None = None, class_names: list[str] | None = None
) -> Any:
    """The ``onnx.ModelProto`` of ``model`` (with the given tensor snapshot), checked by onnx's checker."""
    onnx = require("onnx", "Exporting ONNX", _INSTALL)
    helper, numpy_helper = onnx.helper, onnx.numpy_helper
    g = _GraphBuilder(helper, numpy_helper)
    steps = build_plan(model, weights)
    for step in steps:
        _add_layer(g, step)
    g.to_nhwc("output")
    output_name = "probabilities" if ends_in_softmax(steps) else "outputs"
    g.nodes.append(helper.make_node("Identity", [g.current], [output_name], name="output"))
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
