"""An independent float64 reference for networks: plain NumPy forward formulas with hand-written
gradients, recorded on a tape and replayed backwards.

It shares no code with the engine: convolution and pooling loop over kernel offsets (never over
pixels) on zero-padded or -inf-padded copies, batch normalisation uses the textbook formulas.
``run_reference(doc, tensors, x, labels)`` returns the loss, the logits, d(loss)/d(input) and
d(loss)/d(every parameter), for the mean softmax cross-entropy of a network ending in a softmax.
"""

from __future__ import annotations

import re
from collections.abc import Callable

import numpy as np


class Tape:
    """Values with a gradient slot each; ``backward`` replays the recorded steps in reverse."""

    def __init__(self) -> None:
        self.steps: list[Callable[[], None]] = []
        self.grads: dict[int, np.ndarray] = {}

    def grad(self, value: np.ndarray) -> np.ndarray:
        return self.grads.setdefault(id(value), np.zeros_like(value))

    def add_grad(self, value: np.ndarray, g: np.ndarray) -> None:
        self.grads[id(value)] = self.grad(value) + g

    def backward(self, out: np.ndarray, g: np.ndarray) -> None:
        self.grads[id(out)] = g
        for step in reversed(self.steps):
            step()


def _pads(padding, kernel: int, stride: int, size: int) -> tuple[int, int]:
    if padding == "valid":
        return 0, 0
    if padding == "same":
        out = -(-size // stride)
        total = max((out - 1) * stride + kernel - size, 0)
        return total // 2, total - total // 2
    return int(padding), int(padding)


def _padded(x: np.ndarray, k: int, s: int, padding, fill: float) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    top, bottom = _pads(padding, k, s, x.shape[1])
    left, right = _pads(padding, k, s, x.shape[2])
    xp = np.pad(x, ((0, 0), (top, bottom), (left, right), (0, 0)), constant_values=fill)
    return xp, (top, bottom, left, right)


def conv2d(t: Tape, x: np.ndarray, kernel: np.ndarray, bias: np.ndarray | None, stride: int, padding) -> np.ndarray:
    k = kernel.shape[0]
    xp, (top, _, left, _) = _padded(x, k, stride, padding, 0.0)
    ho = (xp.shape[1] - k) // stride + 1
    wo = (xp.shape[2] - k) // stride + 1

    def window(di: int, dj: int) -> tuple[slice, slice]:
        return slice(di, di + stride * (ho - 1) + 1, stride), slice(dj, dj + stride * (wo - 1) + 1, stride)

    out = np.zeros((x.shape[0], ho, wo, kernel.shape[3]))
    for di in range(k):
        for dj in range(k):
            rows, cols = window(di, dj)
            out += np.einsum("nijc,cf->nijf", xp[:, rows, cols, :], kernel[di, dj])
    if bias is not None:
        out = out + bias

    def back() -> None:
        g = t.grad(out)
        d_xp = np.zeros_like(xp)
        d_kernel = np.zeros_like(kernel)
        for di in range(k):
            for dj in range(k):
                rows, cols = window(di, dj)
                d_kernel[di, dj] = np.einsum("nijc,nijf->cf", xp[:, rows, cols, :], g)
                d_xp[:, rows, cols, :] += np.einsum("nijf,cf->nijc", g, kernel[di, dj])
        t.add_grad(kernel, d_kernel)
        if bias is not None:
            t.add_grad(bias, g.sum(axis=(0, 1, 2)))
        t.add_grad(x, d_xp[:, top : top + x.shape[1], left : left + x.shape[2], :])

    t.steps.append(back)
    return out


def pool2d(t: Tape, x: np.ndarray, size: int, stride: int, padding, mode: str) -> np.ndarray:
    xp, (top, _, left, _) = _padded(x, size, stride, padding, -np.inf if mode == "max" else 0.0)
    ho = (xp.shape[1] - size) // stride + 1
    wo = (xp.shape[2] - size) // stride + 1
    taps = [(di, dj) for di in range(size) for dj in range(size)]

    def view(di: int, dj: int) -> tuple[slice, slice]:
        return slice(di, di + stride * (ho - 1) + 1, stride), slice(dj, dj + stride * (wo - 1) + 1, stride)

    stacked = np.stack([xp[:, r, c, :] for r, c in (view(*tap) for tap in taps)])
    out = stacked.max(axis=0) if mode == "max" else stacked.mean(axis=0)

    def back() -> None:
        g = t.grad(out)
        d_xp = np.zeros_like(xp)
        if mode == "max":
            winner = stacked.argmax(axis=0)
            for k, tap in enumerate(taps):
                r, c = view(*tap)
                d_xp[:, r, c, :] += np.where(winner == k, g, 0.0)
        else:
            for tap in taps:
                r, c = view(*tap)
                d_xp[:, r, c, :] += g / len(taps)
        t.add_grad(x, d_xp[:, top : top + x.shape[1], left : left + x.shape[2], :])

    t.steps.append(back)
    return out


def elementwise(t: Tape, x: np.ndarray, f: Callable[[np.ndarray], np.ndarray],
                df: Callable[[np.ndarray, np.ndarray], np.ndarray]) -> np.ndarray:
    """f(x) with its derivative df(x, f(x))."""
    out = f(x)
    t.steps.append(lambda: t.add_grad(x, t.grad(out) * df(x, out)))
    return out


def activation(t: Tape, x: np.ndarray, kind: str | None, alpha: float | None = None) -> np.ndarray:
    if kind is None:
        return x
    if kind == "relu":
        return elementwise(t, x, lambda v: np.maximum(v, 0), lambda v, o: (v > 0).astype(float))
    if kind == "leaky_relu":
        a = 0.01 if alpha is None else alpha
        return elementwise(t, x, lambda v: np.where(v > 0, v, a * v), lambda v, o: np.where(v > 0, 1.0, a))
    if kind == "elu":
        a = 1.0 if alpha is None else alpha
        return elementwise(t, x, lambda v: np.where(v > 0, v, a * (np.exp(np.minimum(v, 0)) - 1)),
                           lambda v, o: np.where(v > 0, 1.0, o + a))
    if kind == "sigmoid":
        return elementwise(t, x, lambda v: 1 / (1 + np.exp(-v)), lambda v, o: o * (1 - o))
    if kind == "tanh":
        return elementwise(t, x, np.tanh, lambda v, o: 1 - o * o)
    raise ValueError(kind)


def batch_norm(t: Tape, x: np.ndarray, gamma: np.ndarray, beta: np.ndarray, eps: float) -> np.ndarray:
    axes = tuple(range(x.ndim - 1))
    m = x.size // x.shape[-1]
    mean = x.mean(axis=axes)
    var = x.var(axis=axes)
    x_hat = (x - mean) / np.sqrt(var + eps)
    out = gamma * x_hat + beta

    def back() -> None:
        g = t.grad(out)
        t.add_grad(gamma, (g * x_hat).sum(axis=axes))
        t.add_grad(beta, g.sum(axis=axes))
        d_hat = g * gamma
        d_x = (m * d_hat - d_hat.sum(axis=axes) - x_hat * (d_hat * x_hat).sum(axis=axes)) / (m * np.sqrt(var + eps))
        t.add_grad(x, d_x)

    t.steps.append(back)
    return out


def dense(t: Tape, x: np.ndarray, kernel: np.ndarray, bias: np.ndarray | None) -> np.ndarray:
    out = x @ kernel + (0 if bias is None else bias)

    def back() -> None:
        g = t.grad(out)
        t.add_grad(kernel, x.T @ g)
        if bias is not None:
            t.add_grad(bias, g.sum(axis=0))
        t.add_grad(x, g @ kernel.T)

    t.steps.append(back)
    return out


def add(t: Tape, xs: list[np.ndarray]) -> np.ndarray:
    out = sum(xs[1:], xs[0].copy())

    def back() -> None:
        for x in xs:
            t.add_grad(x, t.grad(out))

    t.steps.append(back)
    return out


def concatenate(t: Tape, xs: list[np.ndarray]) -> np.ndarray:
    out = np.concatenate(xs, axis=-1)
    edges = np.cumsum([0] + [x.shape[-1] for x in xs])

    def back() -> None:
        g = t.grad(out)
        for x, a, b in zip(xs, edges[:-1], edges[1:]):
            t.add_grad(x, g[..., a:b])

    t.steps.append(back)
    return out


def reshape(t: Tape, x: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    out = x.reshape(shape).copy()
    t.steps.append(lambda: t.add_grad(x, t.grad(out).reshape(x.shape)))
    return out


def global_average(t: Tape, x: np.ndarray) -> np.ndarray:
    out = x.mean(axis=(1, 2))
    t.steps.append(lambda: t.add_grad(x, np.broadcast_to(t.grad(out)[:, None, None, :] / (x.shape[1] * x.shape[2]),
                                                         x.shape)))
    return out


def _names(doc: dict) -> list[str]:
    counts: dict[str, int] = {}
    names = []
    for spec in doc["layers"]:
        counts[spec["type"]] = counts.get(spec["type"], 0) + 1
        snake = re.sub(r"(?<=[a-z])(?=[A-Z])", "_", spec["type"]).lower().replace("re_lu", "relu")
        names.append(spec.get("name") or f"{snake}_{counts[spec['type']]}")
    return names


def run_reference(doc: dict, tensors: dict[str, np.ndarray], x: np.ndarray, labels: np.ndarray):
    """(loss, logits, d_input, {parameter name: gradient}) of the mean cross-entropy, training mode.

    ``doc`` is a format 2 document whose layers may carry "id" and "inputs"; the last layer is a
    Softmax or has the softmax activation (the loss starts from the logits before it).
    """
    t = Tape()
    x = np.array(x, dtype=np.float64)
    params = {k: np.array(v, dtype=np.float64) for k, v in tensors.items()}
    names = _names(doc)
    ids = [spec.get("id") or name for spec, name in zip(doc["layers"], names)]
    values: dict[str, np.ndarray] = {"input": x}
    previous = "input"
    logits = None
    for i, (spec, name, own) in enumerate(zip(doc["layers"], names, ids)):
        kind = spec["type"]
        inputs = [values[r] for r in spec.get("inputs", [previous])]
        h = inputs[0]
        p = {key.split(".", 1)[1]: v for key, v in params.items() if key.split(".", 1)[0] == name}
        last = i == len(doc["layers"]) - 1
        act = spec.get("activation")
        if kind == "Conv2D":
            h = conv2d(t, h, p["kernel"], p.get("bias"), spec.get("stride", 1), spec.get("padding", "valid"))
        elif kind == "Dense":
            h = dense(t, h, p["kernel"], p.get("bias"))
        elif kind in ("MaxPool2D", "AvgPool2D"):
            size = spec.get("pool_size", 2)
            h = pool2d(t, h, size, spec.get("stride") or size, spec.get("padding", "valid"),
                       "max" if kind == "MaxPool2D" else "avg")
        elif kind == "BatchNorm":
            h = batch_norm(t, h, p["gamma"], p["beta"], spec.get("epsilon", 1e-5))
        elif kind == "Add":
            h = add(t, inputs)
        elif kind == "Concatenate":
            h = concatenate(t, inputs)
        elif kind == "Flatten":
            h = reshape(t, h, (h.shape[0], -1))
        elif kind == "GlobalAvgPool2D":
            h = global_average(t, h)
        elif kind in ("ReLU", "LeakyReLU", "ELU", "Sigmoid", "Tanh"):
            kind_name = {"ReLU": "relu", "LeakyReLU": "leaky_relu", "ELU": "elu"}.get(kind, kind.lower())
            h = activation(t, h, kind_name, spec.get("alpha"))
        elif kind == "Softmax":
            act = "softmax"
        elif kind != "Dropout":
            raise ValueError(kind)
        if act == "softmax":
            assert last, "the reference supports softmax only as the network's head"
            logits = h
        else:
            h = activation(t, h, act)
        values[own] = h
        previous = own
    assert logits is not None
    shifted = logits - logits.max(axis=1, keepdims=True)
    log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    n = len(labels)
    loss = -log_probs[np.arange(n), labels].mean()
    d_logits = np.exp(log_probs)
    d_logits[np.arange(n), labels] -= 1
    t.backward(logits, d_logits / n)
    return loss, logits, t.grad(x), {k: t.grad(v) for k, v in params.items()}
