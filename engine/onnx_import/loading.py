"""Reading an ONNX file into a ``ModelProto``, with one clear line for anything that is not one."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from engine.errors import EngineError
from engine.export.formats import require
from engine.file_kind import describe_file

INSTALL = "pip install onnx onnxruntime"
# The opsets whose operator definitions the importer reads (attributes moved to inputs at 13 and 18).
OPSETS = range(7, 22)


class OnnxImportError(EngineError):
    """An ONNX file that cannot become an engine network; the message is one line naming the culprit.

    A refused network also carries its ``culprits`` (each node, or the model's input or output, with
    why) and the ``advice`` on what to change, for a window that lists them one a line."""

    def __init__(self, message: str, culprits: Sequence[str] = (), advice: str = "") -> None:
        super().__init__(message)
        self.culprits = list(culprits)
        self.advice = advice


def load_onnx(path: str | os.PathLike) -> Any:
    """The file's ``onnx.ModelProto`` (external tensor data beside it loaded too), or OnnxImportError."""
    onnx = require("onnx", "Importing ONNX models", INSTALL)
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise OnnxImportError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise OnnxImportError(f"{path}: is a folder, not an ONNX file") from None
    except OSError as exc:
        raise OnnxImportError(f"{path}: cannot read it ({exc.strerror or exc})") from None
    if not data:
        raise OnnxImportError(f"{path}: the file is empty, not an ONNX model")
    try:
        model = onnx.ModelProto()
        model.ParseFromString(data)
    except Exception:  # protobuf's DecodeError and friends: a truncated or foreign file
        raise OnnxImportError(_not_onnx(path)) from None
    if not model.HasField("graph") or not model.graph.node or not model.graph.output:
        raise OnnxImportError(f"{path}: not an ONNX model, or the file is truncated (it has no graph)")
    if any(_external(t) for t in model.graph.initializer):
        try:
            from onnx.external_data_helper import load_external_data_for_model

            load_external_data_for_model(model, str(path.parent))
        except Exception as exc:
            raise OnnxImportError(f"{path}: its external weight data cannot be read ({_short(exc)})") from None
    # After the external data is in: the checker would look for it relative to the working folder.
    try:  # names, types, attributes and tensor sizes as the standard says; a damaged file fails here
        onnx.checker.check_model(model)
    except Exception as exc:
        raise OnnxImportError(f"{path}: not a valid ONNX model ({_short(exc)})") from None
    version = opset_version(model)
    if version not in OPSETS:
        raise OnnxImportError(f"{path}: opset {version} is not supported (opsets {OPSETS.start} to "
                              f"{OPSETS.stop - 1} are)")
    return model


def _not_onnx(path: Path) -> str:
    """What a file protobuf cannot read holds, in words: what it is when that can be told (a picture, a
    weight file, a text file), else that it is not ONNX or is cut short (protobuf's reason says no more)."""
    kind = describe_file(path)
    if kind == "a binary file of another kind" or kind == "an ONNX model":
        return f"{path}: not an ONNX model, or the file is truncated (it cannot be read as one)"
    return f"{path}: not an ONNX model: it is {kind}"


def opset_version(model: Any) -> int:
    """The version of the default ('' or 'ai.onnx') operator set the model was written for."""
    for entry in model.opset_import:
        if entry.domain in ("", "ai.onnx"):
            return int(entry.version)
    return 1


def _external(tensor: Any) -> bool:
    return tensor.data_location == 1  # TensorProto.EXTERNAL


def _short(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= 160 else text[:157] + "..."
