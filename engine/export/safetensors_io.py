"""Weights as ``.safetensors``: tensors in the engine's layout, the architecture in the metadata.

Metadata (all strings, as the format requires): ``format`` (the engine's weight-file marker),
``architecture`` (JSON), ``order`` (JSON list of tensor names in layer order: the file itself keeps
its keys sorted) and ``preprocessing`` (JSON). Tensors are "<layer>.<param>" float32 arrays, kernels
(kh, kw, in, out) for Conv2D and (in, out) for Dense, exactly as ``Model.tensors()`` holds them.
"""

from __future__ import annotations

import json
import os
import struct
from pathlib import Path
from typing import Any

import numpy as np

from engine.atomic import atomic_write
from engine.errors import WeightsError
from engine.export.formats import require
from engine.json_files import parse_json
from engine.model import Model
from engine.weights import WEIGHTS_FORMAT, build_model, checked_preprocessing

_INSTALL = "pip install safetensors"


def save_safetensors(model: Model, path: str | os.PathLike, weights: dict[str, np.ndarray] | None = None) -> Path:
    """Write ``model`` (or the given snapshot of its tensors) atomically as safetensors; returns the path."""
    numpy_io = require("safetensors.numpy", "Saving .safetensors", _INSTALL)
    path = Path(path)
    tensors = weights if weights is not None else model.tensors()
    metadata = {
        "format": WEIGHTS_FORMAT,
        "architecture": json.dumps(model.architecture),
        "order": json.dumps(list(tensors)),
        "preprocessing": json.dumps(model.preprocessing),
    }
    # safetensors writes a non-contiguous array's memory in storage order without a word, so every
    # tensor is made C-contiguous first (a transposed view would come back scrambled).
    data = numpy_io.save({name: np.ascontiguousarray(value) for name, value in tensors.items()}, metadata=metadata)
    with atomic_write(path) as handle:
        handle.write(data)
    return path


def read_safetensors(path: str | os.PathLike) -> tuple[dict[str, Any], dict[str, Any], dict[str, np.ndarray]]:
    """Return (architecture, preprocessing, tensors in layer order) from a safetensors file.

    Raises WeightsError naming the file when it is missing, damaged or not written by CNN Studio.
    """
    path = Path(path)
    purpose = f"Reading {path} (a .safetensors weight file)"
    require("safetensors", purpose, _INSTALL)  # first, so a missing package is named as pip knows it
    numpy_io = require("safetensors.numpy", purpose, _INSTALL)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise WeightsError(f"{path}: no such file") from None
    except OSError as exc:
        raise WeightsError(f"{path}: cannot read it ({exc.strerror or exc})") from None
    metadata = _metadata(data, path)
    if metadata.get("format") != WEIGHTS_FORMAT:
        raise WeightsError(f"{path}: not a CNN Studio weight file: a safetensors file whose metadata has no "
                           f"{WEIGHTS_FORMAT!r} format marker, so no architecture to build the network from "
                           "(CNN Studio's .safetensors export and train.py of its PyTorch project write both)")
    if "architecture" not in metadata:
        raise WeightsError(f"{path}: the metadata has no architecture record, so the network cannot be built "
                           "from this file (CNN Studio's own .safetensors export carries one)")
    architecture = _record(metadata, "architecture", path, dict)
    order = _record(metadata, "order", path, list, default=[])
    preprocessing = checked_preprocessing(_record(metadata, "preprocessing", path, dict, default={}), path)
    if not all(isinstance(name, str) for name in order):
        raise WeightsError(f"{path}: the metadata's tensor order is damaged (expected a list of names)")
    try:
        loaded = numpy_io.load(data)
    except Exception as exc:  # the Rust reader raises its own SafetensorError type
        raise WeightsError(f"{path}: damaged safetensors data ({' '.join(str(exc).split())[:200]})") from None
    # Layer order first (load_tensors reports the first mismatch in that order), then any extras.
    tensors = {name: loaded[name] for name in order if name in loaded}
    tensors.update({name: value for name, value in loaded.items() if name not in tensors})
    return architecture, preprocessing, tensors


def _record(metadata: dict[str, Any], key: str, path: Path, kind: type, default: Any = None) -> Any:
    """A JSON record of the metadata (``kind`` dict or list); ``default`` where an optional one is absent."""
    text = metadata.get(key)
    if text is None and default is not None:
        return default
    if not isinstance(text, str):
        raise WeightsError(f"{path}: the metadata has no {key} record" if text is None
                           else f"{path}: the metadata's {key} record is damaged (expected JSON text)")
    value = parse_json(text, f"{path}: the metadata's {key} record", WeightsError)
    if value is None and default is not None:
        return default
    if not isinstance(value, kind):
        raise WeightsError(f"{path}: the metadata's {key} record is damaged (expected a JSON "
                           f"{'object' if kind is dict else 'list'})")
    return value


def load_safetensors(path: str | os.PathLike) -> Model:
    """Build the model a safetensors file describes and load its tensors."""
    return build_model(*read_safetensors(path), source=path)


def _metadata(data: bytes, path: Path) -> dict[str, str]:
    """The ``__metadata__`` of a safetensors header: 8-byte little-endian length, then JSON."""
    if len(data) < 8:
        raise WeightsError(f"{path}: not a safetensors file (it is {len(data)} bytes long)")
    (length,) = struct.unpack("<Q", data[:8])
    if length > len(data) - 8:
        raise WeightsError(f"{path}: not a safetensors file (the header is longer than the file)")
    header = parse_json(data[8 : 8 + length], f"{path}: the safetensors header", WeightsError)
    if not isinstance(header, dict):
        raise WeightsError(f"{path}: not a safetensors file (the header is not a JSON object)")
    metadata = header.get("__metadata__") or {}
    if not isinstance(metadata, dict):
        raise WeightsError(f"{path}: not a safetensors file (the metadata is not a mapping)")
    return metadata
