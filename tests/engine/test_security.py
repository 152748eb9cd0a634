"""No file the app reads can run code: pickles are refused or restricted, ONNX external data stays in the
model's folder, and a project file can only name data, never something the app would execute.

Each hostile file carries a payload that would create a folder if it ever ran; the tests check that
the reader refuses the file and that the folder never appears.
"""

from __future__ import annotations

import ast
import json
import os
import pickle
from pathlib import Path

import numpy as np
import pytest

from engine.data import load_dataset
from engine.errors import DataError, WeightsError
from engine.model import Model
from engine.weights import WEIGHTS_FORMAT, load_weights
from tests.helpers.data_factories import make_cifar_folder
from tests.helpers.engine_factories import SMALL_CNN
from tests.helpers.extras import require

ROOT = Path(__file__).resolve().parents[2]
SOURCES = sorted([*ROOT.joinpath("engine").rglob("*.py"), *ROOT.joinpath("cnn_studio").rglob("*.py")])


class Payload:
    """Unpickling this creates ``marker`` (a folder): proof that a file ran code."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return os.makedirs, (str(self.marker),)


def _calls(tree: ast.AST, names: set[str]) -> list[ast.Call]:
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""
            if name in names:
                found.append(node)
    return found


def test_every_np_load_refuses_pickles():
    offenders = []
    for path in SOURCES:
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for call in _calls(tree, {"load"}):
            func = call.func
            if not (isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name)
                    and func.value.id in ("np", "numpy")):
                continue
            explicit = any(k.arg == "allow_pickle" and isinstance(k.value, ast.Constant) and k.value.value is False
                           for k in call.keywords)
            if not explicit:
                offenders.append(f"{path.relative_to(ROOT)}:{call.lineno}")
    assert not offenders, "np.load without allow_pickle=False: " + ", ".join(offenders)


def test_nothing_unpickles_or_evaluates_outside_the_restricted_cifar_reader():
    offenders = []
    for path in SOURCES:
        text = path.read_text(encoding="utf-8")
        tree = ast.parse(text)
        for call in _calls(tree, {"loads", "load", "Unpickler", "eval", "exec", "literal_eval"}):
            func = call.func
            owner = func.value.id if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name) else ""
            name = func.attr if isinstance(func, ast.Attribute) else func.id
            bare = isinstance(func, ast.Name)
            if owner in ("pickle", "marshal", "dill", "joblib", "torch") or (bare and name in ("eval", "exec")):
                offenders.append(f"{path.relative_to(ROOT)}:{call.lineno} {owner}.{name}")
        # The CIFAR reader's unpickler (and the one in the generated training script) may build only
        # what a CIFAR batch holds: each overrides find_class.
        if "pickle.Unpickler" in text and "def find_class" not in text:
            offenders.append(f"{path.relative_to(ROOT)}: an unrestricted unpickler")
    assert not offenders, offenders


def test_a_weight_file_holding_a_pickle_is_refused_unread(tmp_path):
    marker = tmp_path / "ran"
    model = Model(SMALL_CNN)
    path = tmp_path / "w.npz"
    np.savez(path, __format__=np.array(WEIGHTS_FORMAT), __architecture__=np.array(json.dumps(SMALL_CNN)),
             **model.tensors(), extra=np.array([Payload(marker)], dtype=object))
    with pytest.raises(WeightsError, match="holds Python objects"):
        load_weights(path)
    assert not marker.exists()


def test_an_npz_dataset_holding_a_pickle_is_refused_unread(tmp_path):
    marker = tmp_path / "ran"
    path = tmp_path / "data.npz"
    np.savez(path, x=np.zeros((4, 5, 5), np.uint8), y=np.array([Payload(marker)] * 4, dtype=object))
    with pytest.raises(DataError, match="holds Python objects"):
        load_dataset(path)
    assert not marker.exists()


def test_a_cifar_batch_goes_through_the_restricted_unpickler_only(tmp_path):
    marker = tmp_path / "ran"
    folder = make_cifar_folder(tmp_path / "cifar")
    (folder / "data_batch_2").write_bytes(pickle.dumps({b"data": Payload(marker), b"labels": [0]}))
    with pytest.raises(DataError, match=r"data_batch_2: .*refusing to load posix\.makedirs|refusing to load os"):
        load_dataset(folder)
    assert not marker.exists()
    (folder / "batches.meta").write_bytes(pickle.dumps({b"label_names": Payload(marker)}))
    with pytest.raises(DataError, match="batches.meta"):
        load_dataset(folder)
    assert not marker.exists()


def test_a_dataset_path_naming_a_program_is_read_as_data_or_refused(tmp_path):
    # A project's "dataset" is a name or a path: the app only ever reads it as data.
    marker = tmp_path / "ran"
    script = tmp_path / "evil.py"
    script.write_text(f"import os\nos.makedirs({str(marker)!r})\n")
    script.chmod(0o755)
    for target in (script, tmp_path / "evil.pyc", Path("/bin/sh")):
        with pytest.raises(DataError):
            load_dataset(target)
    folder = tmp_path / "folder"
    (folder / "class_a").mkdir(parents=True)
    (folder / "class_a" / "predict.py").write_text(script.read_text())
    with pytest.raises(DataError), pytest.warns(UserWarning, match="not an image"):
        load_dataset(folder)
    assert not marker.exists()


def test_onnx_external_data_stays_in_the_models_folder(tmp_path):
    onnx = require("onnx")
    from onnx import TensorProto, helper, numpy_helper

    from engine.onnx_import import OnnxImportError, import_onnx

    secret = tmp_path / "secret.bin"
    secret.write_bytes(np.ones(4, np.float32).tobytes())
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "link.bin").symlink_to(secret)

    def model_with_external(location: str) -> Path:
        weight = numpy_helper.from_array(np.ones((2, 2), np.float32), "w")
        weight.ClearField("raw_data")
        weight.data_location = TensorProto.EXTERNAL
        entry = weight.external_data.add()
        entry.key, entry.value = "location", location
        graph = helper.make_graph([helper.make_node("MatMul", ["x", "w"], ["y"])], "g",
                                  [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2])],
                                  [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2])], [weight])
        path = folder / "m.onnx"
        path.write_bytes(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString())
        return path

    for location in ("../secret.bin", str(secret), "link.bin", "sub/../../secret.bin"):
        path = model_with_external(location)
        with pytest.raises(OnnxImportError, match="external weight data cannot be read") as caught:
            import_onnx(path)
        assert "\n" not in str(caught.value) and str(path) in str(caught.value)
    assert onnx is not None
