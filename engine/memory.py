"""How much memory a network, a training run or a dataset will need, checked before anything is allocated.

The estimate counts float32 parameters, their gradients, the optimizer's state and the trainer's
copy of the last good weights, every layer's output kept for backward at the batch size (plus the
gradients flowing back and ReLU masks), each convolution's im2col scratch, and the dataset. It is
an estimate ("about"), meant to refuse what cannot fit and to warn about what would crowd the
machine, not to budget bytes exactly.

``check`` compares it with the memory available now (psutil, else the operating system's own
count; ``CNN_ENGINE_MEMORY_LIMIT``, e.g. ``8G``, caps it): above the available memory it raises
ResourceError with the largest consumer and what to change; above half of it, it warns.
"""

from __future__ import annotations

import math
import os
import re
import warnings
from dataclasses import dataclass
from typing import Any

from engine.errors import ResourceError
from engine.kernels.transform_paths import choose

FLOAT_BYTES = 4
LIMIT_ENV = "CNN_ENGINE_MEMORY_LIMIT"
# Scratch per convolution: blocks of about this size per thread (engine.kernels.blocks.BLOCK_BYTES),
# at least one image's im2col matrix, for the forward matrix and the backward one.
_BLOCK_BYTES = 4 << 20
_THREADS = 2
# Optimizer state per parameter value, in values (SGD with momentum keeps a velocity; Adam two moments).
_OPTIMIZER_SLOTS = {"sgd": 1, "adam": 2, "adamw": 2}


class MemoryWarning(UserWarning):
    """A network or run that fits, but would take more than half of the memory available."""


@dataclass(frozen=True)
class MemoryEstimate:
    """Bytes per purpose, and the single largest consumer in words with what to change."""

    parts: tuple[tuple[str, int], ...]
    culprit: str = ""
    advice: str = ""
    layer_index: int | None = None  # 1-based: the layer the culprit names, if one

    @property
    def total(self) -> int:
        return sum(size for _, size in self.parts)

    def part(self, name: str) -> int:
        return sum(size for label, size in self.parts if label == name)

    def breakdown(self) -> str:
        """E.g. "parameters 42 GiB, gradients 42 GiB, activations 1.2 GiB"."""
        return ", ".join(f"{label} {format_bytes(size)}" for label, size in self.parts if size)


def format_bytes(size: float) -> str:
    """A size for people: "512 KiB", "3.4 MiB", "45 GiB"."""
    for unit in ("bytes", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if abs(size) < 1024 or unit == "PiB":
            break
        size /= 1024
    if unit == "bytes":
        return f"{int(size)} bytes"
    return f"{size:.1f} {unit}" if size < 10 else f"{size:,.0f} {unit}"


def format_count(n: int) -> str:
    """11_300_000_000 -> "11.3 billion"."""
    for value, word in ((10**12, "trillion"), (10**9, "billion"), (10**6, "million")):
        if n >= value:
            return f"{n / value:.1f} {word}"
    return f"{n:,}"


def _shape_text(shape: Any) -> str:
    return "x".join(str(v) for v in shape)


# ------------------------------------------------------------------------------------------ available
def _parse_size(text: str) -> int | None:
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kmgt]?)i?b?\s*", text.lower())
    if not match:
        return None
    scale = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}[match[2]]
    return int(float(match[1]) * scale)


def _system_available() -> int | None:
    try:
        import psutil

        return int(psutil.virtual_memory().available)
    except Exception:  # psutil missing or unable to read this system
        pass
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):
        return None


def available_memory() -> int | None:
    """Bytes this process may still use: the system's available memory, capped by CNN_ENGINE_MEMORY_LIMIT.

    None when neither can be read (then nothing is refused)."""
    system = _system_available()
    limit = _parse_size(os.environ.get(LIMIT_ENV, "")) if os.environ.get(LIMIT_ENV) else None
    if limit is None:
        return system
    return limit if system is None else min(limit, system)


# ------------------------------------------------------------------------------------------ estimates
def _layer_weights(info: Any) -> int:
    return int(info.trainable_params) + int(info.non_trainable_params)


def _biggest_layer(analysis: Any) -> tuple[Any, Any]:
    """(the layer with the most weights, the layer before it or None)."""
    layers = list(analysis.layers)
    index = max(range(len(layers)), key=lambda i: _layer_weights(layers[i]))
    return layers[index], (layers[index - 1] if index else None)


def _parameter_culprit(analysis: Any) -> tuple[str, str, int]:
    layer, before = _biggest_layer(analysis)
    culprit, advice = _describe_weights(layer, before)
    return culprit, advice, layer.index


def _describe_weights(layer: Any, before: Any) -> tuple[str, str]:
    weights = format_count(_layer_weights(layer))
    if layer.type == "Dense" and before is not None and before.type == "Flatten":
        flat = before.input_shape
        return (f"the Dense layer after Flatten has {weights} weights ({_shape_text(flat)} values flattened, "
                f"times {layer.output_shape[0]:,} units)",
                "add pooling or reduce filters before Flatten, or use fewer units")
    if layer.type == "Dense":
        return (f"Dense layer {layer.index} has {weights} weights",
                "use fewer units, or shrink its input with pooling")
    if layer.type == "Conv2D":
        return (f"Conv2D layer {layer.index} has {weights} weights", "reduce its filters or kernel size")
    return f"layer {layer.index} ({layer.type}) has {weights} weights", "make it smaller"


def _activation_culprit(analysis: Any, batch_size: int) -> tuple[str, str, int]:
    layer = max(analysis.layers, key=lambda info: math.prod(info.output_shape or (0,)))
    per_image = math.prod(layer.output_shape) * FLOAT_BYTES
    return (f"layer {layer.index} ({layer.type}) outputs {_shape_text(layer.output_shape)} values per image "
            f"({format_bytes(per_image * batch_size)} at batch size {batch_size})",
            "reduce the batch size, add pooling earlier or use fewer filters", layer.index)


def _outputs(analysis: Any) -> list[int]:
    shapes = [analysis.input_shape] + [info.output_shape for info in analysis.layers]
    return [math.prod(s) for s in shapes if s is not None]


def _conv_scratch(analysis: Any, batch_size: int) -> int:
    total = 0
    for info in analysis.layers:
        if info.type != "Conv2D" or info.output_shape is None or info.input_shape is None:
            continue
        ho, wo, filters = info.output_shape
        k = info.config.get("kernel_size", 1)
        kernel_shape = (k, k, info.input_shape[2], filters)
        batch_shape = (max(batch_size, 1), *info.input_shape)
        stride, padding = info.config.get("stride", 1), info.config.get("padding", "valid")
        path = choose(batch_shape, kernel_shape, stride, padding, "input") if batch_size else None
        if path is not None:
            total += path.memory_bytes(batch_shape, kernel_shape, padding, _THREADS, FLOAT_BYTES)
            continue
        row = max(k * k * info.input_shape[2] + 1, filters) * FLOAT_BYTES
        per_image = ho * wo * row
        block = max(_BLOCK_BYTES, per_image) if batch_size else per_image
        # Forward matrix and backward matrix, per thread; never more than the whole batch needs.
        total += min(2 * _THREADS * block, 2 * per_image * max(batch_size, 1))
    return total


def estimate_model(analysis: Any, batch_size: int = 1) -> MemoryEstimate:
    """What building the network (parameters and gradient arrays) and running ``batch_size`` images
    through it in inference needs."""
    params = analysis.trainable_params + analysis.non_trainable_params
    outputs = _outputs(analysis)
    largest = sorted(outputs)[-2:]
    activations = sum(largest) * batch_size * FLOAT_BYTES
    parts = (("parameters", params * FLOAT_BYTES), ("gradients", analysis.trainable_params * FLOAT_BYTES),
             ("activations", activations), ("scratch", _conv_scratch(analysis, 0)))
    return _with_culprit(parts, analysis, batch_size)


def estimate_training(analysis: Any, batch_size: int, optimizer: str = "sgd", momentum: float = 0.9,
                      dataset_bytes: int = 0, built: bool = False) -> MemoryEstimate:
    """What training needs at ``batch_size``: the model, optimizer state, the trainer's copy of the
    last good weights, activations kept for backward, convolution scratch and the dataset.

    ``built``: the model exists already, so its parameters and gradients are not counted again."""
    params = (analysis.trainable_params + analysis.non_trainable_params) * FLOAT_BYTES
    trainable = analysis.trainable_params * FLOAT_BYTES
    slots = _OPTIMIZER_SLOTS.get(str(optimizer).lower(), 2)
    if str(optimizer).lower() == "sgd" and not momentum:
        slots = 0
    outputs = _outputs(analysis)
    # Every output is kept for backward (and a ReLU mask, a byte per value, for many); two gradient
    # arrays of the largest size are alive at once on the way back.
    kept = sum(outputs) * FLOAT_BYTES + sum(outputs) + 2 * max(outputs, default=0) * FLOAT_BYTES
    parts = (("parameters", 0 if built else params), ("gradients", 0 if built else trainable),
             ("optimizer state", slots * trainable),
             ("weights snapshot", params), ("activations", kept * batch_size),
             ("scratch", _conv_scratch(analysis, batch_size)), ("dataset", int(dataset_bytes)))
    return _with_culprit(parts, analysis, batch_size)


def estimate_dataset(count: int, shape: Any, itemsize: int = 1, what: str = "images") -> MemoryEstimate:
    """What holding ``count`` images of ``shape`` (H, W, C) needs, at ``itemsize`` bytes a value."""
    size = int(count) * math.prod(int(v) for v in shape) * int(itemsize)
    return MemoryEstimate((("dataset", size),), f"the dataset holds {count:,} {what} of {_shape_text(shape)}",
                          "load fewer images or a smaller image size")


def _with_culprit(parts: tuple[tuple[str, int], ...], analysis: Any, batch_size: int) -> MemoryEstimate:
    sizes = dict(parts)
    weight_bytes = sum(sizes.get(k, 0) for k in ("parameters", "gradients", "optimizer state", "weights snapshot"))
    if not analysis.layers:
        return MemoryEstimate(parts)
    if sizes.get("dataset", 0) > max(weight_bytes, sizes.get("activations", 0)):
        return MemoryEstimate(parts, "the dataset is the largest part", "train on fewer images")
    if weight_bytes >= sizes.get("activations", 0) + sizes.get("scratch", 0):
        culprit, advice, index = _parameter_culprit(analysis)
    else:
        culprit, advice, index = _activation_culprit(analysis, max(batch_size, 1))
    return MemoryEstimate(parts, culprit, advice, index)


def fit(estimate: MemoryEstimate, available: int | None = None) -> str:
    """"fits", "tight" (more than half of the available memory) or "too large"; "unknown" when the
    available memory cannot be read."""
    available = available_memory() if available is None else available
    if available is None:
        return "unknown"
    if estimate.total > available:
        return "too large"
    return "tight" if estimate.total > available / 2 else "fits"


# ------------------------------------------------------------------------------------------ checks
def check(estimate: MemoryEstimate, action: str, source: object = "") -> MemoryEstimate:
    """Refuse (ResourceError) what needs more than the available memory; warn above half of it.

    ``action`` completes "needs about N GiB to ...", e.g. "build this network". Returns the estimate.
    """
    available = available_memory()
    if available is None:
        return estimate
    prefix = f"{source}: " if source else ""
    need = estimate.total
    reason = f": {estimate.culprit}" if estimate.culprit else ""
    advice = f"; {estimate.advice}" if estimate.advice else ""
    if need > available:
        raise ResourceError(f"{prefix}not enough memory: needs about {format_bytes(need)} to {action} but "
                            f"{format_bytes(available)} is available{reason}{advice}")
    if need > available / 2:
        warnings.warn(f"{prefix}needs about {format_bytes(need)} to {action}, more than half of the "
                      f"{format_bytes(available)} available{reason}", MemoryWarning, stacklevel=3)
    return estimate


def check_model(analysis: Any, source: object = "") -> MemoryEstimate:
    """Refuse to build a network whose parameters, or one image's pass, would not fit."""
    return check(estimate_model(analysis), "build this network", source)


def check_training(analysis: Any, batch_size: int, optimizer: str = "sgd", momentum: float = 0.9,
                   dataset_bytes: int = 0, built: bool = False, source: object = "") -> MemoryEstimate:
    """Refuse a training run that would not fit (see estimate_training for what is counted)."""
    return check(estimate_training(analysis, batch_size, optimizer, momentum, dataset_bytes, built),
                 f"train at batch size {batch_size}", source)


def check_dataset(count: int, shape: Any, source: object, itemsize: int = 1) -> MemoryEstimate:
    """Refuse to load a dataset that would not fit (called with the sizes a file's header promises)."""
    return check(estimate_dataset(count, shape, itemsize), "load this dataset", source)
