"""Recording, while a trainer runs, what the training doctor needs: per layer and per epoch.

On a sample of the optimisation steps (about ``samples_per_epoch`` per epoch) the gradient norm of
each layer's parameters and the size of the step's weight change relative to the weights; at each
epoch's end one inference pass over a fixed probe batch for dead and saturated units and for the
classes predicted. Everything else is already in the trainer's log. Sampling keeps the cost small:
two passes over the parameters on a sampled step, one short inference pass per epoch.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np

from engine.doctor.records import EpochRecord, LayerEpoch
from engine.layers import ReLU, Sigmoid, Tanh
from engine.layers.activated import ActivatedLayer
from engine.model import probabilities

PROBE_SIZE = 256
PROBE_CHUNK = 64  # probe images per inference pass (bounds the memory of the layer outputs)
SAMPLES_PER_EPOCH = 25
SATURATION_MARGIN = 0.02  # a sigmoid output below 0.02 or above 0.98 (tanh beyond +-0.96) is saturated
SPIKE_WINDOW = 20


def activation_of(layer: Any) -> str:
    """'relu', 'sigmoid', 'tanh', ... : the activation a layer's output has passed through ("" for none)."""
    if isinstance(layer, ReLU):
        return "relu"
    if isinstance(layer, Sigmoid):
        return "sigmoid"
    if isinstance(layer, Tanh):
        return "tanh"
    if isinstance(layer, ActivatedLayer):
        return layer.config.get("activation") or ""
    return type(layer).__name__.lower() if type(layer).__name__ in ("LeakyReLU", "ELU", "Softmax") else ""


def saturated(values: np.ndarray, activation: str) -> np.ndarray:
    if activation == "sigmoid":
        return (values < SATURATION_MARGIN) | (values > 1 - SATURATION_MARGIN)
    return np.abs(values) > 1 - 2 * SATURATION_MARGIN  # tanh spans (-1, 1): the same share of its range


def probe_indices(labels: np.ndarray, size: int = PROBE_SIZE, seed: int = 0) -> np.ndarray:
    """Up to ``size`` positions into ``labels``, as many of each class as there are to take (a fixed choice)."""
    labels = np.asarray(labels)
    if not len(labels):
        return np.zeros(0, np.int64)
    order = np.random.default_rng(seed).permutation(len(labels))
    classes = np.unique(labels)
    per_class = max(1, -(-size // len(classes)))
    chosen = np.concatenate([order[labels[order] == c][:per_class] for c in classes])
    return np.sort(chosen[:size] if len(chosen) > size else chosen)


@dataclass
class _Steps:
    """The sampled steps of the epoch in progress, per layer."""

    gradient_norms: dict[str, list[float]]
    update_ratios: dict[str, list[float]]

    @classmethod
    def empty(cls) -> _Steps:
        return cls({}, {})


def _median(values: list[float]) -> float | None:
    finite = [v for v in values if math.isfinite(v)]
    return float(np.median(finite)) if finite else None


class Recorder:
    """Observes one Trainer (its ``step_observers`` and ``epoch_hooks``) and keeps ``records``."""

    def __init__(self, probe_size: int = PROBE_SIZE, samples_per_epoch: int = SAMPLES_PER_EPOCH) -> None:
        self.probe_size = probe_size
        self.samples_per_epoch = samples_per_epoch
        self.records: list[EpochRecord] = []
        self.trainer: Any = None
        self.last_loss = math.nan
        self.last_learning_rate = math.nan
        self._steps = _Steps.empty()
        self._before: dict[str, list[np.ndarray]] | None = None
        self._epoch_first_step = 0
        self._probe_x: np.ndarray | None = None
        self._probe_y: np.ndarray | None = None
        self.initial_probe_loss = math.nan  # the probe images' loss before the first recorded step
        self.broken = False  # recording failed once: nothing more is recorded

    # -- wiring ----------------------------------------------------------------------------------------------
    def attach(self, trainer: Any) -> None:
        self.trainer = trainer
        trainer.step_observers.append(self)
        trainer.epoch_hooks.append(self._epoch_end)
        source = trainer.val_idx if len(trainer.val_idx) >= 50 else trainer.train_idx
        chosen = np.asarray(source)[probe_indices(trainer.dataset.y_train[source], self.probe_size,
                                                  trainer.config.seed)]
        self._probe_x = trainer.dataset.normalized("train", chosen)
        self._probe_y = np.asarray(trainer.dataset.y_train[chosen], np.int64)
        self._epoch_first_step = len(trainer.log.batch_loss)
        self.initial_probe_loss = self._probe(trainer.model)["loss"]

    def detach(self) -> None:
        if self.trainer is None:
            return
        if self in self.trainer.step_observers:
            self.trainer.step_observers.remove(self)
        if self._epoch_end in self.trainer.epoch_hooks:
            self.trainer.epoch_hooks.remove(self._epoch_end)
        self.trainer = None

    @property
    def _interval(self) -> int:
        return max(1, self.trainer.batches_per_epoch // max(self.samples_per_epoch, 1))

    def _sampled(self, trainer: Any) -> bool:
        return trainer.step % self._interval == 0

    def _trainable(self, trainer: Any) -> list[tuple[str, Any]]:
        frozen = set(trainer.model.frozen_layers)
        return [(name, layer) for name, layer in zip(trainer.model.names, trainer.model.layers)
                if layer.params and name not in frozen]

    # -- the step observer ----------------------------------------------------------------------------------------
    def _broken(self, exc: Exception) -> None:
        """Recording failed: say so once and record nothing more (training goes on undisturbed)."""
        if not self.broken:
            self.broken = True
            self._before = None
            warnings.warn(f"the training doctor stopped recording ({type(exc).__name__}: {exc})", RuntimeWarning,
                          stacklevel=3)

    def before_step(self, trainer: Any) -> None:
        if self.broken:
            return
        try:
            self._before_step(trainer)
        except Exception as exc:  # noqa: BLE001 (whatever it is, training goes on)
            self._broken(exc)

    def after_step(self, trainer: Any, loss: float) -> None:
        if self.broken:
            return
        try:
            self._after_step(trainer, loss)
        except Exception as exc:  # noqa: BLE001
            self._broken(exc)

    def _before_step(self, trainer: Any) -> None:
        if not self._sampled(trainer):
            self._before = None
            return
        self._before = {name: [p.copy() for p in layer.params.values()] for name, layer in self._trainable(trainer)}

    def _after_step(self, trainer: Any, loss: float) -> None:
        self.last_loss = float(loss)
        self.last_learning_rate = float(trainer.optimizer.lr)
        before, self._before = self._before, None
        if before is None or not math.isfinite(loss):
            return
        steps = self._steps
        for name, layer in self._trainable(trainer):
            squared = sum(float(np.vdot(g, g)) for g in layer.grads.values())
            steps.gradient_norms.setdefault(name, []).append(math.sqrt(squared))
            old = before[name]
            weight = math.sqrt(sum(float(np.vdot(w, w)) for w in old))
            change = math.sqrt(sum(float(np.vdot(d, d)) for d in (p - w for p, w in zip(layer.params.values(), old))))
            if weight > 0:
                steps.update_ratios.setdefault(name, []).append(change / weight)

    # -- the epoch hook --------------------------------------------------------------------------------------------
    def _epoch_end(self, event: Any) -> None:
        if self.broken:
            return
        try:
            self._end_epoch(event)
        except Exception as exc:  # noqa: BLE001
            self._broken(exc)

    def _end_epoch(self, event: Any) -> None:
        self.records.append(self._record(int(event.epoch), float(event.train_loss), float(event.val_loss),
                                         float(event.train_accuracy), float(event.val_accuracy),
                                         float(event.learning_rate), probe=True))

    def end_unfinished_epoch(self) -> None:
        """Record what was sampled of an epoch that ended early (the loss diverged): gradients and updates
        only, since the weights were put back to the last good ones and a probe would not show the damage."""
        if self.trainer is not None and not self.broken and any(self._steps.gradient_norms.values()):
            self.records.append(self._record(self.trainer.epoch + 1, math.nan, math.nan, math.nan, math.nan,
                                             self.last_learning_rate, probe=False))

    def _record(self, epoch: int, train_loss: float, val_loss: float, train_accuracy: float, val_accuracy: float,
                learning_rate: float, probe: bool) -> EpochRecord:
        trainer = self.trainer
        losses = np.asarray(trainer.log.batch_loss[self._epoch_first_step:], np.float64)
        self._epoch_first_step = len(trainer.log.batch_loss)
        k = int(trainer.model.output_shape[0]) if len(trainer.model.output_shape) == 1 else 0
        found = self._probe(trainer.model) if probe else {"layers": {}, "predicted": (), "labels": (0,) * k,
                                                           "size": 0, "confusions": (), "loss": math.nan}
        layers = []
        for name, layer in zip(trainer.model.names, trainer.model.layers):
            size = sum(p.size for p in layer.params.values())
            norm = _median(self._steps.gradient_norms.get(name, []))
            stats = found["layers"].get(name, {})
            layers.append(LayerEpoch(
                name=name, type=layer.type_name, gradient_norm=norm,
                gradient_rms=norm / math.sqrt(size) if norm is not None and size else None,
                update_ratio=_median(self._steps.update_ratios.get(name, [])),
                dead_fraction=stats.get("dead_fraction"), dead_units=stats.get("dead_units", 0),
                units=stats.get("units", 0), saturated_fraction=stats.get("saturated_fraction"),
                activation=activation_of(layer),
            ))
        self._steps = _Steps.empty()
        tenth = max(1, len(losses) // 10)
        return EpochRecord(
            epoch=epoch, train_loss=train_loss, val_loss=val_loss, train_accuracy=train_accuracy,
            val_accuracy=val_accuracy, learning_rate=learning_rate, layers=tuple(layers),
            predicted=found["predicted"], labels=found["labels"], probe_size=found["size"],
            first_losses=float(losses[:tenth].mean()) if len(losses) else math.nan,
            last_losses=float(losses[-tenth:].mean()) if len(losses) else math.nan,
            spikes=count_spikes(losses), batches=len(losses), confusions=found["confusions"],
            peak_loss=float(losses.max()) if len(losses) else math.nan, probe_loss=found["loss"],
            start_loss=float(losses[0]) if len(losses) else math.nan,
            complete=probe,
        )

    def _probe(self, model: Any) -> dict[str, Any]:
        x, y = self._probe_x, self._probe_y
        k = int(model.output_shape[0]) if len(model.output_shape) == 1 else 0
        empty = {"layers": {}, "predicted": (0,) * k, "labels": (0,) * k, "size": 0, "confusions": (),
                 "loss": math.nan}
        if x is None or not len(x):
            return empty
        last = len(model.layers) - 1
        ever_active: dict[str, np.ndarray] = {}
        saturated_counts: dict[str, list[int]] = {}
        predictions = []
        likelihoods = []
        with np.errstate(all="ignore"):
            for start in range(0, len(x), PROBE_CHUNK):
                outputs = model.layer_outputs(x[start:start + PROBE_CHUNK])
                for i, (layer, (name, out)) in enumerate(zip(model.layers, outputs)):
                    activation = activation_of(layer)
                    if activation == "relu" and i != last:
                        active = (out > 0).reshape(-1, out.shape[-1]).any(axis=0)
                        ever_active[name] = ever_active.get(name, np.zeros_like(active)) | active
                    elif activation in ("sigmoid", "tanh") and i != last:
                        counts = saturated_counts.setdefault(name, [0, 0])
                        counts[0] += int(np.count_nonzero(saturated(out, activation)))
                        counts[1] += int(out.size)
                scores = outputs[-1][1].reshape(len(outputs[-1][1]), -1)
                predictions.append(np.argmax(scores, axis=1))
                if scores.shape[1] == k:
                    chunk = y[start:start + PROBE_CHUNK]
                    probs = probabilities(scores.astype(np.float64), model)
                    likelihoods.append(probs[np.arange(len(chunk)), chunk])
        stats: dict[str, dict[str, Any]] = {}
        for name, active in ever_active.items():
            dead = int(np.count_nonzero(~active))
            stats[name] = {"dead_fraction": dead / active.size, "dead_units": dead, "units": int(active.size)}
        for name, (hits, total) in saturated_counts.items():
            stats.setdefault(name, {})["saturated_fraction"] = hits / total if total else 0.0
        predicted = np.concatenate(predictions)
        k = max(k, int(y.max()) + 1, int(predicted.max()) + 1)
        confusion = np.zeros((k, k), np.int64)
        np.add.at(confusion, (y, predicted), 1)
        loss = float(-np.log(np.maximum(np.concatenate(likelihoods), 1e-12)).mean()) if likelihoods else math.nan
        return {"layers": stats, "predicted": tuple(int(v) for v in confusion.sum(axis=0)), "loss": loss,
                "labels": tuple(int(v) for v in confusion.sum(axis=1)), "size": int(len(y)),
                "confusions": tuple(tuple(int(v) for v in row) for row in confusion)}


def count_spikes(losses: np.ndarray) -> int:
    """Batches whose loss is more than twice (and 0.5 above) the median of the ``SPIKE_WINDOW`` before it."""
    losses = np.asarray(losses, np.float64)
    if len(losses) <= SPIKE_WINDOW:
        return 0
    windows = np.lib.stride_tricks.sliding_window_view(losses[:-1], SPIKE_WINDOW)
    medians = np.median(windows, axis=1)
    later = losses[SPIKE_WINDOW:]
    return int(np.count_nonzero((later > 2 * medians) & (later > medians + 0.5)))
