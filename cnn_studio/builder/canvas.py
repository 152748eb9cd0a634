"""The architecture canvas: a node editor for the network graph.

Blocks have an input port (top) and an output port (bottom). Drag from an output port to a block
to connect them (or from an input port back to a source); click a wire to select it and press
Delete to disconnect it; drop a palette entry on a wire to insert it there (near a block: before
or after it; below everything: at the end); drag a block onto a wire (or just beside one) to move
it there, anywhere else to just place it (beside any block it would cover; Esc puts it back).
Up/Down walk the selection, Alt+Up/Down move a block along its path, Ctrl+wheel zooms, dragging the
background pans. Nothing of this scrolls the view by itself: what is under the pointer stays there.

A new or opened project, Actual Size and a Fit that cannot show everything start at the top of the
network (the input) with the main column in the middle; a network smaller than the view sits in
its middle.

The layout is automatic (``layout.layered_layout``) whenever the graph's structure changes; a
block placed by hand stays put until the structure changes or Tidy is chosen. Blocks are
addressed by layer id; blocks are reused across rebuilds, wires are redrawn.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from PySide6.QtCore import QEvent, QPoint, QPointF, QRectF, Qt, Signal
from PySide6.QtGui import QContextMenuEvent, QKeyEvent, QMouseEvent, QPainter, QPainterPath, QWheelEvent
from PySide6.QtWidgets import QApplication, QFrame, QGraphicsScene, QGraphicsView, QMenu, QWidget

from cnn_studio import graph
from cnn_studio.builder import composites, scene_content, style, wiring
from cnn_studio.builder.blocks import (
    BLOCK_HEIGHT,
    BLOCK_WIDTH,
    END_HEIGHT,
    PORT_RADIUS,
    Block,
    InsertionMarker,
    PendingWire,
    WireItem,
)
from cnn_studio.builder.editor import ArchitectureEditor, DropTarget
from cnn_studio.builder.layout import Layout, free_spot, layered_layout, main_path
from cnn_studio.builder.mime import block_id_from, composite_from, layer_type_from
from cnn_studio.document import ProjectDocument
from cnn_studio.graph import INPUT, OUTPUT, Wire
from engine.layers import CATEGORIES, LAYER_TYPES

MIN_ZOOM, MAX_ZOOM = 0.15, 2.5
MIN_AUTO_ZOOM = 0.75  # below this, the first view of a network makes text too small: scroll instead
PORT_HIT = 15.0  # scene distance from a port's centre that still counts as the port
PORT_HIT_SCREEN = 11.0  # ... and at least this many pixels on screen when zoomed out
SNAP_DISTANCE = 70.0  # a drop this close to a wire lands on it
MOVE_SNAP_SCREEN = 24.0  # a moved block released this many pixels from a wire still lands on it
BLOCK_GAP = 20.0  # the least room a block placed by hand keeps from the others
SCENE_MARGIN = 90.0

HINT_PORT_OUT = "Drag from this output port onto another block to connect them."
HINT_PORT_IN = "Drag from this input port onto the block that should feed it."


@dataclass
class _Gesture:
    kind: str  # "press", "connect", "move", "pan"
    start: QPoint
    key: str | None = None  # the pressed block, or the block whose port started a wire
    from_output: bool = True
    allowed: frozenset[str] = frozenset()
    target: str | None = None
    wire: Wire | None = None  # the wire a moved block would land on
    grab: QPointF | None = None  # where the block was grabbed, relative to its origin
    origin: QPointF | None = None  # where the pressed block was (a cancelled move puts it back there)
    was_manual: bool = False  # ... and whether it had been placed by hand
    moved: bool = False


class ArchitectureCanvas(QGraphicsView):
    """Signals: ``block_activated(str)`` on a double-click (the window focuses the inspector);
    ``hint(str)`` a line for the status bar ("" clears it) while the pointer explains a gesture."""

    block_activated = Signal(str)
    hint = Signal(str)

    def __init__(self, document: ProjectDocument, editor: ArchitectureEditor, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.document = document
        self.editor = editor
        self.selection = editor.selection
        self.setScene(QGraphicsScene(self))
        self.scene().setItemIndexMethod(QGraphicsScene.ItemIndexMethod.NoIndex)
        self.setRenderHints(QPainter.RenderHint.Antialiasing | QPainter.RenderHint.TextAntialiasing)
        self.setViewportUpdateMode(QGraphicsView.ViewportUpdateMode.SmartViewportUpdate)
        self.setAcceptDrops(True)
        self.setAlignment(Qt.AlignmentFlag.AlignCenter)  # a network smaller than the view sits in its middle
        self.setFrameShape(QFrame.Shape.NoFrame)
        self.setBackgroundBrush(Qt.GlobalColor.white)
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.setMouseTracking(True)
        self.setToolTip("")
        self.blocks: dict[str, Block] = {}
        self.order: list[str] = []
        self.edges: list[WireItem] = []
        self.input_block: Block | None = None
        self.output_block: Block | None = None
        self.layout_result: Layout | None = None
        self.marker = InsertionMarker()
        self.pending = PendingWire()
        self.selected_wire: Wire | None = None
        self._manual: dict[str, QPointF] = {}
        self._structure: tuple | None = None
        self._gesture: _Gesture | None = None
        self._drop_block: Block | None = None
        self._hint = ""
        self._heat: dict[str, tuple[float, str]] = {}  # layer id -> block colouring (the profiler's)
        self.auto_fit: str | None = "readable"  # None once the user zooms by hand; "all" after Fit
        # The view shows the top of the network and the user has not scrolled away: resizes and refits
        # keep it there.
        self._at_start = True
        self._selecting_here = False  # a click selects: no scrolling to the block under the pointer
        self.scene().addItem(self.marker)
        self.scene().addItem(self.pending)
        document.changed.connect(self.rebuild)
        document.settings_changed.connect(self.rebuild)
        document.project_replaced.connect(self._project_replaced)
        self.selection.changed.connect(self._show_selection)
        for bar in (self.horizontalScrollBar(), self.verticalScrollBar()):
            bar.actionTriggered.connect(self._left_start)  # the user scrolled (wheel, bar, keys)
        self.rebuild()

    # -- building the scene -------------------------------------------------------------------------------
    def rebuild(self) -> None:
        self._cancel_gesture()
        self._clear_drop_feedback()
        for block in self.blocks.values():
            block.set_hover_port(None)
        analysis = self.document.analysis()
        layers = self.document.layers()
        marks = scene_content.problem_marks(analysis, layers)
        shapes = scene_content.output_shapes(analysis)
        warnings = scene_content.layer_warnings(analysis, layers)
        contents = {INPUT: scene_content.input_content(self.document)}
        self.order = []
        for info, spec in zip(analysis.layers, layers):
            key = spec["id"]
            state = marks.blocks.get(key) or ("unknown" if info.output_shape is None else "ok")
            contents[key] = scene_content.layer_content(info, spec, state, scene_content.input_shapes_of(spec, shapes),
                                                        warnings.get(key))
            self.order.append(key)
        contents[OUTPUT] = scene_content.output_content(analysis)

        for key in [k for k in self.blocks if k not in contents]:
            self.scene().removeItem(self.blocks.pop(key))
        for key, content in contents.items():
            block = self.blocks.get(key)
            if block is None:
                block = Block(content)
                self.blocks[key] = block
                self.scene().addItem(block)
            elif block.content != content:
                block.set_content(content)
        self.input_block, self.output_block = self.blocks[INPUT], self.blocks[OUTPUT]
        for key, block in self.blocks.items():
            block.set_heat(self._heat.get(key))

        wires = graph.wires(layers) if layers else [Wire(INPUT, OUTPUT, 0)]
        structure = (tuple(self.order), tuple(wires), tuple(b.height() for b in self.blocks.values()))
        relayout = structure != self._structure
        if relayout:
            self._structure = structure
            self._manual = {}  # a new structure: lay everything out afresh
            self.layout_result = self._compute_layout(wires)
            self._place_blocks()
        self._build_wires(wires, analysis, layers, shapes, marks, relayout)
        # A settings edit moves nothing: neither may the view (it keeps what a free drag left on screen).
        self._update_scene_rect(keep_view=not relayout)
        if self.auto_fit:
            self._fit(self.auto_fit)
        # Blocks that moved keep the selected one in view; a settings edit moves nothing, nor the view.
        self._show_selection(self.selection.layer_id or "", scroll=relayout)
        if self.selected_wire not in {item.wire for item in self.edges}:
            self.selected_wire = None
        self._show_wire_selection()

    def _compute_layout(self, wires: list[Wire]) -> Layout:
        sizes = {key: (BLOCK_WIDTH, block.height()) for key, block in self.blocks.items()}
        edges = [(w.source, w.target) for w in wires]
        nodes = [INPUT, *self.order, OUTPUT]
        return layered_layout(sizes, edges, main_path(nodes, edges, OUTPUT))

    def _place_blocks(self) -> None:
        layout = self.layout_result
        for key, block in self.blocks.items():
            if key in self._manual:
                block.setPos(self._manual[key])
            elif layout is not None and key in layout.positions:
                x, y = layout.positions[key]
                block.setPos(x, y)

    def _build_wires(self, wires, analysis, layers, shapes, marks, relayout: bool) -> None:
        """Wire items for ``wires``: new ones when the structure changed, else the same ones updated
        (a settings edit only changes labels and states)."""
        names = scene_content.node_names(analysis, layers)
        problems = scene_content.wire_problems(analysis)
        many = {spec["id"] for spec in layers if graph.takes_many(spec)}
        if relayout or [item.wire for item in self.edges] != wires:
            for item in self.edges:
                self.scene().removeItem(item)
            self.edges = []
            for wire in wires:
                item = WireItem(wire, QPainterPath(), "", QPointF())
                self.scene().addItem(item)
                self.edges.append(item)
            relayout = True
        for item in self.edges:
            wire = item.wire
            shape = shapes.get(wire.source)
            state = marks.wires.get((wire.source, wire.target)) or ("ok" if shape is not None else "unknown")
            item.set_state(scene_content.wire_label(shape), state,
                           scene_content.wire_tooltip(wire, shape, names, problems.get((wire.source, wire.target)),
                                                      wire.target in many))
        if relayout:
            self._route_wires()

    def _route_wires(self, only: set[str] | None = None) -> None:
        """(Re)draw the wires (only those touching ``only``'s blocks when given)."""
        manual = set(self._manual)
        by_target: dict[str, list[WireItem]] = {}
        for item in self.edges:
            by_target.setdefault(item.wire.target, []).append(item)
        for target, items in by_target.items():
            if only is not None and target not in only and not any(i.wire.source in only for i in items):
                continue
            departures = {i.wire: wiring.departure_x(i.wire, self.blocks, self.layout_result, manual)
                          for i in items}
            ends = wiring.arrival_points([i.wire for i in items], departures, self.blocks[target])
            for item in items:
                path, last = wiring.route(item.wire, self.blocks, self.layout_result, ends[item.wire], manual)
                item.set_path(path, last.pointAtPercent(0.5))

    def _update_scene_rect(self, keep_view: bool = False) -> None:
        """The scene: every block and wire with a margin. With ``keep_view`` it also keeps the area shown
        now and the view does not move (a block dragged off the edge grows the scene under the pointer,
        instead of the view re-centring on the grown scene)."""
        rect = self._content_rect()
        if not keep_view:
            self.scene().setSceneRect(rect)
            return
        corner = self.mapToScene(QPoint(0, 0))
        kept = rect.united(self.mapToScene(self.viewport().rect()).boundingRect())
        self.scene().setSceneRect(kept)
        self._scroll_to(corner, QPoint(0, 0))
        # A scene no larger than the view cannot scroll: Qt centres it, and with a scroll bar shown along
        # the other side it centres it half that bar off. Shift the scene by what is left over.
        left_over = QPointF(self.mapFromScene(corner)) / max(self.zoom_level(), 1e-6)
        if not left_over.isNull():
            self.scene().setSceneRect(kept.translated(left_over).united(rect))
            self._scroll_to(corner, QPoint(0, 0))

    def _content_rect(self) -> QRectF:
        """Every block and wire, with a margin."""
        rect = QRectF()
        for block in self.blocks.values():
            rect = rect.united(block.rect_in_scene())
        for item in self.edges:
            rect = rect.united(item.path.boundingRect())
        return rect.adjusted(-SCENE_MARGIN, -30, SCENE_MARGIN, 30)

    def _scroll_to(self, scene_pos: QPointF, view_pos: QPoint) -> None:
        """Scroll so ``scene_pos`` is at ``view_pos`` of the viewport (as far as the scene allows)."""
        off = self.mapFromScene(scene_pos) - view_pos
        self.horizontalScrollBar().setValue(self.horizontalScrollBar().value() + off.x())
        self.verticalScrollBar().setValue(self.verticalScrollBar().value() + off.y())

    def set_heat(self, heat: dict[str, tuple[float, str]] | None) -> None:
        """Colour blocks by a measure (layer id -> (fraction 0..1, label)); None or {} removes the colouring."""
        self._heat = dict(heat or {})
        for key, block in self.blocks.items():
            block.set_heat(self._heat.get(key))

    @property
    def heat(self) -> dict[str, tuple[float, str]]:
        return dict(self._heat)

    # -- queries (tests and other views) --------------------------------------------------------------------
    def block(self, layer_id: str) -> Block:
        return self.blocks[layer_id]

    def wire_item(self, wire: Wire) -> WireItem:
        for item in self.edges:
            if item.wire == wire:
                return item
        raise KeyError(wire)

    def wires_between(self, source: str, target: str) -> list[WireItem]:
        return [item for item in self.edges if item.wire.source == source and item.wire.target == target]

    def block_at(self, view_pos: QPoint) -> Block | None:
        for item in self.items(view_pos):
            if isinstance(item, Block) and item.layer_id:
                return item
        return None

    def any_block_at(self, scene_pos: QPointF, margin: float = 0.0) -> Block | None:
        for block in self.blocks.values():
            if block.rect_in_scene().adjusted(-margin, -margin, margin, margin).contains(scene_pos):
                return block
        return None

    def wire_at(self, scene_pos: QPointF, exclude: str | None = None) -> WireItem | None:
        for item in self.scene().items(scene_pos):
            if isinstance(item, WireItem) and exclude not in (item.wire.source, item.wire.target):
                return item
        return None

    def port_at(self, scene_pos: QPointF) -> tuple[str, str] | None:
        """("out" or "in", block key) of the port under a scene point, nearest first.

        Zoomed out, a port reaches further than it is drawn (PORT_HIT_SCREEN pixels), but over a
        block's own body only a quarter of its height: the middle of a block always takes the press
        (select, drag), however small the blocks are drawn."""
        reach = max(PORT_HIT, PORT_HIT_SCREEN / max(self.zoom_level(), 1e-6))
        under = self.any_block_at(scene_pos)
        candidates = self.blocks if under is None else {under.key: under}
        if under is not None:
            reach = min(reach, under.height() / 4)
        best: tuple[float, str, str] | None = None
        for key, block in candidates.items():
            if block.has_output_port:
                d = _distance(block.output_port(), scene_pos)
                if d <= reach and (best is None or d < best[0]):
                    best = (d, "out", key)
            if block.has_input_port:
                port = block.input_port()
                half = block.input_port_width() / 2 - PORT_RADIUS
                dx = max(0.0, abs(scene_pos.x() - port.x()) - half)
                d = math.hypot(dx, scene_pos.y() - port.y())
                if d <= reach and (best is None or d < best[0]):
                    best = (d, "in", key)
        return (best[1], best[2]) if best else None

    def output_port_pos(self, key: str) -> QPoint:
        """The viewport point of a block's output port (tests press the mouse there)."""
        return self.mapFromScene(self.blocks[key].output_port())

    def input_port_pos(self, key: str) -> QPoint:
        return self.mapFromScene(self.blocks[key].input_port())

    def wire_center(self, wire: Wire) -> QPoint:
        """The viewport point of a wire's shape label: a click or a drop there hits the wire."""
        return self.mapFromScene(self.wire_item(wire).label_at)

    def gap_center(self, gap: int) -> QPoint:
        """Chain view: the point on the wire into layer ``gap`` (0-based), or into the output at the end."""
        if gap >= len(self.order):
            return self.wire_center(next(i.wire for i in self.edges if i.wire.target == OUTPUT))
        target = self.order[gap]
        return self.wire_center(next(i.wire for i in self.edges if i.wire.target == target))

    def block_center(self, layer_id: str) -> QPoint:
        block = self.blocks[layer_id]
        return self.mapFromScene(block.pos() + QPointF(0, block.height() / 2))

    def zoom_level(self) -> float:
        return self.transform().m11()

    # -- selection ----------------------------------------------------------------------------------------------
    def _show_selection(self, layer_id: str, scroll: bool = True) -> None:
        for key, block in self.blocks.items():
            block.set_selected(key == layer_id)
        if layer_id:
            self.select_wire(None)
        if scroll and not self._selecting_here and layer_id in self.blocks:
            self._ensure_visible(self.blocks[layer_id], 20, 40)

    def _select_here(self, layer_id: str | None) -> None:
        """Select the block under the pointer without scrolling: it is on screen already, and a scroll
        now would pull it from under the pointer (a drag starting there would jump)."""
        self._selecting_here = True
        try:
            self.selection.select(layer_id)
        finally:
            self._selecting_here = False

    def _ensure_visible(self, item, x_margin: int, y_margin: int) -> None:
        """``ensureVisible``; when that scrolls, the view no longer shows the start of the network."""
        before = (self.horizontalScrollBar().value(), self.verticalScrollBar().value())
        self.ensureVisible(item, x_margin, y_margin)
        if (self.horizontalScrollBar().value(), self.verticalScrollBar().value()) != before:
            self._left_start()

    def select_wire(self, wire: Wire | None) -> None:
        self.selected_wire = wire
        if wire is not None:
            self.selection.select(None)
        self._show_wire_selection()

    def show_wire(self, source: str, target: str) -> bool:
        """Select the wire from ``source`` into ``target`` and scroll it into view; False when there is none."""
        items = self.wires_between(source, target)
        if not items:
            return False
        self.select_wire(items[0].wire)
        self._ensure_visible(items[0], 40, 40)
        return True

    def _show_wire_selection(self) -> None:
        for item in self.edges:
            item.set_selected(item.wire == self.selected_wire)

    def _step_selection(self, delta: int) -> None:
        """Up/Down: the previous/next block, the Input block first (so the keyboard reaches it too)."""
        nodes = [INPUT, *self.order]
        current = INPUT if self.selection.input_selected else self.selection.layer_id
        if current in nodes:
            index = nodes.index(current) + delta
        else:
            index = 1 if delta > 0 else len(nodes) - 1  # nothing selected: the first or the last layer
        self.selection.select(nodes[max(0, min(index, len(nodes) - 1))])

    # -- hints ------------------------------------------------------------------------------------------------------
    def _say(self, text: str) -> None:
        if text != self._hint:
            self._hint = text
            self.hint.emit(text)

    # -- drag and drop from the palette (and of blocks) ---------------------------------------------------
    def _payload(self, mime) -> tuple[str, str] | None:
        type_name = layer_type_from(mime)
        if type_name is not None:
            return ("layer", type_name) if type_name in LAYER_TYPES else None
        key = composite_from(mime)
        if key is not None:
            return ("composite", key) if key in composites.COMPOSITES else None
        block_id = block_id_from(mime)
        if block_id is not None and block_id in self.order:
            return ("block", block_id)
        return None

    def drop_target(self, view_pos: QPoint, moving: str | None = None) -> DropTarget | None:
        """What a layer dropped at ``view_pos`` would be inserted on (``moving``: a block being moved)."""
        scene_pos = self.mapToScene(view_pos)
        item = self.wire_at(scene_pos, exclude=moving)
        if item is not None:
            return DropTarget("wire", wire=item.wire)
        block = self.any_block_at(scene_pos)
        if block is not None and block.key != moving:
            if block.key == INPUT:
                return DropTarget("after", node=INPUT)
            if block.key == OUTPUT:
                return DropTarget("wire", wire=self._output_wire())
            upper = scene_pos.y() < block.pos().y() + block.height() / 2
            if upper and not block.content.many_inputs:
                return DropTarget("before", node=block.key)
            return DropTarget("after", node=block.key)
        nearest = self._nearest_wire(scene_pos, exclude=moving)
        if nearest is not None:
            return DropTarget("wire", wire=nearest.wire)
        lowest = max(b.rect_in_scene().bottom() for b in self.blocks.values())
        if scene_pos.y() > lowest and moving is None:
            return DropTarget("wire", wire=self._output_wire())
        return None

    def _output_wire(self) -> Wire:
        return next(item.wire for item in self.edges if item.wire.target == OUTPUT)

    def _nearest_wire(self, scene_pos: QPointF, exclude: str | None, reach: float = SNAP_DISTANCE) -> WireItem | None:
        area = QRectF(scene_pos.x() - reach, scene_pos.y() - reach, 2 * reach, 2 * reach)
        best: tuple[float, WireItem] | None = None
        for item in self.scene().items(area):
            if not isinstance(item, WireItem) or exclude in (item.wire.source, item.wire.target):
                continue
            d = _path_distance(item.path, scene_pos)
            if d <= reach and (best is None or d < best[0]):
                best = (d, item)
        return best[1] if best else None

    def dragEnterEvent(self, event) -> None:  # noqa: N802 (Qt override)
        if self._payload(event.mimeData()) is None:
            event.ignore()
            return
        if self.document.locked:
            self.document.edit_refused.emit(self.document.lock_reason)
            event.ignore()
            return
        event.acceptProposedAction()
        self._show_drop_feedback(event.position().toPoint(), event.mimeData())

    def dragMoveEvent(self, event) -> None:  # noqa: N802 (Qt override)
        if self._payload(event.mimeData()) is None or self.document.locked:
            event.ignore()
            return
        if self._show_drop_feedback(event.position().toPoint(), event.mimeData()):
            event.acceptProposedAction()
        else:
            event.ignore()

    def dragLeaveEvent(self, event) -> None:  # noqa: N802 (Qt override)
        self._clear_drop_feedback()
        self._say("")
        event.accept()

    def dropEvent(self, event) -> None:  # noqa: N802 (Qt override)
        self._clear_drop_feedback()
        self._say("")
        payload = self._payload(event.mimeData())
        moving = payload[1] if payload and payload[0] == "block" else None
        target = self.drop_target(event.position().toPoint(), moving=moving) if payload else None
        done = False
        if payload is not None and target is not None:
            kind, value = payload
            if kind == "layer":
                done = self.editor.insert_at_target(value, target) is not None
            elif kind == "composite":
                done = self.editor.insert_composite(value, target) is not None
            elif target.kind == "wire":
                done = self.editor.move_onto_wire(value, target.wire)
            else:
                done = self.editor.move_next_to(value, target.kind, target.node)
        if done:
            self.setFocus(Qt.FocusReason.OtherFocusReason)
            event.acceptProposedAction()
        else:
            event.ignore()

    def _show_drop_feedback(self, view_pos: QPoint, mime=None, moving: str | None = None) -> bool:
        if mime is not None:
            payload = self._payload(mime)
            moving = payload[1] if payload and payload[0] == "block" else moving
        target = self.drop_target(view_pos, moving=moving)
        self._clear_drop_feedback()
        if target is None:
            self._say("Drop the layer on a wire (or just above or below a block) to insert it there.")
            return False
        self.marker.target = target
        if target.kind == "wire":
            item = self.wire_item(target.wire)
            item.set_highlighted(True)
            self.marker.setPos(item.label_at)
            self._say(f"Insert on the wire {self._wire_words(target.wire)}.")
        else:
            block = self.blocks[target.node]
            self._drop_block = block
            edge = "top" if target.kind == "before" else "bottom"
            block.set_drop_edge(edge)
            y = block.pos().y() + (-14 if edge == "top" else block.height() + 14)
            self.marker.setPos(block.pos().x(), y)
            where = "before" if target.kind == "before" else "after"
            self._say(f"Insert {where} {self._node_words(target.node)}.")
        self.marker.setVisible(True)
        return True

    def _clear_drop_feedback(self) -> None:
        self.marker.setVisible(False)
        self.marker.target = None
        for item in self.edges:
            item.set_highlighted(False)
        if self._drop_block is not None:
            self._drop_block.set_drop_edge(None)
            self._drop_block = None

    def _node_words(self, key: str) -> str:
        if key == INPUT:
            return "the input"
        if key == OUTPUT:
            return "the output"
        block = self.blocks.get(key)
        return block.content.subtitle if block else key  # the layer's name, as its block shows it

    def _wire_words(self, wire: Wire) -> str:
        return f"{self._node_words(wire.source)} → {self._node_words(wire.target)}"

    # -- mouse -------------------------------------------------------------------------------------------------
    def mousePressEvent(self, event: QMouseEvent) -> None:  # noqa: N802 (Qt override)
        # Focus first: an inspector field being typed in finishes its edit on the layer it belongs to.
        self.setFocus(Qt.FocusReason.MouseFocusReason)
        view_pos = event.position().toPoint()
        scene_pos = self.mapToScene(view_pos)
        if event.button() == Qt.MouseButton.MiddleButton:
            self._gesture = _Gesture("pan", view_pos)
            self.viewport().setCursor(Qt.CursorShape.ClosedHandCursor)
            event.accept()
            return
        if event.button() != Qt.MouseButton.LeftButton:
            event.accept()
            return
        port = self.port_at(scene_pos)
        if port is not None:
            self._start_connect(port, view_pos, scene_pos)
            event.accept()
            return
        block = self.any_block_at(scene_pos)
        if block is not None:
            # The Input block is selectable (Delete then says why it stays); the Output block is not.
            self._select_here(INPUT if block.key == INPUT else block.layer_id)
            if block.layer_id is None:
                self.select_wire(None)
            grab = scene_pos - block.pos()
            self._gesture = _Gesture("press", view_pos, key=block.key, grab=grab, origin=block.pos(),
                                     was_manual=block.key in self._manual)
            event.accept()
            return
        wire = self.wire_at(scene_pos)
        if wire is not None:
            self.select_wire(wire.wire)
            self._gesture = None
            event.accept()
            return
        self.selection.select(None)
        self.select_wire(None)
        self._gesture = _Gesture("press", view_pos)
        event.accept()

    def mouseMoveEvent(self, event: QMouseEvent) -> None:  # noqa: N802 (Qt override)
        view_pos = event.position().toPoint()
        scene_pos = self.mapToScene(view_pos)
        gesture = self._gesture
        if gesture is None or not event.buttons() & (Qt.MouseButton.LeftButton | Qt.MouseButton.MiddleButton):
            if gesture is not None:
                self._cancel_gesture()
            self._hover(scene_pos)
            super().mouseMoveEvent(event)
            return
        if gesture.kind == "press":
            if (view_pos - gesture.start).manhattanLength() < QApplication.startDragDistance():
                return
            if gesture.key is None:
                gesture.kind = "pan"
                self.viewport().setCursor(Qt.CursorShape.ClosedHandCursor)
            elif gesture.key in self.order:
                gesture.kind = "move"
                self._lift(self.blocks[gesture.key], True)
                self.viewport().setCursor(Qt.CursorShape.ClosedHandCursor)
            else:
                self._gesture = None
                return
        if gesture.kind == "pan":
            self._left_start()
            delta = view_pos - gesture.start
            gesture.start = view_pos
            self.horizontalScrollBar().setValue(self.horizontalScrollBar().value() - delta.x())
            self.verticalScrollBar().setValue(self.verticalScrollBar().value() - delta.y())
        elif gesture.kind == "connect":
            self._update_connect(scene_pos)
        elif gesture.kind == "move":
            self._update_move(view_pos, scene_pos)
        event.accept()

    def mouseReleaseEvent(self, event: QMouseEvent) -> None:  # noqa: N802 (Qt override)
        gesture, self._gesture = self._gesture, None
        self.viewport().unsetCursor()
        if gesture is None:
            super().mouseReleaseEvent(event)
            event.accept()  # a release after Escape cancelled the gesture: nothing left to do
            return
        if gesture.kind == "connect":
            self._finish_connect(gesture)
        elif gesture.kind == "move":
            self._finish_move(gesture)
        event.accept()

    def mouseDoubleClickEvent(self, event: QMouseEvent) -> None:  # noqa: N802 (Qt override)
        block = self.block_at(event.position().toPoint())
        if block is not None:
            self.block_activated.emit(block.layer_id)

    def leaveEvent(self, event) -> None:  # noqa: N802 (Qt override)
        for block in self.blocks.values():
            block.set_hover_port(None)
        if self._gesture is None:
            self._say("")
        super().leaveEvent(event)

    def _hover(self, scene_pos: QPointF) -> None:
        port = self.port_at(scene_pos)
        for key, block in self.blocks.items():
            block.set_hover_port(port[0] if port and port[1] == key else None)
        if port is not None:
            self.viewport().setCursor(Qt.CursorShape.CrossCursor)
            self._say(HINT_PORT_OUT if port[0] == "out" else HINT_PORT_IN)
        else:
            self.viewport().unsetCursor()
            self._say("")

    # -- connecting -----------------------------------------------------------------------------------------
    def _start_connect(self, port: tuple[str, str], view_pos: QPoint, scene_pos: QPointF) -> None:
        side, key = port
        if self.document.locked:
            self.document.edit_refused.emit(self.document.lock_reason)
            return
        layers = self.document.layers()
        if side == "out":
            allowed = graph.connectable_targets(layers, key)
        else:
            allowed = graph.connectable_sources(layers, key)
        self._gesture = _Gesture("connect", view_pos, key=key, from_output=side == "out",
                                 allowed=frozenset(allowed))
        for other, block in self.blocks.items():
            port_name = "in" if side == "out" else "out"
            if (port_name == "in" and not block.has_input_port) or (port_name == "out" and not block.has_output_port):
                continue
            if other == key:
                continue
            block.set_port_role(port_name, "candidate" if other in allowed else "blocked")
        for block in self.blocks.values():
            block.set_hover_port(None)
        self.pending.downward = side == "out"
        start = self.blocks[key].output_port() if side == "out" else self.blocks[key].input_port()
        self.pending.set_ends(start, scene_pos, False)
        self.pending.setVisible(True)
        self.viewport().setCursor(Qt.CursorShape.CrossCursor)
        self._say(f"Connecting {self._node_words(key)}: release over a block with a green port "
                  "(Esc cancels).")

    def _update_connect(self, scene_pos: QPointF) -> None:
        gesture = self._gesture
        block = self.any_block_at(scene_pos, margin=PORT_HIT)
        port = self.port_at(scene_pos)
        if port is not None:
            block = self.blocks[port[1]]
        target = block.key if block is not None and block.key != gesture.key else None
        port_name = "in" if gesture.from_output else "out"
        if gesture.target is not None and gesture.target != target:
            previous = self.blocks.get(gesture.target)
            if previous is not None:
                previous.set_port_role(port_name, "candidate" if gesture.target in gesture.allowed else "blocked")
        gesture.target = target
        valid = target in gesture.allowed
        end = scene_pos
        if target is not None and valid:
            self.blocks[target].set_port_role(port_name, "target")
            end = self.blocks[target].input_port() if gesture.from_output else self.blocks[target].output_port()
        start = (self.blocks[gesture.key].output_port() if gesture.from_output
                 else self.blocks[gesture.key].input_port())
        self.pending.set_ends(start, end, valid)
        if target is None:
            self._say(f"Connecting {self._node_words(gesture.key)}: release over a block with a green port "
                      "(Esc cancels).")
        elif valid:
            source, sink = (gesture.key, target) if gesture.from_output else (target, gesture.key)
            if sink == OUTPUT:
                self._say(f"Release to make {self._node_words(source)} the network's output.")
            else:
                self._say(f"Release to connect {self._node_words(source)} → {self._node_words(sink)}.")
        else:
            self._say(self._why_not(gesture, target))

    def _why_not(self, gesture: _Gesture, target: str) -> str:
        source, sink = (gesture.key, target) if gesture.from_output else (target, gesture.key)
        if sink == INPUT or source == OUTPUT:
            return "Wires run downwards: from an output port (bottom) to an input port (top)."
        try:
            graph.connect(self.document.layers(), source, sink)
        except graph.GraphEditError as problem:
            return f"Cannot connect: {problem}."
        return ""

    def _finish_connect(self, gesture: _Gesture) -> None:
        target = gesture.target
        self._end_connect_feedback()
        if target is None or target not in gesture.allowed:
            if target is not None:
                self._say(self._why_not(gesture, target))
            else:
                self._say("")
            return
        self._say("")
        source, sink = (gesture.key, target) if gesture.from_output else (target, gesture.key)
        self.editor.connect(source, sink)

    def _end_connect_feedback(self) -> None:
        self.pending.setVisible(False)
        for block in self.blocks.values():
            block.set_port_role("in", None)
            block.set_port_role("out", None)

    # -- moving blocks -------------------------------------------------------------------------------------------
    def _update_move(self, view_pos: QPoint, scene_pos: QPointF) -> None:
        gesture = self._gesture
        block = self.blocks[gesture.key]
        block.setPos(scene_pos - gesture.grab)
        gesture.moved = True
        self._manual[gesture.key] = block.pos()
        self._route_wires(only={gesture.key})
        for item in self.edges:
            item.set_highlighted(False)
        item = self._wire_for_move(scene_pos, gesture.key)
        gesture.wire = item.wire if item is not None and not self.document.locked else None
        self.marker.setVisible(gesture.wire is not None)
        if item is not None and gesture.wire is not None:
            item.set_highlighted(True)
            self.marker.setPos(item.label_at)  # above the block, which hides the wire under it
            self._say(f"Release to move {self._node_words(gesture.key)} onto the wire "
                      f"{self._wire_words(item.wire)}; elsewhere it just stays where you put it.")
        else:
            self._say("Drop the block on a wire to move it there in the network; elsewhere it just stays where "
                      "you put it, beside any block it would cover (Tidy lays everything out again).")

    def _wire_for_move(self, scene_pos: QPointF, key: str) -> WireItem | None:
        """The wire a block moved to ``scene_pos`` would land on: the one under the pointer, else the
        nearest within a few pixels on screen (a wire is thin; a release just beside it means it)."""
        item = self.wire_at(scene_pos, exclude=key)
        if item is None:
            item = self._nearest_wire(scene_pos, key, reach=MOVE_SNAP_SCREEN / max(self.zoom_level(), 1e-6))
        return item

    def _lift(self, block: Block, lifted: bool) -> None:
        """A moved block floats above the others, see-through: the wire it would land on shows under it."""
        block.setZValue(5 if lifted else 0)
        block.setOpacity(0.7 if lifted else 1.0)

    def _end_move_feedback(self, block: Block | None) -> None:
        if block is not None:
            self._lift(block, False)
        for item in self.edges:
            item.set_highlighted(False)
        self.marker.setVisible(False)

    def _put_back(self, gesture: _Gesture) -> None:
        """A cancelled move: the block goes back where it was."""
        block = self.blocks[gesture.key]
        if gesture.was_manual:
            self._manual[gesture.key] = gesture.origin
        else:
            self._manual.pop(gesture.key, None)
        block.setPos(gesture.origin)
        self._route_wires(only={gesture.key})

    def _finish_move(self, gesture: _Gesture) -> None:
        block = self.blocks.get(gesture.key)
        self._end_move_feedback(block)
        self._say("")
        if gesture.wire is not None:
            self._manual.pop(gesture.key, None)
            if not self.editor.move_onto_wire(gesture.key, gesture.wire):
                self.tidy_block(gesture.key)
            return
        if block is not None:
            self._settle(gesture.key)
        # The user arranges the view by hand now: later edits and resizes must not rescale or scroll it.
        self.auto_fit = None
        self._left_start()
        self._update_scene_rect(keep_view=True)

    def _settle(self, key: str) -> None:
        """A block placed by hand does not cover another: it moves the least way (sideways, up or down)
        to where it keeps BLOCK_GAP from every other block."""
        block = self.blocks[key]
        here = block.rect_in_scene()
        others = [(r.left(), r.top(), r.width(), r.height())
                  for r in (b.rect_in_scene() for k, b in self.blocks.items() if k != key)]
        left, top = free_spot((here.left(), here.top(), here.width(), here.height()), others, BLOCK_GAP)
        if (left, top) == (here.left(), here.top()):
            return
        block.setPos(block.pos() + QPointF(left - here.left(), top - here.top()))
        self._manual[key] = block.pos()
        self._route_wires(only={key})

    def tidy_block(self, key: str) -> None:
        self._manual.pop(key, None)
        self._place_blocks()
        self._route_wires()

    def tidy(self) -> None:
        """Forget blocks placed by hand and lay the whole network out again."""
        self._manual.clear()
        self._structure = None
        self.rebuild()

    @property
    def has_manual_positions(self) -> bool:
        return bool(self._manual)

    def _cancel_gesture(self) -> None:
        gesture, self._gesture = self._gesture, None
        if gesture is None:
            return
        if gesture.kind == "connect":
            self._end_connect_feedback()
        elif gesture.kind == "move" and gesture.key in self.blocks:
            self._end_move_feedback(self.blocks[gesture.key])
            self._put_back(gesture)
        self.viewport().unsetCursor()
        self._say("")

    # -- keyboard ----------------------------------------------------------------------------------------------
    def event(self, event) -> bool:
        # With a wire selected, Delete belongs to the canvas (the window's Delete removes blocks).
        if (event.type() == QEvent.Type.ShortcutOverride and self.selected_wire is not None
                and event.key() in (Qt.Key.Key_Delete, Qt.Key.Key_Backspace)):
            event.accept()
            return True
        return super().event(event)

    def keyPressEvent(self, event: QKeyEvent) -> None:  # noqa: N802 (Qt override)
        key, mods = event.key(), event.modifiers()
        alt = bool(mods & Qt.KeyboardModifier.AltModifier)
        if key in (Qt.Key.Key_Delete, Qt.Key.Key_Backspace):
            if self.selected_wire is not None:
                self.editor.disconnect(self.selected_wire)
            else:
                self.editor.remove()
        elif key == Qt.Key.Key_D and mods & Qt.KeyboardModifier.ControlModifier:
            self.editor.duplicate()
        elif key in (Qt.Key.Key_Up, Qt.Key.Key_Down):
            delta = -1 if key == Qt.Key.Key_Up else 1
            if alt:
                self.editor.move_by(delta)
            else:
                self._step_selection(delta)
        elif key == Qt.Key.Key_Escape:
            if self._gesture is not None:
                self._cancel_gesture()
            else:
                self.selection.select(None)
                self.select_wire(None)
        else:
            super().keyPressEvent(event)
            return
        event.accept()

    def wheelEvent(self, event: QWheelEvent) -> None:  # noqa: N802 (Qt override)
        if event.modifiers() & Qt.KeyboardModifier.ControlModifier:
            self.setTransformationAnchor(QGraphicsView.ViewportAnchor.AnchorUnderMouse)
            self.zoom(1.15 if event.angleDelta().y() > 0 else 1 / 1.15)
            self.setTransformationAnchor(QGraphicsView.ViewportAnchor.AnchorViewCenter)
            event.accept()
        else:
            super().wheelEvent(event)

    # -- context menus --------------------------------------------------------------------------------------------
    def contextMenuEvent(self, event) -> None:  # noqa: N802 (Qt override)
        scene_pos = self.mapToScene(event.pos())
        block = self.any_block_at(scene_pos)
        wire = self.wire_at(scene_pos)
        if event.reason() == QContextMenuEvent.Reason.Keyboard:
            # The menu key acts on what is selected, wherever the pointer is.
            selected = self.selection.layer_id
            block = self.blocks.get(selected) if selected else None
            wire = self.wire_item(self.selected_wire) if self.selected_wire is not None and block is None else None
        if block is not None and block.layer_id:
            menu = self.block_menu(block.layer_id)
        elif wire is not None:
            menu = self.wire_menu(wire.wire)
        else:
            menu = QMenu(self)
            menu.addAction("Tidy Layout", self.tidy)
            menu.addAction("Fit Network", self.fit_all)
        menu.exec(event.globalPos())

    def block_menu(self, layer_id: str) -> QMenu:
        """The context menu of a block (which it selects)."""
        menu = QMenu(self)
        menu.setToolTipsVisible(True)
        self._select_here(layer_id)
        locked = self.document.locked
        for text, slot in (("Duplicate", self.editor.duplicate), ("Move up", lambda: self.editor.move_by(-1)),
                           ("Move down", lambda: self.editor.move_by(1))):
            menu.addAction(text, slot).setEnabled(not locked)
        layers = self.document.layers()
        targets = graph.connectable_targets(layers, layer_id)
        connect = menu.addMenu("Connect Output To")
        connect.setToolTip("Wire this block's output to another block (the same as dragging from its output port)")
        for spec in layers:
            if spec["id"] in targets:
                connect.addAction(f"{self._node_words(spec['id'])} ({self.blocks[spec['id']].content.title})",
                                  lambda t=spec["id"]: self.editor.connect(layer_id, t))
        connect.setEnabled(not locked and bool(targets - {OUTPUT}))
        if OUTPUT in targets:
            action = menu.addAction("Make It the Network's Output", lambda: self.editor.connect(layer_id, OUTPUT))
            action.setEnabled(not locked)
        menu.addSeparator()
        menu.addAction("Delete", self.editor.remove).setEnabled(not locked)
        analysis = self.document.analysis()
        info = analysis.layers[self.document.index_of(layer_id)]
        offered = self.editor.fixes(info.error) if info.error is not None else []
        if offered:
            menu.addSeparator()
        for fix in offered:
            menu.addAction(f"Fix: {fix.label}",
                           lambda f=fix: self.editor.apply_fix(info.error, fix=f)).setEnabled(not locked)
        return menu

    def wire_menu(self, wire: Wire) -> QMenu:
        """The context menu of a wire (which it selects)."""
        menu = QMenu(self)
        menu.setToolTipsVisible(True)
        self.select_wire(wire)
        locked = self.document.locked
        insert = menu.addMenu("Insert Layer Here")
        for category in CATEGORIES:
            sub = insert.addMenu(style.category_icon(category), category)
            for type_name, cls in LAYER_TYPES.items():
                if cls.category == category:
                    sub.addAction(type_name, lambda t=type_name: self.editor.insert_at_target(
                        t, DropTarget("wire", wire=wire)))
        blocks = menu.addMenu("Insert Block Here")
        for key, composite in composites.COMPOSITES.items():
            blocks.addAction(composite.title, lambda k=key: self.editor.insert_composite(
                k, DropTarget("wire", wire=wire)))
        insert.setEnabled(not locked)
        blocks.setEnabled(not locked)
        menu.addSeparator()
        action = menu.addAction("Disconnect", lambda: self.editor.disconnect(wire))
        action.setEnabled(not locked and wire.target != OUTPUT)
        return menu

    # -- zoom -------------------------------------------------------------------------------------------------
    def zoom(self, factor: float) -> None:
        self.auto_fit = None
        self._left_start()
        current = self.zoom_level()
        factor = max(MIN_ZOOM / current, min(MAX_ZOOM / current, factor))
        self.scale(factor, factor)

    def reset_zoom(self) -> None:
        """Actual Size: 100%, showing the top of the network with its main column in the middle."""
        self.auto_fit = None
        self.resetTransform()
        self.show_start()

    def fit_all(self) -> None:
        """Scale so the whole network is visible (never above 100%); keep fitting on resize and edits."""
        self._at_start = True  # where even the least zoom cannot show it all: from its top
        self._fit("all")

    def show_start(self) -> None:
        """Scroll to the top of the network (the input) with the main column (x = 0) in the middle, as
        far as the scene reaches; keep it there as the view is resized until the user scrolls away."""
        self._at_start = True
        top = self.scene().sceneRect().top()
        self.centerOn(QPointF(0.0, top + self.viewport().height() / 2 / max(self.zoom_level(), 1e-6)))

    def _left_start(self, *_action: object) -> None:
        """The user scrolled, zoomed or dragged: resizes and refits keep the view where it is now."""
        self._at_start = False

    def _project_replaced(self) -> None:
        """New, Open or a template: laid out afresh, from the top of the network, readable (or fitted
        whole when the user chose Fit)."""
        self.auto_fit = self.auto_fit or "readable"
        self._at_start = True
        self.tidy()
        self.show_start()

    def _fit(self, mode: str) -> None:
        self.auto_fit = mode
        rect = self._content_rect()  # the network, not the empty room a free drag left in the scene
        view = self.viewport().rect()
        if rect.isEmpty() or view.isEmpty():
            return
        factor = min(view.width() / rect.width(), view.height() / rect.height(), 1.0)
        # The first view keeps text readable: a long network scrolls instead of shrinking.
        factor = max(factor, MIN_AUTO_ZOOM if mode == "readable" else MIN_ZOOM)
        self.resetTransform()
        self.scale(factor, factor)
        if self._at_start:
            self.show_start()
        elif rect.width() * factor > view.width():
            # Too wide to fit: start with the main path (x = 0) in the middle.
            middle = self.mapToScene(self.viewport().rect().center())
            self.centerOn(QPointF(0.0, middle.y()))

    def resizeEvent(self, event) -> None:  # noqa: N802 (Qt override)
        super().resizeEvent(event)
        if self.auto_fit:
            self._fit(self.auto_fit)
        elif self._at_start:
            self.show_start()


def _distance(a: QPointF, b: QPointF) -> float:
    return math.hypot(a.x() - b.x(), a.y() - b.y())


def _path_distance(path: QPainterPath, point: QPointF) -> float:
    samples = max(48, int(path.length() / 4))  # a point every few pixels, however long the wire
    return min(_distance(path.pointAtPercent(i / samples), point) for i in range(samples + 1))


__all__ = ["ArchitectureCanvas", "BLOCK_HEIGHT", "BLOCK_WIDTH", "END_HEIGHT", "DropTarget"]
