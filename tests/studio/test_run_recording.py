"""How the training worker keeps a run (cnn_studio/runs/recording.py): a run started from given
weights (imported, fine-tuning) resumes from them when it stopped before its first checkpoint."""

from __future__ import annotations

import numpy as np

from cnn_studio.runs.recording import RunRecording, start_recording
from engine.model import Model
from engine.training import TrainConfig, Trainer
from tests.helpers.engine_factories import arch, stripes_dataset

NET = arch({"type": "Conv2D", "filters": 3, "kernel_size": 3, "activation": "relu"}, {"type": "Flatten"},
           {"type": "Dense", "units": 3, "activation": "softmax"})


def test_a_resumed_run_without_checkpoints_starts_from_the_weights_it_started_from(tmp_path):
    data = stripes_dataset(24, 8)
    config = TrainConfig(epochs=2, batch_size=8)
    start = Model(NET, seed=5).get_weights()
    model = Model(NET, seed=config.seed)
    model.set_weights(start)
    warnings: list[str] = []
    session = start_recording(RunRecording(tmp_path / "run"), Trainer(model, data, config), data, warnings.append,
                              from_weights=True)
    assert session is not None and not warnings
    session.close()  # the app was closed before epoch 1 ended: no checkpoint

    fresh = Trainer(Model(NET, seed=config.seed), data, config)
    resumed = start_recording(RunRecording(tmp_path / "run", resume=True), fresh, data, warnings.append)
    assert resumed is not None
    for name, value in fresh.model.get_weights().items():
        np.testing.assert_array_equal(value, start[name], err_msg=name)
