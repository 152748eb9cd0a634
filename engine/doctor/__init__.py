"""The training doctor: per-layer, per-epoch records of a training run and diagnoses in plain words.

See engine.doctor.doctor for how it is used; engine.doctor.rules for what it diagnoses.
"""

from engine.doctor.doctor import DoctorReport, TrainingDoctor
from engine.doctor.records import DIAGNOSES, FIX_KINDS, Diagnosis, EpochRecord, Fix, LayerEpoch
from engine.doctor.rules import RunContext, diagnose

__all__ = ["DIAGNOSES", "FIX_KINDS", "Diagnosis", "DoctorReport", "EpochRecord", "Fix", "LayerEpoch", "RunContext",
           "TrainingDoctor", "diagnose"]
