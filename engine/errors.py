"""Error types users can cause. Each message names the culprit so it can be shown as one line."""

from __future__ import annotations


class EngineError(Exception):
    """Base class for every error the engine raises on purpose."""


class ArchitectureError(EngineError):
    """An architecture document that cannot be built.

    ``layer_index`` is 1-based (as shown to users) or ``None`` for document-level problems.
    ``hint`` is a longer, teaching explanation (formula with the user's numbers and what to do);
    ``fix`` names an automatic fix the studio can offer, e.g. ``"insert_flatten_before"``.
    """

    def __init__(
        self,
        message: str,
        *,
        layer_index: int | None = None,
        layer_type: str | None = None,
        field: str | None = None,
        value: object = None,
        hint: str = "",
        fix: str | None = None,
    ) -> None:
        if layer_index is not None:
            message = f"layer {layer_index} ({layer_type}): {message}"
        super().__init__(message)
        self.message = message
        self.layer_index = layer_index
        self.layer_type = layer_type
        self.field = field
        self.value = value
        self.hint = hint
        self.fix = fix


class WeightsError(EngineError):
    """A weight file that is unreadable or does not fit the architecture."""


class TrainingError(EngineError):
    """Training cannot go on (e.g. the loss diverged)."""


class DataError(EngineError):
    """A dataset that cannot be loaded; the message names the file and what is wrong."""
