"""ONNX files under fuzzing: damaged bytes, and models whose nodes, attributes, initializers and names
were changed into anything protobuf can hold. Importing may only succeed or raise OnnxImportError (or
another of the engine's errors) with one line naming the file."""

from __future__ import annotations

import numpy as np

from tests.helpers.extras import require

require("hypothesis")
onnx = require("onnx")

from hypothesis import given  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from onnx import numpy_helper  # noqa: E402

from engine.errors import EngineError  # noqa: E402
from engine.export.onnx_export import export_onnx  # noqa: E402
from engine.model import Model  # noqa: E402
from engine.onnx_import import import_onnx  # noqa: E402
from tests.helpers.engine_factories import CONCAT, SMALL_CNN  # noqa: E402
from tests.helpers.fuzz import check_reader, fuzz, fuzz_settings, mutated_bytes  # noqa: E402

pytestmark = fuzz


def _exported(doc, tmp_path_factory) -> bytes:
    path = tmp_path_factory.mktemp("onnx") / "m.onnx"
    export_onnx(Model(doc, seed=1), path)
    return path.read_bytes()


_ORIGINALS: dict[int, bytes] = {}


def original(doc, tmp_path_factory) -> bytes:
    if id(doc) not in _ORIGINALS:
        _ORIGINALS[id(doc)] = _exported(doc, tmp_path_factory)
    return _ORIGINALS[id(doc)]


def import_checked(path) -> None:
    imported = import_onnx(path)
    model = imported.model()
    model.predict(np.zeros((1, *model.input_shape), np.float32))


names = st.one_of(st.text(max_size=12), st.sampled_from(["", "x" * 3000, "input", "é/../☃", "\x00"]))
numbers = st.one_of(st.integers(-(2**40), 2**40), st.sampled_from([0, -1, 1, 2**31, 2**62]))


@st.composite
def mutated_model(draw, raw: bytes) -> bytes:
    model = onnx.ModelProto()
    model.ParseFromString(raw)
    graph = model.graph
    for _ in range(draw(st.integers(1, 3))):
        what = draw(st.sampled_from(["attribute", "op", "initializer", "name", "drop", "opset", "dims", "input"]))
        node = draw(st.sampled_from(list(graph.node))) if graph.node else None
        if what == "attribute" and node is not None and node.attribute:
            attribute = draw(st.sampled_from(list(node.attribute)))
            if attribute.ints:
                attribute.ints[draw(st.integers(0, len(attribute.ints) - 1))] = draw(numbers)
            elif attribute.type == onnx.AttributeProto.INT:
                attribute.i = draw(numbers)
            elif attribute.type == onnx.AttributeProto.FLOAT:
                attribute.f = draw(st.floats(allow_nan=True, width=32))
            elif attribute.type == onnx.AttributeProto.STRING:
                attribute.s = draw(st.binary(max_size=8))
        elif what == "op" and node is not None:
            node.op_type = draw(st.sampled_from(["Conv", "Gemm", "MaxPool", "Relu", "Add", "Concat", "Reshape",
                                                 "Transpose", "Flatten", "Softmax", "LSTM", "If", ""]))
        elif what == "initializer" and graph.initializer:
            tensor = draw(st.sampled_from(list(graph.initializer)))
            try:
                values = numpy_helper.to_array(tensor).copy()
            except (ValueError, TypeError):  # its dims were changed by an earlier mutation
                continue
            if values.size and values.dtype.kind == "f":
                values.reshape(-1)[draw(st.integers(0, values.size - 1))] = draw(
                    st.sampled_from([np.nan, np.inf, 1e30, -0.0]))
            tensor.CopyFrom(numpy_helper.from_array(values, tensor.name))
        elif what == "dims" and graph.initializer:
            tensor = draw(st.sampled_from(list(graph.initializer)))
            if tensor.dims:
                tensor.dims[draw(st.integers(0, len(tensor.dims) - 1))] = draw(st.integers(0, 2**20))
        elif what == "name" and node is not None:
            target = draw(st.sampled_from(["output", "input", "name"]))
            if target == "name":
                node.name = draw(names)
            elif getattr(node, target):
                getattr(node, target)[0] = draw(names)
        elif what == "drop" and node is not None and len(graph.node) > 1:
            graph.node.remove(node)
        elif what == "opset":
            model.opset_import[0].version = draw(st.integers(0, 40))
        elif what == "input" and graph.input:
            dims = graph.input[0].type.tensor_type.shape.dim
            if dims:
                dims[draw(st.integers(0, len(dims) - 1))].dim_value = draw(st.integers(0, 2**31))
    return model.SerializeToString()


@fuzz_settings(0.5)
@given(seed=st.sampled_from([SMALL_CNN, CONCAT]), data=st.data())
def test_models_changed_node_by_node(tmp_path_factory, seed, data):
    path = tmp_path_factory.mktemp("onnx") / "model.onnx"
    path.write_bytes(data.draw(mutated_model(original(seed, tmp_path_factory))))
    check_reader(lambda: import_checked(path), path, (EngineError,))


@fuzz_settings(0.5)
@given(seed=st.sampled_from([SMALL_CNN, CONCAT]), data=st.data())
def test_damaged_onnx_bytes(tmp_path_factory, seed, data):
    path = tmp_path_factory.mktemp("onnx") / "model.onnx"
    path.write_bytes(data.draw(mutated_bytes(original(seed, tmp_path_factory), max_flips=8)))
    check_reader(lambda: import_checked(path), path, (EngineError,))
