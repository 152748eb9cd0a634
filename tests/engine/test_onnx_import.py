"""ONNX import: networks exported by PyTorch (committed fixtures) and shaped like tf2onnx's Keras
graphs must predict what ONNX Runtime predicts; anything else is refused in one line, nothing written."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tests.helpers.extras import require

onnx = require("onnx")
ort = require("onnxruntime")

from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from engine.cli import main  # noqa: E402
from engine.layers import LAYER_TYPES  # noqa: E402
from engine.onnx_import import OnnxImportError, import_onnx, write_imported  # noqa: E402
from engine.weights import load_weights, read_weight_file  # noqa: E402
from tests.helpers.keras_onnx import keras_cnn, keras_global_pool  # noqa: E402

FIXTURES = Path(__file__).parent / "fixtures" / "onnx"
needs_add = pytest.mark.skipif("Add" not in LAYER_TYPES, reason="the engine has no Add layer (graph networks)")
needs_concatenate = pytest.mark.skipif("Concatenate" not in LAYER_TYPES,
                                       reason="the engine has no Concatenate layer (graph networks)")


def onnx_outputs(path: Path, x: np.ndarray) -> np.ndarray:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: np.ascontiguousarray(x, np.float32)})[0]


def assert_predicts_like_onnx(path: Path, count: int = 6, seed: int = 0):
    """Import ``path``; the engine on (N, H, W, C) images must give ONNX Runtime's outputs on the same
    values in the ONNX model's layout, within 1e-4. Returns the import."""
    imported = import_onnx(path)
    model = imported.model()
    x = (np.random.default_rng(seed).standard_normal((count, *model.input_shape)) * 1.5).astype(np.float32)
    expected = onnx_outputs(path, imported.to_onnx_layout(x))
    got = model.predict(x)
    assert got.shape == expected.shape
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4)
    # The outputs differ from sample to sample: a constant network would pass trivially.
    assert np.ptp(expected, axis=0).max() > 1e-3
    return imported


def layer_types(imported) -> list[str]:
    return [spec["type"] for spec in imported.architecture["layers"]]


# -- PyTorch's exports (scripts/make_onnx_fixtures.py) -------------------------------------------
def test_sequential_with_batch_norm_predicts_like_onnx_runtime():
    imported = assert_predicts_like_onnx(FIXTURES / "sequential_batchnorm.onnx")
    assert imported.input_layout == "NCHW"
    assert imported.architecture["source"] == {"kind": "onnx", "file": "sequential_batchnorm.onnx",
                                               "producer": "pytorch 2.13.0", "opset": 11, "input_layout": "NCHW"}
    assert imported.architecture["input"]["shape"] == [12, 12, 3]
    assert layer_types(imported).count("BatchNorm") == 3  # two after convolutions, one after a Dense
    assert "Flatten" in layer_types(imported) and layer_types(imported)[-1] == "Dense"
    # Kernels come in the engine's layout, (kh, kw, in, out).
    first = imported.architecture["layers"][0]["name"]
    assert imported.tensors[f"{first}.kernel"].shape == (3, 3, 3, 6)
    # PyTorch's ceil_mode pooling of a 3x3 map became an engine padding with the same windows.
    pools = [s for s in imported.architecture["layers"] if s["type"] == "MaxPool2D"]
    assert [p["pool_size"] for p in pools] == [2, 3]


@needs_add
def test_residual_network_predicts_like_onnx_runtime():
    imported = assert_predicts_like_onnx(FIXTURES / "residual.onnx")
    layers = imported.architecture["layers"]
    adds = [s for s in layers if s["type"] == "Add"]
    assert len(adds) == 2 and all(len(s["inputs"]) == 2 for s in adds)
    assert "GlobalAvgPool2D" in layer_types(imported)


@needs_concatenate
def test_branches_joined_along_channels_predict_like_onnx_runtime():
    imported = assert_predicts_like_onnx(FIXTURES / "inception.onnx")
    assert layer_types(imported).count("Concatenate") == 1


def test_average_pooling_both_ways_predicts_like_onnx_runtime():
    imported = assert_predicts_like_onnx(FIXTURES / "average_pooling.onnx")
    pools = [s for s in imported.architecture["layers"] if s["type"] == "AvgPool2D"]
    assert [s.get("count_include_pad", True) for s in pools] == [True, False]
    assert [s["padding"] for s in pools] == [1, 1]


def test_view_before_gemm_is_folded_into_a_flatten():
    imported = assert_predicts_like_onnx(FIXTURES / "reshape_gemm.onnx")
    # Shape, Gather, Unsqueeze and Concat computed the target shape; they leave no layers behind.
    assert layer_types(imported) == ["Conv2D", "ELU", "Flatten", "Dense"]


def test_matmul_and_add_become_one_dense_layer_with_its_bias():
    imported = assert_predicts_like_onnx(FIXTURES / "matmul_add.onnx")
    assert layer_types(imported) == ["Conv2D", "Flatten", "Dense", "LeakyReLU", "Dense"]
    dense = [s for s in imported.architecture["layers"] if s["type"] == "Dense"]
    assert all(s["use_bias"] for s in dense)
    assert [s for s in imported.architecture["layers"] if s["type"] == "LeakyReLU"][0]["alpha"] == 0.2


def test_flattened_features_are_reordered_for_the_dense_layer():
    """A Flatten of channels-first maps numbers features (c, h, w); the engine's (h, w, c): the Dense
    rows are permuted, so the kernel is not ONNX's weight transposed."""
    imported = import_onnx(FIXTURES / "reshape_gemm.onnx")
    weights = {t.name: numpy_helper.to_array(t) for t in onnx.load(FIXTURES / "reshape_gemm.onnx").graph.initializer}
    gemm = next(v for v in weights.values() if v.ndim == 2)  # (6, 3*6*6), transB
    dense = next(v for k, v in imported.tensors.items() if k.endswith(".kernel") and v.ndim == 2)
    assert not np.allclose(dense, gemm.T)
    order = np.arange(3 * 6 * 6).reshape(3, 6, 6).transpose(1, 2, 0).ravel()
    np.testing.assert_array_equal(dense, gemm.T[order])


# -- Keras through tf2onnx (graphs shaped like its output) ---------------------------------------------
@pytest.mark.parametrize("opset,auto_pad", [(11, False), (13, True), (17, False), (18, True)])
def test_keras_style_network_predicts_like_onnx_runtime(tmp_path, opset, auto_pad):
    path = tmp_path / "keras.onnx"
    onnx.save(keras_cnn(opset, auto_pad), path)
    imported = assert_predicts_like_onnx(path)
    assert imported.input_layout == "NHWC" and imported.architecture["source"]["input_layout"] == "NHWC"
    assert imported.architecture["input"]["shape"] == [12, 12, 3]
    layers = imported.architecture["layers"]
    # Keras' 'same' with stride 2 pads one pixel after: the engine's 'same'.
    assert layers[1]["type"] == "Conv2D" and layers[1]["padding"] == "same" and layers[1]["stride"] == 2
    pool = next(s for s in layers if s["type"] == "AvgPool2D")
    assert pool["count_include_pad"] is False
    # MatMul + Add + Relu / Softmax are each one Dense layer.
    assert [(s["units"], s["use_bias"], s["activation"]) for s in layers if s["type"] == "Dense"] == [
        (16, True, "relu"), (5, True, "softmax")]


@pytest.mark.parametrize("opset", [13, 18])
def test_keras_style_global_average_pooling_predicts_like_onnx_runtime(tmp_path, opset):
    path = tmp_path / "keras_gap.onnx"
    onnx.save(keras_global_pool(opset), path)
    imported = assert_predicts_like_onnx(path)
    assert layer_types(imported) == ["Conv2D", "Conv2D", "GlobalAvgPool2D", "Dense"]
    # An even kernel with 'same' padding (the odd pixel after).
    assert imported.architecture["layers"][1]["padding"] == "same"


def test_the_engines_own_onnx_export_imports_back(tmp_path):
    from engine.export import export_model
    from engine.model import Model

    doc = {"format": "cnn-studio.architecture/1", "input": {"shape": [10, 10, 2]}, "layers": [
        {"type": "Conv2D", "filters": 4, "kernel_size": 3, "padding": "same", "activation": "relu"},
        {"type": "BatchNorm"},
        {"type": "AvgPool2D", "pool_size": 2},
        {"type": "Conv2D", "filters": 5, "kernel_size": 3, "stride": 2},
        {"type": "Tanh"},
        {"type": "Flatten"},
        {"type": "Dense", "units": 4, "activation": "softmax"},
    ]}
    model = Model(doc, seed=3)
    path = export_model(model, tmp_path / "net.onnx")[0]
    imported = assert_predicts_like_onnx(path)
    x = np.random.default_rng(1).standard_normal((3, 10, 10, 2)).astype(np.float32)
    np.testing.assert_allclose(imported.model().predict(x), model.predict(x), rtol=1e-5, atol=1e-6)
    # The Tanh after the second convolution joins it as its activation.
    assert layer_types(imported) == ["Conv2D", "BatchNorm", "AvgPool2D", "Conv2D", "Flatten", "Dense"]
    assert imported.architecture["layers"][3]["activation"] == "tanh"
    # The layers keep the names they had (the export's node names carry them), "tanh_1" joined conv2d_2.
    assert [spec["name"] for spec in imported.architecture["layers"]] == [
        "conv2d_1", "batch_norm_1", "avg_pool2d_1", "conv2d_2", "flatten_1", "dense_1"]
    # The export records how raw pixels are scaled; the import keeps it.
    assert imported.preprocessing == model.preprocessing
    # The report is whole sentences (the studio lists them above its own).
    assert imported.notes == ["The input 'input' takes (N, 10, 10, 2) images channels last, as the engine does, "
                              "so they go in unchanged."]


@needs_add
def test_a_graph_network_keeps_its_layer_names_through_onnx(tmp_path):
    from engine.export import export_model
    from engine.model import Model
    from tests.helpers.engine_factories import RESIDUAL

    doc = json.loads(json.dumps(RESIDUAL))
    doc["layers"][5]["name"] = "skip_sum"  # the first Add, named by the user
    doc["layers"][0]["name"] = "stem conv"  # a name no imported layer takes as it is: made readable instead
    model = Model(doc, seed=2)
    assert "relu_1" in model.names and "global_avg_pool2d_1" in model.names
    imported = assert_predicts_like_onnx(export_model(model, tmp_path / "residual.onnx")[0])
    assert [spec["name"] for spec in imported.architecture["layers"]] == ["stem_conv", *model.names[1:]]
    # The weights keep their names with them: the original's weight file fits the imported network.
    assert list(imported.tensors) == [name.replace("stem conv.", "stem_conv.") for name in model.tensors()]


# -- refusals ------------------------------------------------------------------------------------
def unsupported_model() -> onnx.ModelProto:
    """A grouped convolution, an LRN and a Mul by a constant: three nodes the engine cannot express."""
    rng = np.random.default_rng(0)
    init = [numpy_helper.from_array(rng.standard_normal((4, 1, 3, 3)).astype(np.float32), "w"),
            numpy_helper.from_array(np.array(2.0, np.float32), "two"),
            numpy_helper.from_array(rng.standard_normal((4 * 6 * 6, 3)).astype(np.float32), "fc")]
    nodes = [
        helper.make_node("Conv", ["x", "w"], ["c"], name="grouped_conv", group=2, kernel_shape=[3, 3]),
        helper.make_node("LRN", ["c"], ["n"], name="local_norm", size=3),
        helper.make_node("Mul", ["n", "two"], ["m"], name="doubling"),
        helper.make_node("Flatten", ["m"], ["f"], name="flat"),
        helper.make_node("MatMul", ["f", "fc"], ["y"], name="fc"),
    ]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 2, 8, 8])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 3])], initializer=init)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])


def test_unsupported_nodes_are_all_named_in_one_line_and_nothing_is_written(tmp_path, capsys):
    path = tmp_path / "odd.onnx"
    onnx.save(unsupported_model(), path)
    out = tmp_path / "odd.npz"
    assert main(["import", str(path), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "3 nodes" in err
    for op, name in (("Conv", "grouped_conv"), ("LRN", "local_norm"), ("Mul", "doubling")):
        assert f"{op} '{name}'" in err
    assert "group 2" in err
    assert not out.exists() and list(tmp_path.iterdir()) == [path]


@pytest.mark.parametrize("damage", ["truncated", "text", "empty", "missing"])
def test_a_file_that_is_not_onnx_gets_one_clear_line(tmp_path, capsys, damage):
    path = tmp_path / "model.onnx"
    data = (FIXTURES / "sequential_batchnorm.onnx").read_bytes()
    if damage == "truncated":
        path.write_bytes(data[: len(data) // 2])
    elif damage == "text":
        path.write_text("def forward(x):\n    return x\n")
    elif damage == "empty":
        path.write_bytes(b"")
    out = tmp_path / "model.npz"
    assert main(["import", str(path), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and str(path) in err
    expected = {"truncated": "truncated", "text": "not an ONNX model", "empty": "empty", "missing": "no such file"}
    assert expected[damage] in err
    assert not out.exists()
    with pytest.raises(OnnxImportError):
        import_onnx(path)


def test_networks_with_several_inputs_or_an_unknown_image_size_are_refused(tmp_path):
    model = unsupported_model()
    model.graph.input[0].type.tensor_type.shape.dim[2].dim_param = "H"
    onnx.save(model, tmp_path / "free.onnx")
    with pytest.raises(OnnxImportError, match="height, width and channels must be fixed"):
        import_onnx(tmp_path / "free.onnx")
    model = unsupported_model()
    model.graph.input.append(helper.make_tensor_value_info("extra", TensorProto.FLOAT, ["N", 3]))
    onnx.save(model, tmp_path / "two.onnx")
    with pytest.raises(OnnxImportError, match="2 data inputs"):
        import_onnx(tmp_path / "two.onnx")


def test_padding_the_engine_cannot_express_is_refused(tmp_path):
    g = helper.make_graph(
        [helper.make_node("Conv", ["x", "w"], ["y"], name="lower", kernel_shape=[2, 2], auto_pad="SAME_LOWER")],
        "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, 5, 5])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 1, 5, 5])],
        initializer=[numpy_helper.from_array(np.ones((1, 1, 2, 2), np.float32), "w")])
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)]), tmp_path / "lower.onnx")
    with pytest.raises(OnnxImportError, match="Conv 'lower' \\(auto_pad SAME_LOWER"):
        import_onnx(tmp_path / "lower.onnx")


# -- the command line ------------------------------------------------------------------------------
def test_cli_import_writes_a_weight_file_that_predicts_like_onnx_runtime(tmp_path, capsys):
    source = FIXTURES / "sequential_batchnorm.onnx"
    out = tmp_path / "net.npz"
    assert main(["import", str(source), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "checked against ONNX Runtime" in printed and f"wrote {out}" in printed
    assert ("  The input 'image' takes (N, 3, 12, 12) images, channels first; the imported network takes them "
            "channels last, as (N, 12, 12, 3).\n") in printed
    model = load_weights(out)
    x = np.random.default_rng(2).standard_normal((4, 12, 12, 3)).astype(np.float32)
    np.testing.assert_allclose(model.predict(x), onnx_outputs(source, x.transpose(0, 3, 1, 2)), rtol=1e-4, atol=1e-4)
    architecture, preprocessing, _ = read_weight_file(out)
    assert preprocessing == {"scale": 1 / 255, "mean": None, "std": None}
    assert architecture["source"]["input_layout"] == "NCHW"  # the layout the original took is on record


def test_cli_import_records_the_preprocessing_given(tmp_path):
    out = tmp_path / "net.npz"
    assert main(["import", str(FIXTURES / "sequential_batchnorm.onnx"), "--out", str(out), "--scale", "0.5",
                 "--mean", "0.485", "0.456", "0.406", "--std", "0.229", "0.224", "0.225", "--no-check"]) == 0
    _, preprocessing, _ = read_weight_file(out)
    assert preprocessing["scale"] == 0.5
    assert preprocessing["mean"] == [0.485, 0.456, 0.406] and preprocessing["std"] == [0.229, 0.224, 0.225]


def test_imported_document_is_an_ordinary_architecture(tmp_path):
    imported = import_onnx(FIXTURES / "matmul_add.onnx")
    path = write_imported(imported, tmp_path / "m.npz")
    architecture, _, tensors = read_weight_file(path)
    assert architecture == json.loads(json.dumps(imported.architecture))
    names = [spec["name"] for spec in architecture["layers"]]
    assert len(set(names)) == len(names) and all(name.replace("_", "").isalnum() for name in names)
    assert set(tensors) == set(imported.tensors)
