"""Learning-rate schedules as pure functions of the step, with optional linear warm-up."""

from __future__ import annotations

import math
from dataclasses import dataclass

SCHEDULES = ("constant", "step", "cosine")


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
