"""Early stopping: end a run when the monitored metric stops improving, keeping its best epoch."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from engine.schedules import MONITORS, improved


@dataclass
class EarlyStopping:
    """Stops after ``patience`` epochs without an improvement larger than ``min_delta`` in
    ``monitor``. With ``restore_best`` it keeps a snapshot of the best epoch's tensors, which the
    trainer puts back when it stops (or completes) so the run ends on its best epoch."""

    monitor: str = "val_loss"
    patience: int = 3
    min_delta: float = 0.0
    restore_best: bool = True
    best: float | None = None
    best_epoch: int = 0
    wait: int = 0
    best_weights: dict[str, np.ndarray] | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.monitor not in MONITORS:
            raise ValueError(f"unknown monitor {self.monitor!r} (choose {', '.join(MONITORS)})")
        if self.patience < 1:
            raise ValueError(f"early-stopping patience must be at least 1 epoch, not {self.patience}")
        if self.min_delta < 0:
            raise ValueError(f"the minimum change must not be negative, not {self.min_delta}")

    @property
    def triggered(self) -> bool:
        return self.wait >= self.patience

    def update(self, value: float, epoch: int, weights: dict[str, np.ndarray]) -> bool:
        """Record epoch ``epoch``'s metric and its tensors (a snapshot the caller no longer
        changes); returns True when training should stop."""
        if improved(value, self.best, self.monitor, self.min_delta):
            self.best, self.best_epoch, self.wait = float(value), epoch, 0
            if self.restore_best:
                self.best_weights = weights
        else:
            self.wait += 1
        return self.triggered

    def reason(self, epoch: int) -> str:
        best = "n/a" if self.best is None else f"{self.best:.4g}"
        text = (f"stopped early after epoch {epoch}: {self.monitor} did not improve by more than "
                f"{self.min_delta:g} for {self.patience} epoch{'s' if self.patience != 1 else ''} "
                f"(best {best} at epoch {self.best_epoch})")
        if self.restore_best and self.best_weights is not None and self.best_epoch != epoch:
            text += f"; the weights of epoch {self.best_epoch} were restored"
        return text

    def state_dict(self) -> dict[str, Any]:
        return {"best": self.best, "best_epoch": self.best_epoch, "wait": self.wait}

    def load_state_dict(self, state: dict[str, Any], best_weights: dict[str, np.ndarray] | None) -> None:
        self.best, self.best_epoch, self.wait = state["best"], int(state["best_epoch"]), int(state["wait"])
        self.best_weights = best_weights
