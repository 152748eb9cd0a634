"""Every layer's output for the chosen sample: a row-major grid of its channels, plus one enlarged.

Feature maps (H, W, C) show one tile per channel; vectors (U,) (Flatten, Dense) show their units
as one grid of cells. The tiles are ImageItems kept between updates (only ``setImage`` runs
while training streams new outputs), all in one ViewBox so hover and click map to a channel.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QEvent, QRectF, QSize, Qt, Signal
from PySide6.QtGui import QColor, QFontMetrics, QPen
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QGraphicsRectItem,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QSizePolicy,
    QSplitter,
    QStyle,
    QVBoxLayout,
    QWidget,
)

from cnn_studio.inspect.images import ACTIVATION_COLORMAP, colormap, display_levels
from cnn_studio.plot_axes import plain_numbers
from engine.inspection import grid_shape

CHANNEL_CAP = 64  # more channels than this are drawn only when "show all" is ticked
PER_CHANNEL = "Colours per channel"
PER_LAYER = "Colours per layer"
HIGHLIGHT = QColor(255, 140, 0)
LAYER_LIST_MIN_WIDTH = 110
ARROW = "\u2190 "  # starts the line naming the layers a merge or a branch takes
SIDE_BY_SIDE_RATIO = 1.3  # the maps area's width / height above which grid and enlarged channel sit side by side


def shape_text(shape: tuple[int, ...]) -> str:
    return "\u00d7".join(str(v) for v in shape)


def unit_grid(vector: np.ndarray) -> np.ndarray:
    """(U,) -> (rows, cols) float32, row-major, NaN (drawn transparent) after the last unit."""
    rows, cols = grid_shape(len(vector))
    cells = np.full(rows * cols, np.nan, dtype=np.float32)
    cells[: len(vector)] = vector
    return cells.reshape(rows, cols)


def shorten_name(name: str, fits: Callable[[str], bool]) -> str:
    """``name`` whole if it fits, else cut in its type part, never in its number: 'batch_norm_12' ->
    'batch_n…_12', so layers of one kind stay told apart (a plain middle cut gives 'bat…m_12' or worse).
    A name without a number loses its middle."""
    if fits(name):
        return name
    match = re.fullmatch(r"(.+?)(_\d+)", name)
    for keep in range(len(name) - 1, 0, -1):
        if match:
            short = match.group(1)[:keep] + "\u2026" + match.group(2)
        else:
            short = name[: (keep + 1) // 2] + "\u2026" + name[len(name) - keep // 2:]
        if fits(short):
            return short
    return short  # too narrow for anything better; the row's tooltip has the name whole


def input_lines(takes: list[str], fits: Callable[[str], bool]) -> list[str]:
    """The lines that say which layers a row takes: '← a + b' while that fits, else a line per name
    ('← a', '+ b'), each name whole when its line has room and shortened (shorten_name) only if not.
    Every line keeps its lead: bare names would read as rows of their own."""
    lines: list[str] = []
    for name in takes:
        if lines and fits(f"{lines[-1]} + {name}"):
            lines[-1] += f" + {name}"
            continue
        lead = "+ " if lines else ARROW
        lines.append(lead + shorten_name(name, lambda text, lead=lead: fits(lead + text)))
    return lines


class _LayerList(QListWidget):
    """The layer list; calls ``room_changed`` when the width its rows have changes (the list resized, or its
    scroll bar came or went), so their text can be laid out again. A call, not a signal: the scroll bar
    comes while rows are being added, when the list's signals are blocked."""

    def __init__(self, room_changed: Callable[[], None]) -> None:
        super().__init__()
        self._room_changed = room_changed

    def text_room(self) -> int:
        """The width a row's text has: the focus frame's margin and one pixel more stay free on each side
        (as Qt's item delegate keeps them), besides the list's spacing."""
        margin = self.style().pixelMetric(QStyle.PixelMetric.PM_FocusFrameHMargin, None, self) + 1
        return self.viewport().width() - 2 * self.spacing() - 2 * margin

    def viewportEvent(self, event: QEvent) -> bool:  # noqa: N802 (Qt)
        handled = super().viewportEvent(event)
        # Settles: less room only ever adds lines, which keeps the scroll bar that took the room.
        if event.type() == QEvent.Type.Resize and event.size().width() != event.oldSize().width():
            self._room_changed()
        return handled


class ChannelGrid(pg.GraphicsLayoutWidget):
    """Tiles (C, H, W) maps row by row in one ViewBox. Emits the hovered text and clicked channel.

    In unit mode one tile holds a vector laid out as cells; hover then names the unit.
    """

    hovered = Signal(str)
    channel_clicked = Signal(int)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setBackground("w")
        self.ci.setContentsMargins(2, 2, 2, 2)
        self.view: pg.ViewBox = self.addViewBox(lockAspect=True, invertY=True, enableMouse=False)
        self.view.setMenuEnabled(False)
        self.items: list[pg.ImageItem] = []
        self._maps: np.ndarray | None = None  # (C, H, W) now shown
        self._layout: tuple[int, int, int, int] = (0, 0, 0, 0)  # count, h, w, cols
        self._gap = 1.0
        self._units = 0  # > 0: unit mode with that many units
        self._colormap = colormap(ACTIVATION_COLORMAP)
        self._selected = -1
        self._highlight = QGraphicsRectItem()
        pen = QPen(HIGHLIGHT)
        pen.setCosmetic(True)
        pen.setWidthF(2.5)
        self._highlight.setPen(pen)
        self._highlight.setZValue(10)
        self._highlight.setVisible(False)
        self.view.addItem(self._highlight, ignoreBounds=True)
        self._pointer = None  # the scene position under the mouse pointer (None: not over the grid)
        self.scene().sigMouseMoved.connect(self._on_mouse_moved)
        self.scene().sigMouseClicked.connect(self._on_mouse_clicked)

    @property
    def count(self) -> int:
        return self._layout[0]

    def visible_items(self) -> list[pg.ImageItem]:
        return self.items[: self.count]

    def clear_maps(self) -> None:
        for item in self.items:
            item.setVisible(False)
        self._maps = None
        self._layout = (0, 0, 0, 0)
        self._highlight.setVisible(False)
        self._read_pointer()

    def leaveEvent(self, event) -> None:  # noqa: N802 (Qt override)
        super().leaveEvent(event)
        # The scene hears of no move once the pointer is outside: the readout would keep the last value.
        self._pointer = None
        self.hovered.emit("")

    def set_maps(self, maps: np.ndarray, per_channel: bool, units: int = 0) -> None:
        """Show (C, H, W) maps; ``units`` > 0 marks a single tile holding a vector of that many units."""
        count, h, w = maps.shape
        cols = grid_shape(count)[1]
        layout = (count, h, w, cols)
        changed = layout != self._layout or units != self._units
        while len(self.items) < count:
            item = pg.ImageItem(axisOrder="row-major")
            item.setColorMap(self._colormap)
            self.view.addItem(item)
            self.items.append(item)
        self._gap = max(1.0, round(0.1 * max(h, w))) if count > 1 else 0.0
        layer_levels = display_levels(maps)
        for i in range(count):
            item = self.items[i]
            levels = display_levels(maps[i]) if per_channel else layer_levels
            item.setImage(maps[i], autoLevels=False, levels=levels)
            if changed:
                row, col = divmod(i, cols)
                item.setRect(QRectF(col * (w + self._gap), row * (h + self._gap), w, h))
                item.setVisible(True)
        for item in self.items[count:]:
            item.setVisible(False)
        self._maps, self._layout, self._units = maps, layout, units
        if changed:
            rows = math.ceil(count / cols)
            self.view.setRange(
                QRectF(0, 0, cols * (w + self._gap) - self._gap, rows * (h + self._gap) - self._gap), padding=0.02
            )
            self.select(self._selected if 0 <= self._selected < count and not units else -1)
        # New outputs under a resting pointer (training streams them): the readout shows the new value.
        self._read_pointer()

    def select(self, channel: int) -> None:
        """Outline one tile (-1: none)."""
        self._selected = channel
        count, h, w, cols = self._layout
        if not 0 <= channel < count or self._units:
            self._highlight.setVisible(False)
            return
        row, col = divmod(channel, cols)
        self._highlight.setRect(QRectF(col * (w + self._gap), row * (h + self._gap), w, h))
        self._highlight.setVisible(True)

    def locate(self, x: float, y: float) -> tuple[int, int, int] | None:
        """View coordinates -> (channel or unit, row, col) under them, or None between tiles."""
        count, h, w, cols = self._layout
        if not count or x < 0 or y < 0:
            return None
        col, dx = divmod(x, w + self._gap)
        row, dy = divmod(y, h + self._gap)
        if dx >= w or dy >= h:
            return None
        channel = int(row) * cols + int(col)
        if int(col) >= cols or channel >= count:
            return None
        r, c = int(dy), int(dx)
        if self._units:
            unit = r * w + c
            return (unit, r, c) if unit < self._units else None
        return channel, r, c

    def _hit(self, scene_pos) -> tuple[int, int, int] | None:
        if self._maps is None or not self.view.sceneBoundingRect().contains(scene_pos):
            return None
        point = self.view.mapSceneToView(scene_pos)
        return self.locate(point.x(), point.y())

    def _on_mouse_moved(self, scene_pos) -> None:
        self._pointer = scene_pos
        self._read_pointer()

    def _read_pointer(self) -> None:
        """Emit ``hovered`` for what lies under the pointer now ("" when nothing does)."""
        hit = None if self._pointer is None else self._hit(self._pointer)
        if hit is None:
            self.hovered.emit("")
            return
        index, r, c = hit
        if self._units:
            value = self._maps[0, r, c]
            self.hovered.emit(f"unit {index} \u00b7 value {value:.4g}")
        else:
            value = self._maps[index, r, c]
            self.hovered.emit(f"channel {index} \u00b7 row {r}, column {c} \u00b7 value {value:.4g}")

    def _on_mouse_clicked(self, event) -> None:
        hit = self._hit(event.scenePos())
        if hit is not None:
            self.channel_clicked.emit(hit[0])


class EnlargedView(QWidget):
    """One channel drawn large with a colour bar, or a vector's units as bars."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        self.title = QLabel("Click a channel to enlarge it")
        self.title.setWordWrap(True)
        # A long layer name wraps or is cut; it never widens the pane (and the window).
        self.title.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        layout.addWidget(self.title)
        self.plot = pg.PlotWidget(background="w")
        self.plot.setMenuEnabled(False)
        self.plot.setMouseEnabled(False, False)
        plain_numbers(self.plot)
        layout.addWidget(self.plot, 1)
        layout.addStretch(0)
        self.image = pg.ImageItem(axisOrder="row-major")
        self.image.setColorMap(colormap(ACTIVATION_COLORMAP))
        self.plot.addItem(self.image)
        self.plot.invertY(True)
        self.plot.setAspectLocked(True)
        self.colorbar = pg.ColorBarItem(colorMap=colormap(ACTIVATION_COLORMAP), interactive=False, width=12)
        self.colorbar.setImageItem(self.image, insert_in=self.plot.getPlotItem())
        self.bars = pg.BarGraphItem(x=[], height=[], width=0.9, brush=pg.mkBrush(90, 110, 160))
        self.plot.addItem(self.bars)
        self.marker = pg.BarGraphItem(x=[], height=[], width=0.9, brush=pg.mkBrush(HIGHLIGHT))
        self.plot.addItem(self.marker)
        self.shown: np.ndarray | None = None

    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        # A square-ish plot: in a tall pane an aspect-locked picture would float in empty axes.
        self.plot.setMaximumHeight(max(200, self.width() + 40))

    def show_channel(self, title: str, channel_map: np.ndarray) -> None:
        """``channel_map`` (H, W)."""
        self.title.setText(title)
        self.bars.setOpts(x=[], height=[])
        self.marker.setOpts(x=[], height=[])
        self.plot.invertY(True)
        self.plot.setAspectLocked(True)
        self.colorbar.setVisible(True)
        self.image.setVisible(True)
        levels = display_levels(channel_map)
        self.image.setImage(channel_map, autoLevels=False, levels=levels)
        self.colorbar.setLevels(levels)
        self.plot.getPlotItem().setLabels(left="row", bottom="column")
        self.plot.autoRange(padding=0.02)
        self.shown = channel_map

    def show_units(self, title: str, vector: np.ndarray, selected: int) -> None:
        """``vector`` (U,) as bars; the ``selected`` unit drawn in the highlight colour."""
        self.title.setText(title)
        self.image.setVisible(False)
        self.colorbar.setVisible(False)
        self.plot.invertY(False)
        self.plot.setAspectLocked(False)
        x = np.arange(len(vector))
        self.bars.setOpts(x=x, height=vector, width=0.9)
        if 0 <= selected < len(vector):
            self.marker.setOpts(x=[selected], height=[vector[selected]], width=0.9)
        else:
            self.marker.setOpts(x=[], height=[])
        self.plot.getPlotItem().setLabels(left="value", bottom="unit")
        self.plot.autoRange(padding=0.05)
        self.shown = vector

    def clear(self, title: str = "Click a channel to enlarge it") -> None:
        self.title.setText(title)
        self.image.clear()
        self.bars.setOpts(x=[], height=[])
        self.marker.setOpts(x=[], height=[])
        self.shown = None


class _TurningSplitter(QSplitter):
    """Two panes side by side when there is width to spare, one above the other otherwise.

    Its minimum width is that of the widest pane (what the stacked layout needs), so it never makes
    the window wider than a narrow screen allows.
    """

    def __init__(self) -> None:
        super().__init__(Qt.Orientation.Horizontal)

    def minimumSizeHint(self) -> QSize:  # noqa: N802 (Qt override)
        hints = [self.widget(i).minimumSizeHint().expandedTo(self.widget(i).minimumSize())
                 for i in range(self.count())]
        return QSize(max((h.width() for h in hints), default=0), max((h.height() for h in hints), default=0))

    def resizeEvent(self, event) -> None:  # noqa: N802 (Qt override)
        hints = [self.widget(i).minimumSizeHint().expandedTo(self.widget(i).minimumSize())
                 for i in range(self.count())]
        side_by_side = (self.width() >= SIDE_BY_SIDE_RATIO * max(1, self.height())
                        and self.width() >= sum(h.width() for h in hints) + self.handleWidth())
        orientation = Qt.Orientation.Horizontal if side_by_side else Qt.Orientation.Vertical
        if orientation != self.orientation():
            self.setOrientation(orientation)
            length = self.width() if side_by_side else self.height()
            # The grid gets the larger share, the enlarged channel the rest.
            self.setSizes([length * 3 // 5, length - length * 3 // 5])
        super().resizeEvent(event)


class FeatureMapsView(QWidget):
    """Layer list | channel grid | enlarged channel. ``set_outputs`` takes [(layer name, (H, W, C) or (U,))]."""

    layer_selected = Signal(str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._outputs: list[tuple[str, np.ndarray]] = []
        self._types: dict[str, str] = {}
        self._inputs: dict[str, list[str]] = {}
        self._channel = 0
        self.layer_list = _LayerList(self._retext_rows)
        # Two lines per layer (name, then shape) keep the list narrow without cutting either.
        self.layer_list.setMinimumWidth(LAYER_LIST_MIN_WIDTH)
        self.layer_list.setMaximumWidth(240)
        self.layer_list.setSpacing(1)
        self.layer_list.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.layer_list.setTextElideMode(Qt.TextElideMode.ElideMiddle)
        self.layer_list.setWordWrap(False)
        self.layer_list.currentRowChanged.connect(self._on_layer_row)

        self.scaling = QComboBox()
        self.scaling.addItems([PER_CHANNEL, PER_LAYER])
        self.scaling.setToolTip(
            "Each channel on its own: every tile uses its full colour range, so faint patterns show.\n"
            "One scale for the layer: tiles are comparable; strong channels stand out."
        )
        self.scaling.currentIndexChanged.connect(lambda _i: self._redraw())
        self.show_all = QCheckBox()
        self.show_all.setVisible(False)
        self.show_all.toggled.connect(lambda _on: self._redraw())
        self.hover_label = QLabel("Hover a channel to read it; click to enlarge")
        self.hover_label.setMinimumWidth(120)
        self.hover_label.setWordWrap(True)
        self.caption = QLabel("")
        self.caption.setStyleSheet("font-weight: 600")
        # Wraps rather than widening the window: a long caption would otherwise push the whole main window
        # past its 1400 px once the first feature maps arrive.
        self.caption.setWordWrap(True)
        self.caption.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)

        self.grid = ChannelGrid()
        self.grid.hovered.connect(self._on_hover)
        self.grid.channel_clicked.connect(self.select_channel)
        self.enlarged = EnlargedView()
        self.enlarged.setMinimumSize(160, 160)

        controls = QHBoxLayout()
        controls.addWidget(self.show_all)
        controls.addStretch(1)
        controls.addWidget(self.scaling)
        middle = QWidget()
        middle_layout = QVBoxLayout(middle)
        middle_layout.setContentsMargins(0, 0, 0, 0)
        middle_layout.addWidget(self.caption)  # a row of its own: the scaling box leaves it no room in a narrow pane
        middle_layout.addLayout(controls)
        middle_layout.addWidget(self.grid, 1)
        middle_layout.addWidget(self.hover_label)
        middle.setMinimumWidth(180)
        # The grid and the enlarged channel side by side in a wide pane, one above the other in a tall
        # one, so the enlarged channel always gets a large square (see resizeEvent).
        self.maps_splitter = _TurningSplitter()
        self.maps_splitter.addWidget(middle)
        self.maps_splitter.addWidget(self.enlarged)
        self.maps_splitter.setCollapsible(0, False)
        self.maps_splitter.setCollapsible(1, False)
        splitter = QSplitter(Qt.Orientation.Horizontal)
        splitter.addWidget(self.layer_list)
        splitter.addWidget(self.maps_splitter)
        splitter.setStretchFactor(0, 0)
        splitter.setStretchFactor(1, 1)
        splitter.setSizes([150, 900])
        splitter.setCollapsible(1, False)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(splitter)


    # -- data ------------------------------------------------------------------------------------------
    def set_layer_types(self, types: dict[str, str]) -> None:
        """Layer name -> type name, shown in the list."""
        self._types = dict(types)

    def set_layer_inputs(self, inputs: dict[str, list[str]]) -> None:
        """Layer name -> the names of the layers it takes ("input" for the image): where a network
        branches, a row says what it takes ("← conv2d_2 + max_pool2d_1")."""
        self._inputs = {name: list(names) for name, names in inputs.items()}
        if self._outputs:
            self._rebuild_list()

    def set_outputs(self, outputs: list[tuple[str, np.ndarray]]) -> None:
        """Each layer's output for one sample: (H, W, C) maps or (U,) vectors (a leading batch axis of 1 is dropped)."""
        cleaned = []
        for name, out in outputs:
            a = np.asarray(out, dtype=np.float32)
            if a.ndim in (2, 4) and a.shape[0] == 1:
                a = a[0]
            cleaned.append((name, a))
        names_before = [(n, a.shape) for n, a in self._outputs]
        self._outputs = cleaned
        if names_before != [(n, a.shape) for n, a in cleaned]:
            self._rebuild_list()
        else:
            self._redraw()

    @property
    def has_outputs(self) -> bool:
        return bool(self._outputs)

    def show_computing(self, text: str) -> None:
        """Until the first outputs come: ``text`` (e.g. 'Computing the feature maps…') heads the empty view
        and stands in the layer list; "" takes it away. Shown outputs are left alone."""
        if self._outputs:
            return
        self.caption.setText(text)
        self.layer_list.blockSignals(True)
        self.layer_list.clear()
        if text:
            placeholder = QListWidgetItem("Computing\u2026")
            placeholder.setFlags(Qt.ItemFlag.NoItemFlags)  # not a layer: nothing to pick
            self.layer_list.addItem(placeholder)
        self.layer_list.blockSignals(False)

    def clear(self, text: str = "") -> None:
        """Show no outputs; ``text`` heads the empty view (why there are none)."""
        self._outputs = []
        self.layer_list.blockSignals(True)
        self.layer_list.clear()
        self.layer_list.blockSignals(False)
        self.grid.clear_maps()
        self.enlarged.clear()
        self.caption.setText(text)

    def _rebuild_list(self) -> None:
        current = self.current_layer
        self.layer_list.blockSignals(True)
        self.layer_list.clear()
        for _ in self._outputs:
            self.layer_list.addItem(QListWidgetItem())
        self._retext_rows()
        names = [n for n, _ in self._outputs]
        row = names.index(current) if current in names else (0 if names else -1)
        self.layer_list.setCurrentRow(row)
        self.layer_list.blockSignals(False)
        self._redraw()

    def _retext_rows(self) -> None:
        """Each row's text for the list's present width: name, shape, and what it takes where that is not
        simply the row above (a branch starts or branches join), wrapped by name rather than cut."""
        metrics, room = QFontMetrics(self.layer_list.font()), self.layer_list.text_room()

        def fits(text: str) -> bool:
            return metrics.horizontalAdvance(text) <= room
        previous = "input"
        for row, (name, out) in enumerate(self._outputs):
            item = self.layer_list.item(row)
            if item is None:
                return
            lines = [shorten_name(name, fits), shape_text(out.shape)]
            tip = f"{name} ({self._types.get(name, '') or 'layer'}): output {shape_text(out.shape)}"
            takes = self._inputs.get(name)
            if takes and takes != [previous]:
                lines += input_lines(takes, fits)
                tip += "<br>takes " + " + ".join(takes)
            item.setText("\n".join(lines))
            item.setToolTip(tip)
            previous = name

    # -- selection -------------------------------------------------------------------------------------
    @property
    def current_layer(self) -> str | None:
        row = self.layer_list.currentRow()
        return self._outputs[row][0] if 0 <= row < len(self._outputs) else None

    def current_output(self) -> np.ndarray | None:
        row = self.layer_list.currentRow()
        return self._outputs[row][1] if 0 <= row < len(self._outputs) else None

    def select_layer(self, name_or_index: str | int) -> None:
        names = [n for n, _ in self._outputs]
        row = names.index(name_or_index) if isinstance(name_or_index, str) else int(name_or_index)
        self.layer_list.setCurrentRow(row)

    def _on_layer_row(self, _row: int) -> None:
        self._channel = 0
        self._redraw()
        if self.current_layer:
            self.layer_selected.emit(self.current_layer)

    def select_channel(self, channel: int) -> None:
        self._channel = int(channel)
        self.grid.select(self._channel)
        self._draw_enlarged()

    @property
    def selected_channel(self) -> int:
        return self._channel

    def shown_channels(self) -> list[np.ndarray]:
        """The (H, W) pictures the grid shows now, in channel order (the unit grid for vectors)."""
        return [item.image for item in self.grid.visible_items()]

    # -- drawing ---------------------------------------------------------------------------------------
    def _on_hover(self, text: str) -> None:
        self.hover_label.setText(text or "Hover a channel to read it; click to enlarge")

    def _redraw(self) -> None:
        out = self.current_output()
        if out is None:
            self.grid.clear_maps()
            self.enlarged.clear()
            self.caption.setText("")
            return
        name = self.current_layer
        per_channel = self.scaling.currentText() == PER_CHANNEL
        if out.ndim == 3:
            channels = out.shape[2]
            capped = channels > CHANNEL_CAP
            self.show_all.setVisible(capped)
            self.show_all.setText(f"Show all {channels} channels")
            shown = channels if (not capped or self.show_all.isChecked()) else CHANNEL_CAP
            maps = np.ascontiguousarray(out[:, :, :shown].transpose(2, 0, 1))
            self.grid.set_maps(maps, per_channel)
            more = f" (first {shown})" if shown < channels else ""
            self.caption.setText(f"{name}: {channels} channels of {out.shape[0]}\u00d7{out.shape[1]}{more}")
            self.scaling.setEnabled(True)
            if self._channel >= shown:
                self._channel = 0
            self.grid.select(self._channel)
        else:
            vector = out.reshape(-1)
            self.show_all.setVisible(False)
            self.grid.set_maps(unit_grid(vector)[None], per_channel=False, units=len(vector))
            self.caption.setText(f"{name}: a vector of {len(vector)} units (row by row)")
            self.scaling.setEnabled(False)
            if self._channel >= len(vector):
                self._channel = 0
        self._draw_enlarged()

    def _draw_enlarged(self) -> None:
        out = self.current_output()
        if out is None:
            return
        name = self.current_layer
        if out.ndim == 3:
            c = min(self._channel, out.shape[2] - 1)
            self.enlarged.show_channel(f"{name} \u00b7 channel {c} ({out.shape[0]}\u00d7{out.shape[1]})", out[:, :, c])
        else:
            vector = out.reshape(-1)
            self.enlarged.show_units(f"{name} \u00b7 unit {self._channel} = {vector[self._channel]:.4g}",
                                     vector, self._channel)
