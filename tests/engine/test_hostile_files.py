"""What the fuzz tests found, kept as fixed cases: each file once made a reader raise something other
than the project's own errors (or hang, or print a page), and now gets one line naming the file."""

from __future__ import annotations

import gzip
import json
import pickle
import struct
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from engine.architecture import analyze, load_architecture_file, summary, validate
from engine.data import load_dataset
from engine.errors import ArchitectureError, DataError, ResourceError, WeightsError
from engine.model import Model
from engine.weights import WEIGHTS_FORMAT, load_weights, save_weights
from tests.helpers.data_factories import idx_bytes, images, labels, make_cifar_folder, make_image_folder
from tests.helpers.engine_factories import SMALL_CNN


def one_line_naming(exc_info: pytest.ExceptionInfo, path: Path) -> str:
    message = str(exc_info.value)
    assert "\n" not in message and str(path) in message and len(message) < 1000, message
    return message


def write_arch(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "net.json"
    path.write_text(text, encoding="utf-8")
    return path


# ------------------------------------------------------------------------------------- architectures
@pytest.mark.parametrize("text, expected", [
    ("null", "must be a JSON object, not null"),
    ("3", "must be a JSON object, not a number"),
    ('"net.json"', "must be a JSON object, not a string"),  # once read as a path to another file
    ('{"format": NaN}', "NaN is not a number JSON allows"),
    ('{"format": 1e999}', "too large"),
    ('{"format": ' + "9" * 5000 + "}", "not valid JSON"),
    ("[" * 5000 + "]" * 5000, "nested too deeply"),
    ('{"a": ' + "[" * 100 + "]" * 100 + "}", "nested more than 64 levels"),
    ("\ufeff{}", 'missing "format"'),  # a byte-order mark is not an error in itself
])
def test_architecture_json_that_python_reads_oddly(tmp_path, text, expected):
    path = write_arch(tmp_path, text)
    with pytest.raises(ArchitectureError) as caught:
        validate(path)
    assert expected in one_line_naming(caught, path)


@pytest.mark.parametrize("layer_type", [None, ["Conv2D"], {"a": 1}, 3])
def test_layer_types_that_are_not_strings(tmp_path, layer_type):
    doc = json.loads(json.dumps(SMALL_CNN))
    doc["layers"][1]["type"] = layer_type
    path = write_arch(tmp_path, json.dumps(doc))
    with pytest.raises(ArchitectureError) as caught:
        Model.from_architecture(path)
    assert "layer 2 (" in one_line_naming(caught, path) and "unknown type" in str(caught.value)


def test_long_and_huge_values_are_quoted_short(tmp_path):
    doc = json.loads(json.dumps(SMALL_CNN))
    doc["layers"][0]["filters"] = "x" * 5000
    doc["layers"][1]["type"] = "y" * 5000
    doc["format"] = 10**5000
    analysis = analyze(doc)  # the studio's path: a dict, never a file
    assert all(len(str(p)) < 400 for p in analysis.problems)
    doc["format"] = SMALL_CNN["format"]
    assert all(len(str(p)) < 400 for p in analyze(doc).problems)


def test_an_input_side_of_thousands_of_digits_is_refused_in_one_line():
    # (A file cannot hold one: its JSON reader refuses it. A document in memory, the studio's, can.)
    doc = json.loads(json.dumps(SMALL_CNN))
    doc["input"]["shape"] = [10**5000, 12, 1]
    with pytest.raises(ArchitectureError) as caught:
        summary(doc)  # once: a shape Python would not print, deep inside the table
    message = str(caught.value)
    assert "input shape" in message and "\n" not in message and len(message) < 300


def test_names_and_ids_with_line_breaks_or_thousands_of_characters_are_quoted_short():
    # A graph whose Concatenate takes an id close to a layer named across two lines, then one
    # thousands of characters long.
    doc = {"format": "cnn-studio.architecture/2", "input": {"shape": [12, 12, 1]}, "layers": [
        {"id": "b1", "name": "b1\n_1", "type": "Conv2D", "filters": 2, "kernel_size": 1},
        {"id": "b2", "type": "Conv2D", "filters": 2, "kernel_size": 1, "inputs": ["input"]},
        {"id": "cat", "type": "Concatenate", "inputs": ["1", "b2"]},
        {"type": "Flatten"}, {"type": "Dense", "units": 3, "activation": "softmax"}]}
    problems = analyze(doc).problems
    assert any("did you mean 'b1'" in str(p) for p in problems)
    assert any("must be printable" in str(p) and p.layer_index == 1 for p in problems)
    doc["layers"][0]["id"] = doc["layers"][2]["inputs"][0] = "x" * 5000
    doc["layers"][0]["name"] = "y" * 5000
    doc["layers"][1]["id"] = "x" * 4999 + "z"
    doc["layers"][2]["inputs"] = ["x" * 4999 + "w", "b2"]
    for problem in analyze(doc).problems + analyze(doc).warnings:
        text = str(problem) + " " + (problem.hint or "")
        assert "\n" not in text and len(text) < 600, text[:300]


def test_a_path_with_a_nul_character(tmp_path):
    with pytest.raises(ArchitectureError, match="cannot read it"):
        load_architecture_file(str(tmp_path / "a\x00b.json"))


def test_an_input_too_large_for_memory_is_refused_before_building(tmp_path):
    doc = json.loads(json.dumps(SMALL_CNN))
    doc["input"]["shape"] = [2**31, 13, 3]
    path = write_arch(tmp_path, json.dumps(doc))
    with pytest.raises(ResourceError) as caught:
        Model.from_architecture(path)
    assert "not enough memory" in one_line_naming(caught, path)


# ------------------------------------------------------------------------------------- weight files
def weight_file(tmp_path: Path, **records) -> Path:
    model = Model(SMALL_CNN)
    arrays = {"__format__": np.array(WEIGHTS_FORMAT), "__architecture__": np.array(json.dumps(SMALL_CNN)),
              **model.tensors(), **records}
    path = tmp_path / "w.npz"
    np.savez(path, **arrays)
    return path


@pytest.mark.parametrize("preprocessing, expected", [
    ({"scale": 1 / 255, "mean": True, "std": [1.0]}, "mean must be a list of numbers"),
    ({"scale": "1/255"}, "scale must be a number"),
    ({"scale": 1.0, "mean": [0.5, 0.5], "std": [1.0, 1.0]}, "2 channel mean(s)"),
    ({"extra": 1}, "unknown keys"),
])
def test_preprocessing_records_that_cannot_work(tmp_path, preprocessing, expected):
    path = weight_file(tmp_path, __preprocessing__=np.array(json.dumps(preprocessing)))
    with pytest.raises(WeightsError) as caught:
        load_weights(path)
    assert expected in one_line_naming(caught, path)


def test_tensors_with_nan_or_inf_are_refused_naming_the_tensor(tmp_path):
    model = Model(SMALL_CNN)
    model.tensors()["dense_1.kernel"][3, 1] = np.inf
    path = save_weights(model, tmp_path / "w.npz")
    with pytest.raises(WeightsError) as caught:
        load_weights(path)
    assert "tensor 'dense_1.kernel' holds NaN or infinite values (first at index (3, 1))" in one_line_naming(
        caught, path)


def test_an_array_header_promising_more_than_the_archive_holds(tmp_path):
    # One flipped byte in a shape once made numpy allocate the promised size before reading.
    path = weight_file(tmp_path)
    with zipfile.ZipFile(path) as z:
        members = {name: z.read(name) for name in z.namelist()}
    members["dense_1.kernel.npy"] = members["dense_1.kernel.npy"].replace(b"(100, 3)", b"(100000000, 3000)", 1)
    with zipfile.ZipFile(path, "w") as z:
        for name, data in members.items():
            z.writestr(name, data)
    with pytest.raises(WeightsError) as caught:
        load_weights(path)
    assert "array 'dense_1.kernel' is damaged (its header promises" in one_line_naming(caught, path)


def test_an_archive_of_an_unknown_zip_version(tmp_path):
    path = weight_file(tmp_path)
    raw = bytearray(path.read_bytes())
    central = raw.rfind(b"PK\x01\x02")
    raw[central + 6] = 109  # "version needed to extract" 10.9, which zipfile refuses with NotImplementedError
    path.write_bytes(bytes(raw))
    with pytest.raises(WeightsError) as caught:
        load_weights(path)
    one_line_naming(caught, path)


# ------------------------------------------------------------------------------------- datasets
@pytest.mark.parametrize("dims", [(0, 28, 28), (2**31, 28, 28), (10, 2**20, 2**20)])
def test_idx_headers_with_empty_or_enormous_sizes(tmp_path, dims):
    folder = tmp_path / "mnist"
    folder.mkdir()
    header = struct.pack(">I", 0x803) + b"".join(struct.pack(">I", d) for d in dims)
    (folder / "train-images-idx3-ubyte.gz").write_bytes(gzip.compress(header + bytes(100)))
    (folder / "train-labels-idx1-ubyte.gz").write_bytes(gzip.compress(idx_bytes(labels(10, 2))))
    with pytest.raises((DataError, ResourceError)) as caught:
        load_dataset(folder)
    one_line_naming(caught, folder)


def test_a_cifar_batch_whose_unpickling_error_spans_lines(tmp_path):
    folder = make_cifar_folder(tmp_path / "cifar")
    (folder / "data_batch_1").write_bytes(b"P" + pickle.dumps({b"data": 1}))  # a persistent-id opcode
    with pytest.raises(DataError) as caught:
        load_dataset(folder)
    one_line_naming(caught, folder / "data_batch_1")


def test_class_names_that_are_not_utf8(tmp_path):
    folder = make_cifar_folder(tmp_path / "cifar")
    (folder / "batches.meta").write_bytes(pickle.dumps({b"label_names": [b"\xff\xfe", b"cat", b"dog"]}))
    assert load_dataset(folder).class_names[1:] == ["cat", "dog"]


def test_a_label_far_beyond_any_class_count(tmp_path):
    # Naming classes "0" .. "1099511627776" once took forever.
    path = tmp_path / "data.npz"
    np.savez(path, x=images(4, 5, 5), y=np.array([0, 1, 2, 2**40]))
    with pytest.raises(DataError) as caught:
        load_dataset(path)
    assert "more than 65536 classes" in one_line_naming(caught, path)


def test_nan_pixels_are_refused_naming_the_first_sample(tmp_path):
    path = tmp_path / "data.npz"
    x = np.zeros((6, 5, 5), np.float32)
    x[4, 2, 2] = np.nan
    x[5] = np.inf
    np.savez(path, x=x, y=np.arange(6) % 2)
    with pytest.raises(DataError) as caught:
        load_dataset(path)
    assert "contain NaN or infinite values (first in sample 4)" in one_line_naming(caught, path)


def test_a_float_image_with_nan_pixels_is_refused_naming_the_file(tmp_path):
    root = make_image_folder(tmp_path / "pets", per_class=2)
    bad = root / "dog" / "0.tif"
    (root / "dog" / "0.png").unlink()
    Image.fromarray(np.full((8, 10), np.nan, np.float32)).save(bad)
    with pytest.raises(DataError) as caught:
        load_dataset(root, color_mode="grayscale")
    assert "NaN or infinite pixel values" in one_line_naming(caught, bad)


def test_a_long_library_message_is_cut(tmp_path):
    path = tmp_path / "data.npz"
    np.savez(path, x=images(4, 5, 5), y=labels(4, 2))
    raw = bytearray(path.read_bytes())
    local = raw.find(b"y.npy")
    raw[local:local + 5] = b"z.npy"  # the local header's name no longer matches the central directory's
    path.write_bytes(bytes(raw))
    with pytest.raises(DataError) as caught:
        load_dataset(path)
    one_line_naming(caught, path)


class _AlteredDtypePickler(pickle.Pickler):
    """Pickles uint8 dtypes with flags that claim object references (NPY_ITEM_REFCOUNT): a dtype that
    still compares equal to uint8."""

    def reducer_override(self, obj):
        if isinstance(obj, np.dtype) and obj == np.uint8:
            return np.dtype, ("u1", False, True), (3, "|", None, None, None, -1, -1, 1)
        return NotImplemented


# NumPy reports the altered arrays' deallocation as an unraisable error; the file is refused first.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_cifar_batch_with_an_altered_dtype_is_refused(tmp_path):
    folder = make_cifar_folder(tmp_path / "cifar")
    batch = folder / "data_batch_2"
    data = np.zeros((2, 3072), np.uint8)
    with open(batch, "wb") as file:
        _AlteredDtypePickler(file, protocol=2).dump({b"data": data, b"labels": [0, 1]})
    with pytest.raises(DataError) as exc_info:
        load_dataset(str(folder))
    assert "unexpected kind" in one_line_naming(exc_info, batch)



@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_the_pytorch_training_scripts_cifar_reader_refuses_an_altered_dtype(tmp_path, monkeypatch):
    pytest.importorskip("torch")
    import importlib
    import sys
    import types

    # The script imports its generated model.py; its reader needs none of it.
    monkeypatch.setitem(sys.modules, "model", types.SimpleNamespace(
        ARCHITECTURE={}, INPUT_SHAPE=(32, 32, 3), PREPROCESSING={}, TENSORS={}, Net=object, load_tensors=None))
    monkeypatch.setattr(sys, "path", list(sys.path))  # it puts its own folder first
    name = "engine.export.torch_train_template"
    monkeypatch.delitem(sys.modules, name, raising=False)
    try:
        script = importlib.import_module(name)
    finally:
        sys.modules.pop(name, None)
    folder = make_cifar_folder(tmp_path / "cifar")
    with open(folder / "data_batch_2", "wb") as file:
        _AlteredDtypePickler(file, protocol=2).dump({b"data": np.zeros((2, 3072), np.uint8), b"labels": [0, 1]})
    with pytest.raises(ValueError, match="unexpected kind"):
        script.read_cifar(folder)


@pytest.mark.parametrize("text", ["[" * 100_000, "[" + "9" * 5000 + "]"])
def test_cli_says_what_a_file_of_deep_or_huge_json_is(tmp_path, capsys, text):
    # Telling what kind of file it is once decoded it with the plain JSON reader, which raised.
    from engine.cli import main

    path = write_arch(tmp_path, text)
    assert main(["summary", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("cnn-engine: error: ") and err.count("\n") == 1 and "internal error" not in err


@pytest.mark.parametrize("text", ["[" * 100_000, '{"a": ' + "9" * 5000 + "}"])
def test_run_and_sweep_records_of_deep_or_huge_json_are_damaged_not_crashes(tmp_path, text):
    from engine.errors import RunError
    from engine.export.cli import read_train_settings
    from engine.export.formats import ExportError
    from engine.runs.folder import RECORD, RunFolder
    from engine.runs.sweep import sweep_folder_points

    (tmp_path / RECORD).write_text(text)
    (tmp_path / "sweep.json").write_text(text)
    with pytest.raises(RunError, match="damaged"):
        RunFolder.open(tmp_path)
    with pytest.raises(RunError, match="not a sweep folder"):
        sweep_folder_points(tmp_path)
    with pytest.raises(ExportError, match="not a JSON file of training settings"):
        read_train_settings(str(tmp_path))
