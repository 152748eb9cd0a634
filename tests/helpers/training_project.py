"""The weight file a generated PyTorch training project's train.py writes, without PyTorch.

train.py imports torch at the top, but its writer (``write_safetensors``: the format by hand, without
the safetensors package) needs only NumPy and the standard library. Running that very code, taken
from the generated file, gives tests the exact bytes users bring back to the studio.
"""

from __future__ import annotations

import ast
import json
import os
import struct
import tempfile
from pathlib import Path

import numpy as np

from engine.model import Model

_WRITER_FUNCTIONS = ("_atomic_write", "write_safetensors")


def _constant(tree: ast.Module, name: str) -> object:
    """The literal value of a module-level ``NAME = ...`` or ``NAME: type = ...`` of a generated file."""
    for node in tree.body:
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node.target.id == name:
            return ast.literal_eval(node.value)
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == name for t in node.targets):
            return ast.literal_eval(node.value)
    raise AssertionError(f"the generated file has no {name}")


def write_like_train_py(model: Model, path: Path) -> Path:
    """Export ``model`` as a PyTorch training project beside ``path`` and write its tensors to ``path``
    with that project's train.py writer, as train.py does at the end of training."""
    from engine.export import export_model

    folder = path.parent / f"{path.stem}-project"
    export_model(model, folder, format="pytorch-train")
    train = ast.parse((folder / "train.py").read_text())
    writer = ast.Module([node for node in train.body
                         if isinstance(node, ast.FunctionDef) and node.name in _WRITER_FUNCTIONS], [])
    assert len(writer.body) == len(_WRITER_FUNCTIONS), "train.py's weight writer has changed"
    namespace = {
        "json": json, "os": os, "struct": struct, "tempfile": tempfile, "np": np, "Path": Path,
        "WEIGHTS_FORMAT": _constant(train, "WEIGHTS_FORMAT"),
        "ARCHITECTURE": _constant(ast.parse((folder / "model.py").read_text()), "ARCHITECTURE"),
    }
    exec(compile(writer, str(folder / "train.py"), "exec"), namespace)
    namespace["write_safetensors"](path, model.get_weights(), model.preprocessing)
    return path
