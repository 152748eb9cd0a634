"""ONNX graphs shaped the way tf2onnx writes Keras models, built with onnx.helper (no TensorFlow here).

tf2onnx keeps the Keras input channels last and transposes it once to channels first; spells 'same'
padding as explicit pads (or auto_pad SAME_UPPER) with the odd pixel after; leaves AveragePool's
count_include_pad at ONNX's default 0 (Keras averages real pixels only); transposes back to
channels last before Keras' Flatten (a Reshape to (-1, features)); writes Dense as MatMul + Add;
global average pooling as ReduceMean over height and width.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from tests.helpers.extras import require

onnx = require("onnx")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402


@dataclass
class KerasGraph:
    """Collects nodes and weights; ``current`` is the last tensor written."""

    opset: int
    rng: np.random.Generator = field(default_factory=lambda: np.random.default_rng(0))
    nodes: list[Any] = field(default_factory=list)
    initializers: list[Any] = field(default_factory=list)
    current: str = "input_1"
    count: int = 0

    def weight(self, name: str, shape: tuple[int, ...], scale: float = 0.3, positive: bool = False) -> str:
        value = self.rng.standard_normal(shape).astype(np.float32) * scale
        if positive:
            value = np.abs(value) + 0.5
        self.initializers.append(numpy_helper.from_array(value, name))
        return name

    def constant(self, name: str, value: np.ndarray) -> str:
        self.initializers.append(numpy_helper.from_array(np.asarray(value), name))
        return name

    def node(self, op: str, name: str, inputs: list[str] | None = None, **attributes: Any) -> str:
        self.count += 1
        output = f"{name}:0"
        self.nodes.append(helper.make_node(op, inputs or [self.current], [output], name=name, **attributes))
        self.current = output
        return output

    def conv(self, name: str, cin: int, cout: int, k: int, stride: int = 1, pads: list[int] | None = None,
             auto_pad: str | None = None, relu: bool = True) -> None:
        w = self.weight(f"{name}/kernel", (cout, cin, k, k))
        b = self.weight(f"{name}/bias", (cout,), 0.1)
        attributes: dict[str, Any] = {"kernel_shape": [k, k], "strides": [stride, stride], "dilations": [1, 1]}
        if auto_pad:
            attributes["auto_pad"] = auto_pad
        else:
            attributes["pads"] = pads or [0, 0, 0, 0]
        self.node("Conv", f"{name}/BiasAdd", [self.current, w, b], **attributes)
        if relu:
            self.node("Relu", f"{name}/Relu")

    def batch_norm(self, name: str, channels: int) -> None:
        inputs = [self.current, self.weight(f"{name}/gamma", (channels,), positive=True),
                  self.weight(f"{name}/beta", (channels,), 0.1), self.weight(f"{name}/moving_mean", (channels,), 0.2),
                  self.weight(f"{name}/moving_variance", (channels,), positive=True)]
        self.node("BatchNormalization", f"{name}/FusedBatchNormV3", inputs, epsilon=1e-3, momentum=0.99)

    def dense(self, name: str, fin: int, fout: int, activation: str | None = None) -> None:
        self.node("MatMul", f"{name}/MatMul", [self.current, self.weight(f"{name}/kernel", (fin, fout), 0.2)])
        self.node("Add", f"{name}/BiasAdd", [self.current, self.weight(f"{name}/bias", (fout,), 0.1)])
        if activation == "relu":
            self.node("Relu", f"{name}/Relu")
        elif activation == "softmax":
            self.node("Softmax", f"{name}/Softmax", axis=-1 if self.opset >= 13 else 1)

    def reshape_flat(self, name: str, features: int) -> None:
        shape = self.constant(f"{name}/const", np.array([-1, features], np.int64))
        self.node("Reshape", f"{name}/Reshape", [self.current, shape])

    def model(self, input_shape: tuple[int, int, int], outputs: int) -> Any:
        self.nodes.append(helper.make_node("Identity", [self.current], ["output_1"], name="Identity"))
        graph = helper.make_graph(
            self.nodes, "keras_model",
            [helper.make_tensor_value_info("input_1", TensorProto.FLOAT, ["unk__0", *input_shape])],
            [helper.make_tensor_value_info("output_1", TensorProto.FLOAT, ["unk__1", outputs])],
            initializer=self.initializers,
        )
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", self.opset)], producer_name="tf2onnx",
                                  producer_version="1.16.1")
        model.ir_version = 7
        onnx.checker.check_model(model)
        return model


def keras_cnn(opset: int = 13, auto_pad: bool = False) -> Any:
    """Input 12x12x3; Conv 'same' + ReLU; Conv stride 2 'same' (pads 0 before, 1 after); BatchNorm; MaxPool;
    AveragePool 3x3 stride 1 'same' (count_include_pad 0); ReLU while channels last; Flatten; Dense x2."""
    g = KerasGraph(opset)
    g.node("Transpose", "sequential/conv2d/Conv2D__6", perm=[0, 3, 1, 2])
    g.conv("sequential/conv2d", 3, 6, 3, pads=[1, 1, 1, 1], auto_pad="SAME_UPPER" if auto_pad else None)
    g.conv("sequential/conv2d_1", 6, 8, 3, stride=2, pads=[0, 0, 1, 1], auto_pad="SAME_UPPER" if auto_pad else None,
           relu=False)
    g.batch_norm("sequential/batch_normalization", 8)
    g.node("MaxPool", "sequential/max_pooling2d/MaxPool", kernel_shape=[2, 2], strides=[2, 2])
    pool: dict[str, Any] = {"kernel_shape": [3, 3], "strides": [1, 1]}
    pool.update({"auto_pad": "SAME_UPPER"} if auto_pad else {"pads": [1, 1, 1, 1]})
    g.node("AveragePool", "sequential/average_pooling2d/AvgPool", **pool)
    g.node("Transpose", "sequential/flatten/Reshape__20", perm=[0, 2, 3, 1])
    g.node("Relu", "sequential/activation/Relu")
    g.reshape_flat("sequential/flatten", 3 * 3 * 8)
    g.dense("sequential/dense", 72, 16, "relu")
    g.dense("sequential/dense_1", 16, 5, "softmax")
    return g.model((12, 12, 3), 5)


def keras_global_pool(opset: int = 18) -> Any:
    """Input 10x10x1; Conv 'valid'; Conv 'same' with an even kernel (pads 0 before, 1 after); global
    average pooling as ReduceMean over the channels-last height and width; Dense softmax."""
    g = KerasGraph(opset)
    g.node("Transpose", "model/conv2d/Conv2D__5", perm=[0, 3, 1, 2])
    g.conv("model/conv2d", 1, 4, 3)
    g.conv("model/conv2d_1", 4, 6, 2, pads=[0, 0, 1, 1])
    g.node("Transpose", "model/global_average_pooling2d/Mean__10", perm=[0, 2, 3, 1])
    if opset >= 18:
        axes = g.constant("model/global_average_pooling2d/axes", np.array([1, 2], np.int64))
        g.node("ReduceMean", "model/global_average_pooling2d/Mean", [g.current, axes], keepdims=0)
    else:
        g.node("ReduceMean", "model/global_average_pooling2d/Mean", axes=[1, 2], keepdims=0)
    g.dense("model/dense", 6, 3, "softmax")
    return g.model((10, 10, 1), 3)
