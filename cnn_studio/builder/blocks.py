"""Graphics items of the node editor: blocks with input and output ports, the wires between them
(labelled with the tensor shape they carry), the wire being dragged, and the drop marker.

Items only draw what they are given (a ``BlockContent``, a path and a label); the canvas decides
what that is and handles the mouse.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from PySide6.QtCore import QPointF, QRectF, Qt
from PySide6.QtGui import (
    QBrush,
    QColor,
    QFont,
    QFontMetricsF,
    QPainter,
    QPainterPath,
    QPainterPathStroker,
    QPen,
    QPolygonF,
)
from PySide6.QtWidgets import QGraphicsItem, QStyleOptionGraphicsItem, QWidget

from cnn_studio.builder import style
from cnn_studio.graph import Wire

BLOCK_WIDTH = 264.0
BLOCK_HEIGHT = 58.0
END_HEIGHT = 46.0  # input and output blocks
ICON_SIZE = 22
PORT_RADIUS = 7.0  # drawn size; the canvas accepts presses a good deal further out
MERGE_PORT_WIDTH = 64.0  # the least width of the input port of blocks that take several inputs
ARRIVAL_SPACING = 52.0  # between the ends of the wires into such a port
BADGE_SIZE = 16.0
WIRE_COLOUR = "#7b8794"
WIRE_UNKNOWN = "#b8c0ca"
VALID_TARGET = "#2e9d4a"
HEAT_COLOUR = "#e74c3c"  # the profiler's colouring: the slowest block the most
HEAT_TEXT = "#922b21"


def _mixed(a: QColor, b: QColor, t: float) -> QColor:
    t = min(1.0, max(0.0, t))
    return QColor.fromRgbF(a.redF() + (b.redF() - a.redF()) * t, a.greenF() + (b.greenF() - a.greenF()) * t,
                           a.blueF() + (b.blueF() - a.blueF()) * t)


@dataclass(frozen=True)
class BlockContent:
    """What one block shows.

    ``kind`` is 'layer', 'input' or 'output'; ``state`` 'ok', 'error', 'warning' or 'unknown'.
    ``many_inputs`` draws the wide input port of Add and Concatenate. ``badges`` are small
    markers drawn in the block's top-right corner (icon names from assets/icons, e.g. a lock on
    a frozen layer); unknown names are drawn as short text.
    """

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
    many_inputs: bool = False
    input_count: int = 1
    badges: tuple[str, ...] = ()


def _font(point_size: float, bold: bool = False) -> QFont:
    font = QFont()
    font.setPointSizeF(point_size)
    font.setBold(bold)
    return font


def title_font() -> QFont:
    return _font(10.5, bold=True)


def small_font() -> QFont:
    """The layer's name and its settings."""
    return _font(9)


def count_font() -> QFont:
    """The parameter count, or the profiler's time."""
    return _font(8.5)


TEXT_LEFT = 13 + ICON_SIZE + 8  # from the block's left edge: stripe, icon and a gap
COUNT_LINE = 15.0  # the height a parameter count (or a long name) on a line of its own adds


@dataclass(frozen=True)
class BlockText:
    """One text a block draws: ``part`` is 'title', 'subtitle', 'params' or 'settings'; (x, baseline) in the
    block's coordinates."""

    part: str
    text: str
    font: QFont
    x: float
    baseline: float
    colour: str


def _badges_width(content: BlockContent) -> float:
    return len(content.badges) * (BADGE_SIZE + 3)


def _text_room(content: BlockContent) -> float:
    """The width of the first line, from the icon to the badges."""
    return BLOCK_WIDTH - TEXT_LEFT - 10 - _badges_width(content)


def _name_fits_beside(content: BlockContent) -> bool:
    """Whether the layer's name fits whole on the first line, beside its type."""
    width = QFontMetricsF(title_font()).horizontalAdvance(content.title) + 7
    return width + QFontMetricsF(small_font()).horizontalAdvance(content.subtitle) <= _text_room(content)


def _first_line_width(content: BlockContent, with_name: bool = True) -> float:
    """What the type, the name (``with_name``) and the parameter count need side by side, whole."""
    width = QFontMetricsF(title_font()).horizontalAdvance(content.title) + 7
    if content.subtitle and with_name:
        width += QFontMetricsF(small_font()).horizontalAdvance(content.subtitle)
    if content.params:
        width += 8 + QFontMetricsF(count_font()).horizontalAdvance(content.params)
    return width


def elide_name(name: str, metrics: QFontMetricsF, width: float) -> str:
    """``name`` cut to ``width``, keeping its end: an automatic name's number tells layers of one kind
    apart ("global_avera…_1"), and the end of a name given by hand often does too ("encod…onv_b").
    The block's tooltip has the whole name."""
    if metrics.horizontalAdvance(name) <= width:
        return name
    number = re.search(r"_\d+$", name)
    if number:
        stem = metrics.elidedText(name[:number.start()], Qt.TextElideMode.ElideRight,
                                  width - metrics.horizontalAdvance(number.group()))
        if stem and stem != "…":
            return stem + number.group()
    return metrics.elidedText(name, Qt.TextElideMode.ElideMiddle, width)


class Block(QGraphicsItem):
    """A rounded box with a category stripe, an icon, a title line, a settings line and its ports.

    The item's origin is the middle of its top edge, where the input port sits; the output port
    is the middle of the bottom edge.
    """

    def __init__(self, content: BlockContent) -> None:
        super().__init__()
        self.selected = False
        self.hover_port: str | None = None  # "in" or "out" while the pointer is over that port
        self.port_role: dict[str, str] = {}  # "in"/"out" -> "candidate", "target" or "blocked" while wiring
        self.drop_edge: str | None = None  # "top" or "bottom": where a dropped layer would go
        self._hover = False
        # (share of the slowest block's time 0..1, label such as "4.1 ms · 34%"): the profiler's colouring.
        self.heat: tuple[float, str] | None = None
        self.setAcceptHoverEvents(True)
        self.content = content
        self.set_content(content)

    def set_content(self, content: BlockContent) -> None:
        self.prepareGeometryChange()
        self.content = content
        # A name too long to stand whole beside the type ("global_average_pooling2d_1") gets a line of
        # its own under it. The name matters more than the parameter count: when both do not fit whole on
        # the first line, the count gets a line of its own. The block grows by each such line.
        layer = content.kind == "layer"
        self.name_below = layer and bool(content.subtitle) and not _name_fits_beside(content)
        self.count_below = layer and bool(content.params) and (
            _first_line_width(content, with_name=not self.name_below) > _text_room(content))
        height = BLOCK_HEIGHT if layer else END_HEIGHT
        height += COUNT_LINE * (self.name_below + self.count_below)
        self._rect = QRectF(-BLOCK_WIDTH / 2, 0, BLOCK_WIDTH, height)
        self.setToolTip(content.tooltip)
        self.setCursor(Qt.CursorShape.OpenHandCursor if content.kind == "layer" else Qt.CursorShape.ArrowCursor)
        self.update()

    # -- geometry ---------------------------------------------------------------------------------------
    @property
    def layer_id(self) -> str | None:
        return self.content.key if self.content.kind == "layer" else None

    @property
    def key(self) -> str:
        return self.content.key

    @property
    def has_error(self) -> bool:
        return self.content.state == "error"

    @property
    def has_input_port(self) -> bool:
        return self.content.kind != "input"

    @property
    def has_output_port(self) -> bool:
        return self.content.kind != "output"

    def height(self) -> float:
        return self._rect.height()

    def rect_in_scene(self) -> QRectF:
        return self.mapRectToScene(self._rect)

    def top_center(self) -> QPointF:
        return self.mapToScene(QPointF(0, 0))

    def bottom_center(self) -> QPointF:
        return self.mapToScene(QPointF(0, self._rect.height()))

    def input_port(self) -> QPointF:
        return self.top_center()

    def input_port_width(self) -> float:
        """How wide the input port is drawn: wires into a merge block end side by side on it."""
        if not self.content.many_inputs:
            return 2 * PORT_RADIUS
        return max(MERGE_PORT_WIDTH, arrival_span(self.content.input_count) + 2 * PORT_RADIUS + 8)

    def output_port(self) -> QPointF:
        return self.bottom_center()

    def set_selected(self, selected: bool) -> None:
        if selected != self.selected:
            self.selected = selected
            self.update()

    def set_hover_port(self, port: str | None) -> None:
        if port != self.hover_port:
            self.hover_port = port
            self.update()

    def set_port_role(self, port: str, role: str | None) -> None:
        if self.port_role.get(port) != role:
            if role is None:
                self.port_role.pop(port, None)
            else:
                self.port_role[port] = role
            self.update()

    def set_heat(self, heat: tuple[float, str] | None) -> None:
        """Colour the block by time (``(fraction 0..1, label)``), or not (None)."""
        if heat != self.heat:
            self.heat = heat
            self.update()

    def set_drop_edge(self, edge: str | None) -> None:
        if edge != self.drop_edge:
            self.drop_edge = edge
            self.update()

    def boundingRect(self) -> QRectF:  # noqa: N802 (Qt override)
        return self._rect.adjusted(-14, -14, 14, 14)

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

    # -- painting ------------------------------------------------------------------------------------------
    def paint(self, painter: QPainter, option: QStyleOptionGraphicsItem, widget: QWidget | None = None) -> None:
        c = self.content
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        rect = self._rect
        error, warning = c.state == "error", c.state == "warning"
        if error:
            accent = QColor(style.ERROR_ACCENT)
        elif warning:
            accent = QColor(style.WARNING_ACCENT)
        else:
            accent = style.accent(c.category)
        body = QColor(style.ERROR_FILL) if error else QColor(style.WARNING_FILL) if warning else (
            style.fill(c.category) if c.kind == "layer" else QColor("#ffffff"))
        if c.state == "unknown":
            body = QColor("#f7f7f7")
        if self.heat is not None and c.kind == "layer":
            body = _mixed(QColor("#ffffff"), QColor(HEAT_COLOUR), 0.08 + 0.6 * self.heat[0])
        if self._hover and not self.selected:
            body = body.darker(104)
        border = QColor(style.SELECTION) if self.selected else (accent if error or warning else QColor("#c5ccd6"))
        painter.setPen(QPen(border, 2.5 if self.selected or error or warning else 1.2))
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
        icon.paint(painter, int(rect.left() + 13), int(top), ICON_SIZE, ICON_SIZE)

        for text in self.text_layout():
            painter.setFont(text.font)
            painter.setPen(QColor(text.colour))
            painter.drawText(QPointF(text.x, text.baseline), text.text)

        if self.heat is not None and c.kind == "layer":
            bar = QRectF(rect.left() + 8, rect.bottom() - 5, (rect.width() - 16) * max(self.heat[0], 0.01), 3)
            painter.setPen(Qt.PenStyle.NoPen)
            painter.setBrush(QColor(HEAT_COLOUR))
            painter.drawRoundedRect(bar, 1.5, 1.5)
        self.paint_badges(painter, rect)
        if error or warning:
            badge = QRectF(rect.right() - 11, rect.top() - 9, 20, 20)
            painter.setPen(QPen(QColor("#ffffff"), 1.5))
            painter.setBrush(accent)
            painter.drawEllipse(badge)
            painter.setFont(_font(10, bold=True))
            painter.drawText(badge, Qt.AlignmentFlag.AlignCenter, "!")
        self._paint_ports(painter, accent)
        self._paint_drop_edge(painter)

    def text_layout(self) -> list[BlockText]:
        """The texts the block draws and where: the type and the layer's name on the first line (a long
        name on a line of its own under it) with the parameter count (or the profiler's time) at its
        right end, or on a line of its own below the settings when the first line has no room for it;
        the settings on the line after the name."""
        c = self.content
        rect = self._rect
        error = c.state == "error"
        left = rect.left() + TEXT_LEFT
        right = rect.left() + TEXT_LEFT + _text_room(c)
        texts: list[BlockText] = []
        bold, small, count = title_font(), small_font(), count_font()
        title_metrics = QFontMetricsF(title_font())
        first_line = rect.top() + (18 if c.kind == "layer" else 15)
        baseline = first_line + title_metrics.ascent() / 2
        texts.append(BlockText("title", c.title, bold, left, baseline, style.TEXT))
        x = left + title_metrics.horizontalAdvance(c.title) + 7

        right_limit = right
        params = self.heat[1] if self.heat is not None and c.kind == "layer" else c.params
        count_colour = HEAT_TEXT if params is not c.params else style.MUTED_TEXT
        count_metrics = QFontMetricsF(count_font())
        if params and not self.count_below:
            width = count_metrics.horizontalAdvance(params)
            # The name matters more than the count when room is short (unless it has a line of its own).
            if x + width + (0 if self.name_below else 40) < right:
                texts.append(BlockText("params", params, count, right - width, baseline, count_colour))
                right_limit = right - width - 8
        metrics = QFontMetricsF(small_font())
        if c.subtitle and self.name_below:
            text = elide_name(c.subtitle, metrics, rect.right() - 10 - left)  # whole, but for a very long name
            texts.append(BlockText("subtitle", text, small, left, baseline + COUNT_LINE, style.MUTED_TEXT))
        elif c.subtitle:
            text = elide_name(c.subtitle, metrics, max(0.0, right_limit - x))
            texts.append(BlockText("subtitle", text, small, x, baseline, style.MUTED_TEXT))

        settings_metrics = QFontMetricsF(small_font())
        second = rect.top() + (BLOCK_HEIGHT if c.kind == "layer" else END_HEIGHT) - (15 if c.kind == "layer" else 12)
        second += COUNT_LINE * self.name_below
        if c.settings:
            text = settings_metrics.elidedText(c.settings, Qt.TextElideMode.ElideRight, rect.right() - 10 - left)
            texts.append(BlockText("settings", text, small, left, second + settings_metrics.ascent() / 2,
                                   style.ERROR_ACCENT if error else style.TEXT))
        if params and self.count_below:
            text = count_metrics.elidedText(params, Qt.TextElideMode.ElideRight, rect.right() - 10 - left)
            texts.append(BlockText("params", text, count, left,
                                   second + COUNT_LINE + count_metrics.ascent() / 2, count_colour))
        return texts

    def _badges_width(self) -> float:
        return _badges_width(self.content)

    def paint_badges(self, painter: QPainter, rect: QRectF) -> None:
        """Small markers (``content.badges``) in the top-right corner, right to left."""
        x = rect.right() - 8 - BADGE_SIZE
        for name in self.content.badges:
            area = QRectF(x, rect.top() + 6, BADGE_SIZE, BADGE_SIZE)
            icon = style.icon(name)
            if not icon.isNull():
                icon.paint(painter, area.toRect())
            else:
                painter.setFont(_font(7, bold=True))
                painter.setPen(QColor(style.MUTED_TEXT))
                painter.drawText(area, Qt.AlignmentFlag.AlignCenter, name[:3])
            x -= BADGE_SIZE + 3

    def _paint_ports(self, painter: QPainter, accent: QColor) -> None:
        if self.has_input_port:
            self._paint_port(painter, "in", QPointF(0, 0), accent, wide=self.content.many_inputs)
        if self.has_output_port:
            self._paint_port(painter, "out", QPointF(0, self._rect.height()), accent, wide=False)

    def _paint_port(self, painter: QPainter, port: str, centre: QPointF, accent: QColor, wide: bool) -> None:
        role = self.port_role.get(port)
        hovered = self.hover_port == port or role == "target"
        radius = PORT_RADIUS + (2.5 if hovered else 0)
        colour = QColor(VALID_TARGET) if role in ("candidate", "target") else QColor(accent)
        if role == "blocked":
            colour = QColor("#c9ced6")
        fill = colour if hovered else QColor("#ffffff")
        painter.setPen(QPen(colour, 2.2 if role in ("candidate", "target") or hovered else 1.6))
        painter.setBrush(fill)
        if wide:
            half = self.input_port_width() / 2 + (3 if hovered else 0)
            painter.drawRoundedRect(QRectF(centre.x() - half, centre.y() - radius, 2 * half, 2 * radius),
                                    radius, radius)
            painter.setPen(QPen(QColor("#ffffff") if hovered else colour, 1.6))
            for dx in (-half / 2, 0.0, half / 2):  # three dots: room for several wires
                painter.drawPoint(QPointF(centre.x() + dx, centre.y()))
        else:
            painter.drawEllipse(centre, radius, radius)
        if role == "target":
            painter.setPen(QPen(QColor(VALID_TARGET), 1.2, Qt.PenStyle.DashLine))
            painter.setBrush(Qt.BrushStyle.NoBrush)
            painter.drawRoundedRect(self._rect.adjusted(-5, -5, 5, 5), 11, 11)

    def _paint_drop_edge(self, painter: QPainter) -> None:
        if self.drop_edge is None:
            return
        y = self._rect.top() - 6 if self.drop_edge == "top" else self._rect.bottom() + 6
        colour = QColor(style.SELECTION)
        painter.setPen(QPen(colour, 3, Qt.PenStyle.SolidLine, Qt.PenCapStyle.RoundCap))
        painter.drawLine(QPointF(self._rect.left() + 8, y), QPointF(self._rect.right() - 8, y))


class WireItem(QGraphicsItem):
    """A wire drawn along ``path`` with an arrowhead at its end and the tensor shape it carries.

    ``state`` is 'ok', 'unknown' (shape not known until an earlier problem is fixed), 'error' or
    'warning'. ``label_at`` is where the shape label is centred.
    """

    def __init__(self, wire: Wire, path: QPainterPath, label: str, label_at: QPointF, state: str = "ok",
                 tooltip: str = "") -> None:
        super().__init__()
        self.wire = wire
        self.label = label
        self.state = state
        self.known = state != "unknown"
        self.path = path
        self.label_at = label_at
        self.selected = False
        self.highlighted = False  # a dragged layer would be inserted here
        self._hover = False
        self.setAcceptHoverEvents(True)
        self.setZValue(-1)
        self.setToolTip(tooltip)
        self.set_path(path, label_at)

    @property
    def source_key(self) -> str:
        return self.wire.source

    @property
    def target_key(self) -> str:
        return self.wire.target

    def set_path(self, path: QPainterPath, label_at: QPointF) -> None:
        self.prepareGeometryChange()
        self.path = path
        self.label_at = label_at
        metrics = QFontMetricsF(_font(8.5))
        width = metrics.horizontalAdvance(self.label) + 12
        self.label_rect = QRectF(label_at.x() - width / 2, label_at.y() - metrics.height() / 2 - 2,
                                 width, metrics.height() + 4)
        stroker = QPainterPathStroker()
        stroker.setWidth(14)
        self._shape = stroker.createStroke(path)
        self._shape.addRect(self.label_rect)
        self._bounds = self._shape.boundingRect().adjusted(-8, -8, 8, 8)
        self.update()

    def set_state(self, label: str, state: str, tooltip: str) -> None:
        """New text and problem state for the same wire (its path is kept)."""
        if (label, state, tooltip) == (self.label, self.state, self.toolTip()):
            return
        self.state, self.known = state, state != "unknown"
        self.setToolTip(tooltip)
        if label != self.label:
            self.label = label
            self.set_path(self.path, self.label_at)
        self.update()

    def end_point(self) -> QPointF:
        return self.path.pointAtPercent(1.0)

    def set_selected(self, selected: bool) -> None:
        if selected != self.selected:
            self.selected = selected
            self.setZValue(0 if selected else -1)
            self.update()

    def set_highlighted(self, highlighted: bool) -> None:
        if highlighted != self.highlighted:
            self.highlighted = highlighted
            self.update()

    def boundingRect(self) -> QRectF:  # noqa: N802 (Qt override)
        return self._bounds

    def shape(self) -> QPainterPath:
        return self._shape

    def hoverEnterEvent(self, event) -> None:  # noqa: N802 (Qt override)
        self._hover = True
        self.update()

    def hoverLeaveEvent(self, event) -> None:  # noqa: N802 (Qt override)
        self._hover = False
        self.update()

    def colour(self) -> QColor:
        if self.selected or self.highlighted:
            return QColor(style.SELECTION)
        if self.state == "error":
            return QColor(style.ERROR_ACCENT)
        if self.state == "warning":
            return QColor(style.WARNING_ACCENT)
        if self.state == "unknown":
            return QColor(WIRE_UNKNOWN)
        return QColor("#4f5b69") if self._hover else QColor(WIRE_COLOUR)

    def paint(self, painter: QPainter, option: QStyleOptionGraphicsItem, widget: QWidget | None = None) -> None:
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        colour = self.colour()
        width = 3.0 if self.selected or self.highlighted or self.state == "error" else (
            2.2 if self._hover else 1.6)
        pen = QPen(colour, width)
        if self.state == "unknown":
            pen.setStyle(Qt.PenStyle.DashLine)
        painter.setPen(pen)
        painter.setBrush(Qt.BrushStyle.NoBrush)
        painter.drawPath(self.path)
        tip = self.end_point()
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(colour)
        painter.drawPolygon(QPolygonF([QPointF(tip.x(), tip.y() - 1), QPointF(tip.x() - 5, tip.y() - 10),
                                       QPointF(tip.x() + 5, tip.y() - 10)]))
        if not self.label:
            return
        error = self.state == "error"
        painter.setBrush(QColor(style.ERROR_FILL) if error else QColor("#ffffff"))
        painter.setPen(QPen(colour if error or self.selected else QColor("#d5dae1"), 1))
        painter.drawRoundedRect(self.label_rect, 4, 4)
        painter.setFont(_font(8.5))
        painter.setPen(QColor(style.ERROR_ACCENT) if error else
                       QColor(style.TEXT) if self.known else QColor(style.MUTED_TEXT))
        painter.drawText(self.label_rect, Qt.AlignmentFlag.AlignCenter, self.label)


class PendingWire(QGraphicsItem):
    """The wire that follows the pointer while the user drags from a port."""

    def __init__(self) -> None:
        super().__init__()
        self.setZValue(20)
        self.setVisible(False)
        self.start = QPointF()
        self.end = QPointF()
        self.downward = True  # dragging from an output port (the wire runs start -> end)
        self.valid = False

    def set_ends(self, start: QPointF, end: QPointF, valid: bool) -> None:
        self.prepareGeometryChange()
        self.start, self.end, self.valid = start, end, valid
        self.update()

    def path(self) -> QPainterPath:
        top, bottom = (self.start, self.end) if self.downward else (self.end, self.start)
        return s_curve(top, bottom)

    def boundingRect(self) -> QRectF:  # noqa: N802 (Qt override)
        return self.path().boundingRect().adjusted(-10, -10, 10, 10)

    def paint(self, painter: QPainter, option: QStyleOptionGraphicsItem, widget: QWidget | None = None) -> None:
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        colour = QColor(VALID_TARGET) if self.valid else QColor(style.SELECTION)
        pen = QPen(colour, 2.5, Qt.PenStyle.DashLine if not self.valid else Qt.PenStyle.SolidLine)
        painter.setPen(pen)
        painter.setBrush(Qt.BrushStyle.NoBrush)
        painter.drawPath(self.path())
        painter.setBrush(colour)
        painter.setPen(Qt.PenStyle.NoPen)
        painter.drawEllipse(self.end, 5, 5)


class InsertionMarker(QGraphicsItem):
    """The bar that shows where a dragged layer will land (centred on a wire)."""

    def __init__(self) -> None:
        super().__init__()
        self.setZValue(10)
        self.setVisible(False)
        self.target = None  # what a drop here would do (the canvas's DropTarget)

    def boundingRect(self) -> QRectF:  # noqa: N802 (Qt override)
        return QRectF(-70, -9, 140, 18)

    def paint(self, painter: QPainter, option: QStyleOptionGraphicsItem, widget: QWidget | None = None) -> None:
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        colour = QColor(style.SELECTION)
        painter.setPen(QPen(colour, 3, Qt.PenStyle.SolidLine, Qt.PenCapStyle.RoundCap))
        painter.drawLine(QPointF(-60, 0), QPointF(60, 0))
        painter.setBrush(colour)
        painter.setPen(Qt.PenStyle.NoPen)
        painter.drawEllipse(QPointF(-60, 0), 5, 5)
        painter.drawEllipse(QPointF(60, 0), 5, 5)


def arrival_spacing(count: int) -> float:
    return min(ARRIVAL_SPACING, (BLOCK_WIDTH - 70) / (count - 1)) if count > 1 else 0.0


def arrival_span(count: int) -> float:
    """The width the ends of ``count`` wires into one port take."""
    return arrival_spacing(count) * (count - 1)


def s_curve(top: QPointF, bottom: QPointF) -> QPainterPath:
    """A smooth curve leaving ``top`` downwards and arriving at ``bottom`` from above."""
    path = QPainterPath(top)
    bend = max(40.0, (bottom.y() - top.y()) / 2)
    path.cubicTo(QPointF(top.x(), top.y() + bend), QPointF(bottom.x(), bottom.y() - bend), bottom)
    return path
