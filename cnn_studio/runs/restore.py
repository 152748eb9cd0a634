"""A run folder back in the studio: its curves and outcome as a RunRecord of the project's history, its
final (or latest) weights and test evaluation as the project's trained network."""

from __future__ import annotations

import copy
import math
from pathlib import Path
from typing import Any

import numpy as np

from cnn_studio.training.run_history import RunHistory, RunRecord, describe_network
from cnn_studio.training.trained import TrainedNetwork, WeightSnapshot
from engine.errors import EngineError
from engine.metrics import Evaluation
from engine.runs import RunFolder
from engine.runs.checkpoint import CheckpointError
from engine.training import EpochEnd, TrainConfig
from engine.weights import read_weight_file

# A run's status as the history list words its outcome.
OUTCOMES = {"completed": "completed", "stopped": "stopped", "diverged": "diverged", "interrupted": "interrupted",
            "running": "running"}


def _number(value: Any) -> float:
    return math.nan if value is None else float(value)


def epoch_events(record: dict[str, Any]) -> list[EpochEnd]:
    """The record's history as the EpochEnd events the plots draw (elapsed: cumulative epoch times)."""
    seconds = (record.get("timings") or {}).get("epoch_seconds") or []
    planned = int(record.get("epochs_planned") or len(record.get("history") or []))
    events, elapsed = [], 0.0
    for i, entry in enumerate(record.get("history") or []):
        elapsed += float(seconds[i]) if i < len(seconds) else 0.0
        events.append(EpochEnd(int(entry["epoch"]), planned, _number(entry.get("train_loss")),
                               _number(entry.get("train_accuracy")), _number(entry.get("val_loss")),
                               _number(entry.get("val_accuracy")), _number(entry.get("learning_rate")), elapsed,
                               str(entry.get("note") or "")))
    return events


def run_record(folder: RunFolder, number: int) -> RunRecord:
    """The history's record of a run folder: settings, curves, outcome, test accuracy."""
    rec = folder.record
    config = TrainConfig.from_dict(rec.get("config") or {})
    dataset = rec.get("dataset") or {}
    record = RunRecord(number, config, str(dataset.get("name") or dataset.get("spec") or ""),
                       describe_network(rec.get("architecture") or {}))
    record.run_id = folder.id
    epochs = epoch_events(rec)
    record.epochs = epochs
    losses = [math.nan if v is None else float(v) for v in (rec.get("batches") or {}).get("loss") or []]
    if epochs and losses:
        record.set_smoothing(max(1, len(losses) // len(epochs)))
    for step, loss in enumerate(losses, start=1):
        record.batch_loss.append(step, loss)
        record.smoothed_loss.add(step, loss)
    record.outcome = OUTCOMES.get(folder.status, folder.status)
    record.message = str(rec.get("message") or "")
    results = rec.get("results") or {}
    if results.get("test_accuracy") is not None:
        record.test_accuracy = float(results["test_accuracy"])
    return record


def final_weights(folder: RunFolder) -> tuple[dict[str, Any], dict[str, Any], dict[str, np.ndarray], int] | None:
    """(architecture, preprocessing, tensors, epochs) the run ends with: its final weights, else its
    newest readable checkpoint; None when it has neither."""
    path = folder.weights_path()
    if path is not None:
        try:
            architecture, preprocessing, tensors = read_weight_file(path)
            results = folder.record.get("results") or {}
            return architecture, preprocessing, tensors, int(results.get("epoch") or folder.epochs_completed)
        except EngineError:
            pass
    for epoch, _path in reversed(folder.checkpoints()):
        try:
            architecture, preprocessing, tensors = folder.epoch_weights(epoch)
        except CheckpointError:
            continue
        return architecture, preprocessing, tensors, epoch
    return None


def restore_trained(trained: TrainedNetwork, folder: RunFolder) -> bool:
    """Make ``folder``'s final weights and evaluation the project's trained network; False when the run
    has no weights to show."""
    found = final_weights(folder)
    if found is None:
        return False
    architecture, preprocessing, tensors, epochs = found
    evaluation: Evaluation | None = folder.load_evaluation()
    class_names = list((folder.record.get("dataset") or {}).get("class_names") or [])
    trained.restore(architecture, int(folder.record.get("seed", 0)),
                    WeightSnapshot(tensors, copy.deepcopy(preprocessing), epochs), evaluation, class_names,
                    folder.id)
    return True


def restore_history(history: RunHistory, folders: list[RunFolder]) -> list[RunRecord]:
    """Fill an empty history with the project's runs, oldest first."""
    records = [run_record(folder, number) for number, folder in enumerate(folders, start=1)]
    history.restore(records)
    return records


def run_path(folder: Path, run_id: str) -> Path:
    return Path(folder) / run_id
