"""A run folder: one training run's lasting record.

    <run>/run.json                      the record (engine.runs.record describes every key)
    <run>/checkpoints/epoch-0001.npz    one checkpoint per epoch (engine.runs.checkpoint), as retained
    <run>/weights.npz                   the final weights (an engine weight file), once the run ends
    <run>/start-weights.npz             the weights it started from, when not the seed's (fine-tuning)
    <run>/results.npz                   the test evaluation's per-image arrays (predictions, labels, probabilities)
    <run>/run.lock                      held by the process training the run

Every file is written atomically. A failed write (a full disk, a lost permission) stops
checkpointing with a warning while training goes on; the next epoch tries again.
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import os
import re
import shutil
import warnings
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from engine import atomic
from engine.errors import EngineError, RunError
from engine.metrics import Evaluation
from engine.runs import record as records
from engine.runs.checkpoint import CheckpointError, load_checkpoint, load_checkpoint_weights, save_checkpoint
from engine.runs.lock import RunLock, is_locked
from engine.training_state import TrainerState, TrainingLog, json_safe

RECORD = "run.json"
CHECKPOINTS = "checkpoints"
WEIGHTS = "weights.npz"
START_WEIGHTS = "start-weights.npz"
RESULTS = "results.npz"
LOCK = "run.lock"
_CHECKPOINT_NAME = re.compile(r"^epoch-(\d+)\.npz$")


class RunWriteWarning(RuntimeWarning):
    """A run folder could not be written (training goes on)."""


class CheckpointFallbackWarning(RuntimeWarning):
    """A damaged checkpoint was passed over for an earlier one."""


@dataclass(frozen=True)
class Retention:
    """Which epoch checkpoints a run keeps: every one ("all"), the last ``count`` ("last"), or the
    best (by the monitored metric) and the last ("best")."""

    keep: str = "all"
    count: int = 1

    def __post_init__(self) -> None:
        if self.keep not in ("all", "last", "best"):
            raise ValueError(f"unknown retention {self.keep!r} (choose all, last or best)")
        if self.keep == "last" and self.count < 1:
            raise ValueError(f"keep at least the last checkpoint, not {self.count}")

    @classmethod
    def parse(cls, text: str | int | None) -> Retention:
        """"all", "best", "last" or a number N (the last N): the CLI's and a record's spelling."""
        if text is None:
            return cls()
        value = str(text).strip().lower()
        if value.startswith("last"):
            value = value[4:].lstrip(":= ") or "1"
        if value.isdigit():
            return cls("last", int(value))
        if value in ("all", "best"):
            return cls(value)
        raise ValueError(f"unknown checkpoint retention {text!r} (all, best, or a number N for the last N)")

    def to_text(self) -> str:
        return str(self.count) if self.keep == "last" else self.keep

    def retained(self, epochs: list[int], best_epoch: int | None) -> set[int]:
        if self.keep == "all" or not epochs:
            return set(epochs)
        ordered = sorted(epochs)
        if self.keep == "last":
            return set(ordered[-self.count:])
        return {ordered[-1]} | ({best_epoch} if best_epoch in epochs else set())


def checkpoint_name(epoch: int) -> str:
    return f"epoch-{epoch:04d}.npz"


def now() -> str:
    return _dt.datetime.now().astimezone().isoformat(timespec="milliseconds")


class RunFolder:
    """A run folder on disk and its record in memory (``record``, the contents of run.json)."""

    def __init__(self, path: str | os.PathLike, record: dict[str, Any]) -> None:
        self.path = Path(path)
        self.record = record
        self._lock = RunLock(self.path / LOCK)
        self._failing: set[str] = set()  # kinds of file whose last write failed

    # -- making and opening -----------------------------------------------------------------------
    @classmethod
    def create(cls, path: str | os.PathLike, *, architecture: dict[str, Any], dataset: dict[str, Any],
               config: dict[str, Any], retention: Retention | None = None, name: str = "",
               architecture_name: str = "") -> RunFolder:
        """A new run in ``path`` (created; it must not hold a run or anything else)."""
        path = Path(path)
        if (path / RECORD).exists():
            raise RunError(f"{path} already holds a run; continue it with `cnn-engine resume {path}` "
                           "or choose another folder")
        if path.exists() and not path.is_dir():
            raise RunError(f"{path} is a file, not a folder")
        if path.exists() and any(path.iterdir()):
            raise RunError(f"{path} is not empty and holds no run; choose a new or empty folder")
        path.mkdir(parents=True, exist_ok=True)
        record = records.new_record(path.name, architecture=architecture, dataset=dataset, config=config,
                                    retention=(retention or Retention()).to_text(), name=name,
                                    architecture_name=architecture_name, created=now())
        folder = cls(path, record)
        folder.write_record(strict=True)
        return folder

    @classmethod
    def open(cls, path: str | os.PathLike) -> RunFolder:
        """The run in ``path``; RunError when there is none or its record is unreadable."""
        path = Path(path)
        file = path / RECORD
        if not path.is_dir():
            raise RunError(f"{path}: no such run folder")
        if not file.exists():
            raise RunError(f"{path} holds no run (no {RECORD})")
        try:
            record = json.loads(file.read_text(encoding="utf-8"))
        except (OSError, ValueError, RecursionError) as exc:  # broken JSON, huge integers, deep nesting
            raise RunError(f"{file}: the run record is damaged ({exc})") from None
        records.check_record(record, file)
        return cls(path, record)

    def relocate(self, path: str | os.PathLike) -> None:
        """The folder was moved to ``path`` (not while it trains): later writes go there."""
        if self._lock.held:
            raise RunError(f"{self.path} cannot move while it is being trained")
        self.path = Path(path)
        self._lock = RunLock(self.path / LOCK)

    # -- what it holds ----------------------------------------------------------------------------
    @property
    def id(self) -> str:
        return str(self.record.get("id") or self.path.name)

    @property
    def status(self) -> str:
        """The record's status, except that a run marked running whose process is gone is "interrupted"."""
        status = self.record.get("status", "running")
        if status == "running" and not self._lock.held and not is_locked(self.path / LOCK):
            return "interrupted"
        return status

    @property
    def resumable(self) -> bool:
        """Interrupted or stopped before its planned epochs, or before its test results."""
        return self.status in ("interrupted", "stopped") and (
            self.epochs_completed < self.epochs_planned or not self.record.get("results"))

    @property
    def epochs_planned(self) -> int:
        return int(self.record.get("epochs_planned", 0))

    @property
    def epochs_completed(self) -> int:
        return int(self.record.get("epochs_completed", 0))

    @property
    def retention(self) -> Retention:
        return Retention.parse(self.record.get("retention", "all"))

    def checkpoint_path(self, epoch: int) -> Path:
        return self.path / CHECKPOINTS / checkpoint_name(epoch)

    def checkpoints(self) -> list[tuple[int, Path]]:
        """(epoch, file) of each checkpoint on disk, oldest first."""
        folder = self.path / CHECKPOINTS
        if not folder.is_dir():
            return []
        found = []
        for item in folder.iterdir():
            match = _CHECKPOINT_NAME.match(item.name)
            if match:
                found.append((int(match.group(1)), item))
        return sorted(found)

    def weights_path(self) -> Path | None:
        path = self.path / WEIGHTS
        return path if path.exists() else None

    def save_start_weights(self, model: Any) -> None:
        """Keep the weights the run starts from (an engine weight file) when they are not what the
        seed makes (fine-tuning, imported weights): a run stopped before its first checkpoint then
        resumes from them, not from fresh ones."""
        from engine.weights import save_weights

        if self._write(lambda: save_weights(model, self.path / START_WEIGHTS), "the starting weights", "weights"):
            self.record["start_weights"] = START_WEIGHTS
            self.write_record()

    def start_weights(self) -> tuple[dict[str, np.ndarray], dict[str, Any]] | None:
        """(tensors, preprocessing) the run started from when they were kept (save_start_weights),
        else None. RunError when they were kept but cannot be read: fresh weights would silently
        lose them."""
        from engine.weights import read_weight_file

        if not self.record.get("start_weights"):
            return None
        path = self.path / START_WEIGHTS
        try:
            _, preprocessing, tensors = read_weight_file(path)
            return tensors, preprocessing
        except (OSError, ValueError, EngineError) as exc:
            raise RunError(f"{self.id}: the weights this run started from ({path.name}) cannot be read ({exc}); "
                           "start a new run from the original weight file instead") from None

    def latest_state(self, up_to: int | None = None) -> TrainerState | None:
        """The newest checkpoint that loads (at most epoch ``up_to``); damaged ones are passed over
        with a CheckpointFallbackWarning naming them. None when no checkpoint can be used."""
        for epoch, path in reversed(self.checkpoints()):
            if up_to is not None and epoch > up_to:
                continue
            try:
                state = load_checkpoint(path)
            except CheckpointError as exc:
                warnings.warn(f"{self.id}: checkpoint {exc}; falling back to the one before",
                              CheckpointFallbackWarning, stacklevel=2)
                continue
            if state.epoch != epoch:
                warnings.warn(f"{self.id}: {path.name} holds epoch {state.epoch}, not {epoch}; passed over",
                              CheckpointFallbackWarning, stacklevel=2)
                continue
            return state
        return None

    def epoch_weights(self, epoch: int) -> tuple[dict[str, Any], dict[str, Any], dict[str, np.ndarray]]:
        """(architecture, preprocessing, tensors) at the end of ``epoch``; CheckpointError if that
        checkpoint was not kept or is damaged."""
        path = self.checkpoint_path(epoch)
        if not path.exists():
            raise CheckpointError(f"{self.id}: no checkpoint of epoch {epoch} (kept: "
                                  f"{', '.join(str(e) for e, _ in self.checkpoints()) or 'none'})")
        return load_checkpoint_weights(path)

    # -- training ---------------------------------------------------------------------------------
    def acquire(self) -> None:
        """Take the run's lock for training: its status reads "running" to everyone else."""
        if not self._lock.acquire():
            raise RunError(f"{self.path} is being trained by another process right now")
        self.record["status"] = "running"
        self.record["pid"] = os.getpid()
        self.write_record()

    def release(self) -> None:
        """Give the lock back; a run still marked running (left without finish(): an exception,
        Ctrl+C) becomes "interrupted", its last checkpoint standing."""
        if not self._lock.held:
            return
        if self.record.get("status") == "running":
            self.record["status"] = "interrupted"
            self.write_record()
        self._lock.release()

    @contextmanager
    def training(self) -> Iterator[RunFolder]:
        """acquire() ... release() around a block."""
        self.acquire()
        try:
            yield self
        finally:
            self.release()

    def start_session(self, planned_epochs: int, state: TrainerState | TrainingLog | None,
                      environment: dict[str, Any], from_epoch: int | None = None) -> None:
        """A process starts training the run after epoch ``from_epoch`` (the state's epoch; 0 without
        one), its log so far in ``state`` (a TrainerState or a trainer's TrainingLog)."""
        rec = self.record
        rec["epochs_planned"] = int(planned_epochs)
        log = state.log if isinstance(state, TrainerState) else state
        if from_epoch is None:
            from_epoch = state.epoch if isinstance(state, TrainerState) else 0
        rec.setdefault("sessions", []).append({"started": now(), "from_epoch": int(from_epoch),
                                               "environment": environment})
        if from_epoch < self.epochs_completed or from_epoch == 0:
            # Resumed from an earlier checkpoint than the record reached: later epochs are redone.
            records.truncate(rec, from_epoch)
        if log is not None:
            self._take_log(log, from_epoch)
        elif from_epoch == 0:
            rec["batches"] = {"loss": [], "accuracy": [], "learning_rate": []}
        self.write_record()

    def _take_log(self, log: TrainingLog, epochs: int) -> None:
        rec = self.record
        rec["history"] = [json_safe(e) for e in log.epochs]
        rec["batches"] = {"loss": _finite(log.batch_loss), "accuracy": _finite(log.batch_accuracy),
                          "learning_rate": _finite(log.batch_lr)}
        rec["epochs_completed"] = epochs
        rec["best"] = records.best_epoch(rec)

    def save_epoch(self, state: TrainerState, seconds: float) -> bool:
        """Checkpoint epoch ``state.epoch`` and bring the record up to it; returns False (after a
        warning) when the disk refused either write."""
        rec = self.record
        if state.early_stopping is not None:
            rec["early_stopping"] = {**(rec.get("early_stopping") or {}), **json_safe(state.early_stopping)}
        self._take_log(state.log, state.epoch)
        timings = rec.setdefault("timings", {})
        epoch_seconds = timings.setdefault("epoch_seconds", [])
        del epoch_seconds[state.epoch - 1:]
        epoch_seconds.append(round(float(seconds), 3))
        self._total_training_seconds()
        ok = self._write(lambda: save_checkpoint(self.checkpoint_path(state.epoch), state),
                         f"the checkpoint of epoch {state.epoch}", "checkpoint", mkdir=self.path / CHECKPOINTS)
        if ok:
            self._prune()
        rec["checkpoints"] = [e for e, _ in self.checkpoints()]
        return self.write_record() and ok

    def _prune(self) -> None:
        best = (self.record.get("best") or {}).get("epoch")
        kept = self.retention.retained([e for e, _ in self.checkpoints()], best)
        for epoch, path in self.checkpoints():
            if epoch not in kept:
                try:
                    path.unlink()
                except OSError as exc:
                    warnings.warn(f"{self.id}: could not remove {path.name} ({exc})", RunWriteWarning, stacklevel=3)

    def _total_training_seconds(self) -> None:
        timings = self.record.setdefault("timings", {})
        total = sum(timings.get("epoch_seconds") or []) + float(timings.get("unfinished_seconds") or 0.0)
        timings["training_seconds"] = round(total, 3)

    def finish(self, status: str, message: str = "", *, stopped_early: bool = False, best_epoch: int = 0,
               unfinished_seconds: float = 0.0) -> None:
        """Record how the run ended ("completed", "stopped", "diverged"); ``unfinished_seconds``: time
        spent training after the last finished epoch (a stop mid-epoch), which counts in the run's
        training time."""
        rec = self.record
        rec["status"] = status
        if unfinished_seconds > 0:
            timings = rec.setdefault("timings", {})
            timings["unfinished_seconds"] = round(float(timings.get("unfinished_seconds") or 0.0)
                                                  + unfinished_seconds, 3)
            self._total_training_seconds()
        rec["message"] = message
        if stopped_early:
            rec["early_stopping"] = {**(rec.get("early_stopping") or {}), "stopped_early": True,
                                     "restored_epoch": best_epoch, "message": message}
        rec.setdefault("timings", {})["finished"] = now()
        sessions = rec.get("sessions") or []
        if sessions:
            sessions[-1]["ended"] = now()
            sessions[-1]["status"] = status
        self.write_record()

    def save_results(self, results: dict[str, Any], model: Any = None, evaluation: Evaluation | None = None) -> None:
        """Record the test results; given the model, write its weights as the run's final weights,
        and given the evaluation, its per-image arrays (results.npz: predictions, labels,
        probabilities) so that it can be rebuilt without the network (load_evaluation)."""
        self.record["results"] = results
        if model is not None:
            from engine.weights import save_weights

            if self._write(lambda: save_weights(model, self.path / WEIGHTS), "the final weights", "weights"):
                self.record["weights"] = WEIGHTS
        if evaluation is not None:
            arrays = {"predictions": evaluation.predictions.astype(np.int64),
                      "labels": evaluation.labels.astype(np.int64),
                      "probabilities": np.asarray(evaluation.probabilities, np.float32)}

            def write() -> None:
                with atomic.atomic_write(self.path / RESULTS) as handle:
                    np.savez(handle, **arrays)

            self._write(write, "the test results", "results")
        self.write_record()

    def load_evaluation(self) -> Evaluation | None:
        """The test evaluation of the final weights as the run recorded it, or None (no results yet,
        or results.npz missing or damaged)."""
        results = self.record.get("results")
        path = self.path / RESULTS
        if not results or not path.exists():
            return None
        try:
            with open(path, "rb") as handle, np.load(handle, allow_pickle=False) as data:
                predictions, labels = data["predictions"], data["labels"]
                probabilities = data["probabilities"]
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
            return None

        def number(v: Any) -> float:
            return math.nan if v is None else float(v)

        return Evaluation(number(results.get("test_accuracy")), number(results.get("test_loss")),
                          np.array([number(v) for v in results.get("per_class_accuracy", [])]),
                          np.array(results.get("confusion", []), dtype=np.int64), predictions, probabilities, labels)

    def add_warning(self, text: str) -> None:
        warnings_list = self.record.setdefault("warnings", [])
        if text not in warnings_list:
            warnings_list.append(text)

    # -- writing ----------------------------------------------------------------------------------
    def write_record(self, strict: bool = False) -> bool:
        self.record["updated"] = now()
        # One line per key: readable, yet long lists (batches, predictions) do not take a line per number.
        text = "{\n" + ",\n".join(f" {json.dumps(k)}: {json.dumps(v, allow_nan=False)}"
                                   for k, v in self.record.items()) + "\n}\n"
        if strict:
            atomic.write_text_atomic(self.path / RECORD, text)
            return True
        return self._write(lambda: atomic.write_text_atomic(self.path / RECORD, text), "the run record", "record")

    def _write(self, write: Any, what: str, kind: str, mkdir: Path | None = None) -> bool:
        """Run ``write``; on an OSError return False, with a warning when it is the first failure
        (one warning while the disk stays full, not one per file)."""
        try:
            if mkdir is not None:
                mkdir.mkdir(parents=True, exist_ok=True)
            write()
        except OSError as exc:
            if not self._failing:
                text = (f"{self.id}: could not write {what} ({exc.strerror or exc}); checkpointing stops, "
                        "training goes on (nothing in memory is lost)")
                warnings.warn(text, RunWriteWarning, stacklevel=3)
            self._failing.add(kind)
            return False
        if kind in self._failing:
            self._failing.discard(kind)
            if not self._failing:
                warnings.warn(f"{self.id}: {what} was written again; the run folder is kept up to date again",
                              RunWriteWarning, stacklevel=3)
        return True

    @property
    def write_failed(self) -> bool:
        """Whether the last write of some kind of file failed (checkpointing is paused)."""
        return bool(self._failing)


def _finite(values: list[float]) -> list[float | None]:
    return [v if math.isfinite(v) else None for v in values]


def is_run(path: str | os.PathLike) -> bool:
    return (Path(path) / RECORD).is_file()


SWEEP_MANIFEST = "sweep.json"


def runs_in(path: str | os.PathLike) -> list[Path]:
    """The run folders ``path`` holds: itself if it is one, else its sub-folders that are runs and the
    runs of its sweep folders (sub-folders with a sweep.json), by name."""
    path = Path(path)
    if is_run(path):
        return [path]
    if not path.is_dir():
        raise RunError(f"{path}: no such folder")
    found = []
    for child in sorted(path.iterdir()):
        if not child.is_dir():
            continue
        if is_run(child):
            found.append(child)
        elif (child / SWEEP_MANIFEST).is_file():
            found.extend(sorted(p for p in child.iterdir() if p.is_dir() and is_run(p)))
    return found


def unique_child(parent: str | os.PathLike, stem: str) -> Path:
    """``parent/stem``, or ``parent/stem-2`` ... when taken."""
    parent = Path(parent)
    stem = re.sub(r"[^\w.=+,-]+", "_", stem).strip("._") or "run"
    candidate, n = parent / stem, 2
    while candidate.exists():
        candidate, n = parent / f"{stem}-{n}", n + 1
    return candidate


def remove_run(path: str | os.PathLike) -> None:
    """Delete a run folder (refused while it trains)."""
    path = Path(path)
    if is_locked(path / LOCK):
        raise RunError(f"{path} is being trained right now")
    shutil.rmtree(path)
