"""Graphics items of the architecture canvas: layer blocks, the input and output ends, the arrows
between them (labelled with the tensor shape) and the insertion marker shown while dragging.

Items only draw what they are given (a ``BlockContent``); the canvas decides what that is.
Edges join blocks by id, so the scene can hold any graph, not just a chain.
"""

from __future__ import annotations

from dataclasses import dataclass

from PySide6.QtCore import QPointF, QRectF, Qt
from PySide6.QtGui import QBrush, QColor, QFont, QFontMetricsF, QPainter, QPainterPath, QPen, QPolygonF
from PySide6.QtWidgets import QGraphicsItem, QStyleOptionGraphicsItem, QWidget

from cnn_studio.builder import style

BLOCK_WIDTH = 330.0
BLOCK_HEIGHT = 54.0
END_HEIGHT = 46.0  # input and output blocks
ICON_SIZE = 26


@dataclass(frozen=True)
class BlockContent:
    """What one block shows. ``kind`` is 'layer', 'input' or 'output'; ``state`` 'ok', 'error' or 'unknown'."""

    key: str
    kind: str
    title: str
    subtitle: str = ""
    settings: str = ""
    params: str = ""
    category: str = ""
    icon_name: str = ""
    state: str = "ok"
    tooltip: str = ""


def _font(point_size: float, bold: bool = False) -> QFont:
    font = QFont()
    font.setPointSizeF(point_size)
    font.setBold(bold)
    return font


class Block(QGraphicsItem):
    """A rounded box with a category stripe, an icon, a title line and a settings line."""

    def __init__(self, content: BlockContent) -> None:
        super().__init__()
        self.content = content
        self.selected = False
        self.drop_target = False
        height = BLOCK_HEIGHT if content.kind == "layer" else END_HEIGHT
        self._rect = QRectF(-BLOCK_WIDTH / 2, 0, BLOCK_WIDTH, height)
        self.setToolTip(content.tooltip)
        self.setAcceptHoverEvents(True)
        self._hover = False
        self.setCursor(Qt.CursorShape.OpenHandCursor if content.kind == "layer" else Qt.CursorShape.ArrowCursor)

    @property
    def layer_id(self) -> str | None:
        return self.content.key if self.content.kind == "layer" else None

    @property
    def has_error(self) -> bool:
        return self.content.state == "error"

    def height(self) -> float:
        return self._rect.height()

    def top_center(self) -> QPointF:
        return self.mapToScene(QPointF(0, 0))

    def bottom_center(self) -> QPointF:
        return self.mapToScene(QPointF(0, self._rect.height()))

    def set_selected(self, selected: bool) -> None:
        if selected != self.selected:
            self.selected = selected
            self.update()

    def boundingRect(self) -> QRectF:  # noqa: N802 (Qt override)
        return self._rect.adjusted(-4, -4, 4, 4)

    def shape(self) -> QPainterPath:
        path = QPainterPath()
        path.addRoundedRect(self._rect, 8, 8)
        return path

    def hoverEnterEvent(self, event) -> None:  # noqa: N802 (Qt override)
        self._hover = True
        self.update()

    def hoverLeaveEvent(self, event) -> None:  # noqa: N802 (Qt override)
        self._hover = False
        self.update()

    def paint(self, painter: QPainter, option: QStyleOptionGraphicsItem, widget: QWidget | None = None) -> None:
        c = self.content
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        rect = self._rect
        error = c.state == "error"
        accent = QColor(style.ERROR_ACCENT) if error else style.accent(c.category)
        body = QColor(style.ERROR_FILL) if error else (style.fill(c.category) if c.kind == "layer" else
                                                       QColor("#ffffff"))
        if c.state == "unknown":
            body = QColor("#f7f7f7")
        if self._hover and not self.selected:
            body = body.darker(103)
        border = QColor(style.SELECTION) if self.selected else (accent if error else QColor("#c5ccd6"))
        painter.setPen(QPen(border, 2.5 if self.selected or error else 1.2))
        painter.setBrush(QBrush(body))
        painter.drawRoundedRect(rect, 8, 8)

        # Category stripe on the left edge.
        stripe = QPainterPath()
        stripe.addRoundedRect(QRectF(rect.left(), rect.top(), 12, rect.height()), 6, 6)
        clip = QPainterPath()
        clip.addRect(QRectF(rect.left(), rect.top(), 6, rect.height()))
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(accent)
        painter.drawPath(stripe.intersected(clip))

        icon = style.icon(c.icon_name or c.category or "core")
        top = rect.top() + (rect.height() - ICON_SIZE) / 2
        icon.paint(painter, int(rect.left() + 14), int(top), ICON_SIZE, ICON_SIZE)

        left = rect.left() + 14 + ICON_SIZE + 10
        right = rect.right() - 12
        title_font = _font(10.5, bold=True)
        small = _font(9)
        painter.setFont(title_font)
        painter.setPen(QColor(style.TEXT))
        title_metrics = QFontMetricsF(title_font)
        first_line = rect.top() + (17 if c.kind == "layer" else 14)
        baseline = first_line + title_metrics.ascent() / 2
        painter.drawText(QPointF(left, baseline), c.title)
        x = left + title_metrics.horizontalAdvance(c.title) + 8

        painter.setFont(small)
        metrics = QFontMetricsF(small)
        if c.params:
            painter.setPen(QColor(style.MUTED_TEXT))
            width = metrics.horizontalAdvance(c.params)
            painter.drawText(QPointF(right - width, baseline), c.params)
            right_limit = right - width - 8
        else:
            right_limit = right
        if c.subtitle:
            painter.setPen(QColor(style.MUTED_TEXT))
            text = metrics.elidedText(c.subtitle, Qt.TextElideMode.ElideRight, max(0.0, right_limit - x))
            painter.drawText(QPointF(x, baseline), text)

        if c.settings:
            painter.setFont(_font(9.5))
            painter.setPen(QColor(style.ERROR_ACCENT) if error else QColor(style.TEXT))
            settings_metrics = QFontMetricsF(_font(9.5))
            second = rect.bottom() - (14 if c.kind == "layer" else 12)
            text = settings_metrics.elidedText(c.settings, Qt.TextElideMode.ElideRight, right - left)
            painter.drawText(QPointF(left, second + settings_metrics.ascent() / 2), text)

        if error:
            badge = QRectF(rect.right() - 11, rect.top() - 9, 20, 20)
            painter.setPen(QPen(QColor("#ffffff"), 1.5))
            painter.setBrush(QColor(style.ERROR_ACCENT))
            painter.drawEllipse(badge)
            painter.setFont(_font(10, bold=True))
            painter.drawText(badge, Qt.AlignmentFlag.AlignCenter, "!")


class Edge(QGraphicsItem):
    """An arrow from one block's bottom to another's top, labelled with the tensor shape it carries."""

    def __init__(self, source: Block, target: Block, label: str, known: bool = True) -> None:
        super().__init__()
        self.source_key = source.content.key
        self.target_key = target.content.key
        self.label = label
        self.known = known
        self._start = source.bottom_center()
        self._end = target.top_center()
        self.setZValue(-1)
        self.setToolTip(f"Tensor shape per image: {label}" if known else
                        "Shape unknown until the problem above is fixed")

    def boundingRect(self) -> QRectF:  # noqa: N802 (Qt override)
        metrics = QFontMetricsF(_font(9))
        width = metrics.horizontalAdvance(self.label) + 30
        return QRectF(self._start.x() - 10, self._start.y(), width + 20, self._end.y() - self._start.y())

    def paint(self, painter: QPainter, option: QStyleOptionGraphicsItem, widget: QWidget | None = None) -> None:
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        colour = QColor("#7b8794") if self.known else QColor("#c0c6ce")
        pen = QPen(colour, 1.6)
        if not self.known:
            pen.setStyle(Qt.PenStyle.DashLine)
        painter.setPen(pen)
        tip = QPointF(self._end.x(), self._end.y() - 1)
        painter.drawLine(self._start, QPointF(tip.x(), tip.y() - 6))
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(colour)
        painter.drawPolygon(QPolygonF([tip, QPointF(tip.x() - 5, tip.y() - 8), QPointF(tip.x() + 5, tip.y() - 8)]))

        font = _font(9)
        metrics = QFontMetricsF(font)
        mid_y = (self._start.y() + self._end.y()) / 2
        box = QRectF(self._start.x() + 10, mid_y - metrics.height() / 2 - 2,
                     metrics.horizontalAdvance(self.label) + 12, metrics.height() + 4)
        painter.setBrush(QColor("#ffffff"))
        painter.setPen(QPen(QColor("#d5dae1"), 1))
        painter.drawRoundedRect(box, 4, 4)
        painter.setFont(font)
        painter.setPen(QColor(style.TEXT) if self.known else QColor(style.MUTED_TEXT))
        painter.drawText(box, Qt.AlignmentFlag.AlignCenter, self.label)


class InsertionMarker(QGraphicsItem):
    """The line that shows where a dragged layer will land."""

    def __init__(self) -> None:
        super().__init__()
        self.setZValue(10)
        self.setVisible(False)
        self.gap: int | None = None

    def boundingRect(self) -> QRectF:  # noqa: N802 (Qt override)
        return QRectF(-BLOCK_WIDTH / 2 - 16, -8, BLOCK_WIDTH + 32, 16)

    def paint(self, painter: QPainter, option: QStyleOptionGraphicsItem, widget: QWidget | None = None) -> None:
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        colour = QColor(style.SELECTION)
        painter.setPen(QPen(colour, 3, Qt.PenStyle.SolidLine, Qt.PenCapStyle.RoundCap))
        half = BLOCK_WIDTH / 2 + 6
        painter.drawLine(QPointF(-half, 0), QPointF(half, 0))
        painter.setBrush(colour)
        painter.setPen(Qt.PenStyle.NoPen)
        painter.drawEllipse(QPointF(-half, 0), 5, 5)
        painter.drawEllipse(QPointF(half, 0), 5, 5)
