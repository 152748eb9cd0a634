"""The engine's weight file: one ``.npz`` holding the architecture JSON and every tensor.

Keys: ``__format__``, ``__architecture__`` (JSON text), ``__preprocessing__`` (JSON text), and one
array per tensor named ``"<layer>.<param>"`` (parameters and batch-norm running statistics). No
pickled objects: the file loads with ``allow_pickle=False``.

The readers here also take the studio's ``.safetensors`` export (engine.export.safetensors_io: the
same records in its metadata), told apart by content, so every command that takes a weight file
takes either; reading one needs the optional safetensors package.
"""

from __future__ import annotations

import json
import os
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from engine.atomic import atomic_write
from engine.data.normalization import Normalization
from engine.errors import ArchitectureError, DataError, ResourceError, WeightsError, shown
from engine.file_kind import describe_file, looks_like_safetensors
from engine.json_files import parse_json
from engine.model import Model
from engine.npz_archive import read_npz

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
    """Return (architecture, preprocessing, tensors) from a weight file (.npz, or the .safetensors export:
    told by content, not by name), or raise WeightsError; a .safetensors file without the optional
    safetensors package raises MissingDependency saying how to install it."""
    path = Path(path)
    if path.suffix.lower() == ".safetensors" or looks_like_safetensors(path):
        from engine.export.safetensors_io import read_safetensors  # the export package imports this module

        return read_safetensors(path)
    if path.is_file() and not zipfile.is_zipfile(path):
        # Say what the file is and what to pass instead, not why the zip reader gave up.
        raise WeightsError(f"{path}: not a CNN Studio weight file: it is {describe_file(path)}, not the .npz "
                           "archive that training saves nor the .safetensors export (cnn-engine train --out, "
                           "or File > Export in the studio)")
    contents = read_npz(path, WeightsError, "a CNN Studio weight file")
    marker = contents.pop("__format__", None)
    if marker is None or marker.shape != () or marker.dtype.kind != "U" or str(marker) != WEIGHTS_FORMAT:
        raise WeightsError(f"{path}: not a CNN Studio weight file (no {WEIGHTS_FORMAT!r} marker)")
    architecture = _json_record(contents.pop("__architecture__", None), path, "architecture")
    preprocessing = _json_record(contents.pop("__preprocessing__", None), path, "preprocessing", optional=True)
    return architecture, checked_preprocessing(preprocessing, path), contents


def _json_record(value: np.ndarray | None, path: Path, what: str, optional: bool = False) -> Any:
    """A JSON text record of a weight file (an architecture or preprocessing object)."""
    if value is None:
        if optional:
            return {}
        raise WeightsError(f"{path}: the weight file has no {what} record")
    if value.shape != () or value.dtype.kind != "U":
        raise WeightsError(f"{path}: the {what} record is damaged (expected text, found a {value.dtype} array "
                           f"of shape {value.shape})")
    record = parse_json(str(value), f"{path}: the {what} record", WeightsError)
    if optional and record is None:
        return {}
    if not isinstance(record, dict):
        raise WeightsError(f"{path}: the {what} record is damaged (expected a JSON object)")
    return record


def checked_preprocessing(preprocessing: Any, source: object) -> dict[str, Any]:
    """The preprocessing record as the model keeps it, refused (WeightsError) when it cannot work."""
    if not preprocessing:
        return {}
    try:
        return Normalization.from_dict(preprocessing).to_dict()
    except DataError as exc:
        raise WeightsError(f"{source}: the preprocessing record is invalid ({exc})") from None


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
    except ResourceError as exc:
        raise ResourceError(f"{source}: {exc}") from None
    load_tensors(model, tensors, source)
    mean = (preprocessing or {}).get("mean")
    if mean is not None and len(mean) != model.input_shape[-1]:
        raise WeightsError(f"{source}: the preprocessing record has {len(mean)} channel mean(s) but the network "
                           f"takes {model.input_shape[-1]} channel(s)")
    model.preprocessing = preprocessing or model.preprocessing
    return model


def load_tensors(model: Model, tensors: dict[str, np.ndarray], source: str | os.PathLike = "") -> None:
    """Copy tensors into ``model``, refusing any mismatch and naming the first mismatching tensor."""
    prefix = f"{source}: " if source else ""
    own = model.tensors()
    for (name, target), given in zip(own.items(), list(tensors.items()) + [None] * len(own)):
        if name not in tensors:
            other = f" (the file has {shown(given[0])} there)" if given else ""
            raise WeightsError(f"{prefix}tensor {name!r} {target.shape} is missing{other}: "
                               "the file was saved from a different architecture")
        value = tensors[name]
        if value.shape != target.shape:
            raise WeightsError(f"{prefix}tensor {name!r} has shape {shown(value.shape)} in the file "
                               f"but {target.shape} in this architecture")
        if value.dtype.kind not in "fiu":
            raise WeightsError(f"{prefix}tensor {name!r} holds {value.dtype} values; weights must be real numbers")
        finite = np.isfinite(value)
        if not finite.all():
            where = tuple(int(i) for i in np.argwhere(~finite)[0])
            raise WeightsError(f"{prefix}tensor {name!r} holds NaN or infinite values (first at index {where}); "
                               "the weights were saved from a run that diverged")
    extra = [name for name in tensors if name not in own]
    if extra:
        raise WeightsError(f"{prefix}tensor {shown(extra[0])} is not in this architecture")
    model.set_weights(tensors)


def import_weights(model: Model, path: str | os.PathLike) -> None:
    """Load a weight file's tensors into an existing model of the same architecture."""
    _, preprocessing, tensors = read_weight_file(path)
    load_tensors(model, tensors, path)
    if preprocessing:
        model.preprocessing = preprocessing
