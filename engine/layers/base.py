"""The layer contract shared by every engine layer.

A layer is built from its JSON config (checked in ``__init__``), infers its output shape without
data (``output_shape``), creates its parameters (``build``), and computes ``forward`` / ``backward``
on batches. ``forward`` caches what ``backward`` needs; parameters and their gradients live in the
``params`` and ``grads`` dicts under the same names. Shapes exclude the batch axis.

Layers keep references to their inputs and outputs for backward instead of copies, so a layer's
forward must never modify its input in place (its own fresh output it may).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from engine.errors import ArchitectureError, shown

Shape = tuple[int, ...]

ACTIVATIONS = ("relu", "leaky_relu", "elu", "sigmoid", "tanh", "softmax")


@dataclass(frozen=True)
class Field:
    """One configurable setting of a layer type: the schema the studio's inspector is built from."""

    name: str
    kind: str  # "int" | "float" | "bool" | "choice" | "padding" | "size"
    default: Any
    help: str = ""
    minimum: float | None = None
    maximum: float | None = None
    choices: tuple[Any, ...] = field(default_factory=tuple)
    optional: bool = False  # None is allowed (e.g. activation, stride defaulting to pool_size)


class ConfigError(ArchitectureError):
    """A bad layer setting, raised before the layer knows its position; the architecture adds it.

    A merge layer's problem with one of its inputs sets ``input_index`` (its position in the
    layer's inputs), so the architecture can name that input's id and mark the wire.
    """

    def __init__(self, message: str, *, input_index: int | None = None, **details: Any) -> None:
        super().__init__(message, **details)
        self.input_index = input_index


class Layer:
    """Base class. Subclasses set the class attributes and override the hooks they need."""

    type_name: ClassVar[str] = ""
    category: ClassVar[str] = "Core"
    description: ClassVar[str] = ""
    fields: ClassVar[tuple[Field, ...]] = ()
    # How many inputs the layer takes (None: any number); only merge layers take more than one.
    min_inputs: ClassVar[int] = 1
    max_inputs: ClassVar[int | None] = 1

    def __init__(self, **config: Any) -> None:
        known = {f.name: f for f in self.fields}
        unknown = sorted(set(config) - set(known))
        if unknown:
            raise ConfigError(
                f"unknown setting {shown(unknown[0])} (known: {', '.join(known) or 'none'})",
                field=unknown[0],
                value=config[unknown[0]],
            )
        self.config: dict[str, Any] = {}
        for f in self.fields:
            self.config[f.name] = _check_field(f, config.get(f.name, f.default))
        self.params: dict[str, np.ndarray] = {}
        self.grads: dict[str, np.ndarray] = {}
        # Non-trainable state saved with the weights (batch-norm running statistics).
        self.state: dict[str, np.ndarray] = {}
        self.needs_input_grad = True
        # False for a frozen layer ("trainable": false): the optimizer skips its parameters, and a
        # layer with statistics (batch norm) keeps using and keeping its running ones in training.
        self.trainable = True
        self._cache: Any = None

    # -- shape inference ---------------------------------------------------------------------
    def output_shape(self, input_shape: Shape) -> Shape:
        """Output shape for one sample; raises ConfigError when the input cannot work."""
        return tuple(input_shape)

    def param_shapes(self, input_shape: Shape) -> dict[str, Shape]:
        """Trainable parameter shapes."""
        return {}

    def state_shapes(self, input_shape: Shape) -> dict[str, Shape]:
        """Non-trainable state shapes."""
        return {}

    def macs(self, input_shape: Shape) -> int:
        """Multiply-accumulates per sample of the forward pass."""
        return 0

    # -- parameters ----------------------------------------------------------------------------
    def build(self, input_shape: Shape, rng: np.random.Generator, dtype: Any = np.float32) -> None:
        """Create parameters for this input shape (shapes were validated by output_shape)."""
        self.output_shape(input_shape)
        for name, shape in self.param_shapes(input_shape).items():
            # Initialisers draw float32 (no float64 temporaries): a float32 model takes them as they are.
            self.params[name] = self.init_param(name, shape, rng).astype(dtype, copy=False)
            self.grads[name] = np.zeros(shape, dtype)
        for name, shape in self.state_shapes(input_shape).items():
            self.state[name] = self.init_state(name, shape).astype(dtype, copy=False)

    def init_param(self, name: str, shape: Shape, rng: np.random.Generator) -> np.ndarray:
        return np.zeros(shape, np.float32)

    def init_state(self, name: str, shape: Shape) -> np.ndarray:
        return np.zeros(shape, np.float32)

    # -- computation ---------------------------------------------------------------------------
    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        raise NotImplementedError

    def backward(self, grad: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def to_config(self) -> dict[str, Any]:
        return {"type": self.type_name, **self.config}

    def __repr__(self) -> str:
        settings = ", ".join(f"{k}={v!r}" for k, v in self.config.items())
        return f"{self.type_name}({settings})"


def _check_field(f: Field, value: Any) -> Any:
    def bad(why: str) -> ConfigError:
        return ConfigError(f"{f.name} {shown(value)} {why}", field=f.name, value=value)

    if value is None:
        if f.optional:
            return None
        raise bad("is missing")
    if f.kind in ("int", "size"):
        if isinstance(value, (list, tuple)) and f.kind == "size":
            if len(value) != 2 or value[0] != value[1]:
                raise bad("must be one number (square windows only)")
            value = value[0]
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
            raise bad("must be a whole number")
        value = int(value)
    elif f.kind == "float":
        if isinstance(value, bool) or not isinstance(value, (int, float, np.floating, np.integer)):
            raise bad("must be a number")
        value = float(value)
        if not np.isfinite(value):
            raise bad("must be finite")
    elif f.kind == "bool":
        if not isinstance(value, bool):
            raise bad("must be true or false")
    elif f.kind == "choice":
        if value not in f.choices:
            raise bad("is not one of " + ", ".join(repr(c) for c in f.choices))
    elif f.kind == "padding":
        if value in ("valid", "same"):
            return value
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
            raise bad("must be 'valid', 'same' or a whole number >= 0")
        return int(value)
    if f.minimum is not None and value < f.minimum:
        raise bad(f"must be at least {f.minimum:g}")
    if f.maximum is not None and value > f.maximum:
        raise bad(f"must be at most {f.maximum:g}")
    return value


def require_rank(layer: Layer, input_shape: Shape, rank: int, what: str) -> None:
    """Raise a teaching error when a layer receives a tensor of the wrong rank."""
    if len(input_shape) == rank:
        return
    shown = "x".join(map(str, input_shape))
    if rank == 1:
        raise ConfigError(
            f"expects a flat vector but receives a {shown} feature map",
            value=input_shape,
            hint=f"{layer.type_name} works on {what}. Insert a Flatten (or GlobalAvgPool2D) layer "
            f"before it to turn the {shown} feature map into a vector of "
            f"{math.prod(input_shape)} values.",
            fix="insert_flatten_before",
        )
    raise ConfigError(
        f"expects an image-shaped input (height x width x channels) but receives {shown}",
        value=input_shape,
        hint=f"{layer.type_name} works on {what}; move it before the Flatten or Dense layers.",
    )
