"""A per-layer profile of training: where the time of one optimisation step goes.

``profile_training`` runs a few training steps exactly as the trainer does (the same fused kernels,
one process) and times each step of the run plan: every layer, or every run of layers the engine
fuses into one kernel (reported together, e.g. "conv2d_1 + max_pool2d_1"), forward and backward,
then the loss and the optimizer's update. It also notes the bytes of each step's output, the
activation memory the backward pass keeps. What is not inside any of them (Python between the
kernels) is reported as ``overhead_s``, so the rows and the overhead add up to the measured step.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from engine.explain.progress import CancelCheck, Progress, Reporter
from engine.losses import softmax_cross_entropy
from engine.model import Model
from engine.optimizers import Optimizer


@dataclass(frozen=True)
class ProfileRow:
    """One step of the run plan (``layers``: the layer names it covers), or the loss or the update;
    times are means per training step in seconds."""

    name: str
    layers: tuple[str, ...]
    forward_s: float
    backward_s: float
    activation_bytes: int = 0
    # For layers fused into one kernel: each one's part of the row's time, measured by running them
    # one by one on the same input (empty: an even split).
    parts: tuple[float, ...] = ()

    @property
    def total_s(self) -> float:
        return self.forward_s + self.backward_s


@dataclass(frozen=True)
class Profile:
    rows: tuple[ProfileRow, ...]
    step_s: float  # the mean measured time of a whole step
    batch_size: int
    steps: int

    @property
    def overhead_s(self) -> float:
        """The part of the step spent outside every row."""
        return self.step_s - sum(row.total_s for row in self.rows)

    def share(self, row: ProfileRow) -> float:
        return row.total_s / self.step_s if self.step_s > 0 else 0.0

    @property
    def images_per_second(self) -> float:
        return self.batch_size / self.step_s if self.step_s > 0 else 0.0

    def layer_shares(self) -> dict[str, float]:
        """Each layer's share of the step; layers fused into one kernel split its time in the parts
        measured for them one by one (ProfileRow.parts)."""
        shares: dict[str, float] = {}
        for row in self.rows:
            parts = row.parts if len(row.parts) == len(row.layers) else (1 / max(len(row.layers), 1),) * len(row.layers)
            for name, part in zip(row.layers, parts):
                shares[name] = self.share(row) * part
        return shares

    def table(self) -> str:
        """The profile as a text table (the command line, logs)."""
        lines = [f"{'step':28} {'forward ms':>11} {'backward ms':>12} {'share':>7} {'activations':>12}"]
        for row in self.rows:
            memory = f"{row.activation_bytes / 2**20:.2f} MiB" if row.activation_bytes else ""
            lines.append(f"{row.name[:28]:28} {row.forward_s * 1e3:11.3f} {row.backward_s * 1e3:12.3f} "
                         f"{self.share(row):7.1%} {memory:>12}")
        lines.append(f"{'(between kernels)':28} {self.overhead_s * 1e3:11.3f} {'':12} "
                     f"{self.overhead_s / self.step_s if self.step_s else 0:7.1%}")
        lines.append(f"step {self.step_s * 1e3:.2f} ms for {self.batch_size} images ({self.images_per_second:,.0f} "
                     f"images/s), mean of {self.steps} steps")
        return "\n".join(lines)


def _nbytes(value: Any) -> int:
    if isinstance(value, np.ndarray):
        return int(value.nbytes)
    if isinstance(value, (list, tuple)):
        return sum(_nbytes(v) for v in value)
    return 0


class _Timed:
    """Replaces an op's forward and backward (as instance attributes) with timed calls."""

    def __init__(self, op: Any) -> None:
        self.op = op
        self.forward_s = 0.0
        self.backward_s = 0.0
        self.output_bytes = 0
        self.last_input: Any = None
        self._forward: Callable[..., Any] = op.forward
        self._backward: Callable[..., Any] = op.backward

    def install(self) -> None:
        def forward(*args: Any, **kwargs: Any) -> Any:
            self.last_input = args[0] if args else None
            start = time.perf_counter()
            out = self._forward(*args, **kwargs)
            self.forward_s += time.perf_counter() - start
            self.output_bytes = _nbytes(out)
            return out

        def backward(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            out = self._backward(*args, **kwargs)
            self.backward_s += time.perf_counter() - start
            return out

        self.op.forward, self.op.backward = forward, backward

    def remove(self) -> None:
        for name in ("forward", "backward"):
            if name in vars(self.op):
                delattr(self.op, name)

    def reset(self) -> None:
        self.forward_s = self.backward_s = 0.0


def _node_layers(model: Model, node: Any) -> tuple[str, ...]:
    first = next(i for i, layer in enumerate(model.layers) if layer is node.first)
    return tuple(model.names[first:node.output])


def _fused_parts(model: Model, node: Any, x: np.ndarray, repeats: int = 2) -> tuple[float, ...]:
    """How a fused run of layers' time splits among them: the run's layers timed one by one (forward
    in training, then backward) on the input the fused kernel had, the fastest of ``repeats``."""
    first = next(i for i, layer in enumerate(model.layers) if layer is node.first)
    layers = model.layers[first:node.output]
    best = [float("inf")] * len(layers)
    with np.errstate(over="ignore", invalid="ignore"):
        for _ in range(repeats):
            times = [0.0] * len(layers)
            value = x
            for i, layer in enumerate(layers):
                start = time.perf_counter()
                value = layer.forward(value, True)
                times[i] += time.perf_counter() - start
            grad = np.ones_like(value)
            for i in reversed(range(len(layers))):
                start = time.perf_counter()
                grad = layers[i].backward(grad)
                times[i] += time.perf_counter() - start
                if grad is None:
                    break
            best = [min(b, t) for b, t in zip(best, times)]
    total = sum(best)
    return tuple(t / total for t in best) if total > 0 else ()


def profile_training(model: Model, x: np.ndarray, y: np.ndarray, optimizer: Optimizer, batch_size: int = 64,
                     steps: int = 5, warmup: int = 1, label_smoothing: float = 0.0,
                     progress: Progress | None = None, cancelled: CancelCheck | None = None) -> Profile:
    """Time ``steps`` training steps of ``model`` (after ``warmup`` untimed ones) on batches drawn in
    order from ``x`` (N, H, W, C), normalised, and ``y`` (N,); the model trains on them.

    Raises Cancelled (engine.explain.progress) when ``cancelled()`` says so between steps.
    """
    x, y = np.asarray(x), np.asarray(y)
    if not len(x):
        raise ValueError("profiling needs at least one training image")
    batch_size = max(1, min(int(batch_size), len(x)))
    reporter = Reporter(warmup + steps, progress, cancelled)
    reporter.check()
    nodes = model._nodes  # the plan training runs (fused runs included); profiled as it is
    timers = [_Timed(node.op) for node in nodes]
    loss_s = update_s = step_s = 0.0
    position = 0
    for timer in timers:
        timer.install()
    try:
        for step in range(warmup + steps):
            if step == warmup:
                for timer in timers:
                    timer.reset()
                loss_s = update_s = step_s = 0.0
            if position + batch_size > len(x):
                position = 0
            xb, yb = x[position:position + batch_size], y[position:position + batch_size]
            position += batch_size
            with np.errstate(over="ignore", invalid="ignore"):
                start = time.perf_counter()
                logits = model.forward_logits(xb, training=True)
                loss_start = time.perf_counter()
                _, grad, _ = softmax_cross_entropy(logits, yb, label_smoothing)
                loss_end = time.perf_counter()
                model.backward(grad)
                update_start = time.perf_counter()
                optimizer.step(model.trainable_parameters(), model.trainable_gradients())
                end = time.perf_counter()
            loss_s += loss_end - loss_start
            update_s += end - update_start
            step_s += end - start
            reporter.step()
    finally:
        for timer in timers:
            timer.remove()
    rows = []
    for node, timer in zip(nodes, timers):
        names = _node_layers(model, node)
        parts = ()
        if len(names) > 1 and isinstance(timer.last_input, np.ndarray):
            parts = _fused_parts(model, node, timer.last_input)
        rows.append(ProfileRow(" + ".join(names), names, timer.forward_s / steps, timer.backward_s / steps,
                               timer.output_bytes, parts))
    rows.append(ProfileRow("loss (softmax cross-entropy)", (), loss_s / steps, 0.0))
    rows.append(ProfileRow(f"update ({getattr(optimizer, 'name', 'optimizer')})", (), 0.0, update_s / steps))
    return Profile(tuple(rows), step_s / steps, batch_size, steps)
