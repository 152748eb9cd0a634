"""Automatic layered layout of the network graph: top to bottom, parallel branches side by side.

The Sugiyama steps come from grandalf (ranks by longest path, a dummy point on every rank a wire
crosses, crossing reduction by barycentres). The horizontal placement is our own short priority
pass, because networks read best with their main path as one straight column: the longest path
from the input to the output (first inputs win ties) is pinned at x = 0, wires spanning several
ranks are kept straight next, and every other block moves towards its neighbours without
overlapping the ones already placed.

All blocks of a rank share its top edge; a wire crosses a rank only at its own dummy slot, and
between ranks it stays in the empty band, so no wire passes through a block.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from grandalf.graphs import Edge, Graph, Vertex
from grandalf.layouts import SugiyamaLayout

X_SPACE = 44.0  # between neighbouring blocks of a rank
WIRE_SPACE = 20.0  # beside a wire's slot in a rank
WIRE_WIDTH = 12.0  # the width a wire takes in a rank it crosses
RANK_GAP = 62.0  # between ranks: room for the curves and the shape labels
COMPONENT_GAP = 120.0
ORDERING_ROUNDS = 4
PLACEMENT_SWEEPS = 4

Box = tuple[float, float, float, float]  # left, top, width, height


@dataclass(frozen=True)
class Rank:
    top: float
    bottom: float


@dataclass
class Layout:
    """Block centres (x) and tops (y); each wire's slots in the ranks it crosses; every rank's band."""

    positions: dict[str, tuple[float, float]] = field(default_factory=dict)
    rank_of: dict[str, int] = field(default_factory=dict)
    ranks: list[Rank] = field(default_factory=list)
    # (source, target) -> x of the wire's slot in each rank strictly between theirs, top to bottom
    slots: dict[tuple[str, str], list[float]] = field(default_factory=dict)


class _View:
    """What grandalf reads and writes on each vertex."""

    def __init__(self, w: float, h: float) -> None:
        self.w, self.h, self.xy = w, h, None


def main_path(nodes: Sequence[str], edges: Sequence[tuple[str, str]], end: str | None) -> list[str]:
    """The longest path (in blocks) that ends at ``end``; at a tie the earlier input wins.

    ``nodes`` must be in a topological order and ``edges`` list each target's inputs in slot order.
    """
    inputs: dict[str, list[str]] = {n: [] for n in nodes}
    for source, target in edges:
        if source in inputs and target in inputs:
            inputs[target].append(source)
    length: dict[str, int] = {}
    best: dict[str, str | None] = {}
    for node in nodes:
        candidates = [s for s in inputs[node] if s in length]
        chosen = max(candidates, key=lambda s: length[s], default=None)  # max keeps the first of equals
        best[node] = chosen
        length[node] = 1 + (length[chosen] if chosen is not None else 0)
    path = []
    node = end if end in length else None
    while node is not None:
        path.append(node)
        node = best[node]
    return path[::-1]


def layered_layout(nodes: dict[str, tuple[float, float]], edges: Sequence[tuple[str, str]],
                   spine: Sequence[str] = ()) -> Layout:
    """Lay out ``nodes`` (id -> (width, height)) joined by ``edges`` (source, target).

    ``spine`` is the path kept straight at x = 0 (see ``main_path``). Nodes of separate
    components are laid out side by side.
    """
    layout = Layout()
    if not nodes:
        return layout
    vertices = {node: Vertex(node) for node in nodes}
    for node, vertex in vertices.items():
        vertex.view = _View(*nodes[node])
    seen: set[tuple[str, str]] = set()
    graph_edges = []
    for source, target in edges:
        if (source, target) in seen or source == target or source not in vertices or target not in vertices:
            continue
        seen.add((source, target))
        graph_edges.append(Edge(vertices[source], vertices[target]))
    graph = Graph(list(vertices.values()), graph_edges)
    spine_set = set(spine)
    offset = 0.0
    band_tops: list[float] = []
    band_bottoms: list[float] = []
    for component in sorted(graph.C, key=lambda c: -len(c.sV)):
        placed = _layout_component(component, spine_set)
        left = min(x - nodes[n][0] / 2 for n, (x, _) in placed.xs.items()) if placed.xs else 0.0
        right = max(x + nodes[n][0] / 2 for n, (x, _) in placed.xs.items()) if placed.xs else 0.0
        shift = 0.0 if offset == 0.0 else offset - left
        for node, (x, rank) in placed.xs.items():
            layout.positions[node] = (x + shift, 0.0)
            layout.rank_of[node] = rank
        for key, xs in placed.slots.items():
            layout.slots[key] = [x + shift for x in xs]
        offset = right + shift + COMPONENT_GAP
        while len(band_bottoms) < placed.rank_count:
            band_bottoms.append(0.0)
        for node, (_, rank) in placed.xs.items():
            band_bottoms[rank] = max(band_bottoms[rank], nodes[node][1])
    top = 0.0
    for height in band_bottoms:
        band_tops.append(top)
        top += height + RANK_GAP
    layout.ranks = [Rank(t, t + h) for t, h in zip(band_tops, band_bottoms)]
    for node, (x, _) in list(layout.positions.items()):
        layout.positions[node] = (x, band_tops[layout.rank_of[node]])
    return layout


@dataclass
class _Placed:
    xs: dict[str, tuple[float, int]]
    slots: dict[tuple[str, str], list[float]]
    rank_count: int


def _layout_component(component, spine: set[str]) -> _Placed:
    sugiyama = SugiyamaLayout(component)
    sugiyama.dw, sugiyama.dh = WIRE_WIDTH, 0.0  # the size grandalf gives its dummy vertices
    sugiyama.init_all()
    for _ in range(ORDERING_ROUNDS):
        for _step in sugiyama.ordering_step():
            pass
    ranks = [list(layer) for layer in sugiyama.layers]
    x = _place(ranks, sugiyama, spine)
    _straighten_wires(ranks, x, sugiyama)
    xs = {v.data: (x[v], sugiyama.grx[v].rank) for layer in ranks for v in layer if not _is_dummy(sugiyama, v)}
    slots = {}
    for edge, ctrl in sugiyama.ctrls.items():
        source, target = edge.v[0].data, edge.v[1].data
        between = sorted(r for r, v in ctrl.items() if _is_dummy(sugiyama, v))
        slots[(source, target)] = [x[ctrl[r]] for r in between]
    return _Placed(xs, slots, len(ranks))


def _is_dummy(sugiyama: SugiyamaLayout, vertex) -> bool:
    return bool(sugiyama.grx[vertex].dummy)


def _width(sugiyama: SugiyamaLayout, vertex) -> float:
    return WIRE_WIDTH if _is_dummy(sugiyama, vertex) else vertex.view.w


def _gap(sugiyama: SugiyamaLayout, a, b) -> float:
    """The least distance between the centres of neighbours ``a`` (left) and ``b`` in a rank."""
    space = WIRE_SPACE if _is_dummy(sugiyama, a) or _is_dummy(sugiyama, b) else X_SPACE
    return (_width(sugiyama, a) + _width(sugiyama, b)) / 2 + space


def _neighbours(sugiyama: SugiyamaLayout, vertex, direction: int) -> list:
    """Vertices in the rank above (direction -1) or below (+1) joined to ``vertex`` (dummies included)."""
    rank = sugiyama.grx[vertex].rank
    found = []
    if _is_dummy(sugiyama, vertex):
        ctrl = vertex.ctrl
        other = ctrl.get(rank + direction)
        return [other] if other is not None else []
    edges = vertex.e_in() if direction < 0 else vertex.e_out()
    for edge in edges:
        other = edge.v[0] if direction < 0 else edge.v[1]
        ctrl = sugiyama.ctrls.get(edge)
        if ctrl is not None and rank + direction in ctrl:
            other = ctrl[rank + direction]
        if sugiyama.grx[other].rank == rank + direction:
            found.append(other)
    return found


def _place(ranks: list[list], sugiyama: SugiyamaLayout, spine: set[str]) -> dict:
    """Horizontal centres: the priority method, with the main path pinned at 0."""
    x: dict = {}
    for layer in ranks:
        pos = 0.0
        for i, v in enumerate(layer):
            if i:
                pos += _gap(sugiyama, layer[i - 1], v)
            x[v] = pos
        pinned = [v for v in layer if not _is_dummy(sugiyama, v) and v.data in spine]
        shift = x[pinned[0]] if pinned else (x[layer[0]] + x[layer[-1]]) / 2
        for v in layer:
            x[v] -= shift

    def priority(v) -> float:
        if not _is_dummy(sugiyama, v) and v.data in spine:
            return 1e9
        if _is_dummy(sugiyama, v):
            return 1e6
        return len(v.e_in()) + len(v.e_out())

    order = list(range(1, len(ranks))), list(range(len(ranks) - 2, -1, -1))
    for _ in range(PLACEMENT_SWEEPS):
        for direction, sweep in ((-1, order[0]), (1, order[1])):
            for r in sweep:
                _place_rank(ranks[r], x, sugiyama, spine, direction, priority)
    return x


def _straighten_wires(ranks: list[list], x: dict, sugiyama: SugiyamaLayout) -> None:
    """Run each long wire straight down from its source where its neighbours in the ranks leave room.

    A wire's slots may move within the room their rank neighbours leave; the one x inside every
    slot's room that is closest to the source's x is taken, when there is one.
    """
    where = {v: (r, i) for r, layer in enumerate(ranks) for i, v in enumerate(layer)}
    for ctrl in sugiyama.ctrls.values():
        dummies = [v for _, v in sorted(ctrl.items()) if _is_dummy(sugiyama, v)]
        if not dummies:
            continue
        low, high = float("-inf"), float("inf")
        for v in dummies:
            r, i = where[v]
            layer = ranks[r]
            if i > 0:
                low = max(low, x[layer[i - 1]] + _gap(sugiyama, layer[i - 1], v))
            if i + 1 < len(layer):
                high = min(high, x[layer[i + 1]] - _gap(sugiyama, v, layer[i + 1]))
        if low > high:
            continue
        source = ctrl[min(ctrl)]
        straight = min(max(x[source], low), high)
        for v in dummies:
            x[v] = straight


def _place_rank(layer: list, x: dict, sugiyama: SugiyamaLayout, spine: set[str], direction: int,
                priority) -> None:
    fixed = [False] * len(layer)
    for i in sorted(range(len(layer)), key=lambda i: -priority(layer[i])):
        v = layer[i]
        if not _is_dummy(sugiyama, v) and v.data in spine:
            target = 0.0
        else:
            near = _neighbours(sugiyama, v, direction)
            if not near:
                fixed[i] = True
                continue
            target = sum(x[n] for n in near) / len(near)
        if target > x[v]:
            limit = float("inf")
            need = 0.0
            for j in range(i + 1, len(layer)):
                need += _gap(sugiyama, layer[j - 1], layer[j])
                if fixed[j]:
                    limit = x[layer[j]] - need
                    break
            x[v] = max(x[v], min(target, limit))
            for j in range(i + 1, len(layer)):
                if fixed[j]:
                    break
                x[layer[j]] = max(x[layer[j]], x[layer[j - 1]] + _gap(sugiyama, layer[j - 1], layer[j]))
        elif target < x[v]:
            limit = float("-inf")
            need = 0.0
            for j in range(i - 1, -1, -1):
                need += _gap(sugiyama, layer[j], layer[j + 1])
                if fixed[j]:
                    limit = x[layer[j]] + need
                    break
            x[v] = min(x[v], max(target, limit))
            for j in range(i - 1, -1, -1):
                if fixed[j]:
                    break
                x[layer[j]] = min(x[layer[j]], x[layer[j + 1]] - _gap(sugiyama, layer[j], layer[j + 1]))
        fixed[i] = True


def free_spot(box: Box, others: Sequence[Box], gap: float) -> tuple[float, float]:
    """The top-left corner nearest to ``box``'s own where it keeps ``gap`` from every box in ``others``.

    A block placed by hand must not cover another, but should stay as close as it can to where it was
    put: it stays, or moves straight sideways or straight up or down just past the boxes in its way.
    Up or down counts double (between ranks run the wires): a block steps aside unless a short hop up
    or down clears it. Far enough to the side every box is passed, so there always is such a place.
    """
    left, top, width, height = box

    def clear(x: float, y: float) -> bool:
        room = gap - 1e-6  # computed edges land exactly on the gap: rounding must not count as a clash
        return all(x + width + room <= ox or ox + ow + room <= x or y + height + room <= oy or oy + oh + room <= y
                   for ox, oy, ow, oh in others)

    xs = [left] + [ox - gap - width for ox, _, _, _ in others] + [ox + ow + gap for ox, _, ow, _ in others]
    ys = [oy - gap - height for _, oy, _, _ in others] + [oy + oh + gap for _, oy, _, oh in others]
    candidates = [(x, top) for x in xs] + [(left, y) for y in ys]
    return min((c for c in candidates if clear(*c)), key=lambda c: abs(c[0] - left) + 2 * abs(c[1] - top))
