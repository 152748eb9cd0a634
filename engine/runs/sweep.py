"""Sweeps: a grid or random search over training settings and numeric layer fields, one run
folder per point, trained one after another.

An axis is ``key=v1,v2,...`` or, for random search, ``key=low..high``. Keys are TrainConfig fields
(``learning_rate`` alias ``lr``, ``batch_size``, ``optimizer``, ``weight_decay``,
``label_smoothing``, ``momentum``, ...) or ``<layer>.<field>`` for a layer's numeric setting, the
layer named by its name or block id (``dropout_1.rate``, ``conv2d_2.filters``). Random search
draws each axis independently: from its list, or from its range (log-uniform for a positive
float range spanning 10x or more, uniform otherwise; whole numbers for integer fields).
"""

from __future__ import annotations

import copy
import itertools
import json
import math
import os
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np

from engine.architecture import analyze, layer_names
from engine.atomic import write_text_atomic
from engine.data import Dataset
from engine.errors import ArchitectureError, RunError
from engine.layers import LAYER_TYPES
from engine.model import Model
from engine.runs.folder import RunFolder, is_run
from engine.runs.listing import RunSummary, format_table
from engine.runs.session import RunOutcome, new_run, prepare_resume, train_in_folder
from engine.training import Event, TrainConfig

SWEEP_FORMAT = "cnn-studio.sweep/1"
ALIASES = {"lr": "learning_rate", "bs": "batch_size", "wd": "weight_decay", "ls": "label_smoothing",
           "batch": "batch_size", "smoothing": "label_smoothing"}
# Settings a sweep may not vary: they are the sweep's frame (the same for every run) or not settings.
FIXED = ("epochs", "seed", "validation_split", "standardize")


@dataclass(frozen=True)
class Axis:
    """One swept setting: its key and either a list of values or a (low, high) range."""

    key: str
    values: tuple[Any, ...] = ()
    low: float | None = None
    high: float | None = None
    kind: str = "float"  # "int" | "float" | "str" | "bool"

    @property
    def is_range(self) -> bool:
        return self.low is not None

    def draw(self, rng: np.random.Generator) -> Any:
        if not self.is_range:
            return self.values[int(rng.integers(len(self.values)))]
        assert self.low is not None and self.high is not None
        if self.kind == "int":
            return int(rng.integers(int(self.low), int(self.high) + 1))
        if self.low > 0 and self.high / self.low >= 10:
            return float(math.exp(rng.uniform(math.log(self.low), math.log(self.high))))
        return float(rng.uniform(self.low, self.high))

    def to_dict(self) -> dict[str, Any]:
        if self.is_range:
            return {"key": self.key, "low": self.low, "high": self.high, "kind": self.kind}
        return {"key": self.key, "values": list(self.values), "kind": self.kind}


def _config_kinds() -> dict[str, str]:
    kinds = {}
    for f in fields(TrainConfig):
        default = f.default
        kinds[f.name] = ("bool" if isinstance(default, bool) else "int" if isinstance(default, int)
                         else "float" if isinstance(default, float) else "str")
    return kinds


def _layer_field(architecture: dict[str, Any], key: str) -> tuple[int, str, str]:
    """(layer index, field name, kind) of ``<layer>.<field>``; RunError naming what is wrong."""
    layer_ref, _, name = key.partition(".")
    names = layer_names(architecture)
    specs = architecture.get("layers", [])
    index = next((i for i, (n, s) in enumerate(zip(names, specs))
                  if layer_ref in (n, s.get("id") if isinstance(s, dict) else None)), None)
    if index is None:
        raise RunError(f"sweep: no layer {layer_ref!r} in the network (layers: {', '.join(names)})")
    type_name = specs[index].get("type")
    cls = LAYER_TYPES.get(type_name)
    known = {f.name: f for f in cls.fields} if cls else {}
    if name not in known:
        raise RunError(f"sweep: {type_name} layer {layer_ref!r} has no setting {name!r} "
                       f"(its settings: {', '.join(known) or 'none'})")
    kind = known[name].kind
    if kind not in ("int", "float"):
        raise RunError(f"sweep: {layer_ref}.{name} is not a numeric setting")
    return index, name, kind


def _convert(text: str, kind: str, key: str) -> Any:
    try:
        if kind == "int":
            number = float(text)
            if number != int(number):
                raise ValueError
            return int(number)
        if kind == "float":
            return float(text)
        if kind == "bool":
            lowered = text.strip().lower()
            if lowered not in ("true", "false", "1", "0", "yes", "no"):
                raise ValueError
            return lowered in ("true", "1", "yes")
        return text.strip()
    except ValueError:
        raise RunError(f"sweep: {key} takes {'whole numbers' if kind == 'int' else kind + ' values'}, "
                       f"not {text!r}") from None


def parse_axis(text: str, architecture: dict[str, Any]) -> Axis:
    """``key=v1,v2`` or ``key=low..high`` -> Axis; RunError for an unknown key or a bad value."""
    key, sep, values = text.partition("=")
    key = key.strip()
    if not sep or not key or not values.strip():
        raise RunError(f"sweep: {text!r} is not KEY=VALUE,VALUE... or KEY=LOW..HIGH")
    if "." in key:
        kind = _layer_field(architecture, key)[2]
    else:
        key = ALIASES.get(key, key)
        kinds = _config_kinds()
        if key not in kinds:
            raise RunError(f"sweep: unknown setting {key!r} (training settings: lr, batch_size, optimizer, "
                           "weight_decay, label_smoothing, momentum, ...; layer settings as LAYER.FIELD, "
                           "e.g. dropout_1.rate)")
        if key in FIXED:
            raise RunError(f"sweep: {key} is the same for every run of a sweep; set it with its own option")
        kind = kinds[key]
    if ".." in values:
        low_text, _, high_text = values.partition("..")
        if kind not in ("int", "float"):
            raise RunError(f"sweep: {key} is not numeric; list its values instead of a range")
        low, high = _convert(low_text, kind, key), _convert(high_text, kind, key)
        if not low < high:
            raise RunError(f"sweep: the range of {key} must go from low to high, not {low}..{high}")
        return Axis(key, low=float(low), high=float(high), kind=kind)
    parsed = tuple(_convert(v, kind, key) for v in values.split(",") if v.strip())
    if not parsed:
        raise RunError(f"sweep: {key} has no values")
    return Axis(key, tuple(dict.fromkeys(parsed)), kind=kind)


def sweep_points(axes: list[Axis], random: int | None = None, seed: int = 0) -> list[dict[str, Any]]:
    """The grid (every combination, in order) or ``random`` draws (distinct where the grid allows)."""
    if not axes:
        raise RunError("sweep: give at least one --grid KEY=VALUES")
    keys = [a.key for a in axes]
    if len(set(keys)) != len(keys):
        raise RunError("sweep: each setting may be swept by one --grid only")
    if not random:
        ranged = [a.key for a in axes if a.is_range]
        if ranged:
            raise RunError(f"sweep: the range of {ranged[0]} needs random search (--random N)")
        return [dict(zip(keys, combo)) for combo in itertools.product(*(a.values for a in axes))]
    if random < 1:
        raise RunError(f"sweep: --random needs a number of runs of at least 1, not {random}")
    rng = np.random.default_rng(seed)
    if all(not a.is_range for a in axes):
        # Lists only: distinct points; asking for more than the grid holds gives the grid.
        grid = [dict(zip(keys, combo)) for combo in itertools.product(*(a.values for a in axes))]
        chosen = rng.choice(len(grid), size=min(random, len(grid)), replace=False)
        return [grid[i] for i in sorted(chosen)]
    return [{a.key: a.draw(rng) for a in axes} for _ in range(random)]


def apply_point(architecture: dict[str, Any], config: TrainConfig, point: dict[str, Any],
                lr_defaults: dict[str, float] | None = None) -> tuple[dict[str, Any], TrainConfig]:
    """The architecture and settings of one point; RunError when they cannot work together.

    ``lr_defaults`` (optimizer -> learning rate): the rate for a swept optimizer when the sweep
    sets no rate of its own (the CLI's defaults differ between SGD and Adam).
    """
    doc = copy.deepcopy(architecture)
    settings = config.to_dict()
    if lr_defaults and "optimizer" in point and "learning_rate" not in point:
        settings["learning_rate"] = lr_defaults.get(point["optimizer"], settings["learning_rate"])
    for key, value in point.items():
        if "." in key:
            index, name, _ = _layer_field(doc, key)
            doc["layers"][index][name] = value
        else:
            settings[key] = value
    problems = analyze(doc).problems
    if problems:
        raise RunError(f"sweep: {label(point)} makes the network impossible: {problems[0]}")
    try:
        return doc, TrainConfig.from_dict(settings)
    except (TypeError, ValueError) as exc:
        raise RunError(f"sweep: {label(point)}: {exc}") from None


def _short(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def label(point: dict[str, Any]) -> str:
    return " ".join(f"{k}={_short(v)}" for k, v in point.items())


@dataclass
class SweepRun:
    """One point of a sweep: its settings, its run folder and, once trained, its summary."""

    index: int
    point: dict[str, Any]
    path: Path
    summary: RunSummary | None = None
    error: str = ""

    @property
    def best_val_accuracy(self) -> float:
        return self.summary.best_val_accuracy if self.summary else math.nan


@dataclass
class Sweep:
    """A sweep in its folder: the points, run one after another by ``run``."""

    out: Path
    architecture: dict[str, Any]
    config: TrainConfig
    axes: list[Axis]
    points: list[dict[str, Any]]
    architecture_name: str = ""
    retention: Any = None
    lr_defaults: dict[str, float] | None = None
    runs: list[SweepRun] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.out = Path(self.out)
        # Every point is checked before anything trains.
        self.plans = [apply_point(self.architecture, self.config, p, self.lr_defaults) for p in self.points]
        width = len(str(len(self.points)))
        self.runs = [SweepRun(i, p, self.out / _folder_name(i + 1, width, p)) for i, p in enumerate(self.points)]

    def write_manifest(self) -> None:
        self.out.mkdir(parents=True, exist_ok=True)
        manifest = {"format": SWEEP_FORMAT, "architecture": self.architecture, "config": self.config.to_dict(),
                    "axes": [a.to_dict() for a in self.axes], "points": self.points,
                    "runs": [r.path.name for r in self.runs]}
        write_text_atomic(self.out / "sweep.json", json.dumps(manifest, indent=1))

    def run(self, dataset: Dataset, dataset_ref: dict[str, Any],
            on_start: Callable[[SweepRun], None] | None = None,
            on_event: Callable[[SweepRun, Event], None] | None = None,
            on_done: Callable[[SweepRun, RunOutcome | None], None] | None = None,
            should_stop: Callable[[], bool] | None = None) -> list[SweepRun]:
        """Train every point not yet completed (an interrupted one is resumed), one after another."""
        self._check_out_folder()
        self.write_manifest()
        for sweep_run, (doc, config) in zip(self.runs, self.plans):
            if should_stop is not None and should_stop():
                break
            if on_start is not None:
                on_start(sweep_run)
            outcome = self._train(sweep_run, doc, config, dataset, dataset_ref, on_event)
            if on_done is not None:
                on_done(sweep_run, outcome)
        return self.runs

    def _train(self, sweep_run: SweepRun, doc: dict[str, Any], config: TrainConfig, dataset: Dataset,
               dataset_ref: dict[str, Any], on_event: Callable[[SweepRun, Event], None] | None) -> RunOutcome | None:
        def forward(event: Event) -> None:
            if on_event is not None:
                on_event(sweep_run, event)

        try:
            if is_run(sweep_run.path):
                folder = RunFolder.open(sweep_run.path)
                if folder.status == "completed":
                    sweep_run.summary = RunSummary.of(folder)
                    return None
                folder, trainer = prepare_resume(sweep_run.path, dataset)
            else:
                model = Model(doc, seed=config.seed)
                folder, trainer = new_run(sweep_run.path, model, dataset, config, dataset_ref,
                                          retention=self.retention, name=label(sweep_run.point),
                                          architecture_name=self.architecture_name)
                folder.record["sweep"] = {"point": sweep_run.point, "index": sweep_run.index}
            outcome = train_in_folder(folder, trainer, forward)
        except (RunError, ArchitectureError, ValueError) as exc:
            sweep_run.error = str(exc)
            return None
        sweep_run.summary = RunSummary.of(outcome.folder)
        return outcome

    def _check_out_folder(self) -> None:
        manifest = self.out / "sweep.json"
        if manifest.exists():
            try:
                old = json.loads(manifest.read_text(encoding="utf-8"))
            except (OSError, ValueError, RecursionError):
                old = {}
            if old.get("points") != json.loads(json.dumps(self.points)) or old.get("config") != self.config.to_dict():
                raise RunError(f"{self.out} holds another sweep; choose a new folder "
                               "(the same command continues its own sweep)")
        elif self.out.exists() and any(self.out.iterdir()):
            raise RunError(f"{self.out} is not empty; choose a new folder for the sweep")

    def ranked(self) -> list[SweepRun]:
        """Runs by best validation accuracy, best first (runs without one last)."""
        return sorted(self.runs, key=lambda r: (math.isnan(r.best_val_accuracy), -np.nan_to_num(r.best_val_accuracy)))

    def table(self) -> str:
        keys = list(self.points[0]) if self.points else []
        rows = [["#", *keys, "epochs", "best val acc", "val loss", "test acc", "time", "status"]]
        for r in self.ranked():
            s = r.summary
            best = (s.record.get("best") or {}) if s else {}
            val_loss = best.get("val_loss")
            rows.append([
                str(r.index + 1), *(_short(r.point[k]) for k in keys),
                f"{s.epochs_completed}/{s.epochs_planned}" if s else "-",
                "-" if not s or math.isnan(s.best_val_accuracy) else f"{s.best_val_accuracy:.2%}",
                "-" if val_loss is None else f"{val_loss:.4f}",
                "-" if not s or math.isnan(s.test_accuracy) else f"{s.test_accuracy:.2%}",
                f"{s.seconds:.1f}s" if s else "-",
                s.status if s else ("failed: " + r.error if r.error else "not run"),
            ])
        n = len(keys)
        return format_table(rows, right={0, *range(1, n + 1), n + 1, n + 2, n + 3, n + 4, n + 5})


def _folder_name(number: int, width: int, point: dict[str, Any]) -> str:
    text = "-".join(f"{k}={_short(v)}" for k, v in point.items())
    safe = "".join(c if c.isalnum() or c in "=.+-_," else "_" for c in text)
    return f"{number:0{width}d}-{safe}"[:120]


def sweep_folder_points(path: str | os.PathLike) -> dict[str, Any]:
    """A sweep folder's manifest (sweep.json)."""
    try:
        return json.loads((Path(path) / "sweep.json").read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError) as exc:
        raise RunError(f"{path}: not a sweep folder ({exc})") from None
