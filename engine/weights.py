"""The engine's weight file: one ``.npz`` holding the architecture JSON and every tensor.

Keys: ``__format__``, ``__architecture__`` (JSON text), ``__preprocessing__`` (JSON text), and one
array per tensor named ``"<layer>.<param>"`` (parameters and batch-norm running statistics). No
pickled objects: the file loads with ``allow_pickle=False``.
"""

from __future__ import annotations

import json
import os
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from engine.atomic import atomic_write
from engine.errors import ArchitectureError, WeightsError
from engine.model import Model

WEIGHTS_FORMAT = "cnn-studio.weights/1"


def save_weights(model: Model, path: str | os.PathLike, weights: dict[str, np.ndarray] | None = None) -> Path:
    """Write ``model`` (or the given snapshot of its tensors) atomically; returns the path."""
    path = Path(path)
    tensors = weights if weights is not None else model.tensors()
    arrays: dict[str, Any] = {
        "__format__": np.array(WEIGHTS_FORMAT),
        "__architecture__": np.array(json.dumps(model.architecture)),
        "__preprocessing__": np.array(json.dumps(model.preprocessing)),
    }
    arrays.update({name: np.ascontiguousarray(value) for name, value in tensors.items()})
    with atomic_write(path) as handle:
        np.savez(handle, **arrays)
    return path


def read_weight_file(path: str | os.PathLike) -> tuple[dict[str, Any], dict[str, Any], dict[str, np.ndarray]]:
    """Return (architecture, preprocessing, tensors) from a weight file, or raise WeightsError."""
    path = Path(path)
    if not path.exists():
        raise WeightsError(f"{path}: no such file")
    try:
        with np.load(path, allow_pickle=False) as data:
            contents = {key: data[key] for key in data.files}
    except (zipfile.BadZipFile, ValueError, OSError, EOFError) as exc:
        raise WeightsError(f"{path}: not a CNN Studio weight file ({exc})") from None
    if str(contents.get("__format__", "")) != WEIGHTS_FORMAT:
        raise WeightsError(f"{path}: not a CNN Studio weight file (no {WEIGHTS_FORMAT!r} marker)")
    try:
        architecture = json.loads(str(contents.pop("__architecture__")))
        preprocessing = json.loads(str(contents.pop("__preprocessing__", "null"))) or {}
    except (KeyError, json.JSONDecodeError) as exc:
        raise WeightsError(f"{path}: its architecture record is damaged ({exc})") from None
    contents.pop("__format__")
    return architecture, preprocessing, contents


def load_weights(path: str | os.PathLike) -> Model:
    """Build the model stored in a weight file and load its tensors: predictions are bit-identical."""
    return build_model(*read_weight_file(path), source=path)


def build_model(
    architecture: dict[str, Any], preprocessing: dict[str, Any], tensors: dict[str, np.ndarray],
    source: str | os.PathLike = "",
) -> Model:
    """The model a weight file's records describe, with its tensors loaded (any weight format)."""
    try:
        model = Model.from_architecture(architecture)
    except ArchitectureError as exc:
        raise WeightsError(f"{source}: its architecture is invalid: {exc}") from None
    load_tensors(model, tensors, source)
    model.preprocessing = preprocessing or model.preprocessing
    return model


def load_tensors(model: Model, tensors: dict[str, np.ndarray], source: str | os.PathLike = "") -> None:
    """Copy tensors into ``model``, refusing any mismatch and naming the first mismatching tensor."""
    prefix = f"{source}: " if source else ""
    own = model.tensors()
    for (name, target), given in zip(own.items(), list(tensors.items()) + [None] * len(own)):
        if name not in tensors:
            other = f" (the file has {given[0]!r} there)" if given else ""
            raise WeightsError(f"{prefix}tensor {name!r} {target.shape} is missing{other}: "
                               "the file was saved from a different architecture")
        if tensors[name].shape != target.shape:
            raise WeightsError(f"{prefix}tensor {name!r} has shape {tensors[name].shape} in the file "
                               f"but {target.shape} in this architecture")
    extra = [name for name in tensors if name not in own]
    if extra:
        raise WeightsError(f"{prefix}tensor {extra[0]!r} is not in this architecture")
    model.set_weights(tensors)


def import_weights(model: Model, path: str | os.PathLike) -> None:
    """Load a weight file's tensors into an existing model of the same architecture."""
    _, preprocessing, tensors = read_weight_file(path)
    load_tensors(model, tensors, path)
    if preprocessing:
        model.preprocessing = preprocessing
