"""The export formats, their optional dependencies, and the errors an export raises."""

from __future__ import annotations

import importlib
import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

from engine.errors import EngineError

EXTRAS_HINT = "pip install 'cnn-studio[export]'"


class ExportError(EngineError):
    """An export or import that failed; the message names the file and the reason."""


class MissingDependency(ExportError):
    """An optional package a format needs is not installed; ``install`` is the command that fixes it."""

    def __init__(self, package: str, purpose: str, install: str) -> None:
        super().__init__(f"{purpose} needs the '{package}' package, which is not installed. "
                         f"Install it with: {install}  (or all export extras: {EXTRAS_HINT})")
        self.package = package
        self.install = install


@dataclass(frozen=True)
class ExportFormat:
    """One way to take a trained network away.

    ``suffix`` is the file suffix of a single-file format, or "" for a folder format (which writes
    ``main_file`` and the weights beside it, and ``other_files``). ``packages`` are the optional modules
    it imports.
    """

    name: str
    label: str
    suffix: str
    description: str
    packages: tuple[str, ...] = ()
    install: str = ""
    main_file: str = ""
    other_files: tuple[str, ...] = ()  # what a folder format writes besides main_file and the weights

    @property
    def folder(self) -> bool:
        return not self.suffix

    def missing_packages(self) -> list[str]:
        """The optional packages this format needs that cannot be imported here."""
        return [p for p in self.packages if importlib.util.find_spec(p) is None]


FORMATS: dict[str, ExportFormat] = {
    f.name: f
    for f in (
        ExportFormat("npz", "Weights (.npz)", ".npz",
                     "The engine's own weight file with the architecture inside; loads back bit-identically."),
        ExportFormat("safetensors", "Weights (.safetensors)", ".safetensors",
                     "Safetensors weights with the architecture and tensor order in the metadata.",
                     packages=("safetensors",), install="pip install safetensors"),
        ExportFormat("onnx", "ONNX model (.onnx)", ".onnx",
                     "The network in inference form for ONNX Runtime, OpenCV, TensorRT and other tools.",
                     packages=("onnx",), install="pip install onnx onnxruntime"),
        ExportFormat("predictor", "NumPy predictor (predict.py)", "",
                     "A standalone predict.py that needs only NumPy, plus weights.npz and a README beside it.",
                     main_file="predict.py", other_files=("README.md",)),
        ExportFormat("pytorch", "PyTorch code (model.py)", "",
                     "A PyTorch nn.Module mirroring the architecture with a weight loader, plus weights.npz.",
                     main_file="model.py"),
        ExportFormat("pytorch-train", "PyTorch training project (train.py)", "",
                     "model.py, train.py and a README: trains the network with the same settings under "
                     "PyTorch, alone or with torchrun on many processes, and writes weights CNN Studio opens.",
                     main_file="train.py", other_files=("model.py", "README.md", "initial.npz")),
    )
}

WEIGHTS_FILE_NAME = "weights.npz"


def format_for_path(path: str | os.PathLike, format: str | None = None) -> ExportFormat:
    """The format named, or the one the path's suffix implies; raises ExportError when neither works."""
    if format is not None:
        key = format.lower().lstrip(".")
        if key in ("torch", "py"):
            key = "pytorch"
        if key in ("pytorch_train", "torch-train", "train"):
            key = "pytorch-train"
        if key not in FORMATS:
            raise ExportError(f"unknown export format {format!r}; known formats: {', '.join(FORMATS)}")
        return FORMATS[key]
    suffix = Path(path).suffix.lower()
    for candidate in FORMATS.values():
        if candidate.suffix and candidate.suffix == suffix:
            return candidate
    raise ExportError(f"{path}: cannot tell the export format from the name; end it in .npz, .safetensors "
                      "or .onnx, or name the format with --format (predictor, pytorch and pytorch-train write "
                      "into a folder)")


def check_output_file(path: str | os.PathLike, option: str = "--out", suffixes: tuple[str, ...] = (".npz",),
                      what: str = "the weight file") -> Path:
    """``path`` when a file of one of ``suffixes`` can be written there; else ExportError, one line naming
    the option and what to change. Asked before any work, so an hour of training is never lost to a
    folder name misspelt (the atomic write would only fail at the end, naming its temporary file)."""
    path = Path(path)
    if path.is_dir():
        example = f", e.g. {path / ('model' + suffixes[0])}" if suffixes else ""
        raise ExportError(f"{option} {path}: is a folder; name the file to write{example}")
    if suffixes and path.suffix.lower() not in suffixes:
        other = next((f for f in FORMATS.values() if f.suffix and f.suffix == path.suffix.lower()), None)
        convert = (f" (then `cnn-engine export {path.with_suffix('.npz').name} --out {path.name}` converts it)"
                   if other is not None and ".npz" in suffixes else "")
        raise ExportError(f"{option} {path}: {what} must end in {' or '.join(suffixes)}, e.g. "
                          f"{path.with_suffix(suffixes[0])}{convert}")
    folder = path.parent
    if not folder.exists():
        raise ExportError(f"{option} {path}: the folder {folder} does not exist (create it first)")
    if not folder.is_dir():
        raise ExportError(f"{option} {path}: {folder} is a file, not a folder")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise ExportError(f"{option} {path}: cannot write into {folder} (permission denied)")
    return path


def require(package: str, purpose: str, install: str) -> ModuleType:
    """Import an optional package or raise MissingDependency saying how to install it."""
    try:
        return importlib.import_module(package)
    except ImportError:
        raise MissingDependency(package, purpose, install) from None
