"""What `cnn-engine import` (and import_onnx) says when it cannot import a file: every culprit named,
the model's input or output described as such (not as a node), what to change, the options' own names
for bad --scale/--mean/--std, and a bad --out refused before any work."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import pytest

from tests.helpers.extras import require

onnx = require("onnx")
require("onnxruntime")

from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from engine.cli import main  # noqa: E402
from engine.onnx_import import OnnxImportError, import_onnx  # noqa: E402
from engine.onnx_import.ops import LAYER_OPERATORS  # noqa: E402
from engine.weights import read_weight_file  # noqa: E402

FIXTURES = Path(__file__).parent / "fixtures" / "onnx"
OPERATORS = ", ".join(LAYER_OPERATORS)


def output(name: str, rank: int = 4) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, [f"d{i}" for i in range(rank)])


def save(tmp_path: Path, name: str, nodes: list, inputs: list, outputs: list, initializers: list) -> Path:
    graph = helper.make_graph(nodes, "g", inputs, outputs, initializer=initializers)
    path = tmp_path / name
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), path)
    return path


def conv_chain(tmp_path: Path, first: dict, second: dict, name: str = "chain.onnx") -> Path:
    """x (1, 2, 8, 8) -> Conv 'first' -> Conv 'second' -> y, each conv with the given attributes."""
    rng = np.random.default_rng(0)
    weights = [numpy_helper.from_array(rng.standard_normal((4, 2 // first.get("group", 1), 3, 3)).astype(np.float32),
                                       "w1"),
               numpy_helper.from_array(rng.standard_normal((4, 4, 3, 3)).astype(np.float32), "w2")]
    nodes = [helper.make_node("Conv", ["x", "w1"], ["a"], name="first", **first),
             helper.make_node("Conv", ["a", "w2"], ["y"], name="second", **second)]
    return save(tmp_path, name, nodes, [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2, 8, 8])],
                [output("y")], weights)


def error_of(path: Path) -> OnnxImportError:
    with pytest.raises(OnnxImportError) as caught:
        import_onnx(path)
    return caught.value


def test_unsupported_operators_are_named_with_what_to_do_and_what_the_importer_reads(tmp_path):
    nodes = [helper.make_node("HardSigmoid", ["x"], ["g"], name="/act/HardSigmoid"),
             helper.make_node("LRN", ["g"], ["y"], name="/norm/LRN", size=3)]
    path = save(tmp_path, "hard.onnx", nodes, [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2, 8, 8])],
                [output("y")], [])
    error = error_of(path)
    assert str(error) == (f"{path}: cannot import 2 nodes: HardSigmoid '/act/HardSigmoid' (not supported); LRN "
                          "'/norm/LRN' (not supported). Change them in the original model and export it again (the "
                          f"operators CNN Studio imports: {OPERATORS})")
    assert error.culprits == ["HardSigmoid '/act/HardSigmoid' (not supported)", "LRN '/norm/LRN' (not supported)"]
    assert error.advice == ("Change them in the original model and export it again (the operators CNN Studio "
                            f"imports: {OPERATORS}).")
    assert "Conv" in LAYER_OPERATORS and "Identity" not in LAYER_OPERATORS  # what a model is changed into


def test_a_layer_after_an_unsupported_one_is_named_too(tmp_path):
    # Fixing the grouped convolution alone would only show the dilated one at the next try.
    path = conv_chain(tmp_path, {"group": 2, "kernel_shape": [3, 3]}, {"dilations": [2, 2], "kernel_shape": [3, 3]})
    assert str(error_of(path)) == (
        f"{path}: cannot import 2 nodes: Conv 'first' (group 2: grouped and depthwise convolutions are not "
        "supported); Conv 'second' (dilations [2, 2]: dilated convolutions are not supported). Change them in the "
        "original model and export it again")


def test_an_expressible_layer_after_an_unsupported_one_is_not_blamed(tmp_path):
    path = conv_chain(tmp_path, {"group": 2, "kernel_shape": [3, 3]}, {"kernel_shape": [3, 3], "pads": [1, 1, 1, 1]})
    error = error_of(path)
    assert error.culprits == ["Conv 'first' (group 2: grouped and depthwise convolutions are not supported)"]
    assert str(error).endswith("Change it in the original model and export it again")


def test_an_input_of_free_height_and_width_is_described_with_what_to_do(tmp_path):
    rng = np.random.default_rng(0)
    path = save(tmp_path, "free.onnx", [helper.make_node("Conv", ["x", "w"], ["y"], name="c")],
                [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 1, "h", "w"])],
                [output("y")],
                [numpy_helper.from_array(rng.standard_normal((2, 1, 3, 3)).astype(np.float32), "w")])
    error = error_of(path)
    assert str(error) == (f"{path}: cannot import it: its input 'x' is (n, 1, h, w): the height, width and channels "
                          "must be fixed numbers (export it with one image size; only the batch may vary)")
    assert error.advice == ""  # the reason says what to do


def test_several_outputs_and_a_vector_input_are_problems_of_the_model_not_nodes(tmp_path):
    relu = helper.make_node("Relu", ["x"], ["a"], name="r")
    two = save(tmp_path, "two.onnx", [relu, helper.make_node("Sigmoid", ["a"], ["b"], name="s")],
               [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, 4, 4])],
               [output("a"), output("b")], [])
    assert str(error_of(two)) == (f"{two}: cannot import it: it has 2 outputs ('a', 'b'); the engine's networks have "
                                  "one (export the classifier's output alone)")
    flat = save(tmp_path, "flat.onnx", [relu], [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 784])],
                [output("a", 2)], [])
    assert str(error_of(flat)) == (f"{flat}: cannot import it: its input 'x' is (n, 784), 2 dimensions; the engine's "
                                   "networks take images, (N, C, H, W) or (N, H, W, C)")


@pytest.mark.parametrize("kind", ["zip", "truncated"])
def test_a_file_protobuf_cannot_read_is_told_in_words_not_in_protobufs(tmp_path, kind):
    path = tmp_path / "model.onnx"
    if kind == "zip":
        with zipfile.ZipFile(path, "w") as archive:
            archive.writestr("weights.npy", b"\x93NUMPY")
        expected = f"{path}: not an ONNX model: it is a zip archive"
    else:
        data = (FIXTURES / "sequential_batchnorm.onnx").read_bytes()
        path.write_bytes(data[: len(data) - 7])
        expected = f"{path}: not an ONNX model, or the file is truncated (it cannot be read as one)"
    assert str(error_of(path)) == expected


# -- the command line ------------------------------------------------------------------------------
def last_error(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    return err[0]


@pytest.mark.parametrize("out, expected", [
    ("missing/net.npz", "--out {tmp}/missing/net.npz: the folder {tmp}/missing does not exist (create it first)"),
    ("net.safetensors", "--out {tmp}/net.safetensors: the weight file must end in .npz, e.g. {tmp}/net.npz (then "
                        "`cnn-engine export net.npz --out net.safetensors` converts it)"),
    (".", "--out {tmp}: is a folder; name the file to write, e.g. {tmp}/model.npz"),
])
def test_cli_import_refuses_an_out_it_cannot_write_before_reading_the_model(tmp_path, capsys, out, expected):
    # The model does not exist: the --out problem is found first, before any work.
    assert main(["import", str(tmp_path / "absent.onnx"), "--out", str(tmp_path / out)]) == 2
    assert last_error(capsys) == "cnn-engine: error: " + expected.format(tmp=tmp_path)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("options, expected", [
    (["--mean", "0.5"], "--mean needs --std too: the network's inputs are (pixel x scale - mean) / std per channel"),
    (["--std", "0.2"], "--std needs --mean too: the network's inputs are (pixel x scale - mean) / std per channel"),
    (["--mean", "0.5", "0.4", "--std", "0.2"], "--mean has 2 values but --std has 1; give one per channel"),
    (["--mean", "0", "--std", "0"], "--std must be positive numbers, not 0"),
    (["--scale", "-1"], "--scale must be a positive number, not -1"),
    (["--mean", "0.5", "0.4", "--std", "0.2", "0.2"],
     "--mean and --std give 2 values but {model} takes images of 3 channels; give one value per channel"),
])
def test_cli_import_names_the_preprocessing_option_at_fault(tmp_path, capsys, options, expected):
    model = FIXTURES / "sequential_batchnorm.onnx"  # 3-channel images
    out = tmp_path / "net.npz"
    assert main(["import", str(model), "--out", str(out), "--no-check", *options]) == 2
    assert last_error(capsys) == "cnn-engine: error: " + expected.format(model=model)
    assert not out.exists()


def test_cli_import_takes_one_mean_and_std_for_every_channel(tmp_path):
    out = tmp_path / "net.npz"
    assert main(["import", str(FIXTURES / "sequential_batchnorm.onnx"), "--out", str(out), "--no-check",
                 "--mean", "0.5", "--std", "0.25"]) == 0
    _, preprocessing, _ = read_weight_file(out)
    assert preprocessing == {"scale": 1 / 255, "mean": [0.5, 0.5, 0.5], "std": [0.25, 0.25, 0.25]}
