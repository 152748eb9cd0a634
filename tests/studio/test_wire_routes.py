"""Wires to blocks moved by hand: routes around blocks packed too tightly for a lane beside them, back
up to blocks above their source, and never through a block (the wire's own two included)."""

from __future__ import annotations

import random

import pytest
from PySide6.QtCore import QPointF, QRectF
from PySide6.QtGui import QPainterPath

from cnn_studio.builder import wiring
from cnn_studio.builder.blocks import BLOCK_HEIGHT, BLOCK_WIDTH
from cnn_studio.graph import Wire


class PlacedBlock:
    """A block where the user left it: its rectangle and ports, as the router asks for them."""

    def __init__(self, left: float, top: float) -> None:
        self.rect = QRectF(left, top, BLOCK_WIDTH, BLOCK_HEIGHT)

    def rect_in_scene(self) -> QRectF:
        return self.rect

    def output_port(self) -> QPointF:
        return QPointF(self.rect.center().x(), self.rect.bottom())

    def input_port(self) -> QPointF:
        return QPointF(self.rect.center().x(), self.rect.top())


def route(blocks: dict[str, PlacedBlock], source: str, target: str) -> QPainterPath:
    wire = Wire(source, target)
    path, last = wiring.route(wire, blocks, None, blocks[target].input_port(), manual=[source])
    assert last.pointAtPercent(1.0) == blocks[target].input_port()  # the label's curve ends at the port
    return path


def points_along(path: QPainterPath, count: int = 800) -> list[QPointF]:
    return [path.pointAtPercent(i / count) for i in range(count + 1)]


def blocks_crossed(path: QPainterPath, blocks: dict[str, PlacedBlock], source: str, target: str) -> list[str]:
    """The blocks the path passes through: others anywhere, its own two away from their port edges."""
    crossed = []
    points = points_along(path)
    for key, block in blocks.items():
        rect = block.rect.adjusted(2, 2, -2, -2) if key in (source, target) else block.rect
        if any(rect.contains(point) for point in points):
            crossed.append(key)
    return crossed


def test_a_wire_with_no_room_to_turn_below_its_source_threads_the_gap_between_the_blocks_there():
    """Two blocks just below the source, on either side of its port, leave no room to turn towards a
    lane beside them, and a block beside the target leaves none to come in from the side: the wire
    goes straight down the gap between the two, across above the third, and down into its target."""
    low = 100 + BLOCK_HEIGHT + 4
    blocks = {"source": PlacedBlock(0, 100), "target": PlacedBlock(900, 320),
              "low left": PlacedBlock(132 - 28 - BLOCK_WIDTH, low), "low right": PlacedBlock(132 + 28, low),
              "beside the target": PlacedBlock(600, 300)}
    path = route(blocks, "source", "target")
    assert blocks_crossed(path, blocks, "source", "target") == []
    assert path.pointAtPercent(0) == blocks["source"].output_port()
    assert path.pointAtPercent(1) == blocks["target"].input_port()
    in_the_gap = [p for p in points_along(path) if 104 < p.x() < 160 and low < p.y() < low + BLOCK_HEIGHT]
    assert in_the_gap


def test_a_wire_up_to_a_block_above_goes_round_its_source_rather_than_through_it():
    blocks = {"source": PlacedBlock(0, 400), "target": PlacedBlock(0, 0), "aside": PlacedBlock(600, 200)}
    path = route(blocks, "source", "target")
    assert blocks_crossed(path, blocks, "source", "target") == []


def test_a_wire_up_that_dips_onto_a_block_below_its_source_is_routed_without_error():
    """Going back up, a wire first dips below its source; a block there, outside the band between the
    two ports, once left the router without a lane to try (an error on every redraw)."""
    blocks = {"source": PlacedBlock(0, 1000), "target": PlacedBlock(0, 0), "below": PlacedBlock(-100, 1120)}
    path = route(blocks, "source", "target")
    assert blocks_crossed(path, blocks, "source", "target") == []


@pytest.mark.parametrize("seed", range(3))
def test_wires_between_blocks_scattered_by_hand_cross_none_of_them(seed):
    rng = random.Random(seed)
    crossing = []
    for trial in range(60):
        blocks: dict[str, PlacedBlock] = {}
        for i in range(rng.randint(4, 12)):
            for _ in range(50):
                block = PlacedBlock(rng.uniform(0, 1100), rng.uniform(0, 900))
                if not any(block.rect.adjusted(-20, -20, 20, 20).intersects(b.rect) for b in blocks.values()):
                    blocks[f"b{i}"] = block
                    break
        if len(blocks) < 3:
            continue
        source, target = rng.sample(sorted(blocks), 2)
        crossed = blocks_crossed(route(blocks, source, target), blocks, source, target)
        if crossed:
            crossing.append((trial, source, target, crossed))
    assert crossing == []


def test_a_wire_across_a_packed_grid_of_blocks_threads_the_gaps():
    """Blocks 30 px apart in rows and columns, the wire from one corner of the grid to the other."""
    gap = 30.0
    blocks = {f"b{i}_{j}": PlacedBlock(i * (BLOCK_WIDTH + gap), j * (BLOCK_HEIGHT + gap))
              for i in range(5) for j in range(12)}
    path = route(blocks, "b0_0", "b4_11")
    assert blocks_crossed(path, blocks, "b0_0", "b4_11") == []
