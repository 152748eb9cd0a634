"""The architecture canvas: the network as a vertical chain of blocks from input to output.

Drop a palette entry to insert a layer where it lands (a marker shows the spot); drag a block to
move it; Delete removes the selected block; Up/Down walk the selection; Alt+Up/Down move it.
Blocks are addressed by layer id; the scene is rebuilt from the document after every change.
"""

from __future__ import annotations

from PySide6.QtCore import QPoint, QPointF, Qt, Signal
from PySide6.QtGui import QDrag, QKeyEvent, QMouseEvent, QPainter, QPixmap, QWheelEvent
from PySide6.QtWidgets import QApplication, QFrame, QGraphicsScene, QGraphicsView, QMenu, QWidget

from cnn_studio.builder import describe, style
from cnn_studio.builder.blocks import BLOCK_HEIGHT, Block, BlockContent, Edge, InsertionMarker
from cnn_studio.builder.editor import ArchitectureEditor
from cnn_studio.builder.mime import block_id_from, block_mime, layer_type_from
from cnn_studio.document import ProjectDocument
from engine.architecture import Analysis, LayerInfo
from engine.layers import LAYER_TYPES

GAP = 36.0  # vertical space between blocks, where the shape labels sit
MIN_ZOOM, MAX_ZOOM = 0.4, 2.5
MIN_AUTO_ZOOM = 0.75  # below this, fitting makes text too small: scroll instead


def layer_content(info: LayerInfo, spec: dict, upstream_failed: bool) -> BlockContent:
    category = style.category_of(info.type)
    params = describe.format_params(info.params) if info.output_shape is not None else ""
    if info.error is not None:
        state, settings = "error", describe.problem_summary(info.error)
    else:
        state, settings = ("unknown" if upstream_failed else "ok"), describe.settings_text(spec)
    cls = LAYER_TYPES.get(info.type)
    lines = [f"<b>{info.type} {info.index}</b> — {info.name}"]
    if info.error is not None:
        lines.append(f"<span style='color:{style.ERROR_ACCENT}'>{describe.problem_text(info.error)}</span>")
    lines.append(f"Settings: {describe.settings_text(spec)}")
    shapes = f"In: {describe.format_shape(info.input_shape)} &nbsp; Out: {describe.format_shape(info.output_shape)}"
    lines.append(shapes)
    if info.output_shape is not None:
        lines.append(f"Parameters: {info.trainable_params:,} trainable, {info.non_trainable_params:,} not; "
                     f"multiply-adds: {info.macs:,}")
    if upstream_failed and info.error is None:
        lines.append("<i>Shapes unknown until the problem above is fixed.</i>")
    if cls is not None:
        lines.append(f"<small>{cls.description}</small>")
    return BlockContent(
        key=spec.get("id") or f"layer-{info.index}", kind="layer", title=info.type, subtitle=info.name,
        settings=settings, params=params, category=category, state=state, tooltip="<br>".join(lines),
    )


def input_content(analysis: Analysis, document: ProjectDocument) -> BlockContent:
    shape = describe.format_shape(document.input_shape)
    return BlockContent(
        key="__input__", kind="input", title="Input", subtitle=document.dataset_ref,
        settings=f"{shape} image", icon_name="input",
        tooltip=f"<b>Input</b>: one image of {shape} (height × width × channels), "
        f"from the dataset {document.dataset_ref}.",
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
    return BlockContent(key="__output__", kind="output", title="Output", settings=text, icon_name="output",
                        state=state, tooltip=tip)


class ArchitectureCanvas(QGraphicsView):
    """Signals: ``block_activated(str)`` on a double-click (the window focuses the inspector)."""

    block_activated = Signal(str)

    def __init__(self, document: ProjectDocument, editor: ArchitectureEditor, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.document = document
        self.editor = editor
        self.selection = editor.selection
        self.setScene(QGraphicsScene(self))
        self.setRenderHints(QPainter.RenderHint.Antialiasing | QPainter.RenderHint.TextAntialiasing)
        self.setAcceptDrops(True)
        self.setAlignment(Qt.AlignmentFlag.AlignHCenter | Qt.AlignmentFlag.AlignTop)
        self.setFrameShape(QFrame.Shape.NoFrame)
        self.setBackgroundBrush(Qt.GlobalColor.white)
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.setToolTip("")
        self.blocks: dict[str, Block] = {}
        self.order: list[str] = []
        self.edges: list[Edge] = []
        self.input_block: Block | None = None
        self.output_block: Block | None = None
        self.marker = InsertionMarker()
        self._press: tuple[QPoint, str] | None = None
        self.auto_fit = True  # keep the whole network in view until the user zooms by hand
        document.changed.connect(self.rebuild)
        document.settings_changed.connect(self.rebuild)
        self.selection.changed.connect(self._show_selection)
        self.rebuild()

    # -- building the scene ---------------------------------------------------------------------------
    def rebuild(self) -> None:
        scene = self.scene()
        self.marker.setVisible(False)
        if self.marker.scene() is scene:
            scene.removeItem(self.marker)
        scene.clear()
        scene.addItem(self.marker)
        analysis = self.document.analysis()
        layers = self.document.layers()
        self.blocks, self.order, self.edges = {}, [], []
        y = 0.0
        self.input_block = self._place(Block(input_content(analysis, self.document)), y)
        y += self.input_block.height() + GAP
        failed = False
        chain = [self.input_block]
        for info, spec in zip(analysis.layers, layers):
            block = self._place(Block(layer_content(info, spec, failed)), y)
            failed = failed or info.error is not None
            self.blocks[block.content.key] = block
            self.order.append(block.content.key)
            chain.append(block)
            y += block.height() + GAP
        self.output_block = self._place(Block(output_content(analysis)), y)
        chain.append(self.output_block)
        shapes = [analysis.input_shape] + [info.output_shape for info in analysis.layers]
        for source, target, shape in zip(chain, chain[1:], shapes):
            edge = Edge(source, target, describe.format_shape(shape), known=shape is not None)
            scene.addItem(edge)
            self.edges.append(edge)
        rect = scene.itemsBoundingRect().adjusted(-120, -14, 120, 14)
        scene.setSceneRect(rect)
        if self.auto_fit:
            self.fit_all()
        self._show_selection(self.selection.layer_id or "")

    def _place(self, block: Block, y: float) -> Block:
        self.scene().addItem(block)
        block.setPos(0, y)
        return block

    # -- queries (tests and other views) --------------------------------------------------------------
    def block(self, layer_id: str) -> Block:
        return self.blocks[layer_id]

    def block_at(self, view_pos: QPoint) -> Block | None:
        for item in self.items(view_pos):
            if isinstance(item, Block) and item.layer_id:
                return item
        return None

    def gap_at(self, scene_pos: QPointF) -> int:
        """The insertion gap under a scene point: 0 = before the first layer, n = after the last."""
        return sum(1 for key in self.order if self.blocks[key].pos().y() + BLOCK_HEIGHT / 2 < scene_pos.y())

    def gap_y(self, gap: int) -> float:
        """Scene y of the middle of a gap (between blocks gap-1 and gap)."""
        above = self.blocks[self.order[gap - 1]] if gap > 0 else self.input_block
        return above.pos().y() + above.height() + GAP / 2

    def gap_center(self, gap: int) -> QPoint:
        """A viewport point inside a gap: where a drop lands to insert at ``gap``."""
        return self.mapFromScene(QPointF(0, self.gap_y(gap)))

    def block_center(self, layer_id: str) -> QPoint:
        block = self.blocks[layer_id]
        return self.mapFromScene(block.pos() + QPointF(0, block.height() / 2))

    # -- selection ------------------------------------------------------------------------------------------
    def _show_selection(self, layer_id: str) -> None:
        for key, block in self.blocks.items():
            block.set_selected(key == layer_id)
        if layer_id in self.blocks:
            self.ensureVisible(self.blocks[layer_id], 20, 40)

    def _step_selection(self, delta: int) -> None:
        if not self.order:
            return
        current = self.selection.layer_id
        index = self.order.index(current) + delta if current in self.order else (0 if delta > 0 else -1)
        self.selection.select(self.order[max(0, min(index, len(self.order) - 1))])

    # -- drag and drop ----------------------------------------------------------------------------------------
    def _accepts(self, mime) -> bool:
        type_name = layer_type_from(mime)
        if type_name is not None:
            return type_name in LAYER_TYPES
        return block_id_from(mime) in self.blocks

    def dragEnterEvent(self, event) -> None:  # noqa: N802 (Qt override)
        if not self._accepts(event.mimeData()):
            event.ignore()
            return
        if self.document.locked:
            self.document.edit_refused.emit(self.document.lock_reason)
            event.ignore()
            return
        event.acceptProposedAction()
        self._show_marker(event.position().toPoint())

    def dragMoveEvent(self, event) -> None:  # noqa: N802 (Qt override)
        if not self._accepts(event.mimeData()) or self.document.locked:
            event.ignore()
            return
        event.acceptProposedAction()
        self._show_marker(event.position().toPoint())

    def dragLeaveEvent(self, event) -> None:  # noqa: N802 (Qt override)
        self.marker.setVisible(False)
        event.accept()

    def dropEvent(self, event) -> None:  # noqa: N802 (Qt override)
        self.marker.setVisible(False)
        mime = event.mimeData()
        gap = self.gap_at(self.mapToScene(event.position().toPoint()))
        type_name = layer_type_from(mime)
        if type_name in LAYER_TYPES:
            done = self.editor.insert_layer(type_name, gap) is not None
        elif (layer_id := block_id_from(mime)) in self.blocks:
            done = self.editor.move_to_gap(layer_id, gap)
        else:
            done = False
        if done:
            event.acceptProposedAction()
        else:
            event.ignore()

    def _show_marker(self, view_pos: QPoint) -> None:
        gap = self.gap_at(self.mapToScene(view_pos))
        self.marker.gap = gap
        self.marker.setPos(0, self.gap_y(gap))
        self.marker.setVisible(True)

    # -- mouse and keyboard -------------------------------------------------------------------------------------
    def mousePressEvent(self, event: QMouseEvent) -> None:  # noqa: N802 (Qt override)
        block = self.block_at(event.position().toPoint())
        # Focus first: an inspector field being typed in finishes its edit on the layer it belongs to.
        self.setFocus(Qt.FocusReason.MouseFocusReason)
        if event.button() == Qt.MouseButton.LeftButton:
            self.selection.select(block.layer_id if block else None)
            self._press = (event.position().toPoint(), block.layer_id) if block else None
        event.accept()

    def mouseMoveEvent(self, event: QMouseEvent) -> None:  # noqa: N802 (Qt override)
        if self._press and event.buttons() & Qt.MouseButton.LeftButton:
            start, layer_id = self._press
            if (event.position().toPoint() - start).manhattanLength() >= QApplication.startDragDistance():
                self._press = None
                self._drag_block(layer_id)
                return
        super().mouseMoveEvent(event)

    def mouseReleaseEvent(self, event: QMouseEvent) -> None:  # noqa: N802 (Qt override)
        self._press = None
        super().mouseReleaseEvent(event)

    def mouseDoubleClickEvent(self, event: QMouseEvent) -> None:  # noqa: N802 (Qt override)
        block = self.block_at(event.position().toPoint())
        if block is not None:
            self.block_activated.emit(block.layer_id)

    def _drag_block(self, layer_id: str) -> None:
        if self.document.locked:
            self.document.edit_refused.emit(self.document.lock_reason)
            return
        block = self.blocks[layer_id]
        pixmap = QPixmap(int(block.boundingRect().width()), int(block.boundingRect().height()))
        pixmap.fill(Qt.GlobalColor.transparent)
        painter = QPainter(pixmap)
        painter.translate(-block.boundingRect().topLeft())
        painter.setOpacity(0.85)
        block.paint(painter, None)
        painter.end()
        drag = QDrag(self)
        drag.setMimeData(block_mime(layer_id))
        drag.setPixmap(pixmap)
        drag.setHotSpot(QPoint(pixmap.width() // 2, pixmap.height() // 2))
        drag.exec(Qt.DropAction.MoveAction)

    def keyPressEvent(self, event: QKeyEvent) -> None:  # noqa: N802 (Qt override)
        key, mods = event.key(), event.modifiers()
        alt = bool(mods & Qt.KeyboardModifier.AltModifier)
        if key in (Qt.Key.Key_Delete, Qt.Key.Key_Backspace):
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
            self.selection.select(None)
        else:
            super().keyPressEvent(event)
            return
        event.accept()

    def wheelEvent(self, event: QWheelEvent) -> None:  # noqa: N802 (Qt override)
        if event.modifiers() & Qt.KeyboardModifier.ControlModifier:
            self.zoom(1.15 if event.angleDelta().y() > 0 else 1 / 1.15)
            event.accept()
        else:
            super().wheelEvent(event)

    def contextMenuEvent(self, event) -> None:  # noqa: N802 (Qt override)
        block = self.block_at(event.pos())
        if block is None:
            return
        self.selection.select(block.layer_id)
        menu = QMenu(self)
        menu.addAction("Duplicate", self.editor.duplicate)
        menu.addAction("Move up", lambda: self.editor.move_by(-1))
        menu.addAction("Move down", lambda: self.editor.move_by(1))
        menu.addSeparator()
        menu.addAction("Delete", self.editor.remove)
        info = self.document.analysis().layers[self.document.index_of(block.layer_id)]
        if info.error is not None and info.error.fix:
            menu.addSeparator()
            menu.addAction(f"Fix: {describe.fix_label(info.error.fix)}", lambda: self.editor.apply_fix(info.error))
        menu.exec(event.globalPos())

    # -- zoom -------------------------------------------------------------------------------------------------
    def zoom(self, factor: float) -> None:
        self.auto_fit = False
        current = self.transform().m11()
        factor = max(MIN_ZOOM / current, min(MAX_ZOOM / current, factor))
        self.scale(factor, factor)

    def reset_zoom(self) -> None:
        self.auto_fit = False
        self.resetTransform()

    def fit_all(self) -> None:
        """Scale so the whole network is visible, between MIN_AUTO_ZOOM and 100%; keep fitting on resize."""
        self.auto_fit = True
        rect = self.scene().sceneRect()
        view = self.viewport().rect()
        if rect.isEmpty() or view.isEmpty():
            return
        factor = min(view.width() / rect.width(), view.height() / rect.height(), 1.0)
        factor = max(factor, MIN_AUTO_ZOOM)
        self.resetTransform()
        self.scale(factor, factor)

    def resizeEvent(self, event) -> None:  # noqa: N802 (Qt override)
        super().resizeEvent(event)
        if self.auto_fit:
            self.fit_all()
