"""Wire paths on the canvas, following the layered layout's slots.

A wire leaves its source's output port straight down to the bottom of the source's rank, curves
through the empty band to its slot in the next rank, runs straight down through every rank it
crosses, and curves into the target's input port. Inside a rank a wire only ever runs in its own
slot and between ranks there are no blocks, so wires never pass through blocks. Wires into a
block that takes several inputs arrive side by side along its top edge.

A wire touching a block the user has moved by hand takes a direct curve instead.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from PySide6.QtCore import QPointF
from PySide6.QtGui import QPainterPath

from cnn_studio.builder.blocks import PORT_RADIUS, Block, arrival_spacing
from cnn_studio.builder.layout import Layout
from cnn_studio.graph import Wire

MIN_BEND = 30.0


def curve_to(path: QPainterPath, end: QPointF) -> None:
    """A vertical-tangent curve from the path's current point to ``end`` that stays between their heights."""
    start = path.currentPosition()
    bend = (end.y() - start.y()) / 2 if end.y() > start.y() else MIN_BEND + (start.y() - end.y()) / 2
    path.cubicTo(QPointF(start.x(), start.y() + bend), QPointF(end.x(), end.y() - bend), end)


def arrival_points(wires: Sequence[Wire], departures: dict[Wire, float], block: Block) -> dict[Wire, QPointF]:
    """Where each wire into ``block`` ends: the port's middle for one wire, side by side for several
    (ordered by where they come from, so they do not cross)."""
    port = block.input_port()
    top = QPointF(port.x(), port.y() - PORT_RADIUS)  # the arrowhead touches the port
    if len(wires) <= 1:
        return {wire: top for wire in wires}
    spacing = arrival_spacing(len(wires))
    ordered = sorted(wires, key=lambda w: (departures[w], w.slot))
    first = top.x() - spacing * (len(wires) - 1) / 2
    return {wire: QPointF(first + i * spacing, top.y()) for i, wire in enumerate(ordered)}


def route(wire: Wire, blocks: dict[str, Block], layout: Layout | None, end: QPointF,
          manual: Iterable[str]) -> tuple[QPainterPath, QPainterPath]:
    """The wire's path and its last curve (where its label goes)."""
    source = blocks[wire.source]
    start = source.output_port()
    manual = set(manual)
    slots = _slots(wire, layout) if layout is not None else None
    path = QPainterPath(start)
    if slots is None or wire.source in manual or wire.target in manual:
        curve_to(path, end)
        return path, path
    rank = layout.rank_of[wire.source]
    bottom = layout.ranks[rank].bottom
    if bottom > start.y():
        path.lineTo(QPointF(start.x(), bottom))
    for x in slots:
        rank += 1
        curve_to(path, QPointF(x, layout.ranks[rank].top))
        path.lineTo(QPointF(x, layout.ranks[rank].bottom))
    last = QPainterPath(path.currentPosition())
    curve_to(last, end)
    curve_to(path, end)
    return path, last


def departure_x(wire: Wire, blocks: dict[str, Block], layout: Layout | None, manual: Iterable[str]) -> float:
    """The x a wire comes down at just above its target (its last slot, or its source)."""
    slots = _slots(wire, layout) if layout is not None and wire.source not in manual else None
    if slots:
        return slots[-1]
    return blocks[wire.source].output_port().x()


def _slots(wire: Wire, layout: Layout) -> list[float] | None:
    """The wire's slot x in each rank it crosses, or None when the layout cannot route it downwards."""
    if wire.source not in layout.rank_of or wire.target not in layout.rank_of:
        return None
    span = layout.rank_of[wire.target] - layout.rank_of[wire.source]
    if span < 1:
        return None
    slots = layout.slots.get((wire.source, wire.target), [])
    return slots if len(slots) == span - 1 else None
