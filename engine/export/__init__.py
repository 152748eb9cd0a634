"""Taking a trained network away: weight files, ONNX, a standalone NumPy predictor, PyTorch code.

    from engine.export import export_model, import_weight_file
    export_model(model, "net.onnx")                      # format from the suffix
    export_model(model, "out/", format="pytorch")        # folder formats: model.py + weights.npz
    import_weight_file(model, "net.safetensors")         # refuses a mismatch, naming the tensor

Every file is written atomically: an export that fails (disk full, no permission) leaves the
files that were there untouched and no partial file behind. Optional packages (onnx, safetensors)
are imported only when their format is used; a missing one raises MissingDependency with the
command that installs it.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from engine.atomic import write_text_atomic
from engine.export.formats import (
    EXTRAS_HINT,
    FORMATS,
    WEIGHTS_FILE_NAME,
    ExportError,
    ExportFormat,
    MissingDependency,
    format_for_path,
)
from engine.model import Model
from engine.weights import build_model, load_tensors, read_weight_file, save_weights

__all__ = [
    "EXTRAS_HINT", "FORMATS", "WEIGHTS_FILE_NAME", "ExportError", "ExportFormat", "MissingDependency",
    "export_model", "format_for_path", "import_weight_file", "load_weight_file", "read_any_weight_file",
    "IMPORT_SUFFIXES",
]

IMPORT_SUFFIXES = (".npz", ".safetensors")


def export_model(
    model: Model,
    path: str | os.PathLike,
    format: str | None = None,
    weights: dict[str, np.ndarray] | None = None,
    class_names: list[str] | None = None,
    train_settings: dict[str, Any] | None = None,
) -> list[Path]:
    """Export ``model`` (or the given snapshot of its tensors) and return the files written.

    ``format`` is a key of FORMATS or None to take it from the path's suffix. For the folder formats
    ("predictor", "pytorch", "pytorch-train") ``path`` is a folder, created if needed, that receives
    ``predict.py`` or ``model.py`` (and ``train.py``) plus ``weights.npz``. ``class_names`` label the
    outputs where a format can carry them; ``train_settings`` (TrainConfig's keys; defaults for the
    rest) are what "pytorch-train" trains with. Raises MissingDependency, ExportError (naming the file
    and the reason) or WeightsError.
    """
    fmt = format_for_path(path, format)
    missing = fmt.missing_packages()
    if missing:
        raise MissingDependency(missing[0], f"Exporting {fmt.label}", fmt.install)
    # One copy up front: every file of this export shows the same weights even if training goes on.
    snapshot = {name: np.array(value, copy=True)
                for name, value in (weights if weights is not None else model.tensors()).items()}
    path = Path(path)
    try:
        written = (_export_folder(model, path, fmt, snapshot, class_names, train_settings) if fmt.folder
                   else [_export_file(model, path, fmt, snapshot, class_names)])
        for file in written:
            _usual_permissions(file)
        return written
    except OSError as exc:
        target = Path(exc.filename) if isinstance(exc.filename, str) and not _is_temporary(exc.filename) else path
        raise ExportError(f"{target}: cannot write it ({exc.strerror or exc})") from None


def _export_file(model: Model, path: Path, fmt: ExportFormat, snapshot: dict[str, np.ndarray],
                 class_names: list[str] | None) -> Path:
    if fmt.name == "npz":
        return save_weights(model, path, snapshot)
    if fmt.name == "safetensors":
        from engine.export.safetensors_io import save_safetensors

        return save_safetensors(model, path, snapshot)
    if fmt.name == "onnx":
        from engine.export.onnx_export import export_onnx

        return export_onnx(model, path, snapshot, class_names)
    raise ExportError(f"{fmt.name} is not a single-file format")


def _export_folder(model: Model, folder: Path, fmt: ExportFormat, snapshot: dict[str, np.ndarray],
                   class_names: list[str] | None, train_settings: dict[str, Any] | None = None) -> list[Path]:
    """Write every file into a hidden staging folder first, then move them in: all or nothing."""
    if folder.exists() and not folder.is_dir():
        raise ExportError(f"{folder}: is a file; {fmt.label} is written into a folder")
    created = not folder.exists()
    folder.mkdir(parents=True, exist_ok=True)
    stage: Path | None = None
    try:
        stage = Path(tempfile.mkdtemp(prefix=".export-", dir=folder))
        if fmt.name == "predictor":
            from engine.export.predictor_codegen import generate_predictor as generate
        else:
            from engine.export.torch_codegen import generate_torch_module as generate
        names = [WEIGHTS_FILE_NAME]
        if fmt.name == "pytorch-train":
            names += _training_project(model, stage, class_names, train_settings)
        else:
            if fmt.name == "predictor":  # how to use it, beside it (the folder may go to someone without the studio)
                from engine.export.predictor_codegen import README_NAME, generate_predictor_readme

                write_text_atomic(stage / README_NAME, generate_predictor_readme(model, class_names, WEIGHTS_FILE_NAME))
                names.append(README_NAME)
            write_text_atomic(stage / fmt.main_file, generate(model, class_names, WEIGHTS_FILE_NAME))
            names.append(fmt.main_file)
        save_weights(model, stage / WEIGHTS_FILE_NAME, snapshot)
        written = []
        for name in names:
            os.replace(stage / name, folder / name)
            written.append(folder / name)
        return written[::-1]
    finally:
        if stage is not None:
            shutil.rmtree(stage, ignore_errors=True)
        if created and not any(folder.iterdir()):
            with contextlib.suppress(OSError):
                folder.rmdir()


def _training_project(model: Model, stage: Path, class_names: list[str] | None,
                      train_settings: dict[str, Any] | None) -> list[str]:
    """Write model.py, train.py, the README and initial.npz into ``stage``; returns their names."""
    from engine.export import torch_train
    from engine.export.torch_codegen import generate_torch_module
    from engine.training import TrainConfig

    settings = TrainConfig.from_dict(train_settings or {}).to_dict()
    settings.pop("processes", None)  # the engine's own process split; torchrun decides here
    frozen = torch_train.frozen_tensors(model)
    write_text_atomic(stage / "model.py", generate_torch_module(model, class_names, WEIGHTS_FILE_NAME))
    write_text_atomic(stage / "train.py", torch_train.generate_train_script(settings, frozen))
    write_text_atomic(stage / torch_train.README_NAME, torch_train.generate_readme(model, settings, frozen))
    save_weights(model, stage / torch_train.INITIAL_WEIGHTS, torch_train.initial_weights(model, settings["seed"]))
    return [torch_train.INITIAL_WEIGHTS, torch_train.README_NAME, "model.py", "train.py"]


def _usual_permissions(path: Path) -> None:
    """Give an exported file the permissions a newly created file gets (temporary files start at 0600)."""
    umask = os.umask(0o022)
    os.umask(umask)
    with contextlib.suppress(OSError):
        os.chmod(path, 0o666 & ~umask)


def _is_temporary(filename: str) -> bool:
    name = Path(filename).name
    return name.startswith(".") and (name.endswith(".tmp") or name.startswith(".export-"))


def read_any_weight_file(path: str | os.PathLike) -> tuple[dict[str, Any], dict[str, Any], dict[str, np.ndarray]]:
    """(architecture, preprocessing, tensors in layer order) from a .npz or .safetensors weight file.

    The kind is told by the content, so a .safetensors file written under another name (train.py
    --out) reads too, and any other file is refused saying what it is. An ONNX model is refused with
    how it becomes a weight file."""
    refuse_onnx(path)
    return read_weight_file(path)


def refuse_onnx(path: str | os.PathLike) -> None:
    """Raise ExportError when ``path`` is an ONNX model given where a weight file belongs, saying how
    to import it; anything else is left to the weight file reader."""
    path = Path(path)
    if path.suffix.lower() != ".onnx" or not path.is_file():
        return
    from engine.file_kind import describe_file

    if describe_file(path) in ("an ONNX model", "a binary file of another kind"):
        raise ExportError(f"{path}: an ONNX model, not a CNN Studio weight file: import it first with "
                          f"`cnn-engine import {path} --out {path.with_suffix('.npz').name}` (in the studio: "
                          "File > Import ONNX Model)")


def load_weight_file(path: str | os.PathLike) -> Model:
    """Build the model a .npz or .safetensors weight file describes, with its tensors loaded."""
    return build_model(*read_any_weight_file(path), source=path)


def import_weight_file(model: Model, path: str | os.PathLike) -> None:
    """Load a .npz or .safetensors file's tensors into ``model`` (same architecture required).

    A mismatch raises WeightsError naming the first mismatching tensor; ``model`` is then unchanged.
    """
    _, preprocessing, tensors = read_any_weight_file(path)
    load_tensors(model, tensors, path)
    if preprocessing:
        model.preprocessing = preprocessing
