"""Project files (``.cnnproj``): the architecture, the dataset reference and the training settings.

    {"format": "cnn-studio.project/1",
     "architecture": {"format": "cnn-studio.architecture/2", "input": {...}, "layers": [...]},
     "dataset": "fashion-mnist-mini",
     "training": {"epochs": 5, "batch_size": 64, ...}}

Reading validates everything before anything is returned, so a broken or foreign file changes
nothing; every error names the file and what is wrong. Writing is atomic. A bare architecture
document (format 1 or 2) is read too, as a project with default settings; format 1 designs
become format 2 (the chain they describe) and are saved so.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.architecture import KNOWN_FORMATS as ARCHITECTURE_FORMATS
from engine.architecture import analyze, upgrade
from engine.atomic import write_text_atomic
from engine.errors import EngineError, shown
from engine.json_files import read_json
from engine.layers import LAYER_TYPES

PROJECT_FORMAT = "cnn-studio.project/1"
PROJECT_SUFFIX = ".cnnproj"
DEFAULT_DATASET = "fashion-mnist-mini"


class ProjectFileError(EngineError):
    """A project file that cannot be read or written; the message names the file."""


@dataclass(frozen=True)
class ProjectData:
    architecture: dict[str, Any]
    dataset: str = DEFAULT_DATASET
    training: dict[str, Any] = field(default_factory=dict)
    architecture_only: bool = False  # read from a bare architecture file, not a project


def project_dict(data: ProjectData) -> dict[str, Any]:
    return {"format": PROJECT_FORMAT, "architecture": data.architecture, "dataset": data.dataset,
            "training": data.training}


def write_project(path: str | os.PathLike, data: ProjectData) -> Path:
    """Write atomically; a failure leaves any existing file as it was. Returns the path written."""
    path = Path(path)
    try:
        text = json.dumps(project_dict(data), indent=2, allow_nan=False) + "\n"
    except (TypeError, ValueError) as exc:
        raise ProjectFileError(f"{path}: the project holds a value JSON cannot store ({exc})") from None
    try:
        write_text_atomic(path, text)
    except OSError as exc:
        raise ProjectFileError(f"{path}: cannot write the project ({exc.strerror or exc})") from None
    return path


def read_project(path: str | os.PathLike) -> ProjectData:
    path = Path(path)
    doc = read_json(path, ProjectFileError, "project file", broken="not a CNN Studio project: the JSON is broken at")
    return parse_project(doc, str(path))


def parse_project(doc: Any, source: str = "project") -> ProjectData:
    """Validate a decoded project (or bare architecture) document; raise ProjectFileError naming ``source``."""
    def bad(problem: str) -> ProjectFileError:
        return ProjectFileError(f"{source}: {problem}")

    if not isinstance(doc, dict):
        raise bad(f"not a CNN Studio project (the file holds a JSON {type(doc).__name__}, not an object)")
    fmt = doc.get("format")
    if fmt in ARCHITECTURE_FORMATS:
        return ProjectData(_checked_architecture(doc, bad), architecture_only=True)
    if not isinstance(fmt, str) or not fmt.startswith("cnn-studio.project/"):
        found = "no \"format\" key" if fmt is None else f"format {shown(fmt)}"
        raise bad(f'not a CNN Studio project ({found}; expected "{PROJECT_FORMAT}")')
    if fmt != PROJECT_FORMAT:
        raise bad(f"format {shown(fmt)} is newer than this version of CNN Studio understands ({PROJECT_FORMAT})")
    if "architecture" not in doc:
        raise bad('the project has no "architecture"')
    architecture = _checked_architecture(doc["architecture"], bad)
    dataset = doc.get("dataset", DEFAULT_DATASET)
    if not isinstance(dataset, str) or not dataset.strip() or "\x00" in dataset:
        raise bad(f'"dataset" must be a dataset name or path, not {shown(dataset)}')
    training = doc.get("training", {})
    if not isinstance(training, dict):
        raise bad(f'"training" must be an object of settings, not {type(training).__name__}')
    _check_training(training, bad)
    return ProjectData(architecture, dataset, training)


def _checked_architecture(arch: Any, bad: Callable[[str], ProjectFileError]) -> dict[str, Any]:
    if not isinstance(arch, dict):
        raise bad(f'"architecture" must be an object, not {type(arch).__name__}')
    analysis = analyze(arch)
    if analysis.input_shape is None:  # a document-level problem: format, input or layers list
        raise bad(f"the architecture is invalid: {analysis.problems[0].message}")
    seen_ids: set[str] = set()
    layers = []
    for index, spec in enumerate(arch["layers"], start=1):
        if not isinstance(spec, dict):
            raise bad(f"layer {index} must be an object, not {type(spec).__name__}")
        if not isinstance(spec.get("type"), str) or spec["type"] not in LAYER_TYPES:
            raise bad(f"layer {index} has unknown type {shown(spec.get('type'))} "
                      f"(known: {', '.join(LAYER_TYPES)})")
        spec = dict(spec)
        # Ids are the studio's block handles: a missing, odd or repeated one is replaced on load.
        if not isinstance(spec.get("id"), str) or spec["id"] in seen_ids:
            spec.pop("id", None)
        else:
            seen_ids.add(spec["id"])
        layers.append(spec)
    # Settings and shape problems are kept: a design in progress is saved and reopened as it is,
    # and the builder shows its problems.
    # Format 1 designs open as the chain they describe and are saved as format 2.
    return upgrade({"format": arch["format"], "input": {"shape": list(arch["input"]["shape"])}, "layers": layers})


# The studio shows integer settings in 32-bit spin boxes: anything beyond is damage, not a setting.
_LARGEST_INT = 2**31 - 1


def _check_training(training: dict[str, Any], bad: Callable[[str], ProjectFileError]) -> None:
    try:
        from engine.preflight import setting_problem
        from engine.training import TrainConfig
    except ImportError:  # the settings are then checked when training starts
        return
    defaults = TrainConfig().to_dict()
    for key, value in training.items():
        if key not in defaults:
            continue  # a newer version's setting: kept, ignored by TrainConfig.from_dict
        expected = defaults[key]
        if isinstance(value, int) and not isinstance(value, bool) and abs(value) > _LARGEST_INT:
            raise bad(f'training setting "{key}" {shown(value)} is out of range')
        problem = setting_problem(key, value)
        if problem is not None:
            raise bad(f'training setting "{key}" {problem.requirement}, not {shown(value)}')
        if isinstance(expected, bool):
            ok = isinstance(value, bool)
        elif isinstance(expected, (int, float)):
            ok = isinstance(value, (int, float)) and not isinstance(value, bool)
            if isinstance(expected, int) and ok:
                ok = isinstance(value, int) or value.is_integer()
        else:
            ok = isinstance(value, type(expected))
        if not ok and key != "processes":  # processes is 1, 2 or "auto" (checked above)
            raise bad(f'training setting "{key}" must be {type(expected).__name__}, not {shown(value)}')
