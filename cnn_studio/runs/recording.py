"""How the training worker keeps a run: where its run folder goes and what to record in it.

The GUI thread decides the folder (``RunRecording``); the worker thread creates it and writes every
checkpoint, so no disk write of a run ever waits on the GUI thread (engine.runs.RunSession).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.data import Dataset
from engine.errors import EngineError
from engine.runs import RunFolder, dataset_reference
from engine.runs.session import RunSession
from engine.training import Trainer


@dataclass(frozen=True)
class RunRecording:
    """A run to keep in ``path``: a new run folder, or (``resume``) the interrupted run already there.

    ``dataset_spec`` is the name or path the dataset was loaded from (so the run can load it again);
    ``retention`` which checkpoints to keep ("all", "best" or a number N for the last N).
    """

    path: Path
    dataset_spec: str | None = None
    retention: str = "all"
    name: str = ""
    architecture_name: str = ""
    resume: bool = False

    @property
    def run_id(self) -> str:
        return self.path.name


def start_recording(recording: RunRecording, trainer: Trainer, dataset: Dataset,
                    warn: Callable[[str], None], from_weights: bool = False) -> RunSession | None:
    """The session that keeps ``trainer``'s run (run on the worker thread). A folder that cannot be made
    is a warning: the run trains on without being kept. ``from_weights``: the trainer's model holds
    given weights (imported, fine-tuning), which a new run's folder keeps to resume from."""
    try:
        if recording.resume:
            folder = RunFolder.open(recording.path)
            state = folder.latest_state()
            if state is not None:
                trainer.load_state_dict(state)
            elif (start := folder.start_weights()) is not None:
                trainer.load_weights(*start)
        else:
            ref = dataset_reference(dataset, recording.dataset_spec)
            folder = RunFolder.create(recording.path, architecture=trainer.model.architecture, dataset=ref,
                                      config=trainer.config.to_dict(), retention=_retention(recording.retention),
                                      name=recording.name, architecture_name=recording.architecture_name)
            folder.record["seed"] = trainer.model.seed
            folder.write_record()
            if from_weights:
                folder.save_start_weights(trainer.model)
    except (EngineError, OSError, ValueError) as exc:
        if recording.resume:
            raise
        warn(f"this run is not kept on disk ({getattr(exc, 'strerror', None) or exc})")
        return None
    return RunSession(folder, trainer)


def _retention(text: str) -> Any:
    from engine.runs import Retention

    try:
        return Retention.parse(text)
    except ValueError:
        return Retention()
