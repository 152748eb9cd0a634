"""``run.json``: a run's record, as plain JSON (no NaN: missing metrics are null).

    format            "cnn-studio.run/1"
    id, name          the folder's name; an optional label
    created, updated  ISO 8601 times
    status            "running" | "completed" | "stopped" | "interrupted" | "diverged"
                      ("running" with no live process holding run.lock reads as "interrupted")
    message           why it ended that way (divergence, early stopping), or ""
    architecture      the architecture document trained; architecture_name, parameters
    dataset           how to load the data again and its fingerprint (engine.runs.dataset_ref)
    config            every training setting (TrainConfig.to_dict()); seed (its seed, repeated)
    retention         "all", "best" or N (the last N checkpoints)
    epochs_planned, epochs_completed
    history           per epoch: epoch, train_loss, train_accuracy, val_loss, val_accuracy,
                      learning_rate, note
    batches           per batch: loss, accuracy, learning_rate (lists)
    best              {"epoch", "monitor", "value", "val_accuracy", "val_loss"} by config.monitor
    early_stopping    {"best", "best_epoch", "wait", "stopped_early", "restored_epoch", "message"} or null
    results           test results of the final weights: accuracy, loss, per_class_accuracy,
                      confusion, class_names, predictions (per test image), epoch
    timings           started, finished, epoch_seconds (per epoch, paused time left out),
                      unfinished_seconds (after the last finished epoch of a stopped run),
                      training_seconds (their sum), evaluation_seconds
    sessions          one per process that trained it: started, ended, from_epoch, status, environment
    checkpoints       the epochs whose checkpoint is on disk
    weights           "weights.npz" once the final weights are written
    start_weights     "start-weights.npz" when the run started from given weights (absent otherwise)
    warnings          warnings met while training (e.g. a full disk)
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from engine.errors import RunError

RUN_FORMAT = "cnn-studio.run/1"
STATUSES = ("running", "completed", "stopped", "interrupted", "diverged")


def new_record(run_id: str, *, architecture: dict[str, Any], dataset: dict[str, Any], config: dict[str, Any],
               retention: str, name: str, architecture_name: str, created: str) -> dict[str, Any]:
    from engine.architecture import analyze

    analysis = analyze(architecture)
    return {
        "format": RUN_FORMAT,
        "id": run_id,
        "name": name,
        "created": created,
        "updated": created,
        "status": "running",
        "message": "",
        "architecture": architecture,
        "architecture_name": architecture_name or str(architecture.get("name") or ""),
        "parameters": int(analysis.trainable_params + analysis.non_trainable_params),
        "dataset": dataset,
        "config": config,
        "seed": config.get("seed", 0),
        "retention": retention,
        "epochs_planned": int(config.get("epochs", 0)),
        "epochs_completed": 0,
        "history": [],
        "batches": {"loss": [], "accuracy": [], "learning_rate": []},
        "best": None,
        "early_stopping": None,
        "results": None,
        "timings": {"started": created, "finished": None, "epoch_seconds": [], "training_seconds": 0.0},
        "sessions": [],
        "checkpoints": [],
        "weights": None,
        "warnings": [],
    }


def check_record(record: Any, where: Path | str) -> None:
    if not isinstance(record, dict):
        raise RunError(f"{where}: not a run record")
    fmt = record.get("format")
    if not isinstance(fmt, str) or not fmt.startswith("cnn-studio.run/"):
        raise RunError(f"{where}: not a CNN Studio run record (format {fmt!r})")
    if fmt != RUN_FORMAT:
        raise RunError(f"{where}: run format {fmt!r} is newer than this version understands ({RUN_FORMAT})")
    for key in ("architecture", "config", "dataset"):
        if not isinstance(record.get(key), dict):
            raise RunError(f"{where}: the run record has no {key}")


def monitor_of(record: dict[str, Any]) -> str:
    return str((record.get("config") or {}).get("monitor", "val_loss"))


def metric(entry: dict[str, Any], name: str) -> float:
    """An epoch's metric, its training counterpart standing in for a missing validation one."""
    value = entry.get(name)
    if value is None and name.startswith("val_"):
        value = entry.get(name.replace("val_", "train_"))
    return float("nan") if value is None else float(value)


def best_epoch(record: dict[str, Any]) -> dict[str, Any] | None:
    """The best epoch of the history by the run's monitored metric: early stopping's best epoch when
    the run stops early (it counts only improvements larger than the minimum change), else the
    epoch with the best value."""
    monitor = monitor_of(record)
    stopping = record.get("early_stopping") or {}
    chosen = stopping.get("best_epoch")
    if chosen:
        entry = next((e for e in record.get("history") or [] if e["epoch"] == chosen), None)
        if entry is not None:
            return {"epoch": chosen, "monitor": monitor, "value": metric(entry, monitor),
                    "val_accuracy": entry.get("val_accuracy"), "val_loss": entry.get("val_loss")}
    best = None
    for entry in record.get("history") or []:
        value = metric(entry, monitor)
        if not math.isfinite(value):
            continue
        if best is None or (value > best[1] if monitor.endswith("accuracy") else value < best[1]):
            best = (entry, value)
    if best is None:
        return None
    entry, value = best
    return {"epoch": entry["epoch"], "monitor": monitor, "value": value,
            "val_accuracy": entry.get("val_accuracy"), "val_loss": entry.get("val_loss")}


def best_validation_accuracy(record: dict[str, Any]) -> float:
    values = [v for e in record.get("history") or [] if (v := e.get("val_accuracy")) is not None]
    return max(values) if values else float("nan")


def truncate(record: dict[str, Any], epochs: int) -> None:
    """Forget what the record says about epochs after ``epochs`` (they are being trained again)."""
    record["history"] = [e for e in record.get("history") or [] if e["epoch"] <= epochs]
    record["epochs_completed"] = min(int(record.get("epochs_completed", 0)), epochs)
    timings = record.setdefault("timings", {})
    del timings.setdefault("epoch_seconds", [])[epochs:]
    record["results"] = None
    record["best"] = best_epoch(record)
