"""The architecture as a graph: who feeds whom, in what order, and the node editor's structural edits.

Everything here is a pure function over a list of layer specs (dicts with an ``id`` and an explicit
``inputs`` list), so the document, its undo commands and the canvas share one definition of what
"connect", "insert on a wire" or "delete with reconnection" mean, testable without Qt.

Rules the edits keep:
  * the list stays topological (every input is listed before the layer that uses it);
  * the last layer is the network's output, and stays the output unless the edit is about it;
  * an edit that cannot be made raises ``GraphEditError`` with a sentence for the user.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import networkx as nx

from engine.architecture import layer_names
from engine.layers import LAYER_TYPES

INPUT = "input"  # the id that names the network's input, as in the architecture document
OUTPUT = "__output__"  # pseudo target of the wire leaving the last layer (the network's output)
ENTRY = "@entry"  # in a group of new layers (a composite block): the tensor the group receives

Spec = dict[str, Any]


class GraphEditError(ValueError):
    """An edit that would break the network; the message says why in one sentence."""


@dataclass(frozen=True)
class Wire:
    """A connection: ``source`` (a layer id or INPUT) feeds input ``slot`` of ``target`` (a layer id or OUTPUT)."""

    source: str
    target: str
    slot: int = 0


# -- reading ---------------------------------------------------------------------------------------------
def max_inputs(type_name: str | None) -> int | None:
    """How many inputs a layer type takes (None: any number, as Add and Concatenate)."""
    cls = LAYER_TYPES.get(type_name or "")
    if cls is None:
        return 1
    return getattr(cls, "max_inputs", 1)


def takes_many(spec: Spec) -> bool:
    return max_inputs(spec.get("type")) != 1


def with_explicit_inputs(layers: Sequence[Any]) -> list[Any]:
    """Copies of the specs where each layer names its inputs (a missing list means the layer before it)."""
    out: list[Any] = []
    previous = INPUT
    for spec in layers:
        if not isinstance(spec, dict):
            out.append(copy.deepcopy(spec))
            continue
        spec = copy.deepcopy(spec)
        if not isinstance(spec.get("inputs"), list):
            spec["inputs"] = [previous]
        out.append(spec)
        if isinstance(spec.get("id"), str):
            previous = spec["id"]
    return out


def compact_inputs(layers: Sequence[Any]) -> list[Any]:
    """Copies without the ``inputs`` that say what the list order already implies (for readable files)."""
    out: list[Any] = []
    previous = INPUT
    for spec in layers:
        if isinstance(spec, dict):
            spec = copy.deepcopy(spec)
            if spec.get("inputs") == [previous]:
                del spec["inputs"]
            previous = spec.get("id", previous)
        out.append(spec)
    return out


def inputs_of(spec: Spec) -> list[str]:
    value = spec.get("inputs")
    return [v for v in value if isinstance(v, str)] if isinstance(value, list) else []


def ids(layers: Sequence[Spec]) -> list[str]:
    return [spec["id"] for spec in layers]


def output_id(layers: Sequence[Spec]) -> str | None:
    return layers[-1]["id"] if layers else None


def consumers(layers: Sequence[Spec]) -> dict[str, list[str]]:
    """For INPUT and every layer id: the layers it feeds, in document order (a layer once per slot)."""
    found: dict[str, list[str]] = {INPUT: [], **{spec["id"]: [] for spec in layers}}
    for spec in layers:
        for source in inputs_of(spec):
            found.setdefault(source, []).append(spec["id"])
    return found


def wires(layers: Sequence[Spec]) -> list[Wire]:
    """Every connection in document order of the targets (inputs in slot order), the output wire last."""
    out = [Wire(source, spec["id"], slot) for spec in layers for slot, source in enumerate(inputs_of(spec))]
    if layers:
        out.append(Wire(layers[-1]["id"], OUTPUT, 0))
    return out


def digraph(layers: Sequence[Spec]) -> nx.DiGraph:
    """INPUT and the layers as nodes, one edge per connection to a known node (unknown ids are left out)."""
    graph = nx.DiGraph()
    graph.add_node(INPUT)
    graph.add_nodes_from(spec["id"] for spec in layers)
    for spec in layers:
        for source in inputs_of(spec):
            if source in graph:
                graph.add_edge(source, spec["id"])
    return graph


def feeds(layers: Sequence[Spec], source: str, target: str) -> bool:
    """Whether ``source``'s output reaches ``target`` (directly or through other layers)."""
    graph = digraph(layers)
    return source in graph and target in graph and source != target and nx.has_path(graph, source, target)


def ordered(layers: Sequence[Spec], output: str | None = None) -> list[Spec]:
    """The layers in a topological order that moves as few as possible; ``output`` last if nothing uses it.

    A network with a loop (only a hand-written file can have one) is returned unchanged: the
    analysis reports the loop.
    """
    position = {spec["id"]: i for i, spec in enumerate(layers)}
    graph = digraph(layers)
    graph.remove_node(INPUT)
    last = output if output in position and graph.out_degree(output) == 0 else None
    try:
        order = list(nx.lexicographical_topological_sort(
            graph, key=lambda node: (node == last, position[node])))
    except nx.NetworkXUnfeasible:
        return list(layers)
    by_id = {spec["id"]: spec for spec in layers}
    return [by_id[node] for node in order]


def spec_by_id(layers: Sequence[Spec], layer_id: str) -> Spec:
    for spec in layers:
        if spec["id"] == layer_id:
            return spec
    raise GraphEditError(f"there is no layer with id {layer_id!r}")


def label(layers: Sequence[Spec], node: str) -> str:
    """How messages name a node: the layer's name, as its block shows it ("conv2d_2"), or "the input"."""
    if node == INPUT:
        return "the input"
    if node == OUTPUT:
        return "the output"
    for spec, name in zip(layers, layer_names({"layers": list(layers)})):
        if spec["id"] == node:
            return name
    return repr(node)


# -- edits (each returns a new list; the argument is never changed) ----------------------------------------
def _copy(layers: Sequence[Spec]) -> list[Spec]:
    return [copy.deepcopy(spec) for spec in layers]


def _replace_source(spec: Spec, old: str, new: str, slot: int | None = None) -> None:
    """Make ``spec`` take ``new`` where it took ``old`` (only at ``slot`` when given); no duplicates in merges."""
    inputs = inputs_of(spec)
    result: list[str] = []
    for i, source in enumerate(inputs):
        if source == old and (slot is None or slot == i):
            source = new
        if source in result and source == new and takes_many(spec):
            continue
        result.append(source)
    spec["inputs"] = result


def _check_group(group: Sequence[Spec], existing: Iterable[str]) -> None:
    taken = set(existing) | {INPUT}
    for spec in group:
        if spec.get("id") in taken or not spec.get("id"):
            raise GraphEditError(f"a new layer needs a fresh id, not {spec.get('id')!r}")
        taken.add(spec["id"])


def _attach_group(group: Sequence[Spec], source: str) -> list[Spec]:
    """Copies of the new layers with ENTRY (or a missing input list, for the first) replaced by ``source``."""
    attached = []
    for i, spec in enumerate(group):
        spec = copy.deepcopy(spec)
        inputs = spec.get("inputs") if isinstance(spec.get("inputs"), list) else (
            [ENTRY] if i == 0 else [group[i - 1]["id"]])
        spec["inputs"] = [source if v == ENTRY else v for v in inputs]
        attached.append(spec)
    return attached


def insert_on_wire(layers: Sequence[Spec], group: Sequence[Spec], wire: Wire) -> list[Spec]:
    """Put new layers on a wire: the group takes the wire's source, the wire's target takes the group's last layer.

    ``group`` is one layer or a composite block (its layers name ENTRY where they take the
    group's input, each other by id; the last one is the group's output).
    """
    if not group:
        raise GraphEditError("nothing to insert")
    _check_group(group, ids(layers))
    layers = _copy(layers)
    known = set(ids(layers)) | {INPUT}
    if wire.source not in known:
        raise GraphEditError(f"the wire starts at an unknown layer {wire.source!r}")
    attached = _attach_group(group, wire.source)
    exit_id = attached[-1]["id"]
    if wire.target == OUTPUT:
        if wire.source != output_id(layers) and not (wire.source == INPUT and not layers):
            raise GraphEditError("that wire is not the network's output")
        return layers + attached
    target = spec_by_id(layers, wire.target)
    inputs = inputs_of(target)
    if not 0 <= wire.slot < len(inputs) or inputs[wire.slot] != wire.source:
        raise GraphEditError(f"{label(layers, wire.source)} does not feed {label(layers, wire.target)} there")
    inputs[wire.slot] = exit_id
    target["inputs"] = inputs
    at = layers.index(target)
    return ordered(layers[:at] + attached + layers[at:], output_id(layers))


def insert_after(layers: Sequence[Spec], group: Sequence[Spec], node: str) -> list[Spec]:
    """New layers between ``node`` and everything it feeds (after the output: a new output)."""
    if not group:
        raise GraphEditError("nothing to insert")
    _check_group(group, ids(layers))
    layers = _copy(layers)
    if node != INPUT:
        spec_by_id(layers, node)
    attached = _attach_group(group, node)
    exit_id = attached[-1]["id"]
    was_output = node == output_id(layers) or not layers
    for spec in layers:
        if node in inputs_of(spec):
            _replace_source(spec, node, exit_id)
    if was_output:
        return layers + attached
    at = 0 if node == INPUT else ids(layers).index(node) + 1
    return ordered(layers[:at] + attached + layers[at:], output_id(layers))


def insert_before(layers: Sequence[Spec], group: Sequence[Spec], node: str) -> list[Spec]:
    """New layers on the wire into ``node``'s first input."""
    spec = spec_by_id(layers, node)
    inputs = inputs_of(spec)
    if not inputs:
        raise GraphEditError(f"{label(layers, node)} has no input to insert before")
    return insert_on_wire(layers, group, Wire(inputs[0], node, 0))


def insert_at(layers: Sequence[Spec], group: Sequence[Spec], index: int) -> list[Spec]:
    """Chain-style insertion: before the layer now at ``index`` (0-based), or after the output at the end."""
    if index >= len(layers):
        return insert_after(layers, group, output_id(layers) or INPUT)
    return insert_before(layers, group, layers[max(0, index)]["id"])


def remove(layers: Sequence[Spec], node: str) -> list[Spec]:
    """Delete a layer; what it fed takes its (first) input instead, so a chain stays connected."""
    spec = spec_by_id(layers, node)
    inputs = inputs_of(spec)
    replacement = inputs[0] if inputs else INPUT
    was_output = node == output_id(layers)
    rest = [copy.deepcopy(s) for s in layers if s["id"] != node]
    for other in rest:
        if node in inputs_of(other):
            _replace_source(other, node, replacement)
    new_output = output_id(rest)
    if was_output and replacement != INPUT and not consumers(rest).get(replacement):
        new_output = replacement
    return ordered(rest, new_output)


def connect(layers: Sequence[Spec], source: str, target: str) -> list[Spec]:
    """Make ``source`` feed ``target``: a merge layer gains an input, any other layer's input is replaced.

    ``target`` OUTPUT makes ``source`` the network's output.
    """
    if target == OUTPUT:
        return set_output(layers, source)
    if source == OUTPUT:
        raise GraphEditError("the output block has no output to connect")
    layers = _copy(layers)
    spec = spec_by_id(layers, target)
    if source != INPUT:
        spec_by_id(layers, source)
    if source == target:
        raise GraphEditError(f"{label(layers, target)} cannot feed itself")
    if feeds(layers, target, source):
        raise GraphEditError(f"{label(layers, target)} already feeds {label(layers, source)}: "
                             "connecting them would make a loop")
    inputs = inputs_of(spec)
    if source in inputs:
        raise GraphEditError(f"{label(layers, source)} already feeds {label(layers, target)}")
    spec["inputs"] = inputs + [source] if takes_many(spec) else [source]
    return ordered(layers, output_id(layers))


def disconnect(layers: Sequence[Spec], wire: Wire) -> list[Spec]:
    """Remove one connection; a layer's only input cannot be removed (connect another one, or delete it)."""
    if wire.target == OUTPUT:
        raise GraphEditError("the network needs an output: connect another layer to the output instead")
    layers = _copy(layers)
    spec = spec_by_id(layers, wire.target)
    inputs = inputs_of(spec)
    if not 0 <= wire.slot < len(inputs) or inputs[wire.slot] != wire.source:
        raise GraphEditError(f"{label(layers, wire.source)} does not feed {label(layers, wire.target)}")
    if len(inputs) == 1:
        raise GraphEditError(f"{label(layers, wire.target)} needs an input: connect another one to it first, "
                             "or delete the layer")
    del inputs[wire.slot]
    spec["inputs"] = inputs
    return ordered(layers, output_id(layers))


def set_output(layers: Sequence[Spec], node: str) -> list[Spec]:
    """Make ``node`` the network's output (moved to the end of the list); it must feed nothing."""
    spec_by_id(layers, node)
    if consumers(layers).get(node):
        raise GraphEditError(f"{label(layers, node)} feeds other layers, so it cannot be the network's output")
    if node == output_id(layers):
        raise GraphEditError(f"{label(layers, node)} is the network's output already")
    return ordered(_copy(layers), node)


def move_onto_wire(layers: Sequence[Spec], node: str, wire: Wire) -> list[Spec]:
    """Take a layer out (reconnecting around it) and put it on another wire."""
    if node in (wire.source, wire.target):
        raise GraphEditError(f"{label(layers, node)} is already there")
    spec = spec_by_id(layers, node)
    if takes_many(spec):
        raise GraphEditError(f"{label(layers, node)} joins branches: connect its inputs by hand instead")
    rest = remove(layers, node)
    if wire.target != OUTPUT:
        # If the moved layer fed the wire's target too, that target's inputs were renumbered.
        inputs = inputs_of(spec_by_id(rest, wire.target))
        if not (wire.slot < len(inputs) and inputs[wire.slot] == wire.source):
            if wire.source not in inputs:
                raise GraphEditError("that wire is gone")
            wire = Wire(wire.source, wire.target, inputs.index(wire.source))
    moved = {k: copy.deepcopy(v) for k, v in spec.items() if k != "inputs"}
    return insert_on_wire(rest, [moved], wire)


def move_in_chain(layers: Sequence[Spec], node: str, delta: int) -> list[Spec]:
    """Alt+Up / Alt+Down: swap a layer with the one before it (-1) or after it (+1) on its path."""
    spec = spec_by_id(layers, node)
    if takes_many(spec):
        raise GraphEditError(f"{label(layers, node)} joins branches and cannot move along one")
    if delta < 0:
        inputs = inputs_of(spec)
        above = inputs[0] if len(inputs) == 1 else INPUT
        if above == INPUT:
            raise GraphEditError(f"{label(layers, node)} is already first on its path")
        if takes_many(spec_by_id(layers, above)):
            raise GraphEditError(f"{label(layers, node)} cannot move above {label(layers, above)}, "
                                 "which joins branches")
        if len(set(consumers(layers).get(above, []))) > 1:
            # Above a fork the layer would leave its branch for the trunk, changing what every branch gets.
            raise GraphEditError(f"{label(layers, node)} is first on its branch: {label(layers, above)} above it "
                                 "feeds several layers; drag it onto a wire instead")
        rest = remove(layers, node)
        moved = {k: copy.deepcopy(v) for k, v in spec.items() if k != "inputs"}
        return insert_before(rest, [moved], above)
    below = consumers(layers).get(node, [])
    if not below:
        raise GraphEditError(f"{label(layers, node)} is already last on its path")
    if len(set(below)) > 1:
        raise GraphEditError(f"{label(layers, node)} feeds several layers: drag it onto a wire instead")
    rest = remove(layers, node)
    moved = {k: copy.deepcopy(v) for k, v in spec.items() if k != "inputs"}
    return insert_after(rest, [moved], below[0])


def move_to_index(layers: Sequence[Spec], node: str, target: int) -> list[Spec]:
    """Chain-style move: take the layer out and insert it before the layer at ``target`` of what is left."""
    spec = spec_by_id(layers, node)
    rest = remove(layers, node)
    moved = {k: copy.deepcopy(v) for k, v in spec.items() if k != "inputs"}
    return insert_at(rest, [moved], target)


def connectable_targets(layers: Sequence[Spec], source: str) -> set[str]:
    """The nodes ``source`` may be connected to now (OUTPUT included when ``source`` may become the output)."""
    graph = digraph(layers)
    if source not in graph:
        return set()
    upstream = nx.ancestors(graph, source) | {source}
    found = set()
    for spec in layers:
        node = spec["id"]
        if node in upstream:
            continue
        inputs = inputs_of(spec)
        if source in inputs and (takes_many(spec) or inputs == [source]):
            continue
        found.add(node)
    if source != INPUT and source != output_id(layers) and graph.out_degree(source) == 0:
        found.add(OUTPUT)
    return found


def connectable_sources(layers: Sequence[Spec], target: str) -> set[str]:
    """The nodes that may be connected to ``target``'s input now."""
    if target == OUTPUT:
        graph = digraph(layers)
        last = output_id(layers)
        return {spec["id"] for spec in layers if spec["id"] != last and graph.out_degree(spec["id"]) == 0}
    graph = digraph(layers)
    if target not in graph:
        return set()
    downstream = nx.descendants(graph, target) | {target}
    spec = spec_by_id(layers, target)
    inputs = inputs_of(spec)
    found = {INPUT, *ids(layers)} - downstream
    if takes_many(spec):
        found -= set(inputs)
    elif len(inputs) == 1:
        found.discard(inputs[0])
    return found


def keep_names(before: list[dict[str, Any]], after: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``after`` (``before`` with layers added) with every earlier layer keeping its name.

    Automatic names count the layers of a type in order, so a layer added in the middle would shift
    the names (and the weight names) of those after it: they get their old names written out, and
    the new layers take the next automatic names still free (engine.architecture.layer_names skips
    written-out ones). Writing a name out can shift a later automatic one in turn, hence the loop.
    """
    old_names = dict(zip((spec["id"] for spec in before), layer_names({"layers": before})))
    after = copy.deepcopy(after)
    for _ in range(len(after)):
        shifted = [(spec, old_names[spec["id"]]) for spec, name in zip(after, layer_names({"layers": after}))
                   if spec["id"] in old_names and name != old_names[spec["id"]]]
        if not shifted:
            break
        for spec, name in shifted:
            spec["name"] = name
    return after
