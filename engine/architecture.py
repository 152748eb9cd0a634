"""The architecture document: the one contract between the studio, the CLI, project and weight files.

    {"format": "cnn-studio.architecture/2",
     "input": {"shape": [28, 28, 1]},
     "layers": [{"id": "conv_a", "type": "Conv2D", "filters": 16, "kernel_size": 3, "padding": "same"},
                {"id": "add_1", "type": "Add", "inputs": ["conv_a", "input"]}, ...]}

Besides its settings, a layer may carry "name" (used for weight names; default "conv2d_1", ...),
"id" (a stable handle; where missing the loader uses the layer's name), "inputs" (the ids it
takes; "input" is the network's input; without it a layer takes the previous layer in the list)
and "trainable" (false freezes the layer's parameters). Layers are listed so that every input is
defined before it is used; the last layer is the network's output. Format 1 documents (no
"inputs") read as the chain they describe; ``upgrade`` turns any document into format 2.

``analyze`` infers every layer's shapes and costs without data and collects every problem (and
warnings: branches whose output nothing uses); ``validate`` raises the first problem.
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import functools
import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from engine.errors import ArchitectureError, ClassCountError, ClassifierHeadError, shown
from engine.json_files import read_json
from engine.layers import LAYER_TYPES, Layer, MergeLayer, Shape
from engine.layers.base import ConfigError

FORMAT = "cnn-studio.architecture/2"
FORMAT_1 = "cnn-studio.architecture/1"
KNOWN_FORMATS = (FORMAT_1, FORMAT)
INPUT_ID = "input"
META_KEYS = ("type", "name", "id", "inputs", "trainable")
# Far above any image or feature vector (inputs too large for memory are refused later, with the
# memory they would need); a bound keeps every shape a number that prints (a file may hold an
# integer of thousands of digits, which Python will not turn into text).
MAX_INPUT_SIDE = 10**12
# Names and ids longer than this are cut where a message quotes them.
SHOWN_NAME_LENGTH = 60
# Producers whose "padding" setting decides their output size (a Concatenate fix can set it).
_PADDED_TYPES = ("Conv2D", "MaxPool2D", "AvgPool2D")


@dataclass(frozen=True)
class LayerInfo:
    """What shape inference found for one layer (index is 1-based, as shown to users).

    ``id`` is the layer's id (the one the loader made up where the document has none); ``inputs``
    are the ids it takes ("input" for the network's input) and ``input_shapes`` their shapes;
    ``input_shape`` is the first of them. ``non_trainable_params`` counts state (batch-norm
    statistics) and the parameters of a frozen layer (``trainable`` false), which
    ``frozen_params`` counts alone.
    """

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
    inputs: tuple[str, ...] = ()
    input_shapes: tuple[Shape | None, ...] = ()
    trainable: bool = True
    frozen_params: int = 0

    @property
    def params(self) -> int:
        return self.trainable_params + self.non_trainable_params


@dataclass(frozen=True)
class Analysis:
    """Shapes, costs and problems of a whole document, and its graph.

    ``consumers`` maps each id (and "input") to the ids of the layers taking its output, in
    document order; ``warnings`` are problems that do not stop the network from working.
    """

    input_shape: Shape | None
    layers: tuple[LayerInfo, ...]
    problems: tuple[ArchitectureError, ...] = field(default_factory=tuple)
    warnings: tuple[ArchitectureError, ...] = field(default_factory=tuple)
    consumers: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def output_shape(self) -> Shape | None:
        if not self.ok:
            return None
        return self.layers[-1].output_shape if self.layers else self.input_shape

    @property
    def output_id(self) -> str | None:
        """The id of the network's output: the last layer."""
        return self.layers[-1].id if self.layers else None

    def layer(self, layer_id: str) -> LayerInfo:
        """The LayerInfo of the layer with this id (KeyError if none)."""
        for info in self.layers:
            if info.id == layer_id:
                return info
        raise KeyError(layer_id)

    def shape_of(self, layer_id: str) -> Shape | None:
        """The output shape of a layer, or the input shape for "input"."""
        return self.input_shape if layer_id == INPUT_ID else self.layer(layer_id).output_shape

    @property
    def is_chain(self) -> bool:
        """True when every layer takes the one before it (the first the input): no branches."""
        previous = INPUT_ID
        for info in self.layers:
            if info.inputs != (previous,):
                return False
            previous = info.id
        return all(len(users) <= 1 for users in self.consumers.values())

    @property
    def trainable_params(self) -> int:
        return sum(info.trainable_params for info in self.layers)

    @property
    def non_trainable_params(self) -> int:
        return sum(info.non_trainable_params for info in self.layers)

    @property
    def frozen_params(self) -> int:
        return sum(info.frozen_params for info in self.layers)

    @property
    def macs(self) -> int:
        return sum(info.macs for info in self.layers)

    @property
    def activation_bytes(self) -> int:
        """float32 bytes of the input and every layer output for one image (forward pass)."""
        shapes = [self.input_shape] + [info.output_shape for info in self.layers]
        return 4 * sum(math.prod(s) for s in shapes if s is not None)


def default_name(type_name: str, count: int) -> str:
    snake = re.sub(r"(?<=[a-z])(?=[A-Z])", "_", type_name).lower().replace("re_lu", "relu")
    return f"{snake}_{count}"


def load_architecture_file(path: str | os.PathLike) -> dict[str, Any]:
    """Read an architecture JSON file; also accepts a project or weight file's embedded document."""
    doc = read_json(path, ArchitectureError, "architecture file")
    if isinstance(doc, dict) and "architecture" in doc and "layers" not in doc:
        doc = doc["architecture"]
    if not isinstance(doc, dict):
        raise ArchitectureError(f"{path}: an architecture must be a JSON object, not {_json_type(doc)}")
    return doc


def _json_type(value: Any) -> str:
    names = {dict: "an object", list: "a list", str: "a string", bool: "true or false", type(None): "null"}
    return names.get(type(value), "a number")


def in_source(exc: ArchitectureError, source: object) -> ArchitectureError:
    """The same problem with its message prefixed by the file it was found in."""
    if not source or exc.message.startswith(f"{source}:"):
        return exc
    located = copy.copy(exc)
    located.message = f"{source}: {exc.message}"
    located.args = (located.message,)
    return located


def _coerce(doc_or_path: dict[str, Any] | str | os.PathLike) -> dict[str, Any]:
    if isinstance(doc_or_path, (str, os.PathLike)):
        return load_architecture_file(doc_or_path)
    return doc_or_path


def _check_document(doc: Any) -> Shape:
    if not isinstance(doc, dict):
        raise ArchitectureError(f"an architecture must be a JSON object, not {_json_type(doc)}")
    fmt = doc.get("format")
    if fmt is None:
        raise ArchitectureError(f'missing "format" (expected "{FORMAT}")', field="format")
    if not isinstance(fmt, str) or not fmt.startswith("cnn-studio.architecture/"):
        raise ArchitectureError(f'format {shown(fmt)} is not a CNN Studio architecture ("{FORMAT}")', field="format",
                                value=fmt)
    if fmt not in KNOWN_FORMATS:
        raise ArchitectureError(f"format {shown(fmt)} is newer than this version understands ({FORMAT})",
                                field="format", value=fmt)
    shape = (doc.get("input") or {}).get("shape") if isinstance(doc.get("input"), dict) else None
    if (
        not isinstance(shape, list)
        or len(shape) != 3
        or not all(isinstance(v, int) and not isinstance(v, bool) and 0 < v <= MAX_INPUT_SIDE for v in shape)
    ):
        raise ArchitectureError(
            f"input shape {shown(shape)} must be [height, width, channels] of whole numbers from 1 to "
            f"{MAX_INPUT_SIDE:,}", field="input.shape", value=shape,
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
    if not isinstance(type_name, str) or type_name not in LAYER_TYPES:
        close = difflib.get_close_matches(type_name, LAYER_TYPES, n=1) if isinstance(type_name, str) else []
        suggestion = f" (did you mean {close[0]}?)" if close else ""
        raise ArchitectureError(
            f"unknown type {shown(type_name)}{suggestion}; known types: {', '.join(LAYER_TYPES)}",
            layer_index=index, layer_type=type_name if isinstance(type_name, str) else shown(type_name),
            field="type", value=type_name,
        )
    settings = {k: v for k, v in spec.items() if k not in META_KEYS}
    try:
        return LAYER_TYPES[type_name](**settings)
    except ArchitectureError as exc:
        raise _locate(exc, index, type_name) from None


def _locate(exc: ArchitectureError, index: int, type_name: str, layer_id: str | None = None,
            **changes: Any) -> ArchitectureError:
    details = dict(field=exc.field, value=exc.value, hint=exc.hint, fix=exc.fix, fix_data=exc.fix_data,
                   layer_id=layer_id or exc.layer_id, source_id=exc.source_id, target_id=exc.target_id,
                   severity=exc.severity)
    details.update(changes)
    return ArchitectureError(exc.message, layer_index=index, layer_type=type_name, **details)


def _given_name(spec: Any) -> str | None:
    value = spec.get("name") if isinstance(spec, dict) else None
    return value if isinstance(value, str) and value else None


def layer_names(doc: dict[str, Any]) -> list[str]:
    """Every layer's name: its own "name", else its snake_case type and a running count of that
    type ("conv2d_3"), skipping numbers whose name another layer was given (a network whose
    automatic and given names clashed could not be built)."""
    specs = doc.get("layers", [])
    given = [_given_name(spec) for spec in specs]
    taken = {name for name in given if name}
    counts: dict[str, int] = {}
    names = []
    for spec, own in zip(specs, given):
        type_name = spec.get("type") if isinstance(spec, dict) else None
        type_name = type_name if isinstance(type_name, str) and type_name else "Layer"
        counts[type_name] = counts.get(type_name, 0) + 1
        name = own or default_name(type_name, counts[type_name])
        while own is None and name in taken:
            counts[type_name] += 1
            name = default_name(type_name, counts[type_name])
        names.append(name)
    return names


def _given_id(spec: Any) -> str | None:
    value = spec.get("id") if isinstance(spec, dict) else None
    return value if isinstance(value, str) and value else None


def layer_ids(doc: dict[str, Any]) -> list[str]:
    """Every layer's id: its own "id", else its name (made unique: "conv2d_1", "conv2d_1_2", ...)."""
    specs = doc.get("layers", [])
    given = [_given_id(spec) for spec in specs]
    taken = {i for i in given if i} | {INPUT_ID}
    ids = []
    for own, name in zip(given, layer_names(doc)):
        if own is None:
            own, n = name, 2
            while own in taken:
                own, n = f"{name}_{n}", n + 1
            taken.add(own)
        ids.append(own)
    return ids


def upgrade(doc: dict[str, Any]) -> dict[str, Any]:
    """A format 2 copy of an architecture document (format 1 or 2): every layer gets an "id"
    (a missing or malformed one is replaced by the id ``layer_ids`` makes up).

    Layers without "inputs" keep taking the previous layer, so a format 1 chain stays that chain.
    A document that is not an architecture is returned as a copy, unchanged.
    """
    out = copy.deepcopy(doc)
    if not isinstance(out, dict) or out.get("format") not in KNOWN_FORMATS or not isinstance(out.get("layers"), list):
        return out
    out["format"] = FORMAT
    ids = layer_ids(out)
    out["layers"] = [spec if not isinstance(spec, dict) or _given_id(spec) else
                     {"id": layer_id, **{k: v for k, v in spec.items() if k != "id"}}
                     for spec, layer_id in zip(out["layers"], ids)]
    return out


def _input_refs(spec: Any, position: int, ids: list[str]) -> list[str] | None:
    """The ids a layer takes, or None when its "inputs" is malformed."""
    raw = spec.get("inputs") if isinstance(spec, dict) else None
    if raw is None:
        return [ids[position - 1] if position else INPUT_ID]
    if isinstance(raw, list) and raw and all(isinstance(r, str) and r for r in raw):
        return list(raw)
    return None


class _Graph:
    """Who takes whose output, as the document says (references to unknown ids left out)."""

    def __init__(self, ids: list[str], refs: list[list[str] | None]) -> None:
        self.ids = ids
        self.position: dict[str, int] = {}
        for i, layer_id in enumerate(ids):
            self.position.setdefault(layer_id, i)
        self.inputs = [list(rs or []) for rs in refs]
        self.refs = [[r for r in rs if r in self.position] for rs in self.inputs]

    def path_back(self, start: str, goal: str) -> list[str] | None:
        """Ids from ``start`` through its inputs, their inputs, ... to ``goal`` (None if unreachable)."""
        stack, seen = [(start, [start])], {start}
        while stack:
            node, path = stack.pop()
            for ref in self.refs[self.position[node]]:
                if ref == goal:
                    return path + [goal]
                if ref not in seen:
                    seen.add(ref)
                    stack.append((ref, path + [ref]))
        return None

    def topological_order(self) -> list[str] | None:
        """The ids ordered so that each comes after its inputs, nearest to document order; None on a cycle."""
        count = len(self.ids)
        waiting = [len(set(rs)) for rs in self.refs]
        users: dict[int, list[int]] = {}
        for i, rs in enumerate(self.refs):
            for ref in set(rs):
                users.setdefault(self.position[ref], []).append(i)
        ready = sorted(i for i in range(count) if waiting[i] == 0)
        order: list[int] = []
        while ready:
            i = ready.pop(0)
            order.append(i)
            for user in users.get(i, []):
                waiting[user] -= 1
                if waiting[user] == 0:
                    ready.append(user)
                    ready.sort()
        return [self.ids[i] for i in order] if len(order) == count else None


def analyze(doc_or_path: dict[str, Any] | str | os.PathLike, input_shape: Shape | None = None) -> Analysis:
    """Infer every layer's shapes, parameter counts and multiply-adds; collect every problem.

    ``input_shape`` overrides the document's (the studio uses the dataset's). A document-level
    problem (bad format, bad input) is the single problem. A layer with a problem gets no output
    shape, nor do the layers fed by it; their settings are still checked.
    """
    doc = _coerce(doc_or_path)
    if isinstance(doc_or_path, (str, os.PathLike)):
        found = _analyze_document(doc, input_shape)
        return dataclasses.replace(found, problems=tuple(in_source(p, doc_or_path) for p in found.problems))
    return _analyze_document(doc, input_shape)


def _analyze_document(doc: Any, input_shape: Shape | None) -> Analysis:
    if input_shape is not None and isinstance(doc, dict):
        doc = {**doc, "input": {"shape": list(input_shape)}}
    try:
        network_shape: Shape = _check_document(doc)
    except ArchitectureError as exc:
        return Analysis(None, (), (exc,))
    specs = doc["layers"]
    names, ids = layer_names(doc), layer_ids(doc)
    refs = [_input_refs(spec, i, ids) for i, spec in enumerate(specs)]
    graph = _Graph(ids, refs)
    name_of = {INPUT_ID: INPUT_ID,
               **{layer_id: displayed(name) for layer_id, name in zip(reversed(ids), reversed(names))}}
    shapes: dict[str, Shape | None] = {INPUT_ID: network_shape}
    infos: list[LayerInfo] = []
    problems: list[ArchitectureError] = []
    seen_names: set[str] = set()
    for position, (spec, name, layer_id, inputs) in enumerate(zip(specs, names, ids, refs)):
        index = position + 1
        type_name = spec.get("type") if isinstance(spec, dict) else None
        type_name = type_name if isinstance(type_name, str) else "?"
        fail = functools.partial(ArchitectureError, layer_index=index, layer_type=type_name, layer_id=layer_id)

        found: list[ArchitectureError] = []
        layer: Layer | None = None
        in_ids = tuple(inputs or ())
        in_shapes = tuple(shapes.get(ref) for ref in in_ids)
        trainable = spec.get("trainable", True) if isinstance(spec, dict) else True
        if name in seen_names:
            found.append(fail(f"name {shown(name)} is used twice; weight names must be unique", field="name",
                              value=name))
        if not name.isprintable():
            found.append(fail(f"name {shown(name)} must be printable text (no line breaks or control characters)",
                              field="name", value=name))
        seen_names.add(name)
        found += _id_problems(spec, layer_id, position, graph, fail)
        if not isinstance(trainable, bool):
            found.append(fail(f"trainable {shown(trainable)} must be true or false", field="trainable",
                              value=trainable))
            trainable = True
        try:
            layer = build_layer(spec, index)
        except ArchitectureError as exc:  # located already (build_layer names the layer)
            exc.layer_id = layer_id
            found.append(exc)
        if inputs is None:
            found.append(fail(f"inputs {shown(spec.get('inputs'))} must be a list of layer ids (\"input\" for the "
                              "network's input)", field="inputs", value=spec.get("inputs")))
        else:
            found += _reference_problems(in_ids, position, graph, name_of, fail)
            if layer is not None and not found:
                found += _arity_problems(layer, layer_id, in_ids, in_shapes, name_of, fail)
        out_shape: Shape | None = None
        params = state = macs = 0
        if layer is not None and not found and all(s is not None for s in in_shapes):
            try:
                out_shape = _infer(layer, in_ids, in_shapes, name_of, graph, specs, shapes)
                param_shapes = layer.param_shapes(in_shapes[0])
                params = sum(math.prod(s) for s in param_shapes.values())
                state = sum(math.prod(s) for s in layer.state_shapes(in_shapes[0]).values())
                macs = layer.macs(in_shapes[0])
            except ArchitectureError as exc:
                found.extend(_locate(e, index, type_name, layer_id, target_id=layer_id if e.source_id else None)
                             for e in getattr(exc, "all", [exc]))
                out_shape = None
        problems.extend(found)
        if graph.position[layer_id] == position:  # a repeated id is an error; its first layer keeps it
            shapes[layer_id] = out_shape
        config = layer.config if layer is not None else (
            {k: v for k, v in spec.items() if k not in META_KEYS} if isinstance(spec, dict) else {})
        frozen = 0 if trainable else params
        infos.append(LayerInfo(
            index, type_name, name, layer_id, config, in_shapes[0] if in_shapes else None, out_shape,
            params - frozen, state + frozen, macs, found[0] if found else None, in_ids, in_shapes, trainable, frozen,
        ))
    if not specs:
        problems.append(ArchitectureError("the network has no layers", field="layers"))
    consumers: dict[str, list[str]] = {INPUT_ID: [], **{layer_id: [] for layer_id in ids}}
    for info in infos:
        for ref in dict.fromkeys(info.inputs):
            if ref in consumers:
                consumers[ref].append(info.id)
    warnings = [_unused_warning(info, infos[-1]) for info in infos[:-1]
                if not consumers[info.id] and info.error is None]
    by_id = {info.id: info for info in infos}
    warnings += [_softmax_inside_warning(info, [by_id[i] for i in consumers[info.id] if i in by_id])
                 for info in infos[:-1] if consumers[info.id] and info.error is None and _is_softmax(info)]
    return Analysis(network_shape, tuple(infos), tuple(problems), tuple(warnings),
                    {k: tuple(v) for k, v in consumers.items()})


def displayed(name: str) -> str:
    """A layer name or id as messages quote it: as it is when short and printable, else quoted, with
    its line breaks escaped, and cut."""
    if name.isprintable() and len(name) <= SHOWN_NAME_LENGTH:
        return name
    text = repr(name)
    return text if len(text) <= SHOWN_NAME_LENGTH else text[: SHOWN_NAME_LENGTH - 4] + "...'"


def _id_problems(spec: Any, layer_id: str, position: int, graph: _Graph, fail: Any) -> list[ArchitectureError]:
    if not isinstance(spec, dict) or "id" not in spec:
        return []
    raw = spec["id"]
    if not isinstance(raw, str) or not raw:
        return [fail(f"id {shown(raw)} must be a non-empty string", field="id", value=raw)]
    if not raw.isprintable():
        return [fail(f"id {shown(raw)} must be printable text (no line breaks or control characters)",
                     field="id", value=raw)]
    if raw == INPUT_ID:
        return [fail('id "input" is reserved for the network\'s input; give the layer another id',
                     field="id", value=raw)]
    first = graph.position[raw]
    if first != position:
        return [fail(f"id {shown(raw)} is already layer {first + 1}'s; every layer needs its own id",
                     field="id", value=raw)]
    return []


def _reference_problems(in_ids: tuple[str, ...], position: int, graph: _Graph, name_of: dict[str, str],
                        fail: Any) -> list[ArchitectureError]:
    """Unknown ids, cycles and inputs listed after the layer that takes them."""
    found = []
    me = graph.ids[position]
    for ref in dict.fromkeys(in_ids):
        if ref == INPUT_ID:
            continue
        wire = dict(source_id=ref, target_id=me, field="inputs", value=ref)
        if ref not in graph.position:
            candidates = {**{i: i for i in graph.ids}, **{name_of[i]: i for i in graph.ids}}
            close = difflib.get_close_matches(ref, list(candidates), n=1, cutoff=0.6)
            if close:
                target = candidates[close[0]]
                found.append(fail(
                    f"input {shown(ref)} is not the id of any layer (did you mean {shown(target)}, layer "
                    f"{graph.position[target] + 1} {name_of[target]}?)",
                    hint=f"Inputs name layers by their id. Replace {shown(ref)} by {shown(target)}, or remove it.",
                    fix="replace_input", fix_data={"input": ref, "with": target}, **wire))
            else:
                found.append(fail(
                    f"input {shown(ref)} is not the id of any layer",
                    hint='Inputs name layers by their id ("input" is the network\'s input). Remove it, or '
                    "connect an existing layer instead.", fix="remove_input", fix_data={"input": ref}, **wire))
            continue
        where = graph.position[ref]
        if where < position:
            continue
        cycle = [me] if ref == me else graph.path_back(ref, me)
        if cycle is not None:
            loop = [*reversed(cycle), me]  # in the direction data would flow
            circle = " -> ".join(name_of[i] for i in loop)
            what = "takes its own output" if ref == me else f"is part of a cycle: {circle}"
            found.append(fail(
                what, hint=f"Data flows one way, from the input to the output; {circle} goes round in a circle, "
                "so no layer in it could ever run. Remove one of these connections.", **wire))
        else:
            order = graph.topological_order()
            found.append(fail(
                f"uses {name_of[ref]} (layer {where + 1}) before it is defined: layers are listed so that "
                "each layer's inputs come before it",
                hint=f"Move {name_of[ref]} above this layer in the list (the studio orders layers for you).",
                fix="reorder_layers" if order else None, fix_data={"order": order} if order else None, **wire))
    return found


def _arity_problems(layer: Layer, layer_id: str, in_ids: tuple[str, ...], in_shapes: tuple[Shape | None, ...],
                    name_of: dict[str, str], fail: Any) -> list[ArchitectureError]:
    labels = ", ".join(name_of[i] for i in in_ids)
    if layer.max_inputs is not None and len(in_ids) > layer.max_inputs:
        merge, data = _merge_for(in_shapes)
        hint = (f"{layer.type_name} takes one input. To join {labels}, insert " +
                (f"an {merge}" if merge == "Add" else "a Concatenate" if merge else "an Add or a Concatenate") +
                " before it and connect the branches to that.")
        return [fail(f"takes one input but is given {len(in_ids)}: {labels}", field="inputs", value=list(in_ids),
                     hint=hint, fix="merge_inputs" if merge else None,
                     fix_data={"inputs": list(in_ids), "merge": merge, **data} if merge else None)]
    if len(in_ids) < layer.min_inputs:
        return [fail(f"{layer.type_name} joins two or more inputs but is given {len(in_ids)} ({labels})",
                     field="inputs", value=list(in_ids),
                     hint=f"Connect a second branch to this {layer.type_name}, or remove it (its input then goes "
                     "straight to the layers after it).", fix="remove_merge", fix_data={"layer": layer_id})]
    return []


def _merge_for(shapes: tuple[Shape | None, ...]) -> tuple[str | None, dict[str, Any]]:
    """The merge layer that can join inputs of these shapes: Add for equal shapes, else Concatenate."""
    if any(s is None for s in shapes):
        return None, {}
    if len(set(shapes)) == 1:
        return "Add", {}
    ranks = {len(s) for s in shapes}
    if ranks == {1} or (ranks == {3} and len({s[:2] for s in shapes}) == 1):
        return "Concatenate", {}
    return None, {}


def _infer(layer: Layer, in_ids: tuple[str, ...], in_shapes: tuple[Shape, ...], name_of: dict[str, str],
           graph: _Graph, specs: list[Any], shapes: dict[str, Shape | None]) -> Shape:
    """The layer's output shape; a merge layer's input problems are raised together (``all``)."""
    if not isinstance(layer, MergeLayer):
        return tuple(layer.output_shape(in_shapes[0]))
    issues = layer.input_problems(in_shapes, [name_of[i] for i in in_ids])
    if not issues:
        return tuple(layer.merged_shape(list(in_shapes)))
    located = []
    for issue in issues:
        source = in_ids[issue.input_index] if issue.input_index is not None else None
        fix, data, hint = issue.fix, dict(issue.fix_data), issue.hint
        if source is not None:
            data["input"] = source
            if isinstance(layer, LAYER_TYPES["Concatenate"]) and _padding_fits(source, graph, specs, shapes, data):
                fix, data = "padding_same_on_input", {**data, "layer": source}
                hint += f" Here padding 'same' on {name_of[source]} gives {data['size'][0]}x{data['size'][1]}."
        located.append(ConfigError(issue.message, field="inputs", value=issue.value, hint=hint, fix=fix,
                                   fix_data=data, source_id=source))
    error = located[0]
    error.all = located  # type: ignore[attr-defined]
    raise error


def _padding_fits(source: str, graph: _Graph, specs: list[Any], shapes: dict[str, Shape | None],
                  data: dict[str, Any]) -> bool:
    """True when 'same' padding on the input's producer alone gives the size a Concatenate wants."""
    if source == INPUT_ID or "size" not in data:
        return False
    spec = specs[graph.position[source]]
    producer_inputs = graph.inputs[graph.position[source]]
    if (not isinstance(spec, dict) or spec.get("type") not in _PADDED_TYPES or spec.get("padding") == "same"
            or len(producer_inputs) != 1 or shapes.get(producer_inputs[0]) is None):
        return False
    settings = {k: v for k, v in spec.items() if k not in META_KEYS}
    settings["padding"] = "same"
    try:
        size = LAYER_TYPES[spec["type"]](**settings).output_shape(shapes[producer_inputs[0]])[:2]
    except ArchitectureError:
        return False
    return list(size) == list(data["size"])


def _unused_warning(info: LayerInfo, last: LayerInfo) -> ArchitectureError:
    name, last_name = displayed(info.name), displayed(last.name)
    return ArchitectureError(
        f"the output of {name} is used by no layer and is not the network's output (the last layer, "
        f"{last_name}): this branch does nothing",
        layer_index=info.index, layer_type=info.type, layer_id=info.id, severity="warning",
        hint=f"No layer uses the output of {name}, and only the last layer in the list ({last_name}) is the "
        f"network's output. Connect {name} to a "
        "layer on the way to it (an Add or a Concatenate joins branches), or delete the branch.",
    )


def _is_softmax(info: LayerInfo) -> bool:
    return info.type == "Softmax" or info.config.get("activation") == "softmax"


def _softmax_inside_warning(info: LayerInfo, readers: list[LayerInfo]) -> ArchitectureError:
    names = ", ".join(displayed(reader.name) for reader in readers)
    name = displayed(info.name)
    takes = "takes" if len(readers) == 1 else "take"
    relu_after = any(reader.type == "ReLU" or reader.config.get("activation") == "relu" for reader in readers)
    if info.type == "Softmax":
        what, remedy, fix = f"{name} (a Softmax layer)", f"Delete {name}", "remove_softmax"
    else:
        what, remedy, fix = f"{name} has a softmax activation: it", f"Use 'relu' in {name}", "activation_relu"
    return ArchitectureError(
        f"{what} turns its values into probabilities but is not the network's output: {names} {takes} them",
        layer_index=info.index, layer_type=info.type, layer_id=info.id, severity="warning", fix=fix,
        hint=f"{name} turns its values into probabilities (softmax), and {names} {takes} them. Softmax belongs "
        "on the last layer, where it turns the scores into class probabilities for the loss; inside a network it "
        "squeezes every value into (0, 1), all of them summing to 1, which slows learning or stops it"
        + (" (and a ReLU after it changes nothing: probabilities are never negative)" if relu_after else "")
        + f". {remedy}, or make it the last layer.",
    )


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
    problem: ArchitectureError | None = None
    if len(out) != 1:
        problem = ClassifierHeadError(out, num_classes, layer_index=last.index, layer_type=last.type)
    elif num_classes is not None and out[0] != num_classes:
        problem = ClassCountError(out[0], num_classes, layer_index=last.index, layer_type=last.type)
    if problem is not None:
        problem.layer_id = last.id
        raise problem


def with_input_shape(doc: dict[str, Any], shape: Shape) -> dict[str, Any]:
    out = copy.deepcopy(doc)
    out["input"] = {"shape": [int(v) for v in shape]}
    return out


def summary(doc_or_path: dict[str, Any] | str | os.PathLike | Analysis) -> str:
    """The Keras-style table: layer, output shape, parameters, and totals.

    A branching network gets a "Connected to" column (each layer's inputs, by name), as Keras
    prints for functional models; a chain does not need one.
    """
    analysis = doc_or_path if isinstance(doc_or_path, Analysis) else validate(doc_or_path)
    graph = not analysis.is_chain
    name_of = {INPUT_ID: INPUT_ID, **{info.id: displayed(info.name) for info in reversed(analysis.layers)}}
    rows = [("Layer (type)", "Output shape", "Param #", "Connected to")]
    rows.append(("input" + (" (Input)" if graph else ""), _fmt_shape(analysis.input_shape), "0", ""))
    for info in analysis.layers:
        frozen = " (frozen)" if not info.trainable else ""
        rows.append((f"{displayed(info.name)} ({info.type}){frozen}", _fmt_shape(info.output_shape), f"{info.params:,}",
                     ", ".join(name_of.get(i, i) for i in info.inputs)))
    columns = 4 if graph else 3
    widths = [max(len(r[i]) for r in rows) + 3 for i in range(columns)]
    rule = "=" * sum(widths)

    def line(r: tuple[str, ...]) -> str:
        text = r[0].ljust(widths[0]) + r[1].ljust(widths[1]) + r[2].rjust(widths[2] - 3)
        if graph:
            text += "   " + r[3]
        return text.rstrip()

    text = [rule, line(rows[0]), rule] + [line(r) for r in rows[1:]] + [rule]
    total = analysis.trainable_params + analysis.non_trainable_params
    text += [
        f"Total params: {total:,}",
        f"Trainable params: {analysis.trainable_params:,}",
        f"Non-trainable params: {analysis.non_trainable_params:,}"
        + (f" (frozen: {analysis.frozen_params:,})" if analysis.frozen_params else ""),
        f"Multiply-adds per image: {analysis.macs:,}",
        f"Activation memory per image: {analysis.activation_bytes / 1024:,.1f} KiB",
        rule,
    ]
    return "\n".join(text)


def _fmt_shape(shape: Shape | None) -> str:
    return "?" if shape is None else "(None, " + ", ".join(map(str, shape)) + ")"
