"""The architecture document: the one contract between the studio, the CLI, project and weight files.

    {"format": "cnn-studio.architecture/1",
     "input": {"shape": [28, 28, 1]},
     "layers": [{"type": "Conv2D", "filters": 32, "kernel_size": 3, "activation": "relu"}, ...]}

Besides its settings, a layer may carry "name" (used for weight names; default "conv2d_1", ...)
and "id" (a stable handle the studio uses for its blocks). ``analyze`` infers every layer's
shapes and costs without data and collects every problem; ``validate`` raises the first.
"""

from __future__ import annotations

import copy
import difflib
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from engine.errors import ArchitectureError, ClassCountError, ClassifierHeadError
from engine.layers import LAYER_TYPES, Layer, Shape

FORMAT = "cnn-studio.architecture/1"
META_KEYS = ("type", "name", "id")


@dataclass(frozen=True)
class LayerInfo:
    """What shape inference found for one layer (index is 1-based, as shown to users)."""

    index: int
    type: str
    name: str
    id: str | None
    config: dict[str, Any]
    input_shape: Shape | None
    output_shape: Shape | None
    trainable_params: int = 0
    non_trainable_params: int = 0
    macs: int = 0
    error: ArchitectureError | None = None

    @property
    def params(self) -> int:
        return self.trainable_params + self.non_trainable_params


@dataclass(frozen=True)
class Analysis:
    input_shape: Shape | None
    layers: tuple[LayerInfo, ...]
    problems: tuple[ArchitectureError, ...] = field(default_factory=tuple)

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def output_shape(self) -> Shape | None:
        if not self.ok:
            return None
        return self.layers[-1].output_shape if self.layers else self.input_shape

    @property
    def trainable_params(self) -> int:
        return sum(info.trainable_params for info in self.layers)

    @property
    def non_trainable_params(self) -> int:
        return sum(info.non_trainable_params for info in self.layers)

    @property
    def macs(self) -> int:
        return sum(info.macs for info in self.layers)

    @property
    def activation_bytes(self) -> int:
        """float32 bytes of the input and every layer output for one image (forward pass)."""
        shapes = [self.input_shape] + [info.output_shape for info in self.layers]
        return 4 * sum(int(np.prod(s)) for s in shapes if s is not None)


def default_name(type_name: str, count: int) -> str:
    snake = re.sub(r"(?<=[a-z])(?=[A-Z])", "_", type_name).lower().replace("re_lu", "relu")
    return f"{snake}_{count}"


def load_architecture_file(path: str | os.PathLike) -> dict[str, Any]:
    """Read an architecture JSON file; also accepts a project or weight file's embedded document."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ArchitectureError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ArchitectureError(f"{path}: cannot read it ({exc})") from None
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ArchitectureError(f"{path}: not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})") from None
    if isinstance(doc, dict) and "architecture" in doc and "layers" not in doc:
        doc = doc["architecture"]
    return doc


def _coerce(doc_or_path: dict[str, Any] | str | os.PathLike) -> dict[str, Any]:
    if isinstance(doc_or_path, (str, os.PathLike)):
        return load_architecture_file(doc_or_path)
    return doc_or_path


def _check_document(doc: Any) -> Shape:
    if not isinstance(doc, dict):
        raise ArchitectureError(f"an architecture must be a JSON object, not {type(doc).__name__}")
    fmt = doc.get("format")
    if fmt is None:
        raise ArchitectureError(f'missing "format" (expected "{FORMAT}")', field="format")
    if not isinstance(fmt, str) or not fmt.startswith("cnn-studio.architecture/"):
        raise ArchitectureError(f'format {fmt!r} is not a CNN Studio architecture ("{FORMAT}")', field="format",
                                value=fmt)
    if fmt != FORMAT:
        raise ArchitectureError(f"format {fmt!r} is newer than this version understands ({FORMAT})",
                                field="format", value=fmt)
    shape = (doc.get("input") or {}).get("shape") if isinstance(doc.get("input"), dict) else None
    if (
        not isinstance(shape, list)
        or len(shape) != 3
        or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in shape)
    ):
        raise ArchitectureError(
            f'input shape {shape!r} must be [height, width, channels] of positive whole numbers',
            field="input.shape", value=shape,
        )
    if not isinstance(doc.get("layers"), list):
        raise ArchitectureError('"layers" must be a list of layer objects', field="layers")
    return tuple(shape)


def build_layer(spec: Any, index: int) -> Layer:
    """Construct one layer from its JSON object; errors name the layer by 1-based index."""
    if not isinstance(spec, dict):
        raise ArchitectureError(f"layer {index} must be a JSON object, not {type(spec).__name__}",
                                layer_index=None)
    type_name = spec.get("type")
    if type_name not in LAYER_TYPES:
        close = difflib.get_close_matches(str(type_name), LAYER_TYPES, n=1)
        suggestion = f" (did you mean {close[0]}?)" if close else ""
        raise ArchitectureError(
            f"unknown type {type_name!r}{suggestion}; known types: {', '.join(LAYER_TYPES)}",
            layer_index=index, layer_type=str(type_name), field="type", value=type_name,
        )
    settings = {k: v for k, v in spec.items() if k not in META_KEYS}
    try:
        return LAYER_TYPES[type_name](**settings)
    except ArchitectureError as exc:
        raise _locate(exc, index, type_name) from None


def _locate(exc: ArchitectureError, index: int, type_name: str) -> ArchitectureError:
    return ArchitectureError(exc.message, layer_index=index, layer_type=type_name, field=exc.field,
                             value=exc.value, hint=exc.hint, fix=exc.fix)


def layer_names(doc: dict[str, Any]) -> list[str]:
    counts: dict[str, int] = {}
    names = []
    for spec in doc.get("layers", []):
        type_name = spec.get("type", "Layer") if isinstance(spec, dict) else "Layer"
        counts[type_name] = counts.get(type_name, 0) + 1
        name = spec.get("name") if isinstance(spec, dict) else None
        names.append(name if isinstance(name, str) and name else default_name(type_name, counts[type_name]))
    return names


def analyze(doc_or_path: dict[str, Any] | str | os.PathLike, input_shape: Shape | None = None) -> Analysis:
    """Infer every layer's shapes, parameter counts and multiply-adds; collect every problem.

    ``input_shape`` overrides the document's (the studio uses the dataset's). A document-level
    problem (bad format, bad input) is the single problem. After a layer fails, later layers are
    still checked for settings errors but get no shapes.
    """
    doc = _coerce(doc_or_path)
    try:
        shape: Shape | None = _check_document(doc) if input_shape is None else (
            _check_document({**doc, "input": {"shape": list(input_shape)}}))
    except ArchitectureError as exc:
        return Analysis(None, (), (exc,))
    infos: list[LayerInfo] = []
    problems: list[ArchitectureError] = []
    seen_names: set[str] = set()
    for index, (spec, name) in enumerate(zip(doc["layers"], layer_names(doc)), start=1):
        type_name = spec.get("type", "?") if isinstance(spec, dict) else "?"
        layer_id = spec.get("id") if isinstance(spec, dict) else None
        in_shape = shape
        try:
            if name in seen_names:
                raise ArchitectureError(f"name {name!r} is used twice; weight names must be unique",
                                        layer_index=index, layer_type=type_name, field="name", value=name)
            seen_names.add(name)
            layer = build_layer(spec, index)
            if shape is None:
                infos.append(LayerInfo(index, type_name, name, layer_id, layer.config, None, None))
                continue
            try:
                shape = tuple(layer.output_shape(shape))
            except ArchitectureError as exc:
                raise _locate(exc, index, type_name) from None
            trainable = sum(int(np.prod(s)) for s in layer.param_shapes(in_shape).values())
            state = sum(int(np.prod(s)) for s in layer.state_shapes(in_shape).values())
            infos.append(LayerInfo(index, type_name, name, layer_id, layer.config, in_shape, shape,
                                   trainable, state, layer.macs(in_shape)))
        except ArchitectureError as exc:
            problems.append(exc)
            infos.append(LayerInfo(index, type_name, name, layer_id,
                                   {k: v for k, v in spec.items() if k not in META_KEYS}
                                   if isinstance(spec, dict) else {}, in_shape, None, error=exc))
            shape = None
    if not doc["layers"]:
        problems.append(ArchitectureError("the network has no layers", field="layers"))
    return Analysis(_check_document(doc) if input_shape is None else tuple(input_shape), tuple(infos),
                    tuple(problems))


def validate(doc_or_path: dict[str, Any] | str | os.PathLike, input_shape: Shape | None = None) -> Analysis:
    """Like analyze, but raise the first problem."""
    analysis = analyze(doc_or_path, input_shape)
    if analysis.problems:
        raise analysis.problems[0]
    return analysis


def check_classifier(analysis: Analysis, num_classes: int | None) -> None:
    """Raise unless the network ends in a vector with one output per class.

    With ``num_classes`` None (the dataset is not known yet) only the vector is required.
    """
    out = analysis.output_shape
    if out is None:
        raise analysis.problems[0]
    last = analysis.layers[-1]
    if len(out) != 1:
        raise ClassifierHeadError(out, num_classes, layer_index=last.index, layer_type=last.type)
    if num_classes is not None and out[0] != num_classes:
        raise ClassCountError(out[0], num_classes, layer_index=last.index, layer_type=last.type)


def with_input_shape(doc: dict[str, Any], shape: Shape) -> dict[str, Any]:
    out = copy.deepcopy(doc)
    out["input"] = {"shape": [int(v) for v in shape]}
    return out


def summary(doc_or_path: dict[str, Any] | str | os.PathLike | Analysis) -> str:
    """The Keras-style table: layer, output shape, parameters, and totals."""
    analysis = doc_or_path if isinstance(doc_or_path, Analysis) else validate(doc_or_path)
    rows = [("Layer (type)", "Output shape", "Param #")]
    rows.append(("input", _fmt_shape(analysis.input_shape), "0"))
    for info in analysis.layers:
        rows.append((f"{info.name} ({info.type})", _fmt_shape(info.output_shape), f"{info.params:,}"))
    widths = [max(len(r[i]) for r in rows) + 3 for i in range(3)]
    rule = "=" * sum(widths)

    def line(r: tuple[str, str, str]) -> str:
        return (r[0].ljust(widths[0]) + r[1].ljust(widths[1]) + r[2].rjust(widths[2] - 3)).rstrip()

    text = [rule, line(rows[0]), rule] + [line(r) for r in rows[1:]] + [rule]
    total = analysis.trainable_params + analysis.non_trainable_params
    text += [
        f"Total params: {total:,}",
        f"Trainable params: {analysis.trainable_params:,}",
        f"Non-trainable params: {analysis.non_trainable_params:,}",
        f"Multiply-adds per image: {analysis.macs:,}",
        f"Activation memory per image: {analysis.activation_bytes / 1024:,.1f} KiB",
        rule,
    ]
    return "\n".join(text)


def _fmt_shape(shape: Shape | None) -> str:
    return "?" if shape is None else "(None, " + ", ".join(map(str, shape)) + ")"
