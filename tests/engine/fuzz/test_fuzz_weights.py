"""Weight files (.npz and .safetensors) under fuzzing: damaged bytes, hostile records and tensors.

Loading a file as a model, or importing it into a model, may only succeed or raise WeightsError (or
ResourceError for a network too large for memory) with one line naming the file; a refused import
leaves the model's weights as they were.
"""

from __future__ import annotations

import json

import numpy as np

from tests.helpers.extras import require

require("hypothesis")
require("safetensors")

from hypothesis import given  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from safetensors.numpy import save as save_safetensors_bytes  # noqa: E402

from engine.errors import ResourceError, WeightsError  # noqa: E402
from engine.export import import_weight_file, load_weight_file  # noqa: E402
from engine.export.safetensors_io import save_safetensors  # noqa: E402
from engine.model import Model  # noqa: E402
from engine.weights import WEIGHTS_FORMAT, save_weights  # noqa: E402
from tests.helpers.engine_factories import CONCAT, EVERY_LAYER, SMALL_CNN  # noqa: E402
from tests.helpers.fuzz import (  # noqa: E402
    check_reader,
    fuzz,
    fuzz_settings,
    json_text,
    mutated_bytes,
    mutated_json,
)

pytestmark = fuzz
ERRORS = (WeightsError, ResourceError)
SEEDS = (SMALL_CNN, EVERY_LAYER, CONCAT)
_MODELS = {id(doc): Model(doc, seed=1) for doc in SEEDS}
def preprocessing(doc) -> dict:
    channels = doc["input"]["shape"][2]
    return {"scale": 1 / 255, "mean": [0.5] * channels, "std": [0.25] * channels}

odd_dtypes = st.sampled_from(["int64", "uint8", "bool", "float16", "float64", "complex64", "<U3", "S2"])
names = st.one_of(st.text(min_size=1, max_size=30), st.sampled_from(["x" * 2000, "é/../ü", "a.b.c", "__format__"]))


def read_back(path, doc) -> None:
    """What the studio and the CLI do with a weight file: build from it, and import it into a model."""
    check_reader(lambda: load_weight_file(path), path, ERRORS)
    model = Model(doc, seed=2)
    before = model.get_weights()
    if check_reader(lambda: import_weight_file(model, path), path, ERRORS) is not None:
        after = model.get_weights()
        assert all(np.array_equal(before[k], after[k]) for k in before), "a refused import changed the model"


@st.composite
def mutated_tensors(draw, tensors: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    tensors = {k: v.copy() for k, v in tensors.items()}
    for _ in range(draw(st.integers(1, 3))):
        name = draw(st.sampled_from(sorted(tensors))) if tensors else None
        action = draw(st.sampled_from(["nan", "inf", "shape", "dtype", "delete", "extra", "rename", "empty", "scalar"]))
        if name is None and action not in ("extra",):
            continue
        if action in ("nan", "inf") and tensors[name].size and tensors[name].dtype.kind == "f":
            flat = tensors[name].reshape(-1)
            flat[draw(st.integers(0, flat.size - 1))] = np.nan if action == "nan" else -np.inf
        elif action == "shape":
            shape = tuple(draw(st.lists(st.integers(0, 9), min_size=0, max_size=4)))
            tensors[name] = np.zeros(shape, np.float32)
        elif action == "dtype":
            tensors[name] = np.zeros(tensors[name].shape, draw(odd_dtypes))
        elif action == "delete":
            del tensors[name]
        elif action == "extra":
            tensors[draw(names)] = np.ones(draw(st.integers(0, 5)), np.float32)
        elif action == "rename":
            tensors[draw(names)] = tensors.pop(name)
        elif action == "empty":
            tensors[name] = np.zeros((0,), np.float32)
        elif action == "scalar":
            tensors[name] = np.array(draw(st.floats(allow_nan=True)))
    return tensors


def _npz_records(draw, doc) -> dict[str, object]:
    records: dict[str, object] = {"__format__": np.array(WEIGHTS_FORMAT),
                                  "__architecture__": np.array(json.dumps(doc)),
                                  "__preprocessing__": np.array(json.dumps(preprocessing(doc)))}
    which = draw(st.sampled_from(["architecture", "preprocessing", "format", "none"]))
    if which == "architecture":
        records["__architecture__"] = np.array(json_text(draw(mutated_json(doc))))
    elif which == "preprocessing":
        records["__preprocessing__"] = np.array(json_text(draw(mutated_json(preprocessing(doc)))))
    elif which == "format":
        records["__format__"] = draw(st.sampled_from([np.array(1), np.array([WEIGHTS_FORMAT] * 2),
                                                      np.array("cnn-studio.weights/9"), np.array(b"x")]))
        if draw(st.booleans()):
            del records["__format__"]
    if draw(st.integers(0, 9)) == 0:
        records["__architecture__"] = draw(st.sampled_from([np.zeros(3), np.array(["{}", "{}"])]))
    return records


@fuzz_settings(1.0)
@given(seed=st.sampled_from(SEEDS), data=st.data())
def test_npz_with_hostile_records_and_tensors(tmp_path_factory, seed, data):
    path = tmp_path_factory.mktemp("w") / "weights.npz"
    tensors = data.draw(mutated_tensors(_MODELS[id(seed)].tensors())) if data.draw(st.booleans()) \
        else _MODELS[id(seed)].get_weights()
    records = _npz_records(data.draw, seed)
    arrays = {**records, **{k: v for k, v in tensors.items() if k not in records}}
    with open(path, "wb") as f:
        np.savez(f, **arrays)
    read_back(path, seed)


@fuzz_settings(1.0)
@given(seed=st.sampled_from(SEEDS), data=st.data())
def test_safetensors_with_hostile_metadata_and_tensors(tmp_path_factory, seed, data):
    path = tmp_path_factory.mktemp("w") / "weights.safetensors"
    model = _MODELS[id(seed)]
    metadata = {"format": WEIGHTS_FORMAT, "architecture": json.dumps(seed),
                "order": json.dumps(list(model.tensors())), "preprocessing": json.dumps(preprocessing(seed))}
    key = data.draw(st.sampled_from(["architecture", "order", "preprocessing", "format", None]))
    if key is not None:
        if data.draw(st.booleans()):
            del metadata[key]
        else:
            metadata[key] = json_text(data.draw(mutated_json(json.loads(metadata[key]) if key != "format"
                                                             else metadata[key])))
    tensors = data.draw(mutated_tensors(model.tensors()))
    tensors = {k: np.ascontiguousarray(v) for k, v in tensors.items()
               if v.dtype.kind in "biuf" and v.dtype.itemsize <= 8}
    path.write_bytes(save_safetensors_bytes(tensors, metadata=metadata))
    read_back(path, seed)


@fuzz_settings(1.0)
@given(seed=st.sampled_from(SEEDS), suffix=st.sampled_from([".npz", ".safetensors"]), data=st.data())
def test_damaged_weight_files(tmp_path_factory, seed, suffix, data):
    folder = tmp_path_factory.mktemp("w")
    path = folder / f"weights{suffix}"
    model = _MODELS[id(seed)]
    (save_weights if suffix == ".npz" else save_safetensors)(model, path)
    path.write_bytes(data.draw(mutated_bytes(path.read_bytes(), max_flips=8)))
    read_back(path, seed)


def test_object_arrays_are_refused_before_they_are_unpickled(tmp_path):
    # A pickled object array could run code while loading: it must be refused from its header alone.
    path = tmp_path / "weights.npz"
    model = _MODELS[id(SMALL_CNN)]
    arrays = {"__format__": np.array(WEIGHTS_FORMAT), "__architecture__": np.array(json.dumps(SMALL_CNN)),
              **model.tensors(), "payload": np.array([print], dtype=object)}
    np.savez(path, **arrays)
    exc = check_reader(lambda: load_weight_file(path), path, ERRORS)
    assert exc is not None and "Python objects" in str(exc)
