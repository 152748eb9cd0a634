"""A table of runs: what ``cnn-engine runs DIR`` prints and the studio's Runs view shows."""

from __future__ import annotations

import math
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.errors import RunError
from engine.runs import record as records
from engine.runs.folder import RunFolder, runs_in


@dataclass(frozen=True)
class RunSummary:
    """One row: a run's identity, settings and outcome."""

    path: Path
    id: str
    name: str
    architecture_name: str
    parameters: int
    optimizer: str
    learning_rate: float
    batch_size: int
    epochs_completed: int
    epochs_planned: int
    best_val_accuracy: float  # NaN without validation
    test_accuracy: float  # NaN before results
    seconds: float
    status: str
    created: str
    record: dict[str, Any]

    @classmethod
    def of(cls, folder: RunFolder) -> RunSummary:
        rec = folder.record
        config = rec.get("config") or {}
        results = rec.get("results") or {}
        test = results.get("test_accuracy")
        return cls(
            path=folder.path, id=folder.id, name=str(rec.get("name") or ""),
            architecture_name=str(rec.get("architecture_name") or ""), parameters=int(rec.get("parameters", 0)),
            optimizer=str(config.get("optimizer", "")), learning_rate=float(config.get("learning_rate", math.nan)),
            batch_size=int(config.get("batch_size", 0)), epochs_completed=folder.epochs_completed,
            epochs_planned=folder.epochs_planned, best_val_accuracy=records.best_validation_accuracy(rec),
            test_accuracy=math.nan if test is None else float(test),
            seconds=float((rec.get("timings") or {}).get("training_seconds") or 0.0), status=folder.status,
            created=str(rec.get("created", "")), record=rec,
        )


def list_runs(path: str | os.PathLike) -> list[RunSummary]:
    """Every readable run in ``path`` (or ``path`` itself), oldest first; unreadable ones are
    passed over with a warning."""
    found = []
    for run_path in runs_in(path):
        try:
            found.append(RunSummary.of(RunFolder.open(run_path)))
        except RunError as exc:
            warnings.warn(str(exc), RuntimeWarning, stacklevel=2)
    return sorted(found, key=lambda r: (r.created, r.id))


def _percent(value: float) -> str:
    return "-" if math.isnan(value) else f"{value:.2%}"


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


def format_table(rows: list[list[str]], right: set[int] = frozenset()) -> str:
    """Columns padded to their widest cell; ``right`` names the right-aligned columns."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = []
    for n, row in enumerate(rows):
        cells = [cell.rjust(w) if i in right else cell.ljust(w) for i, (cell, w) in enumerate(zip(row, widths))]
        lines.append("  ".join(cells).rstrip())
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def runs_table(runs: list[RunSummary]) -> str:
    rows = [["run", "network", "params", "optimizer", "lr", "batch", "epochs", "best val acc", "test acc", "time",
             "status"]]
    for r in runs:
        rows.append([r.id, r.architecture_name or "-", f"{r.parameters:,}", r.optimizer, f"{r.learning_rate:g}",
                     str(r.batch_size), f"{r.epochs_completed}/{r.epochs_planned}", _percent(r.best_val_accuracy),
                     _percent(r.test_accuracy), _duration(r.seconds), r.status])
    return format_table(rows, right={2, 4, 5, 6, 7, 8, 9})
