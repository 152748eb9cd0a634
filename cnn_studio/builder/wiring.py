"""Wire paths on the canvas, following the layered layout's slots.

A wire leaves its source's output port straight down to the bottom of the source's rank, curves
through the empty band to its slot in the next rank, runs straight down through every rank it
crosses, and curves into the target's input port. Inside a rank a wire only ever runs in its own
slot and between ranks there are no blocks, so wires never pass through blocks. Wires into a
block that takes several inputs arrive side by side along its top edge.

A wire touching a block the user has moved by hand takes a direct curve instead, or, where that
curve would cross another block, a detour down a lane beside the blocks in its way; where no
such lane is clear (blocks packed around its ends), the shortest path with few turns through the
gaps between the blocks, found on a grid of lanes beside them.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Sequence

import numpy as np
from PySide6.QtCore import QPointF, QRectF
from PySide6.QtGui import QPainterPath

from cnn_studio.builder.blocks import PORT_RADIUS, Block, arrival_spacing
from cnn_studio.builder.layout import Layout
from cnn_studio.graph import Wire

Box = tuple[float, float, float, float]  # a rectangle as left, top, right, bottom

MIN_BEND = 30.0
# A detour's lane keeps this far from the blocks it passes; a wire counts as crossing a block when
# it comes within CLEARANCE of it.
LANE_GAP = 24.0
CLEARANCE = 4.0


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
    around = {key: block.rect_in_scene().adjusted(-CLEARANCE, -CLEARANCE, CLEARANCE, CLEARANCE)
              for key, block in blocks.items()}
    ends = (wire.source, wire.target)
    # The wire's own blocks are in its way too (a wire up to a block above its source must not run
    # back through the source), all but the edges its ports are on.
    others = [rect for key, rect in around.items() if key not in ends] + [
        blocks[key].rect_in_scene().adjusted(1, 1, -1, -1) for key in ends]
    hit = _hits(path, others)
    if not hit:
        return path, path
    top, bottom = min(start.y(), end.y()), max(start.y(), end.y())
    # (A wire going back up dips below its start and rises above its end: a block it hits there may
    # lie outside that band, and counts as beside it too.)
    beside = [rect for rect in others
              if rect in hit or (rect.bottom() > top - MIN_BEND and rect.top() < bottom + MIN_BEND)]
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
            if not _hits(detour, others):
                return detour, last
    routed = _through_gaps(start, end, others, [around[key] for key in ends])
    return routed if routed is not None else (path, path)


# A turn costs as much as this much more wire: of two routes about as long, the one with fewer turns.
TURN_COST = 60.0
# Corners of a route through the gaps are rounded with this radius (less where segments are short).
CORNER_RADIUS = 12.0


def _through_gaps(start: QPointF, end: QPointF, others: Sequence[QRectF],
                  ends: Sequence[QRectF]) -> tuple[QPainterPath, QPainterPath] | None:
    """A route of vertical and horizontal runs from ``start`` (leaving downwards) to ``end``
    (arriving downwards) that keeps clear of ``others`` and, once out of its port, of its own two
    blocks ``ends``, or None where the blocks leave no way.

    The runs follow lanes beside the blocks: columns left and right of each block and rows above
    and below it, LANE_GAP away where the gap between blocks allows, else in the gap's middle. A
    shortest-path search over that grid (each turn costing TURN_COST) picks the route."""
    boxes = [_box(r) for r in others]
    out_y = start.y() + _room(start, boxes, below=True)
    in_y = end.y() - _room(end, boxes, below=False)
    if (_blocked((start.x(), start.y()), (start.x(), out_y), boxes)
            or _blocked((end.x(), in_y), (end.x(), end.y()), boxes)):
        return None
    boxes += [_box(r) for r in ends]
    xs = sorted({start.x(), end.x(), *(b[0] - LANE_GAP for b in boxes), *(b[2] + LANE_GAP for b in boxes),
                 *_gap_middles([(b[0], b[2]) for b in boxes])})
    ys = sorted({out_y, in_y, *(b[1] - LANE_GAP for b in boxes), *(b[3] + LANE_GAP for b in boxes),
                 *_gap_middles([(b[1], b[3]) for b in boxes])})
    first, goal = (xs.index(start.x()), ys.index(out_y)), (xs.index(end.x()), ys.index(in_y))
    route = _search(xs, ys, boxes, first, goal)
    if route is None:
        return None
    points = _turns([start] + [QPointF(xs[i], ys[j]) for i, j in route] + [end])
    path = _rounded(points)
    last = QPainterPath(points[-2])
    last.lineTo(end)
    return path, last


def _box(rect: QRectF) -> Box:
    return rect.left(), rect.top(), rect.right(), rect.bottom()


def _room(port: QPointF, boxes: Sequence[Box], below: bool) -> float:
    """How far a wire runs straight out of (into) a port before it may turn: MIN_BEND / 2, or half
    the way to the nearest block below (above) the port."""
    room = MIN_BEND / 2
    for left, top, right, bottom in boxes:
        if left <= port.x() <= right:
            distance = top - port.y() if below else port.y() - bottom
            if distance > 0:
                room = min(room, distance / 2)
    return room


def _gap_middles(spans: Sequence[tuple[float, float]]) -> list[float]:
    """The middles of the gaps between neighbouring spans too narrow for two lanes."""
    middles = []
    for _, high in spans:
        above = [other_low for other_low, _ in spans if other_low >= high]
        if above and min(above) - high < 2 * LANE_GAP:
            middles.append((high + min(above)) / 2)
    return middles


def _blocked(a: tuple[float, float], b: tuple[float, float], boxes: Sequence[Box]) -> bool:
    """Whether the vertical or horizontal run from a to b passes through a box."""
    x0, x1 = sorted((a[0], b[0]))
    y0, y1 = sorted((a[1], b[1]))
    return any(x1 >= left and x0 <= right and y1 >= top and y0 <= bottom for left, top, right, bottom in boxes)


def _clear_runs(xs: Sequence[float], ys: Sequence[float],
                boxes: Sequence[Box]) -> tuple[np.ndarray, np.ndarray]:
    """Which runs between neighbouring grid points pass no box: along x, [j, i] for (i, j) to
    (i + 1, j); along y, [i, j] for (i, j) to (i, j + 1)."""
    x, y = np.asarray(xs), np.asarray(ys)
    left, top, right, bottom = (np.asarray(column)[None, None, :] for column in zip(*boxes))
    across_x = (y[:, None, None] >= top) & (y[:, None, None] <= bottom)
    along_x = ~(across_x & (x[None, 1:, None] >= left) & (x[None, :-1, None] <= right)).any(axis=2)
    across_y = (x[:, None, None] >= left) & (x[:, None, None] <= right)
    along_y = ~(across_y & (y[None, 1:, None] >= top) & (y[None, :-1, None] <= bottom)).any(axis=2)
    return along_x, along_y


def _search(xs: Sequence[float], ys: Sequence[float], boxes: Sequence[Box],
            first: tuple[int, int], goal: tuple[int, int]) -> list[tuple[int, int]] | None:
    """The grid points of the cheapest route from ``first`` to ``goal`` (both included), moving
    between neighbouring grid points along clear runs; None if there is none."""
    along_x, along_y = _clear_runs(xs, ys, boxes)

    def clear(i: int, j: int, ni: int, nj: int) -> bool:
        if nj == j:
            return bool(along_x[j, min(i, ni)])
        return bool(along_y[i, min(j, nj)])

    # A state is a grid point and the direction of the run that reached it (0: along x, 1: along
    # y); the route leaves ``first`` and reaches ``goal`` going down, along y.
    best = {(first, 1): 0.0}
    came: dict[tuple[tuple[int, int], int], tuple[tuple[int, int], int]] = {}
    queue = [(0.0, first, 1)]
    while queue:
        cost, point, direction = heapq.heappop(queue)
        if cost > best.get((point, direction), float("inf")):
            continue
        if point == goal and direction == 1:
            route, state = [point], (point, direction)
            while state in came:
                state = came[state]
                route.append(state[0])
            return route[::-1]
        i, j = point
        for ni, nj, step_direction in ((i + 1, j, 0), (i - 1, j, 0), (i, j + 1, 1), (i, j - 1, 1)):
            if not (0 <= ni < len(xs) and 0 <= nj < len(ys)) or not clear(i, j, ni, nj):
                continue
            step = abs(xs[ni] - xs[i]) + abs(ys[nj] - ys[j]) + (TURN_COST if step_direction != direction else 0.0)
            state = ((ni, nj), step_direction)
            if cost + step < best.get(state, float("inf")):
                best[state] = cost + step
                came[state] = (point, direction)
                heapq.heappush(queue, (cost + step, (ni, nj), step_direction))
    return None


def _turns(points: list[QPointF]) -> list[QPointF]:
    """The polyline's points without those where it runs straight on (its ends kept)."""
    kept = [points[0]]
    for point, following in zip(points[1:], points[2:]):
        previous = kept[-1]
        if (previous.x() == point.x() == following.x()) or (previous.y() == point.y() == following.y()):
            continue
        kept.append(point)
    kept.append(points[-1])
    return kept


def _rounded(points: Sequence[QPointF]) -> QPainterPath:
    """A polyline through ``points`` with its corners rounded."""
    path = QPainterPath(points[0])
    for previous, corner, following in zip(points, points[1:], points[2:]):
        into, out = corner - previous, following - corner
        length_in, length_out = abs(into.x()) + abs(into.y()), abs(out.x()) + abs(out.y())
        radius = min(CORNER_RADIUS, length_in / 2, length_out / 2)
        if radius <= 0:
            path.lineTo(corner)
            continue
        path.lineTo(corner - into * (radius / length_in))
        path.quadTo(corner, corner + out * (radius / length_out))
    path.lineTo(points[-1])
    return path


def _hits(path: QPainterPath, rects: Sequence[QRectF]) -> list[QRectF]:
    """The rects the (open) path passes through, the path taken as the straight pieces Qt flattens
    its curves into (finer where they bend)."""
    # (A straight vertical wire's control-point rectangle has no width, and an empty rectangle meets
    # nothing: widen it.)
    bounds = path.controlPointRect().adjusted(-1, -1, 1, 1)
    near = [rect for rect in rects if bounds.intersects(rect)]
    if not near:
        return []
    pieces = []
    for polygon in path.toSubpathPolygons():
        points = [(point.x(), point.y()) for point in polygon]
        pieces += zip(points, points[1:])
    return [rect for rect in near if any(_piece_meets(a, b, _box(rect)) for a, b in pieces)]


def _piece_meets(a: tuple[float, float], b: tuple[float, float], box: Box) -> bool:
    """Whether the straight piece from a to b meets the box (clipped against its sides in turn)."""
    left, top, right, bottom = box
    low, high = 0.0, 1.0
    dx, dy = b[0] - a[0], b[1] - a[1]
    for step, room in ((-dx, a[0] - left), (dx, right - a[0]), (-dy, a[1] - top), (dy, bottom - a[1])):
        if step == 0:
            if room < 0:
                return False
            continue
        t = room / step
        if step < 0:
            low = max(low, t)
        else:
            high = min(high, t)
        if low > high:
            return False
    return True


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
