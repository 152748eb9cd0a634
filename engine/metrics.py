"""Evaluation: accuracy, per-class accuracy and the confusion matrix."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from engine.losses import softmax_cross_entropy
from engine.model import Model


@dataclass(frozen=True)
class Evaluation:
    accuracy: float
    loss: float
    per_class_accuracy: np.ndarray  # (K,), NaN for a class with no samples
    confusion: np.ndarray  # (K, K) counts: row = true class, column = predicted class
    predictions: np.ndarray  # (N,) predicted class
    probabilities: np.ndarray  # (N, K)
    labels: np.ndarray  # (N,) true class

    @property
    def mistakes(self) -> np.ndarray:
        """Indices of misclassified samples."""
        return np.flatnonzero(self.predictions != self.labels)


def confusion_matrix(labels: np.ndarray, predictions: np.ndarray, num_classes: int) -> np.ndarray:
    return np.bincount(labels * num_classes + predictions, minlength=num_classes * num_classes).reshape(
        num_classes, num_classes
    )


def evaluate(model: Model, x: np.ndarray, y: np.ndarray, batch_size: int = 256) -> Evaluation:
    """Evaluate on normalised inputs x (N, H, W, C) and integer labels y (N,)."""
    y = np.asarray(y, dtype=np.int64)
    k = model.output_shape[0]
    logits = np.concatenate(
        [model.forward_logits(x[i : i + batch_size]) for i in range(0, len(x), batch_size)]
    ) if len(x) else np.zeros((0, k), model.dtype)
    if model.softmax_head:
        loss, _, probs = softmax_cross_entropy(logits, y) if len(x) else (float("nan"), None, logits)
    else:
        loss, probs = float("nan"), logits
    predictions = probs.argmax(axis=1) if len(x) else np.zeros(0, np.int64)
    confusion = confusion_matrix(y, predictions, k)
    support = confusion.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        per_class = np.diag(confusion) / support
    accuracy = float((predictions == y).mean()) if len(y) else float("nan")
    return Evaluation(accuracy, loss, per_class, confusion, predictions, probs, y)
