"""Training into a run folder: a checkpoint at every epoch's end, the record kept current, test
results and final weights at the end; and resuming a run from its last good checkpoint."""

from __future__ import annotations

import os
import platform
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from engine.data import Dataset
from engine.errors import RunError
from engine.metrics import Evaluation
from engine.model import Model
from engine.runs.dataset_ref import check_same_dataset, load_referenced_dataset
from engine.runs.folder import RunFolder, now
from engine.training import BatchEnd, EpochEnd, Event, History, TrainConfig, Trainer, TrainingFinished, TrainingStarted


def environment() -> dict[str, Any]:
    """Where a session ran: enough to tell why two runs on different machines may differ."""
    from engine import __version__, parallel

    return {"engine": __version__, "numpy": np.__version__, "python": platform.python_version(),
            "platform": platform.platform(), "host": platform.node(), "threads": parallel.get_num_threads(),
            "pid": os.getpid()}


def results_of(evaluation: Evaluation, class_names: list[str], epoch: int) -> dict[str, Any]:
    """A test evaluation as the record keeps it."""
    def number(v: float) -> float | None:
        return float(v) if np.isfinite(v) else None

    return {
        "epoch": int(epoch),
        "test_accuracy": number(evaluation.accuracy),
        "test_loss": number(evaluation.loss),
        "per_class_accuracy": [number(v) for v in evaluation.per_class_accuracy],
        "confusion": evaluation.confusion.astype(int).tolist(),
        "class_names": list(class_names),
        "predictions": evaluation.predictions.astype(int).tolist(),
        "test_size": int(len(evaluation.labels)),
    }


class RunRecorder:
    """Keeps a run folder in step with a trainer: installed as the trainer's epoch hook, it
    checkpoints every finished epoch; ``observe`` takes the trainer's other events.

    Times come from the trainer's own clock (the events' ``elapsed``, which leaves out paused
    time), so the run's recorded training time is the one the studio shows while it trains."""

    def __init__(self, folder: RunFolder, trainer: Trainer) -> None:
        self.folder = folder
        self.trainer = trainer
        self._at_last_epoch = 0.0  # the trainer's elapsed seconds at this run() call's last epoch end
        self._latest = 0.0  # ... and at its latest event
        trainer.epoch_hooks.append(self._epoch_end)

    def detach(self) -> None:
        if self._epoch_end in self.trainer.epoch_hooks:
            self.trainer.epoch_hooks.remove(self._epoch_end)

    def _epoch_end(self, event: EpochEnd) -> None:
        seconds = max(0.0, event.elapsed - self._at_last_epoch)
        self._at_last_epoch = self._latest = event.elapsed
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            self.folder.save_epoch(self.trainer.state_dict(), seconds)
        for warning in caught:
            self.folder.add_warning(str(warning.message))
            warnings.warn_explicit(warning.message, warning.category, warning.filename, warning.lineno)

    def observe(self, event: Event) -> None:
        if isinstance(event, TrainingStarted):
            self._at_last_epoch = self._latest = 0.0  # each run() call's clock starts at 0
        elif isinstance(event, BatchEnd):
            self._latest = event.elapsed
        elif isinstance(event, TrainingFinished):
            status = "completed" if event.reason == "completed" else event.reason
            # A stopped or diverged run trained for a while after its last checkpoint: that time counts too.
            unfinished = max(0.0, self._latest - self._at_last_epoch)
            self.folder.finish(status, event.message, stopped_early=event.stopped_early, best_epoch=event.best_epoch,
                               unfinished_seconds=unfinished)


@dataclass
class RunOutcome:
    folder: RunFolder
    trainer: Trainer
    history: History
    evaluation: Evaluation | None

    @property
    def status(self) -> str:
        return self.folder.record.get("status", "running")


class RunSession:
    """A trainer that trains into a run folder, over one or more calls of its run() (the studio's
    "+1 epoch" continues the same run): ``begin`` before each, ``observe`` each event, ``end`` after.

    Checkpoints are written by the trainer's epoch hook on the thread that trains (see RunRecorder);
    ``end`` records the outcome, the test results and final weights of a completed run, and gives
    the run's lock back.
    """

    def __init__(self, folder: RunFolder, trainer: Trainer) -> None:
        self.folder = folder
        self.trainer = trainer
        self.recorder = RunRecorder(folder, trainer)
        self.active = False

    def begin(self, epochs: int | None = None) -> None:
        """A run() of ``epochs`` more epochs (config.epochs by default) is about to start."""
        epochs = self.trainer.config.epochs if epochs is None else epochs
        folder = self.folder
        folder.acquire()
        self.active = True
        trainer = self.trainer
        # (after a stop mid-epoch the trainer's state is not between epochs, but its log is)
        folder.start_session(trainer.epoch + epochs, trainer.log if trainer.epoch else None, environment(),
                             from_epoch=trainer.epoch)
        if folder.record.get("timings", {}).get("started") is None:
            folder.record["timings"]["started"] = now()

    def observe(self, event: Event) -> None:
        if not isinstance(event, TrainingFinished):  # recorded by end(), once the results are in
            self.recorder.observe(event)

    def end(self, finished: TrainingFinished | None, evaluation: Evaluation | None = None,
            error: str = "") -> None:
        """The run() ended with ``finished`` (None: it failed with ``error``); ``evaluation`` is the
        test evaluation of the weights it ends with (recorded for a completed run)."""
        if not self.active:
            return
        folder, trainer = self.folder, self.trainer
        try:
            if finished is not None:
                if finished.reason == "completed" and evaluation is not None:
                    epoch = finished.best_epoch or trainer.epoch
                    folder.save_results(results_of(evaluation, trainer.dataset.class_names, epoch), trainer.model,
                                        evaluation)
                self.recorder.observe(finished)
            else:
                folder.record["message"] = error
        finally:
            self.active = False
            folder.release()

    def close(self) -> None:
        """Stop recording (the trainer is dropped, or another run takes its place)."""
        if self.active:
            self.end(None, error="training ended without a result")
        self.recorder.detach()


def train_in_folder(folder: RunFolder, trainer: Trainer, callback: Callable[[Event], None] | None = None,
                    evaluate: bool = True) -> RunOutcome:
    """Train ``trainer`` up to its planned epochs (config.epochs) in ``folder``, from wherever its
    state is (0 for a new run, a checkpoint's epoch for a resumed one). At the end: test results
    and the final weights in the folder (for a run that completed)."""
    session = RunSession(folder, trainer)
    try:
        session.begin(max(trainer.config.epochs - trainer.epoch, 0))
        finished: TrainingFinished | None = None

        def observe(event: Event) -> None:
            nonlocal finished
            if isinstance(event, TrainingFinished):
                finished = event
                return  # passed on below, once results are in
            session.observe(event)
            if callback is not None:
                callback(event)

        try:
            history = trainer.fit(observe, epochs=max(trainer.config.epochs - trainer.epoch, 0))
        except BaseException:
            session.end(None, error="training was interrupted")
            raise
        evaluation = None
        if finished is not None and finished.reason == "completed" and evaluate:
            started = time.perf_counter()
            evaluation = trainer.evaluate()
            folder.record.setdefault("timings", {})["evaluation_seconds"] = round(time.perf_counter() - started, 3)
        session.end(finished, evaluation)
        if finished is not None and callback is not None:
            callback(finished)
        return RunOutcome(folder, trainer, history, evaluation)
    finally:
        session.close()


def new_run(path: str | os.PathLike, model: Model, dataset: Dataset, config: TrainConfig, dataset_ref: dict[str, Any],
            *, retention: Any = None, name: str = "", architecture_name: str = "", trainer: Trainer | None = None,
            from_weights: bool = False) -> tuple[RunFolder, Trainer]:
    """A run folder at ``path`` and the trainer that trains it (not started; ``trainer`` when the
    caller made it already, e.g. with engine.training.prepare). ``from_weights``: the model holds
    given weights, not the seed's; the folder keeps them to resume from."""
    from engine.runs.folder import Retention

    trainer = trainer if trainer is not None else Trainer(model, dataset, config)
    check_same_dataset(dataset_ref, dataset)
    folder = RunFolder.create(path, architecture=model.architecture, dataset=dataset_ref, config=config.to_dict(),
                              retention=retention if isinstance(retention, Retention) else Retention.parse(retention),
                              name=name, architecture_name=architecture_name)
    folder.record["seed"] = model.seed
    folder.write_record()
    if from_weights:
        folder.save_start_weights(trainer.model)
    return folder, trainer


def prepare_resume(path: str | os.PathLike, dataset: Dataset | None = None, epochs: int | None = None,
                   ) -> tuple[RunFolder, Trainer]:
    """The run at ``path`` and a trainer holding its last good checkpoint, ready to train on.

    ``dataset`` is loaded from the run's reference when not given (and must be the same data);
    ``epochs`` raises the planned number of epochs. RunError for a run that is training in another
    process, has completed, diverged, or cannot be rebuilt.
    """
    folder = RunFolder.open(path)
    status = folder.status
    planned = max(folder.epochs_planned, epochs or 0)
    if status == "running":
        raise RunError(f"{folder.path} is being trained by another process right now")
    if status == "diverged":
        raise RunError(f"{folder.path} diverged ({folder.record.get('message') or 'the loss became NaN'}); "
                       "start a new run with a lower learning rate instead")
    if status == "completed" and planned <= folder.epochs_completed:
        raise RunError(f"{folder.path} has already completed its {folder.epochs_completed} epochs "
                       "(give --epochs N to train on)")
    record = folder.record
    if dataset is None:
        dataset = load_referenced_dataset(record["dataset"])
    else:
        check_same_dataset(record["dataset"], dataset)
    config = TrainConfig.from_dict({**record["config"], "epochs": planned})
    model = Model(record["architecture"], seed=int(record.get("seed", config.seed)))
    trainer = Trainer(model, dataset, config)
    state = folder.latest_state()
    start = folder.start_weights() if state is None else None
    if start is not None:
        trainer.load_weights(*start)
    if state is None and folder.epochs_completed:
        again = "from its starting weights" if start is not None else "(with the same seed it repeats the same epochs)"
        message = f"{folder.id}: no usable checkpoint is left; the run starts again from epoch 1 {again}"
        folder.add_warning(message)
        warnings.warn(message, RuntimeWarning, stacklevel=2)
    if state is not None:
        trainer.load_state_dict(state)
    return folder, trainer


def architecture_name(path: str | os.PathLike | None, doc: dict[str, Any]) -> str:
    """A short name for a network: the document's "name", else its file's stem."""
    if isinstance(doc.get("name"), str) and doc["name"]:
        return doc["name"]
    return Path(path).stem if path else ""
