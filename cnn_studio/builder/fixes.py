"""Turns a problem into an undoable command that repairs the design, and names that fix for buttons.

Most fixes are named by the analysis (``problem.fix``, with ``problem.fix_data`` holding numbers
such as a projection's filters and stride). Two are found here: when the branches into an Add or a
Concatenate shrank their maps with 'valid' padding, 'same' padding along them, offered only when
that really makes the sizes match; and for a kernel or pooling window larger than its input, the
largest window that fits, offered beside the analysis's padding 'same' (which keeps a window
bigger than the whole image).

``fixes_for`` lists every fix on offer for a problem, the analysis's first.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

from PySide6.QtGui import QUndoCommand

from cnn_studio import graph
from cnn_studio.builder import describe
from cnn_studio.builder.commands import GraphEditCommand, SetLayerCommand
from cnn_studio.document import ProjectDocument, new_layer_id
from cnn_studio.graph import INPUT, GraphEditError, Wire
from engine.architecture import analyze
from engine.errors import ArchitectureError
from engine.layers import LAYER_TYPES

DEFAULT_CLASSES = 10
PAD_BRANCH = "pad_branch"  # the fixes this module finds itself
FIT_WINDOW = "fit_window"
WINDOWED = ("Conv2D", "MaxPool2D", "AvgPool2D")
WINDOW_FIELDS = {"kernel_size": "kernel size", "pool_size": "pool size"}


@dataclass(frozen=True)
class Fix:
    """One way to repair a problem: ``key`` names it, ``label`` is its button text, ``value`` what it sets."""

    key: str
    label: str
    value: Any = None


def fixes_for(document: ProjectDocument, problem: ArchitectureError, num_classes: int | None = None) -> list[Fix]:
    """Every fix on offer for ``problem`` that can be applied now, the analysis's suggestion first."""
    offered = []
    name = fix_name(document, problem)
    if name is not None and make_fix_command(document, problem, num_classes) is not None:
        offered.append(Fix(name, fix_label(document, problem, num_classes)))
    size = largest_fitting_window(document, problem)
    if size is not None:
        offered.append(Fix(FIT_WINDOW, f"Use {WINDOW_FIELDS[problem.field]} {size} (largest that fits)", size))
    return offered


def largest_fitting_window(document: ProjectDocument, problem: ArchitectureError) -> int | None:
    """For a kernel or pooling window too large for its input: the largest size that gives an output."""
    if problem.field not in WINDOW_FIELDS or not isinstance(problem.value, int) or isinstance(problem.value, bool):
        return None
    culprit = culprit_id(document, problem)
    info = next((i for i in document.analysis().layers if i.id == culprit), None)
    cls = LAYER_TYPES.get(info.type) if info is not None else None
    if info is None or cls is None or info.input_shape is None:
        return None
    spec = graph.spec_by_id(document.layers(), culprit)
    settings = {f.name: spec[f.name] for f in cls.fields if f.name in spec}
    for size in range(problem.value - 1, 0, -1):
        try:
            cls(**{**settings, problem.field: size}).output_shape(info.input_shape)
        except ArchitectureError:
            continue
        return size
    return None


def culprit_id(document: ProjectDocument, problem: ArchitectureError) -> str | None:
    layer_id = getattr(problem, "layer_id", None)
    layers = document.layers()
    if layer_id and any(spec["id"] == layer_id for spec in layers):
        return layer_id
    index = problem.layer_index
    if index is not None and 0 < index <= len(layers):
        return layers[index - 1]["id"]
    return None


def problem_wire(document: ProjectDocument, problem: ArchitectureError) -> Wire | None:
    """The wire a problem is about, when it names one that exists."""
    source, target = getattr(problem, "source_id", None), getattr(problem, "target_id", None)
    if not source or not target:
        return None
    for spec in document.layers():
        if spec["id"] == target:
            inputs = graph.inputs_of(spec)
            if source in inputs:
                return Wire(source, target, inputs.index(source))
    return None


def fix_name(document: ProjectDocument, problem: ArchitectureError) -> str | None:
    """The fix a problem offers: the analysis's, else one found here (None: no automatic fix)."""
    if problem.fix:
        return problem.fix
    if _branch_padding(document, problem) is not None:
        return PAD_BRANCH
    return None


def _layer_name(document: ProjectDocument, layer_id: str | None) -> str:
    for info in document.analysis().layers:
        if info.id == layer_id:
            return info.name
    return str(layer_id)


def fix_label(document: ProjectDocument, problem: ArchitectureError, num_classes: int | None = None) -> str:
    """The button text for a problem's fix ("" when there is none)."""
    name = fix_name(document, problem)
    data: dict[str, Any] = dict(getattr(problem, "fix_data", None) or {})
    if name == "project_shortcut" and "filters" in data:
        stride = int(data.get("stride", 1))
        return f"Insert a 1x1 Conv2D ({data['filters']} filters{f', stride {stride}' if stride != 1 else ''})"
    if name == "insert_pooling" and "pool_size" in data:
        return f"Insert MaxPool2D {data['pool_size']}x{data['pool_size']}"
    if name == "padding_same_on_input":
        return f"Use padding 'same' on {_layer_name(document, data.get('layer'))}"
    if name == PAD_BRANCH:
        return "Use padding 'same' in its branches"
    if name == "replace_input" and "with" in data:
        return f"Take {_layer_name(document, data['with'])} instead"
    if name == "remove_input":
        return "Remove that input"
    if name == "reorder_layers":
        return "Put the layers in order"
    if name == "merge_inputs" and data.get("merge"):
        return f"Join the inputs with {data['merge']}"
    if name == "remove_merge":
        return f"Remove the {problem.layer_type or 'merge'}"
    return describe.fix_label(name, num_classes)


def replace_head_keeping_weights(document: ProjectDocument, classes: int) -> QUndoCommand | None:
    """Replace Head as the fix when the project's trained network fits the design (so its weights are kept)."""
    from cnn_studio.builder.head import ReplaceHeadCommand
    from engine.errors import EngineError

    trained = getattr(document, "trained", None)
    try:
        command = ReplaceHeadCommand(document, trained, classes)
    except EngineError:
        return None
    return command if command.keeps_weights else None


def make_fix_command(document: ProjectDocument, problem: ArchitectureError,
                     num_classes: int | None = None, fix: Fix | None = None) -> QUndoCommand | None:
    """The command for ``fix`` (default: the problem's own fix), or None when there is none.

    ``num_classes`` (the dataset's class count) sizes the classifier for append_classifier and
    set_output_units; it defaults to 10.
    """
    try:
        if fix is not None and fix.key == FIT_WINDOW:
            return _fit_window_command(document, problem, fix.value)
        return _fix_command(document, problem, num_classes)
    except (GraphEditError, KeyError, ValueError, TypeError):
        return None  # the fix's data no longer fits the design (it changed since the problem was found)


def _fit_window_command(document: ProjectDocument, problem: ArchitectureError, size: Any) -> QUndoCommand | None:
    culprit = culprit_id(document, problem)
    if culprit is None or problem.field not in WINDOW_FIELDS or not isinstance(size, int):
        return None
    spec = graph.spec_by_id(document.layers(), culprit)
    where = describe.problem_layer_name(problem, document.analysis()) or _layer_name(document, culprit)
    return SetLayerCommand(document, culprit, {**spec, problem.field: size},
                           text=f"Fix: {WINDOW_FIELDS[problem.field]} {size} on {where}")


def _fix_command(document: ProjectDocument, problem: ArchitectureError,
                 num_classes: int | None) -> QUndoCommand | None:
    name = fix_name(document, problem)
    layers = document.layers()
    culprit = culprit_id(document, problem)
    classes = num_classes or DEFAULT_CLASSES
    data: dict[str, Any] = dict(getattr(problem, "fix_data", None) or {})
    where = describe.problem_layer_name(problem, document.analysis()) or "the network"
    if name == "append_classifier":
        analysis = document.analysis()
        out = analysis.layers[-1].output_shape if analysis.layers else analysis.input_shape
        group = [] if out is None or len(out) == 1 else [{"id": new_layer_id(), "type": "Flatten"}]
        group.append({"id": new_layer_id(), "type": "Dense", "units": classes, "activation": "softmax"})
        return GraphEditCommand(document, f"Fix: append a {classes}-class classifier",
                                graph.keep_names(layers, graph.insert_after(layers, group,
                                                                          graph.output_id(layers) or INPUT)))
    if name == PAD_BRANCH:
        fixed = _branch_padding(document, problem)
        return GraphEditCommand(document, "Fix: padding 'same' in the branch", fixed) if fixed else None
    if name == "padding_same_on_input":
        target = graph.spec_by_id(layers, data["layer"])
        return SetLayerCommand(document, target["id"], {**target, "padding": "same"},
                               text=f"Fix: padding 'same' on {_layer_name(document, target['id'])}")
    if name in ("project_shortcut", "insert_pooling"):
        wire = problem_wire(document, problem)
        if wire is None:
            return None
        if name == "project_shortcut":
            spec = {"id": new_layer_id(), "type": "Conv2D", "filters": int(data["filters"]),
                    "kernel_size": int(data.get("kernel_size", 1)), "stride": int(data.get("stride", 1)),
                    "padding": "same", "activation": None}
            text = "Fix: 1x1 projection on the shortcut"
        else:
            size = int(data["pool_size"])
            spec = {"id": new_layer_id(), "type": "MaxPool2D", "pool_size": size}
            text = f"Fix: insert MaxPool2D {size}x{size}"
        return GraphEditCommand(document, text, graph.keep_names(layers, graph.insert_on_wire(layers, [spec], wire)))
    if name == "reorder_layers":
        order = [str(i) for i in data["order"]]
        by_id = {spec["id"]: spec for spec in layers}
        if sorted(order) != sorted(by_id):
            return None
        return GraphEditCommand(document, "Fix: put the layers in order", [by_id[i] for i in order])
    if culprit is None:
        return None
    spec = graph.spec_by_id(layers, culprit)
    if name == "insert_flatten_before":
        return GraphEditCommand(document, f"Fix: insert Flatten before {where}",
                                graph.keep_names(layers, graph.insert_before(
                                    layers, [{"id": new_layer_id(), "type": "Flatten"}], culprit)))
    if name == "padding_same":
        return SetLayerCommand(document, culprit, {**spec, "padding": "same"},
                               text=f"Fix: padding 'same' on {where}")
    if name == "set_output_units":
        dense = _dense_on_path(layers, culprit)
        if dense is None:
            return None
        head = replace_head_keeping_weights(document, classes)
        if head is not None:
            return head  # trained or imported weights fit the design: a new head keeps the others usable
        target = graph.spec_by_id(layers, dense)
        return SetLayerCommand(document, dense, {**target, "units": classes}, text=f"Fix: {classes} output units")
    if name in ("replace_input", "remove_input"):
        inputs = graph.inputs_of(spec)
        if name == "replace_input":
            inputs = [data["with"] if i == data["input"] else i for i in inputs]
        else:
            inputs = [i for i in inputs if i != data["input"]]
        if not inputs:
            return None
        changed = [{**s, "inputs": inputs} if s["id"] == culprit else s for s in layers]
        return GraphEditCommand(document, f"Fix: inputs of {where}", graph.ordered(changed, graph.output_id(layers)))
    if name == "merge_inputs" and data.get("merge"):
        merge = {"id": new_layer_id(), "type": data["merge"], "inputs": list(graph.inputs_of(spec))}
        changed = [{**s, "inputs": [merge["id"]]} if s["id"] == culprit else s for s in layers]
        at = [s["id"] for s in changed].index(culprit)
        return GraphEditCommand(document, f"Fix: join the inputs of {where} with {data['merge']}",
                                graph.ordered(changed[:at] + [merge] + changed[at:], graph.output_id(layers)))
    if name in ("remove_merge", "remove_softmax"):
        return GraphEditCommand(document, f"Fix: remove {where}", graph.remove(layers, culprit))
    if name == "activation_relu":
        return SetLayerCommand(document, culprit, {**spec, "activation": "relu"}, text=f"Fix: ReLU in {where}")
    return None


def _dense_on_path(layers: list[dict[str, Any]], start: str) -> str | None:
    """The nearest Dense at or above ``start``, following first inputs."""
    node = start
    while node != INPUT:
        spec = graph.spec_by_id(layers, node)
        if spec.get("type") == "Dense":
            return node
        inputs = graph.inputs_of(spec)
        if not inputs:
            return None
        node = inputs[0]
    return None


def _branch_padding(document: ProjectDocument, problem: ArchitectureError) -> list[dict[str, Any]] | None:
    """Layers with 'same' padding along the branches into an Add or a Concatenate, if that helps.

    Each branch is followed up from the merge to where it starts (a layer whose output also feeds
    other layers, which is left alone); convolutions and poolings with 'valid' padding on the way
    get 'same'. Offered when the merge's inputs then agree in height and width: any problem left
    at the merge must have a fix of its own (an Add still needing a projection, say).
    """
    wire = problem_wire(document, problem)
    layers = document.layers()
    if wire is None or graph.spec_by_id(layers, wire.target).get("type") not in ("Add", "Concatenate"):
        return None
    fed = graph.consumers(layers)
    changed = copy.deepcopy(layers)
    by_id = {spec["id"]: spec for spec in changed}
    touched = 0
    for node in graph.inputs_of(by_id[wire.target]):
        while node != INPUT and node in by_id and len(fed.get(node, [])) == 1:
            spec = by_id[node]
            if spec.get("type") in WINDOWED and spec.get("padding", "valid") == "valid":
                spec["padding"] = "same"
                touched += 1
            inputs = graph.inputs_of(spec)
            if len(inputs) != 1:
                break
            node = inputs[0]
    if not touched:
        return None
    after = analyze({**document.architecture(), "layers": changed})
    for other in after.problems:
        at_merge = wire.target in (getattr(other, "target_id", None), getattr(other, "layer_id", None))
        if at_merge and not other.fix:
            return None
    return changed
