"""The training doctor: watches a Trainer and says, in plain words, why training goes badly.

    doctor = TrainingDoctor(trainer)          # attaches itself to the trainer's hooks
    for event in trainer.run():
        doctor.observe(event)                 # notices a diverging loss
        for diagnosis in doctor.take_new():   # new problems, after each epoch
            print("diagnosis:", diagnosis.line())

``doctor.records`` holds per layer and per epoch the gradient norm, the update-to-weight ratio and
the share of dead (or saturated) units; ``doctor.diagnoses`` the problems the latest epoch shows.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

from engine.doctor.recorder import Recorder, activation_of
from engine.doctor.records import Diagnosis, EpochRecord
from engine.doctor.rules import LayerInfo, RunContext, diagnose, early_signs
from engine.layers import Dropout


@dataclass(frozen=True)
class DoctorReport:
    """An immutable snapshot for other threads: the records so far and the current diagnoses."""

    records: tuple[EpochRecord, ...]
    diagnoses: tuple[Diagnosis, ...]
    class_names: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()  # early signs and checks still to come (rules.early_signs)


def describe_layers(model: Any) -> tuple[LayerInfo, ...]:
    frozen = set(model.frozen_layers)
    return tuple(
        LayerInfo(name, str(layer_id), layer.type_name, activation_of(layer), bool(layer.params),
                  name not in frozen, info.output_shape is not None and len(info.output_shape) == 3)
        for name, layer_id, layer, info in zip(model.names, model.ids, model.layers, model.analysis.layers))


class TrainingDoctor:
    def __init__(self, trainer: Any = None, **recorder_options: Any) -> None:
        self.recorder = Recorder(**recorder_options)
        self.diagnoses: list[Diagnosis] = []
        self._reported: set[tuple[str, str]] = set()
        self._divergence: dict[str, Any] = {}
        self._failed = False
        self.trainer: Any = None
        if trainer is not None:
            self.attach(trainer)

    def attach(self, trainer: Any) -> None:
        self.trainer = trainer
        self.recorder.attach(trainer)
        # Diagnose as soon as the epoch is recorded: the recorder's hook was installed first.
        trainer.epoch_hooks.append(self._epoch_end)

    def detach(self) -> None:
        if self.trainer is not None and self._epoch_end in self.trainer.epoch_hooks:
            self.trainer.epoch_hooks.remove(self._epoch_end)
        self.recorder.detach()
        self.trainer = None

    @property
    def records(self) -> list[EpochRecord]:
        return self.recorder.records

    # -- what happens ---------------------------------------------------------------------------------------
    def observe(self, event: Any) -> None:
        """Every event of the trainer's run may be passed here; a diverged run is diagnosed at once."""
        from engine.training import TrainingFinished

        if isinstance(event, TrainingFinished) and event.reason == "diverged" and self.trainer is not None:
            self.recorder.end_unfinished_epoch()
            self._divergence = {"loss": self.recorder.last_loss, "epoch": self.trainer.epoch + 1,
                                "learning_rate": self.recorder.last_learning_rate}
            self._update()

    def _epoch_end(self, _event: Any) -> None:
        self._update()

    def context(self) -> RunContext:
        trainer = self.trainer
        model, config = trainer.model, trainer.config
        layers = describe_layers(model)
        output = len(model.layers) - 1
        before_output = [model.layers[i] for i in range(output) if f"{model.ids[i]}" in model.inputs[output]]
        return RunContext(
            optimizer=config.optimizer, learning_rate=float(trainer.schedule.base_lr),
            momentum=float(trainer.optimizer.momentum), early_stopping=int(config.early_stopping),
            augment_shift=int(config.augment_shift), validation=len(trainer.val_idx) > 0,
            class_names=tuple(trainer.dataset.class_names), layers=layers,
            num_classes=int(trainer.dataset.num_classes),
            dropout_before_output=any(isinstance(layer, Dropout) for layer in before_output),
            input_shape=tuple(model.input_shape), initial_probe_loss=self.recorder.initial_probe_loss,
            divergence=dict(self._divergence))

    def _update(self) -> None:
        # A diagnosis that fails must never end the training it watches: it is reported once and skipped.
        try:
            self.diagnoses = diagnose(self.records, self.context())
        except Exception as exc:  # noqa: BLE001 (whatever it is, training goes on)
            if not self._failed:
                self._failed = True
                warnings.warn(f"the training doctor could not diagnose this run ({type(exc).__name__}: {exc})",
                              RuntimeWarning, stacklevel=2)

    # -- reading ---------------------------------------------------------------------------------------------
    def take_new(self) -> list[Diagnosis]:
        """The current diagnoses not handed out before (each problem once, by kind and layer)."""
        new = [d for d in self.diagnoses if d.key not in self._reported]
        self._reported.update(d.key for d in new)
        return new

    def notes(self) -> list[str]:
        """Early signs below the rules' thresholds, and the checks that need more epochs."""
        if self.trainer is None or not self.records:
            return []
        try:
            return early_signs(self.records, self.context())
        except Exception:  # noqa: BLE001 (a note is never worth failing a run for)
            return []

    def report(self) -> DoctorReport:
        names = tuple(self.trainer.dataset.class_names) if self.trainer is not None else ()
        return DoctorReport(tuple(self.records), tuple(self.diagnoses), names, tuple(self.notes()))
