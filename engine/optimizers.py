"""SGD (momentum, Nesterov, weight decay), Adam and AdamW, updating parameter arrays in place.

Hyper-parameters are plain attributes, so a trainer can change ``lr`` or ``momentum`` between
batches. Weight decay applies to kernels only (not biases or batch-norm scales).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np


def _decays(name: str) -> bool:
    return name.endswith(".kernel")


# Each optimizer's usual learning rate: what the CLI uses when --lr is not given, and what a sweep over
# optimizers gives each one when the rate is the usual one of the optimizer it started from.
DEFAULT_LEARNING_RATES: dict[str, float] = {"sgd": 0.01, "adam": 0.001, "adamw": 0.001}

# Values per piece of a parameter that an update works through at once: the pieces of the parameter,
# its gradient, its slots and two scratch arrays (five or six of 256 KB in float32) stay in cache
# across the update's passes, which over whole large parameters each went to memory (a Dense layer of
# a million weights updated twice as fast).
CHUNK = 1 << 16


class Optimizer:
    name = ""
    slot_names: tuple[str, ...] = ()  # the per-parameter state arrays ``update_piece`` receives

    def __init__(self, lr: float) -> None:
        self.lr = float(lr)
        self.slots: dict[str, dict[str, np.ndarray]] = {}
        self._scratch: np.ndarray | None = None

    def step(self, params: dict[str, np.ndarray], grads: dict[str, np.ndarray]) -> None:
        for name, p in params.items():
            self.update(name, p, grads[name])

    def update(self, name: str, param: np.ndarray, grad: np.ndarray) -> None:
        """Update ``param`` in place from ``grad``, piece by piece (see CHUNK)."""
        slots = [self.slot(name, key, param) for key in self.slot_names]
        grad = np.asarray(grad)
        if not (param.flags.c_contiguous and all(s.flags.c_contiguous for s in slots)):
            self.update_piece(name, param, grad, slots, self.scratch(param.shape, param.dtype))
            return
        flat = [a.reshape(-1) for a in (param, np.ascontiguousarray(grad), *slots)]
        scratch = self.scratch((min(param.size, CHUNK),), param.dtype)
        for start in range(0, param.size, CHUNK):
            piece = [a[start : start + CHUNK] for a in flat]
            size = len(piece[0])
            self.update_piece(name, piece[0], piece[1], piece[2:], (scratch[0][:size], scratch[1][:size]))

    def update_piece(self, name: str, param: np.ndarray, grad: np.ndarray, slots: list[np.ndarray],
                     scratch: tuple[np.ndarray, np.ndarray]) -> None:
        """Update a piece of parameter ``name`` in place, from the pieces of its gradient and of its
        slots (``slot_names``, in order) at the same place; two scratch arrays of the piece's shape."""
        raise NotImplementedError

    def scratch(self, shape: tuple[int, ...], dtype: np.dtype) -> tuple[np.ndarray, np.ndarray]:
        """Two scratch arrays of ``shape``, shared by all parameters (one update at a time)."""
        size = math.prod(shape)
        if self._scratch is None or self._scratch.shape[1] < size or self._scratch.dtype != dtype:
            self._scratch = np.empty((2, size), dtype)
        return self._scratch[0, :size].reshape(shape), self._scratch[1, :size].reshape(shape)

    def slot(self, name: str, key: str, like: np.ndarray) -> np.ndarray:
        per_param = self.slots.setdefault(name, {})
        if key not in per_param:
            per_param[key] = np.zeros_like(like)
        return per_param[key]

    def hyperparameters(self) -> dict[str, Any]:
        return {"lr": self.lr}

    def state_dict(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        """(settings and counters as JSON-safe values, slot arrays as ``"<param>/<slot>"`` copies):
        everything a later step depends on, so a restored optimizer steps bit-identically."""
        arrays = {f"{name}/{key}": value.copy() for name, slots in self.slots.items() for key, value in slots.items()}
        return {"name": self.name, **self.hyperparameters(), **self._counters()}, arrays

    def load_state_dict(self, settings: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
        if settings.get("name") != self.name:
            raise ValueError(f"optimizer state of {settings.get('name')!r} cannot load into {self.name!r}")
        for key, value in settings.items():
            if key != "name":
                setattr(self, key, value)
        self.slots = {}
        for key, value in arrays.items():
            name, _, slot = key.rpartition("/")
            self.slots.setdefault(name, {})[slot] = np.array(value, copy=True)

    def _counters(self) -> dict[str, Any]:
        return {}


class SGD(Optimizer):
    name = "sgd"

    def __init__(self, lr: float = 0.01, momentum: float = 0.0, nesterov: bool = False,
                 weight_decay: float = 0.0) -> None:
        super().__init__(lr)
        self.momentum = float(momentum)
        self.nesterov = bool(nesterov)
        self.weight_decay = float(weight_decay)

    @property
    def slot_names(self) -> tuple[str, ...]:  # type: ignore[override]
        return ("velocity",) if self.momentum else ()

    def update_piece(self, name: str, param: np.ndarray, grad: np.ndarray, slots: list[np.ndarray],
                     scratch: tuple[np.ndarray, np.ndarray]) -> None:
        dt = param.dtype.type
        work, decayed = scratch
        if self.weight_decay and _decays(name):
            grad = np.add(grad, np.multiply(param, dt(self.weight_decay), out=decayed), out=decayed)
        if not self.momentum:
            param -= np.multiply(grad, dt(self.lr), out=work)
            return
        # PyTorch's form: v = mu * v + g; step along v (or g + mu * v for Nesterov).
        (v,) = slots
        v *= dt(self.momentum)
        v += grad
        if self.nesterov:
            step = np.multiply(v, dt(self.momentum), out=work)
            step += grad
            step *= dt(self.lr)
        else:
            step = np.multiply(v, dt(self.lr), out=work)
        param -= step

    def hyperparameters(self) -> dict[str, Any]:
        return {"lr": self.lr, "momentum": self.momentum, "nesterov": self.nesterov,
                "weight_decay": self.weight_decay}


class Adam(Optimizer):
    name = "adam"
    decoupled = False

    def __init__(self, lr: float = 0.001, beta1: float = 0.9, beta2: float = 0.999, epsilon: float = 1e-7,
                 weight_decay: float = 0.0) -> None:
        super().__init__(lr)
        self.beta1, self.beta2, self.epsilon = float(beta1), float(beta2), float(epsilon)
        self.weight_decay = float(weight_decay)
        self.t = 0

    def step(self, params: dict[str, np.ndarray], grads: dict[str, np.ndarray]) -> None:
        self.t += 1
        super().step(params, grads)

    @property
    def momentum(self) -> float:
        return self.beta1

    @momentum.setter
    def momentum(self, value: float) -> None:
        self.beta1 = float(value)

    slot_names = ("m", "v")

    def update_piece(self, name: str, param: np.ndarray, grad: np.ndarray, slots: list[np.ndarray],
                     scratch: tuple[np.ndarray, np.ndarray]) -> None:
        dt = param.dtype.type
        work, decayed = scratch
        if self.weight_decay and _decays(name):
            if self.decoupled:
                param *= dt(1 - self.lr * self.weight_decay)
            else:
                grad = np.add(grad, np.multiply(param, dt(self.weight_decay), out=decayed), out=decayed)
        m, v = slots
        # Every pass in place or into scratch: no temporaries the size of the parameter.
        m *= dt(self.beta1)
        m += np.multiply(grad, dt(1 - self.beta1), out=work)
        v *= dt(self.beta2)
        squared = np.multiply(grad, grad, out=work)
        squared *= dt(1 - self.beta2)
        v += squared
        # Bias correction folded into the step size.
        step = self.lr * np.sqrt(1 - self.beta2**self.t) / (1 - self.beta1**self.t)
        denominator = np.sqrt(v, out=work)
        denominator += dt(self.epsilon)
        update = np.divide(m, denominator, out=work)
        update *= dt(step)
        param -= update

    def hyperparameters(self) -> dict[str, Any]:
        return {"lr": self.lr, "beta1": self.beta1, "beta2": self.beta2, "epsilon": self.epsilon,
                "weight_decay": self.weight_decay}

    def _counters(self) -> dict[str, Any]:
        return {"t": self.t}


class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov and Hutter, 2019)."""

    name = "adamw"
    decoupled = True

    def __init__(self, lr: float = 0.001, beta1: float = 0.9, beta2: float = 0.999, epsilon: float = 1e-7,
                 weight_decay: float = 0.01) -> None:
        super().__init__(lr, beta1, beta2, epsilon, weight_decay)


OPTIMIZERS: dict[str, type[Optimizer]] = {"sgd": SGD, "adam": Adam, "adamw": AdamW}


def make_optimizer(name: str, **settings: Any) -> Optimizer:
    try:
        cls = OPTIMIZERS[name.lower()]
    except KeyError:
        raise ValueError(f"unknown optimizer {name!r} (choose {', '.join(OPTIMIZERS)})") from None
    return cls(**settings)
