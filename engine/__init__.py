"""CNN Studio's engine: convolutional networks from scratch in NumPy (never imports Qt).

    from engine import Model, Trainer, TrainConfig, load_dataset, save_weights, load_weights
    model = Model.from_architecture("assets/architectures/seed_sample.json", seed=0)
    history = Trainer(model, load_dataset("fashion-mnist-mini"), TrainConfig(epochs=1)).fit()
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

# Public names and the module each lives in; imported on first use so that `import engine`
# stays fast for the CLI and the studio's start-up.
_EXPORTS = {
    "Model": "engine.model",
    "Trainer": "engine.training",
    "prepare": "engine.training",
    "TrainConfig": "engine.training",
    "BatchEnd": "engine.training",
    "EpochEnd": "engine.training",
    "TrainingStarted": "engine.training",
    "TrainingFinished": "engine.training",
    "History": "engine.training",
    "evaluate": "engine.metrics",
    "Evaluation": "engine.metrics",
    "save_weights": "engine.weights",
    "load_weights": "engine.weights",
    "import_weights": "engine.weights",
    "analyze": "engine.architecture",
    "validate": "engine.architecture",
    "summary": "engine.architecture",
    "load_architecture_file": "engine.architecture",
    "upgrade": "engine.architecture",
    "load_dataset": "engine.data",
    "Dataset": "engine.data",
    "EngineError": "engine.errors",
    "ArchitectureError": "engine.errors",
    "DataError": "engine.errors",
    "WeightsError": "engine.errors",
    "TrainingError": "engine.errors",
    "SettingError": "engine.errors",
    "InputShapeError": "engine.errors",
    "ClassCountError": "engine.errors",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'engine' has no attribute {name!r}")
