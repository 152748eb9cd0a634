"""TrainingSession: the training pieces of one window, made once at the top and handed to the panels.

It holds no state of its own; each piece has one job:

    trained   TrainedNetwork  what was trained for the project: weights, evaluation (owned by the document)
    runs      RunHistory      every run of the project: curves, settings, outcome (owned by the document)
    datasets  DatasetSource   the project's dataset, loaded in the background
    runner    TrainingRunner  starts, steers and stops runs on a worker thread; writes into ``trained``

Panels connect to the piece they follow (``session.runner.batches``, ``session.trained.model_changed``,
...); nothing is relayed through the session.
"""

from __future__ import annotations

from PySide6.QtCore import QObject

from cnn_studio.training.datasets import DatasetSource
from cnn_studio.training.run_history import RunHistory
from cnn_studio.training.runner import TrainingRunner
from cnn_studio.training.threads import live_threads
from cnn_studio.training.trained import TrainedNetwork
from cnn_studio.training.training_worker import ProbeResult

__all__ = ["ProbeResult", "TrainingSession", "live_threads"]


class TrainingSession(QObject):
    def __init__(self, trained: TrainedNetwork | None = None, runs: RunHistory | None = None,
                 parent: QObject | None = None) -> None:
        """``trained`` and ``runs`` are the project document's (fresh ones when not given, e.g. in tests)."""
        super().__init__(parent)
        self.trained = trained if trained is not None else TrainedNetwork(self)
        self.runs = runs if runs is not None else RunHistory(self)
        self.datasets = DatasetSource(self)
        self.runner = TrainingRunner(self.trained, self)

    @property
    def running(self) -> bool:
        return self.runner.running

    def shutdown(self, timeout_ms: int = 30000) -> bool:
        """Stop any run (no test evaluation) and join every thread; True when all of them ended.

        The weights reached before the stop stay in ``trained``.
        """
        self.datasets.cancel()  # a load finishing now has no window left to show it in
        ran = self.runner.shutdown(timeout_ms)
        loaded = self.datasets.shutdown(timeout_ms)
        return ran and loaded
