"""Runs that last: run folders (record, per-epoch checkpoints, final weights), resuming, listing
and sweeps. See engine.runs.folder for the layout and engine.runs.record for run.json."""

from engine.runs.checkpoint import CheckpointError, load_checkpoint, load_checkpoint_weights, save_checkpoint
from engine.runs.dataset_ref import dataset_reference, load_referenced_dataset
from engine.runs.folder import (
    CheckpointFallbackWarning,
    Retention,
    RunFolder,
    RunWriteWarning,
    is_run,
    runs_in,
    unique_child,
)
from engine.runs.listing import RunSummary, list_runs, runs_table
from engine.runs.session import RunOutcome, RunRecorder, new_run, prepare_resume, results_of, train_in_folder

__all__ = [
    "CheckpointError", "CheckpointFallbackWarning", "Retention", "RunFolder", "RunOutcome", "RunRecorder",
    "RunSummary", "RunWriteWarning", "dataset_reference", "is_run", "list_runs", "load_checkpoint",
    "load_checkpoint_weights", "load_referenced_dataset", "new_run", "prepare_resume", "results_of", "runs_in",
    "runs_table", "save_checkpoint", "train_in_folder", "unique_child",
]
