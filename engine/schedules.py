"""Learning-rate schedules: pure functions of the step with optional linear warm-up, and a
reduce-on-plateau factor that follows the validation metric from epoch to epoch."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

# "plateau" keeps the base rate (after warm-up) and lets ReduceOnPlateau lower it.
SCHEDULES = ("constant", "step", "cosine", "plateau")
MONITORS = ("val_loss", "val_accuracy")


def improved(value: float, best: float | None, monitor: str, min_delta: float) -> bool:
    """Whether ``value`` beats ``best`` by more than ``min_delta`` (lower loss, higher accuracy)."""
    if not math.isfinite(value):
        return False
    if best is None:
        return True
    if monitor.endswith("accuracy"):
        return value > best + min_delta
    return value < best - min_delta


@dataclass
class Schedule:
    """lr(step) = base_lr * factor(step). Steps count batches from 0.

    kind "step" multiplies by ``gamma`` every ``step_size`` steps; "cosine" decays to
    ``min_factor`` * base_lr over ``total_steps``; warm-up ramps linearly over ``warmup_steps``.
    ``base_lr`` is mutable: the studio changes it while training runs.
    """

    base_lr: float
    kind: str = "constant"
    warmup_steps: int = 0
    step_size: int = 1000
    gamma: float = 0.1
    total_steps: int = 1
    min_factor: float = 0.0

    def __post_init__(self) -> None:
        if self.kind not in SCHEDULES:
            raise ValueError(f"unknown schedule {self.kind!r} (choose {', '.join(SCHEDULES)})")

    def factor(self, step: int) -> float:
        if self.warmup_steps and step < self.warmup_steps:
            return (step + 1) / self.warmup_steps
        if self.kind == "step":
            return self.gamma ** ((step - self.warmup_steps) // max(self.step_size, 1))
        if self.kind == "cosine":
            span = max(self.total_steps - self.warmup_steps, 1)
            t = min(max(step - self.warmup_steps, 0) / span, 1.0)
            return self.min_factor + (1 - self.min_factor) * 0.5 * (1 + math.cos(math.pi * t))
        return 1.0

    def lr(self, step: int) -> float:
        return self.base_lr * self.factor(step)


@dataclass
class ReduceOnPlateau:
    """Multiplies the learning rate by ``factor`` when the monitored metric has not improved by
    more than ``min_delta`` for ``patience`` epochs, down to ``min_lr``; ``scale`` is the
    product so far. Its state is a few numbers (``state_dict``), kept in checkpoints."""

    monitor: str = "val_loss"
    factor: float = 0.5
    patience: int = 2
    min_delta: float = 0.0
    min_lr: float = 0.0
    scale: float = 1.0
    best: float | None = None
    wait: int = 0

    def __post_init__(self) -> None:
        if self.monitor not in MONITORS:
            raise ValueError(f"unknown monitor {self.monitor!r} (choose {', '.join(MONITORS)})")
        if not 0 < self.factor < 1:
            raise ValueError(f"the plateau factor must lie between 0 and 1, not {self.factor}")
        if self.patience < 1:
            raise ValueError(f"the plateau patience must be at least 1 epoch, not {self.patience}")

    def update(self, value: float, base_lr: float) -> bool:
        """Record one epoch's metric; returns True when the rate was lowered."""
        if improved(value, self.best, self.monitor, self.min_delta):
            self.best, self.wait = float(value), 0
            return False
        self.wait += 1
        if self.wait < self.patience:
            return False
        self.wait = 0
        floor = self.min_lr / base_lr if base_lr > 0 else 0.0
        lowered = max(self.scale * self.factor, floor)
        if lowered >= self.scale:
            return False
        self.scale = lowered
        return True

    def state_dict(self) -> dict[str, Any]:
        return {"scale": self.scale, "best": self.best, "wait": self.wait}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.scale, self.best, self.wait = float(state["scale"]), state["best"], int(state["wait"])

    def settings(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if k not in ("scale", "best", "wait")}
