"""Wire paths on the canvas, following the layered layout's slots.

A wire leaves its source's output port straight down to the bottom of the source's rank, curves
through the empty band to its slot in the next rank, runs straight down through every rank it
crosses, and curves into the target's input port. Inside a rank a wire only ever runs in its own
slot and between ranks there are no blocks, so wires never pass through blocks. Wires into a
block that takes several inputs arrive side by side along its top edge.

A wire touching a block the user has moved by hand takes a direct curve instead, or, where that
curve would cross another block, a detour down a lane beside the blocks in its way.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from PySide6.QtCore import QPointF, QRectF
from PySide6.QtGui import QPainterPath

from cnn_studio.builder.blocks import PORT_RADIUS, Block, arrival_spacing
from cnn_studio.builder.layout import Layout
from cnn_studio.graph import Wire

MIN_BEND = 30.0
# A detour's lane keeps this far from the blocks it passes; a wire counts as crossing a block when
# it comes within CLEARANCE of it.
LANE_GAP = 24.0
CLEARANCE = 4.0
SAMPLES = 64


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
        return _direct(wire, blocks, start, end)
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


def _direct(wire: Wire, blocks: dict[str, Block], start: QPointF, end: QPointF) -> tuple[QPainterPath, QPainterPath]:
    """A direct curve from ``start`` to ``end``; where it would cross another block, a detour down a
    lane beside the blocks in the way (the nearer side first), when one is clear."""
    path = QPainterPath(start)
    curve_to(path, end)
    others = [block.rect_in_scene().adjusted(-CLEARANCE, -CLEARANCE, CLEARANCE, CLEARANCE)
              for key, block in blocks.items() if key not in (wire.source, wire.target)]
    hit = [rect for rect in others if _crosses(path, rect)]
    if not hit:
        return path, path
    top, bottom = min(start.y(), end.y()), max(start.y(), end.y())
    beside = [rect for rect in others if rect.bottom() > top - MIN_BEND and rect.top() < bottom + MIN_BEND]
    middle = (start.x() + end.x()) / 2
    # A wire going back up keeps a little further out, so that a block's wires in and out do not
    # share one lane.
    gap = LANE_GAP if end.y() >= start.y() else 1.5 * LANE_GAP
    lanes = {max(r.right() for r in hit) + gap, min(r.left() for r in hit) - gap,
             max(r.right() for r in beside) + gap, min(r.left() for r in beside) - gap}
    # Nearer lanes first (the right side on a tie for a wire going down, the left for one going up);
    # at each lane the wire turns in and out as gently as the blocks around its ends leave room for.
    side = -1 if end.y() >= start.y() else 1
    for lane in sorted(lanes, key=lambda x: (abs(x - middle), side * x)):
        for bend in (MIN_BEND, MIN_BEND / 2, MIN_BEND / 4):
            detour = QPainterPath(start)
            curve_to(detour, QPointF(lane, start.y() + bend))
            detour.lineTo(QPointF(lane, end.y() - bend))
            last = QPainterPath(detour.currentPosition())
            curve_to(last, end)
            curve_to(detour, end)
            if not any(_crosses(detour, rect) for rect in others):
                return detour, last
    return path, path


def _crosses(path: QPainterPath, rect: QRectF) -> bool:
    """Whether the (open) path passes through ``rect``, by points along it."""
    # (A straight vertical wire's control-point rectangle has no width, and an empty rectangle meets
    # nothing: widen it.)
    if not path.controlPointRect().adjusted(-1, -1, 1, 1).intersects(rect):
        return False
    return any(rect.contains(path.pointAtPercent(i / SAMPLES)) for i in range(SAMPLES + 1))


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
