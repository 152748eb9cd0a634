"""'same' padding checked against an outside reference: ONNX Runtime's auto_pad=SAME_UPPER.

The engine's padding helper is the engine's own idea of 'same'; here small convolutions and poolings
of every parity (odd and even sizes, kernels and strides) must give ONNX Runtime's outputs, computed
from nothing but the ONNX operator definitions.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from tests.helpers.extras import require

onnx = require("onnx")
ort = require("onnxruntime")

from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from engine.layers import AvgPool2D, Conv2D, MaxPool2D  # noqa: E402

SIZES = [(5, 5), (6, 7), (8, 4), (9, 10)]
KERNELS_STRIDES = [(1, 1), (2, 1), (3, 1), (3, 2), (4, 2), (2, 3), (5, 3), (4, 4)]


def run_onnx(node: onnx.NodeProto, x_nchw: np.ndarray, initializers: list[onnx.TensorProto]) -> np.ndarray:
    graph = helper.make_graph([node], "same", [helper.make_tensor_value_info("x", TensorProto.FLOAT, x_nchw.shape)],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, {"x": x_nchw})[0]


def engine_forward(layer, x_nhwc: np.ndarray) -> np.ndarray:
    layer.build(x_nhwc.shape[1:], np.random.default_rng(0), np.float32)
    return layer.forward(x_nhwc, training=False)


@pytest.mark.parametrize("size, kernel_stride", list(itertools.product(SIZES, KERNELS_STRIDES)))
def test_convolution_same_padding_matches_onnx_runtime(size, kernel_stride):
    (h, w), (k, s) = size, kernel_stride
    rng = np.random.default_rng(h * 100 + w * 10 + k + s)
    x = rng.standard_normal((2, h, w, 3)).astype(np.float32)
    kernel = rng.standard_normal((k, k, 3, 4)).astype(np.float32)
    bias = rng.standard_normal(4).astype(np.float32)
    layer = Conv2D(filters=4, kernel_size=k, stride=s, padding="same")
    layer.build((h, w, 3), rng, np.float32)
    layer.params["kernel"][...] = kernel
    layer.params["bias"][...] = bias
    got = layer.forward(x, training=False)
    node = helper.make_node("Conv", ["x", "w", "b"], ["y"], auto_pad="SAME_UPPER", kernel_shape=[k, k],
                            strides=[s, s])
    weights = [numpy_helper.from_array(kernel.transpose(3, 2, 0, 1).copy(), "w"), numpy_helper.from_array(bias, "b")]
    expected = run_onnx(node, x.transpose(0, 3, 1, 2).copy(), weights).transpose(0, 2, 3, 1)
    assert got.shape == expected.shape
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4)


# ONNX Runtime refuses SAME_UPPER pooling with a stride above the window (its padding would be negative).
@pytest.mark.parametrize("size, kernel_stride",
                         list(itertools.product(SIZES, [(k, s) for k, s in KERNELS_STRIDES if k >= s])))
@pytest.mark.parametrize("kind", ["max", "avg"])
def test_pooling_same_padding_matches_onnx_runtime(size, kernel_stride, kind):
    (h, w), (k, s) = size, kernel_stride
    rng = np.random.default_rng(h * 100 + w * 10 + k + s)
    # Negative values too: max pooling must not see the padding as zeros.
    x = rng.standard_normal((2, h, w, 3)).astype(np.float32) - 1.0
    if kind == "max":
        layer = MaxPool2D(pool_size=k, stride=s, padding="same")
        node = helper.make_node("MaxPool", ["x"], ["y"], auto_pad="SAME_UPPER", kernel_shape=[k, k], strides=[s, s])
        expected = run_onnx(node, x.transpose(0, 3, 1, 2).copy(), [])
        cases = [(layer, expected)]
    else:
        cases = []
        for include in (True, False):
            layer = AvgPool2D(pool_size=k, stride=s, padding="same", count_include_pad=include)
            node = helper.make_node("AveragePool", ["x"], ["y"], auto_pad="SAME_UPPER", kernel_shape=[k, k],
                                    strides=[s, s], count_include_pad=int(include))
            cases.append((layer, run_onnx(node, x.transpose(0, 3, 1, 2).copy(), [])))
    for layer, expected in cases:
        got = engine_forward(layer, x)
        expected = expected.transpose(0, 2, 3, 1)
        assert got.shape == expected.shape, layer
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6, err_msg=repr(layer))
