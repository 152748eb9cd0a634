"""Softmax cross-entropy, fused with the softmax so it stays finite for any logits."""

from __future__ import annotations

import numpy as np


def log_softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


def softmax_cross_entropy(
    logits: np.ndarray, labels: np.ndarray, label_smoothing: float = 0.0
) -> tuple[float, np.ndarray, np.ndarray]:
    """Mean cross-entropy of softmax(logits) against integer labels.

    logits (N, K), labels (N,) ints. Returns (loss, d_loss/d_logits (N, K), probabilities (N, K)).
    With label smoothing the target is (1 - s) on the true class plus s / K everywhere.
    Fusing softmax and log (log-sum-exp) avoids log(0); the gradient is simply (p - target) / N.
    """
    n, k = logits.shape
    log_p = log_softmax(logits)
    probs = np.exp(log_p)
    target = np.full((n, k), label_smoothing / k, dtype=logits.dtype)
    target[np.arange(n), labels] += 1.0 - label_smoothing
    loss = float(-(target * log_p).sum() / n)
    grad = (probs - target) / logits.dtype.type(n)
    return loss, grad, probs
