"""SGD (momentum, Nesterov, weight decay), Adam and AdamW, updating parameter arrays in place.

Hyper-parameters are plain attributes, so a trainer can change ``lr`` or ``momentum`` between
batches. Weight decay applies to kernels only (not biases or batch-norm scales).
"""

from __future__ import annotations

from typing import Any

import numpy as np


def _decays(name: str) -> bool:
    return name.endswith(".kernel")


# Each optimizer's usual learning rate: what the CLI uses when --lr is not given, and what a sweep over
# optimizers gives each one when the rate is the usual one of the optimizer it started from.
DEFAULT_LEARNING_RATES: dict[str, float] = {"sgd": 0.01, "adam": 0.001, "adamw": 0.001}

class Optimizer:
    name = ""

    def __init__(self, lr: float) -> None:
        self.lr = float(lr)
        self.slots: dict[str, dict[str, np.ndarray]] = {}
        self._scratch: np.ndarray | None = None

    def step(self, params: dict[str, np.ndarray], grads: dict[str, np.ndarray]) -> None:
        for name, p in params.items():
            self.update(name, p, grads[name])

    def update(self, name: str, param: np.ndarray, grad: np.ndarray) -> None:
        raise NotImplementedError

    def scratch(self, like: np.ndarray) -> np.ndarray:
        """A scratch array shaped and typed like ``like``, shared by all parameters (one update at a time)."""
        size, dtype = like.size, like.dtype
        if self._scratch is None or self._scratch.size < size or self._scratch.dtype != dtype:
            self._scratch = np.empty(size, dtype)
        return self._scratch[:size].reshape(like.shape)

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

    def update(self, name: str, param: np.ndarray, grad: np.ndarray) -> None:
        dt = param.dtype.type
        if self.weight_decay and _decays(name):
            grad = grad + dt(self.weight_decay) * param
        if not self.momentum:
            param -= dt(self.lr) * grad
            return
        # PyTorch's form: v = mu * v + g; step along v (or g + mu * v for Nesterov).
        v = self.slot(name, "velocity", param)
        v *= dt(self.momentum)
        v += grad
        step = grad + dt(self.momentum) * v if self.nesterov else v
        param -= dt(self.lr) * step

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

    def update(self, name: str, param: np.ndarray, grad: np.ndarray) -> None:
        dt = param.dtype.type
        if self.weight_decay and _decays(name):
            if self.decoupled:
                param *= dt(1 - self.lr * self.weight_decay)
            else:
                grad = grad + dt(self.weight_decay) * param
        m = self.slot(name, "m", param)
        v = self.slot(name, "v", param)
        # Every pass in place or into one reused scratch array: no temporaries the size of the parameter.
        scratch = self.scratch(param)
        m *= dt(self.beta1)
        m += np.multiply(grad, dt(1 - self.beta1), out=scratch)
        v *= dt(self.beta2)
        squared = np.multiply(grad, grad, out=scratch)
        squared *= dt(1 - self.beta2)
        v += squared
        # Bias correction folded into the step size.
        step = self.lr * np.sqrt(1 - self.beta2**self.t) / (1 - self.beta1**self.t)
        denominator = np.sqrt(v, out=scratch)
        denominator += dt(self.epsilon)
        update = np.divide(m, denominator, out=scratch)
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
