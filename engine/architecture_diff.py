"""What differs between two architecture documents: layers added, removed and changed, and the
parameter count on each side.

``same_network`` decides whether tensors saved from one document load into the other and train
the same way (input shape and every layer's name, type, settings and inputs; block ids and the
document's format are handles, not part of the computation). ``diff_architectures`` lines the
layers up (by block id where both documents have them, otherwise by type and settings) for the
clear message a refused run folder gets and for comparing two runs.
"""

from __future__ import annotations

import difflib
import json
from dataclasses import dataclass, field
from typing import Any

from engine.architecture import analyze

# Layer keys that are handles for people and tools, not part of the computation.
_HANDLES = ("id", "format")


@dataclass(frozen=True)
class LayerSummary:
    name: str
    type: str
    settings: dict[str, Any]
    inputs: tuple[str, ...]
    params: int
    id: str | None = None

    def key(self) -> str:
        return json.dumps([self.name, self.type, self.settings, self.inputs], sort_keys=True, default=str)

    def label(self) -> str:
        return f"{self.name} ({self.type})"


@dataclass(frozen=True)
class LayerChange:
    kind: str  # "added" | "removed" | "changed"
    before: LayerSummary | None
    after: LayerSummary | None
    settings: dict[str, tuple[Any, Any]] = field(default_factory=dict)  # changed settings: (before, after)

    @property
    def params_delta(self) -> int:
        return (self.after.params if self.after else 0) - (self.before.params if self.before else 0)

    def describe(self) -> str:
        if self.kind == "added":
            assert self.after is not None
            return f"{self.after.label()} added"
        if self.kind == "removed":
            assert self.before is not None
            return f"{self.before.label()} removed"
        assert self.before is not None and self.after is not None
        parts = [f"{k} {_show(a)} -> {_show(b)}" for k, (a, b) in self.settings.items()]
        return f"{self.before.label()}: " + ", ".join(parts)


@dataclass(frozen=True)
class ArchitectureDiff:
    input_before: tuple[int, ...] | None
    input_after: tuple[int, ...] | None
    changes: tuple[LayerChange, ...]
    params_before: int
    params_after: int

    @property
    def same(self) -> bool:
        return not self.changes and self.input_before == self.input_after

    @property
    def params_delta(self) -> int:
        return self.params_after - self.params_before

    def describe(self, limit: int = 3) -> str:
        """One line: what changed, the first ``limit`` changes named."""
        if self.same:
            return "the same network"
        parts = []
        if self.input_before != self.input_after:
            parts.append(f"input {_shape(self.input_before)} -> {_shape(self.input_after)}")
        parts += [c.describe() for c in self.changes[:limit]]
        more = len(self.changes) - limit
        if more > 0:
            parts.append(f"{more} more change{'s' if more > 1 else ''}")
        delta = self.params_delta
        if delta:
            parts.append(f"{delta:+,} parameters")
        return "; ".join(parts)


def _show(value: Any) -> str:
    return json.dumps(value) if not isinstance(value, str) else value


def _shape(shape: tuple[int, ...] | None) -> str:
    return "?" if shape is None else "x".join(map(str, shape))


def summarize(doc: dict[str, Any]) -> tuple[tuple[int, ...] | None, list[LayerSummary]]:
    """(input shape, one summary per layer with settings defaults filled in)."""
    analysis = analyze(doc)
    # What each layer takes, by layer name: the same wiring reads the same however ids were given.
    names = {info.id: info.name for info in analysis.layers}
    layers = []
    specs = doc.get("layers", []) if isinstance(doc, dict) else []
    for info, spec in zip(analysis.layers, specs):
        inputs = tuple(names.get(ref, ref) for ref in getattr(info, "inputs", ()))
        settings = dict(info.config)
        if isinstance(spec, dict) and spec.get("trainable") is False:
            settings["trainable"] = False  # a frozen layer trains differently
        layers.append(LayerSummary(info.name, info.type, settings, inputs, info.params, info.id))
    shape = tuple(analysis.input_shape) if analysis.input_shape is not None else None
    return shape, layers


def same_network(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """Whether the two documents describe the same computation with the same tensor names."""
    shape_a, layers_a = summarize(a)
    shape_b, layers_b = summarize(b)
    return shape_a == shape_b and [x.key() for x in layers_a] == [x.key() for x in layers_b]


def diff_architectures(before: dict[str, Any], after: dict[str, Any]) -> ArchitectureDiff:
    shape_a, a = summarize(before)
    shape_b, b = summarize(after)
    changes: list[LayerChange] = []
    ids_a, ids_b = [x.id for x in a], [x.id for x in b]
    # Block ids line layers up when they are real handles (the studio's); ids a loader made up from
    # the layer names would only repeat the names, which shift when a layer is added earlier.
    handles = any(x.id != x.name for x in a) and any(y.id != y.name for y in b)
    if handles and all(ids_a) and all(ids_b) and set(ids_a) & set(ids_b):
        pairs = _align_by_id(a, b)
    else:
        pairs = _align_by_content(a, b)
    # In two chains each layer takes the one before it: an insertion rewires its successor, which
    # is no change of its own.
    wiring = not (_is_chain(a) and _is_chain(b))
    for x, y in pairs:
        if x is None:
            changes.append(LayerChange("added", None, y))
        elif y is None:
            changes.append(LayerChange("removed", x, None))
        elif _content(x) != _content(y) or (wiring and x.inputs != y.inputs):
            # (a name that only shifted because a layer of its type was added earlier is no change)
            keys = list(dict.fromkeys([*x.settings, *y.settings]))
            settings = {k: (x.settings.get(k), y.settings.get(k)) for k in keys
                        if x.settings.get(k) != y.settings.get(k)}
            if wiring and x.inputs != y.inputs:
                settings["inputs"] = (list(x.inputs), list(y.inputs))
            if x.type != y.type:
                settings = {"type": (x.type, y.type), **settings}
            changes.append(LayerChange("changed", x, y, settings))
    return ArchitectureDiff(shape_a, shape_b, tuple(changes), sum(x.params for x in a), sum(y.params for y in b))


def _align_by_id(a: list[LayerSummary], b: list[LayerSummary]) -> list[tuple[LayerSummary | None, LayerSummary | None]]:
    position = {x.id: i for i, x in enumerate(a)}
    kept = {y.id for y in b}
    pairs: list[tuple[LayerSummary | None, LayerSummary | None]] = []
    done = 0  # layers of ``a`` before this index are listed already
    for y in b:
        if y.id in position:
            # Removed layers of ``a`` come where they stood, before the next layer both keep.
            pairs += [(x, None) for x in a[done:position[y.id]] if x.id not in kept]
            done = max(done, position[y.id] + 1)
            pairs.append((a[position[y.id]], y))
        else:
            pairs.append((None, y))
    pairs += [(x, None) for x in a[done:] if x.id not in kept]
    return pairs


def _align_by_content(a: list[LayerSummary], b: list[LayerSummary]
                      ) -> list[tuple[LayerSummary | None, LayerSummary | None]]:
    # Names shift when a layer of the same type is inserted earlier, so match on type and
    # settings first; within a replaced stretch, layers of the same type pair up as changes.
    matcher = difflib.SequenceMatcher(a=[_content(x) for x in a], b=[_content(y) for y in b], autojunk=False)
    pairs: list[tuple[LayerSummary | None, LayerSummary | None]] = []
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag == "equal":
            pairs += list(zip(a[i1:i2], b[j1:j2]))
            continue
        left, right = list(a[i1:i2]), list(b[j1:j2])
        types = difflib.SequenceMatcher(a=[x.type for x in left], b=[y.type for y in right], autojunk=False)
        for t, k1, k2, m1, m2 in types.get_opcodes():
            if t == "equal" or (t == "replace" and k2 - k1 == m2 - m1):
                pairs += list(zip(left[k1:k2], right[m1:m2]))
            else:
                pairs += [(x, None) for x in left[k1:k2]]
                pairs += [(None, y) for y in right[m1:m2]]
    return pairs


def _is_chain(layers: list[LayerSummary]) -> bool:
    previous = "input"
    for layer in layers:
        if layer.inputs not in ((previous,), ()):
            return False
        previous = layer.name
    return True


def _content(x: LayerSummary) -> str:
    return json.dumps([x.type, x.settings], sort_keys=True, default=str)
