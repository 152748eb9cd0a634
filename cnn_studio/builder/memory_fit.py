"""Whether the design can be trained in this computer's memory, for the totals bar and the Problems list."""

from __future__ import annotations

from typing import Any

from engine.architecture import Analysis
from engine.errors import ArchitectureError
from engine.memory import MemoryEstimate, available_memory, estimate_training, fit, format_bytes

DEFAULT_BATCH = 64


def batch_size(training: dict[str, Any]) -> int:
    """The project's batch size (its training settings'), or the training form's default."""
    value = training.get("batch_size", DEFAULT_BATCH)
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else DEFAULT_BATCH


def training_estimate(analysis: Analysis, training: dict[str, Any]) -> MemoryEstimate:
    optimizer = training.get("optimizer", "sgd")
    momentum = training.get("momentum", 0.9)
    return estimate_training(analysis, batch_size(training), optimizer if isinstance(optimizer, str) else "sgd",
                             momentum if isinstance(momentum, (int, float)) else 0.9)


def memory_problem(analysis: Analysis, training: dict[str, Any]) -> ArchitectureError | None:
    """A problem naming the largest consumer when training the design would not fit in memory."""
    estimate = training_estimate(analysis, training)
    available = available_memory()
    if fit(estimate, available) != "too large":
        return None
    layer = next((info for info in analysis.layers if info.index == estimate.layer_index), None)
    size = batch_size(training)
    return ArchitectureError(
        f"training needs about {format_bytes(estimate.total)} of memory at batch size {size} but "
        f"{format_bytes(available)} is available: {estimate.culprit}",
        layer_index=layer.index if layer else None, layer_type=layer.type if layer else None,
        layer_id=layer.id if layer else None,
        hint=f"Training this network at batch size {size} needs about {format_bytes(estimate.total)} "
             f"({estimate.breakdown()}), more than the {format_bytes(available)} this computer has free: "
             f"{estimate.culprit}. To fix it: {estimate.advice}.",
    )
