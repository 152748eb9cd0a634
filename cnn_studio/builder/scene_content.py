"""What the canvas shows for a document: each block's text and state, each wire's label and state.

Pure functions of the document, its analysis and its graph; the canvas turns them into items.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from cnn_studio.builder import describe, style
from cnn_studio.builder.blocks import BlockContent
from cnn_studio.document import ProjectDocument
from cnn_studio.graph import INPUT, OUTPUT, Wire, inputs_of, takes_many
from engine.architecture import Analysis, LayerInfo
from engine.errors import ArchitectureError
from engine.layers import LAYER_TYPES

SEVERITY_RANK = {"ok": 0, "unknown": 0, "warning": 1, "error": 2}


@dataclass(frozen=True)
class Marks:
    """Problem states: per block id and per wire (source, target); 'error' or 'warning'."""

    blocks: dict[str, str]
    wires: dict[tuple[str, str], str]


def all_problems(analysis: Analysis) -> tuple[ArchitectureError, ...]:
    """Errors and warnings alike (an analysis may keep its warnings apart)."""
    return tuple(analysis.problems) + tuple(getattr(analysis, "warnings", ()) or ())


def severity(problem: ArchitectureError) -> str:
    return "warning" if getattr(problem, "severity", "error") == "warning" else "error"


def problem_layer_id(problem: ArchitectureError, layers: list[dict[str, Any]]) -> str | None:
    """The id of the layer a problem is about (by id when the analysis names it, else by position)."""
    layer_id = getattr(problem, "layer_id", None)
    if layer_id:
        return layer_id
    index = problem.layer_index
    if index is not None and 0 < index <= len(layers):
        return layers[index - 1].get("id")
    return None


def problem_wire(problem: ArchitectureError) -> tuple[str, str] | None:
    source, target = getattr(problem, "source_id", None), getattr(problem, "target_id", None)
    return (source, target) if source and target else None


def problem_marks(analysis: Analysis, layers: list[dict[str, Any]]) -> Marks:
    blocks: dict[str, str] = {}
    wires: dict[tuple[str, str], str] = {}

    def mark(table: dict, key, level: str) -> None:
        if SEVERITY_RANK[level] > SEVERITY_RANK.get(table.get(key, "ok"), 0):
            table[key] = level

    for problem in all_problems(analysis):
        level = severity(problem)
        wire = problem_wire(problem)
        if wire is not None:
            mark(wires, wire, level)
        # The block too (a merge whose inputs do not match: its wire and the merge itself).
        layer_id = problem_layer_id(problem, layers)
        if layer_id:
            mark(blocks, layer_id, level)
    for info in analysis.layers:
        if info.error is not None and info.id:
            mark(blocks, info.id, severity(info.error))
    return Marks(blocks, wires)


def output_shapes(analysis: Analysis) -> dict[str, tuple[int, ...] | None]:
    """The shape each node hands on: the input's and every layer's output (None when unknown)."""
    shapes: dict[str, tuple[int, ...] | None] = {INPUT: analysis.input_shape}
    for info in analysis.layers:
        if info.id:
            shapes[info.id] = info.output_shape
    return shapes


def layer_warnings(analysis: Analysis, layers: list[dict[str, Any]]) -> dict[str, ArchitectureError]:
    """The analysis's warnings by the id of the layer each is about."""
    found: dict[str, ArchitectureError] = {}
    for warning in getattr(analysis, "warnings", ()) or ():
        layer_id = problem_layer_id(warning, layers)
        if layer_id and problem_wire(warning) is None:
            found.setdefault(layer_id, warning)
    return found


def layer_content(info: LayerInfo, spec: dict, state: str, input_shapes: list,
                  warning: ArchitectureError | None = None) -> BlockContent:
    """What a layer's block shows; ``warning``: the analysis's warning about it (its own error comes first)."""
    category = style.category_of(info.type)
    params = describe.format_params(info.params) if info.output_shape is not None and info.params else ""
    problem = info.error or warning
    if problem is not None and state in ("error", "warning"):
        settings = describe.problem_summary(problem)
    else:
        settings = describe.settings_text(spec)
    cls = LAYER_TYPES.get(info.type)
    lines = [f"<b>{info.type} {info.index}</b> — {info.name}"]
    if problem is not None:
        accent = style.WARNING_ACCENT if severity(problem) == "warning" else style.ERROR_ACCENT
        lines.append(f"<span style='color:{accent}'>{describe.problem_text(problem, info.name)}</span>")
    lines.append(f"Settings: {describe.settings_text(spec)}")
    if len(input_shapes) > 1:
        ins = ", ".join(describe.format_shape(s) for s in input_shapes)
        lines.append(f"In: {ins} &nbsp; Out: {describe.format_shape(info.output_shape)}")
    else:
        shape = input_shapes[0] if input_shapes else info.input_shape
        lines.append(f"In: {describe.format_shape(shape)} &nbsp; Out: {describe.format_shape(info.output_shape)}")
    if not info.trainable:
        lines.append("<b>Frozen</b>: training leaves its parameters as they are (untick Trainable in Properties "
                     "to train it)")
    if info.output_shape is not None:
        lines.append(f"Parameters: {info.trainable_params:,} trainable, {info.non_trainable_params:,} not; "
                     f"multiply-adds: {info.macs:,}")
    if state == "unknown":
        lines.append("<i>Shapes unknown until the problem above it is fixed.</i>")
    if cls is not None:
        lines.append(f"<small>{cls.description}</small>")
    if takes_many(spec):
        lines.append("<small>Drag from another block's output port onto this block to add an input.</small>")
    return BlockContent(
        key=spec.get("id") or f"layer-{info.index}", kind="layer", title=info.type, subtitle=info.name,
        settings=settings, params=params, category=category, state=state, tooltip="<br>".join(lines),
        many_inputs=takes_many(spec), input_count=len(inputs_of(spec)), badges=layer_badges(spec),
    )


def layer_badges(spec: dict) -> tuple[str, ...]:
    """Markers shown in a block's corner: a lock on a frozen layer ("trainable": false)."""
    return ("lock",) if spec.get("trainable") is False else ()


def input_content(document: ProjectDocument) -> BlockContent:
    shape = describe.format_shape(document.input_shape)
    return BlockContent(
        key=INPUT, kind="input", title="Input", subtitle=document.dataset_ref,
        settings=f"{shape} image", icon_name="input",
        tooltip=f"<b>Input</b>: one image of {shape} (height × width × channels), "
        f"from the dataset {document.dataset_ref}.<br><small>Drag from its output port to a block to "
        "feed it the image.</small>",
    )


def output_content(analysis: Analysis) -> BlockContent:
    out = analysis.output_shape
    if not analysis.ok:
        count = len(analysis.problems)
        text = f"{count} problem{'s' if count != 1 else ''} to fix"
        tip = "The network cannot run until the problems listed below are fixed."
        state = "unknown"
    elif len(out) == 1:
        text = f"{out[0]} scores (one per class)"
        tip = f"The network ends in a vector of {out[0]} values: a classifier needs one per class."
        state = "ok"
    else:
        text = f"{describe.format_shape(out)} feature map — add Flatten and Dense to classify"
        tip = "A classifier must end in a vector of class scores."
        state = "ok"
    tip += ("<br><small>The last layer feeds the output. Connect a layer that feeds nothing else to it "
            "to make that layer the network's output.</small>")
    return BlockContent(key=OUTPUT, kind="output", title="Output", settings=text, icon_name="output",
                        state=state, tooltip=tip)


def wire_label(shape: tuple[int, ...] | None) -> str:
    return describe.format_shape(shape)


def wire_tooltip(wire: Wire, shape, names: dict[str, str], problem: ArchitectureError | None,
                 many: bool) -> str:
    source = names.get(wire.source, wire.source)
    target = names.get(wire.target, wire.target)
    where = f"input {wire.slot + 1} of {target}" if many else target
    lines = [f"<b>{source}</b> → {where}"]
    if shape is None:
        lines.append("Shape unknown until the problem above it is fixed.")
    else:
        lines.append(f"Tensor shape per image: {describe.format_shape(shape)}")
    if problem is not None:
        colour = style.ERROR_ACCENT if severity(problem) == "error" else style.WARNING_ACCENT
        lines.append(f"<span style='color:{colour}'>{describe.problem_text(problem, target)}</span>")
    lines.append("<small>Click to select, Delete to disconnect; drop a layer here to insert it.</small>")
    return "<br>".join(lines)


def node_names(analysis: Analysis, layers: list[dict[str, Any]]) -> dict[str, str]:
    """How tooltips name each node: "Conv2D 3 (conv2d_2)", "Input", "Output"."""
    names = {INPUT: "Input", OUTPUT: "Output"}
    for info in analysis.layers:
        if info.id:
            names[info.id] = f"{info.type} {info.index} ({info.name})"
    return names


def wire_problems(analysis: Analysis) -> dict[tuple[str, str], ArchitectureError]:
    found: dict[tuple[str, str], ArchitectureError] = {}
    for problem in all_problems(analysis):
        wire = problem_wire(problem)
        if wire is not None and wire not in found:
            found[wire] = problem
    return found


def input_shapes_of(spec: dict, shapes: dict) -> list:
    return [shapes.get(source) for source in inputs_of(spec)]
