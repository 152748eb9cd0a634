"""Plain-language text for layers, shapes, costs and problems, shared by every builder view."""

from __future__ import annotations

import re
from typing import Any

from engine.errors import ArchitectureError
from engine.layers import LAYER_TYPES

FIX_LABELS = {
    "insert_flatten_before": "Insert Flatten before it",
    "padding_same": "Use padding 'same'",
    "append_classifier": "Append a classifier",
    "set_output_units": "Set units to the class count",
    "project_shortcut": "Insert a 1x1 Conv2D projection",
    "insert_pooling": "Insert pooling",
    "activation_relu": "Use ReLU instead of softmax",
    "remove_softmax": "Remove the Softmax layer",
}

_LOCATION_PREFIX = re.compile(r"^layer \d+ \([^)]*\): ")


def format_shape(shape: tuple[int, ...] | None) -> str:
    """(26, 26, 32) -> '26 × 26 × 32'; None (unknown after an earlier problem) -> '?'."""
    if shape is None:
        return "?"
    return " × ".join(str(v) for v in shape)


def format_count(n: int) -> str:
    return f"{n:,}"


def format_compact(n: float) -> str:
    """4_634_112 -> '4.63 M': short counts for multiply-adds."""
    for scale, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(n) >= scale:
            return f"{n / scale:.3g} {suffix}"
    return f"{n:g}"


def format_bytes(n: int) -> str:
    if n >= 1024 * 1024:
        return f"{n / (1024 * 1024):.2f} MiB"
    if n >= 1024:
        return f"{n / 1024:.1f} KiB"
    return f"{n} B"


def format_params(n: int) -> str:
    return "no params" if n == 0 else f"{n:,} param" + ("" if n == 1 else "s")


def _size(value: Any) -> str:
    return f"{value}x{value}"


def _padding(value: Any) -> str:
    return f"pad {value}" if isinstance(value, int) else str(value)


def settings_text(spec: dict[str, Any]) -> str:
    """The key settings of one layer in a few words, e.g. '32 @ 3x3, stride 1, same, relu'."""
    cfg = _with_defaults(spec)
    t = spec.get("type")
    if t == "Conv2D":
        parts = [f"{cfg['filters']} @ {_size(cfg['kernel_size'])}", f"stride {cfg['stride']}", _padding(cfg["padding"])]
        if cfg.get("activation"):
            parts.append(cfg["activation"])
        if not cfg.get("use_bias", True):
            parts.append("no bias")
        return ", ".join(parts)
    if t in ("MaxPool2D", "AvgPool2D"):
        stride = cfg["stride"] or cfg["pool_size"]
        return f"{_size(cfg['pool_size'])}, stride {stride}, {_padding(cfg['padding'])}"
    if t == "Dense":
        parts = [f"{cfg['units']} units"]
        if cfg.get("activation"):
            parts.append(cfg["activation"])
        if not cfg.get("use_bias", True):
            parts.append("no bias")
        return ", ".join(parts)
    if t == "Dropout":
        return f"rate {cfg['rate']:g}"
    if t == "BatchNorm":
        return f"momentum {cfg['momentum']:g}, eps {cfg['epsilon']:g}"
    if t in ("LeakyReLU", "ELU"):
        return f"alpha {cfg['alpha']:g}"
    if t == "Flatten":
        return "feature maps → vector"
    if t == "GlobalAvgPool2D":
        return "mean of each feature map"
    if t in ("Add", "Concatenate"):
        count = len(spec.get("inputs") or [])
        inputs = f"{count} input{'s' if count != 1 else ''}"
        return f"sum of {inputs}" if t == "Add" else f"stacks {inputs}"
    if t in LAYER_TYPES:
        return "element-wise"
    return ""


def _with_defaults(spec: dict[str, Any]) -> dict[str, Any]:
    cls = LAYER_TYPES.get(spec.get("type"))
    cfg = {f.name: f.default for f in cls.fields} if cls else {}
    cfg.update({k: v for k, v in spec.items() if k not in ("type", "name", "id", "inputs", "trainable")})
    return cfg


def problem_text(problem: ArchitectureError, name: str = "") -> str:
    """'<name> (<Type>): <hint or message>' as the problems list and block tooltips show it, naming the
    layer as its block does ('<Type> <index>' when the name is not known)."""
    explanation = problem.hint or _LOCATION_PREFIX.sub("", problem.message)
    if problem.layer_index is None:
        return f"Network: {explanation}"
    where = f"{name} ({problem.layer_type})" if name else f"{problem.layer_type} {problem.layer_index}"
    return f"{where}: {explanation}"


def problem_layer_name(problem: ArchitectureError, analysis: Any) -> str:
    """The name of the layer a problem is about, from the analysis ("" when it names none)."""
    index = problem.layer_index
    layers = getattr(analysis, "layers", ())
    return layers[index - 1].name if index is not None and 0 < index <= len(layers) else ""


def problem_summary(problem: ArchitectureError) -> str:
    """The short message without its location prefix (the block already says where)."""
    return _LOCATION_PREFIX.sub("", problem.message)


def fix_label(fix: str | None, num_classes: int | None = None) -> str:
    if fix == "set_output_units" and num_classes:
        return f"Set units to {num_classes}"
    return FIX_LABELS.get(fix or "", "")
