"""Conv kernels as small pictures: the first conv layer by default, deeper ones on request.

Grayscale view: one tile per (filter, input channel), a diverging colour map, each filter scaled
to its largest |weight| (blue negative, white zero, red positive). With a single input channel
the filters fill a square-ish grid; with several, each column is a filter and each row an input
channel. RGB view (3 input channels): one colour tile per filter. Drawn as one mosaic image.
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QEvent, QObject, Signal
from PySide6.QtWidgets import QCheckBox, QLabel, QVBoxLayout, QWidget

from cnn_studio.flow_layout import FlowLayout
from cnn_studio.inspect.images import WEIGHT_COLORMAP, colormap
from cnn_studio.inspect.layer_box import layer_box
from engine.inspection import filter_images, grid_shape
from engine.model import Model

FILTER_CAP = 64
CHANNEL_CAP = 32


def mosaic(tiles: np.ndarray, rows: int, cols: int, fill: float) -> np.ndarray:
    """(n, h, w[, 3]) tiles -> one row-major picture with a one-pixel ``fill`` gap between tiles."""
    n, h, w = tiles.shape[:3]
    extra = tiles.shape[3:]
    out = np.full((rows * (h + 1) - 1, cols * (w + 1) - 1, *extra), fill, dtype=np.float32)
    for i in range(n):
        r, c = divmod(i, cols)
        out[r * (h + 1) : r * (h + 1) + h, c * (w + 1) : c * (w + 1) + w] = tiles[i]
    return out


class FiltersView(QWidget):
    """``set_model(model)`` reads the kernels (copies); ``show_layer(name)`` picks a conv layer."""

    hovered = Signal(str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._kernels: dict[str, np.ndarray] = {}
        self._layout: tuple[str, int, int, int, int] = ("", 0, 0, 0, 0)  # mode, rows, cols, kh, kw
        self.layer_box = layer_box("Which conv layer's kernels to draw")
        self.layer_box.currentIndexChanged.connect(lambda _i: self._redraw())
        self.rgb_box = QCheckBox("As colour pictures")
        self.rgb_box.setToolTip("Draw each filter of a colour input as one RGB picture")
        self.rgb_box.setChecked(True)
        self.rgb_box.toggled.connect(lambda _on: self._redraw())
        self.show_all = QCheckBox("Show all")
        self.show_all.toggled.connect(lambda _on: self._redraw())
        self.caption = QLabel("No network yet")
        self.caption.setWordWrap(True)
        self.hover_label = QLabel("")
        self.graphics = pg.GraphicsLayoutWidget()
        self.graphics.setBackground("w")
        self.view = self.graphics.addViewBox(lockAspect=True, invertY=True, enableMouse=True)
        self.view.setMenuEnabled(False)
        self.image = pg.ImageItem(axisOrder="row-major")
        self.view.addItem(self.image)
        self.graphics.scene().sigMouseMoved.connect(self._on_mouse_moved)
        self.graphics.installEventFilter(self)  # the pointer leaving: the readout must not keep its last filter
        controls = FlowLayout()
        controls.add_labelled("Layer", self.layer_box)
        controls.addWidget(self.rgb_box)
        controls.addWidget(self.show_all)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(controls)
        layout.addWidget(self.caption)
        layout.addWidget(self.graphics, 1)
        layout.addWidget(self.hover_label)
        self.shown: np.ndarray | None = None  # the mosaic now drawn

    def set_model(self, model: Model | None) -> None:
        current = self.layer_box.currentText()
        self._kernels = {}
        if model is not None:
            for name, layer in zip(model.names, model.layers):
                kernel = layer.params.get("kernel")
                if kernel is not None and kernel.ndim == 4:
                    self._kernels[name] = kernel.copy()
        self.layer_box.blockSignals(True)
        self.layer_box.clear()
        self.layer_box.addItems(list(self._kernels))
        if current in self._kernels:
            self.layer_box.setCurrentText(current)
        self.layer_box.blockSignals(False)
        self._redraw()

    def layer_names(self) -> list[str]:
        return list(self._kernels)

    def show_layer(self, name: str) -> None:
        self.layer_box.setCurrentText(name)

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:  # noqa: N802 (Qt's name)
        if watched is self.graphics and event.type() == QEvent.Type.Leave:
            self.hover_label.setText("")
        return super().eventFilter(watched, event)

    def _redraw(self) -> None:
        self.hover_label.setText("")  # it named a weight of what was drawn before
        name = self.layer_box.currentText()
        kernel = self._kernels.get(name)
        if kernel is None:
            self.image.clear()
            self.shown = None
            self.caption.setText("This network has no conv layer." if not self._kernels else "")
            self.rgb_box.setVisible(False)
            self.show_all.setVisible(False)
            return
        kh, kw, channels, filters = kernel.shape
        self.rgb_box.setVisible(channels == 3)
        rgb = channels == 3 and self.rgb_box.isChecked()
        capped = filters > FILTER_CAP or (not rgb and channels > 1 and channels > CHANNEL_CAP)
        self.show_all.setVisible(capped)
        everything = self.show_all.isChecked()
        shown_filters = filters if everything else min(filters, FILTER_CAP)
        shown_channels = channels if everything else min(channels, CHANNEL_CAP)
        kernel = kernel[:, :, :, :shown_filters]
        if rgb:
            tiles = filter_images(kernel, rgb=True)  # (F, kh, kw, 3)
            rows, cols = grid_shape(shown_filters)
            picture = mosaic(tiles, rows, cols, fill=1.0)
            self.image.setLookupTable(None)
            self.image.setImage(picture, autoLevels=False, levels=(0.0, 1.0))
            self._layout = ("rgb", rows, cols, kh, kw)
            what = "colour pictures, each stretched to its own range"
        else:
            tiles = filter_images(kernel, rgb=False)[:, :shown_channels]  # (F, C, kh, kw)
            if channels == 1:
                rows, cols = grid_shape(shown_filters)
                flat = tiles[:, 0]
                self._layout = ("grid", rows, cols, kh, kw)
            else:
                # Columns are filters, rows input channels: wide like the pane, and a filter reads downwards.
                rows, cols = shown_channels, shown_filters
                flat = tiles.transpose(1, 0, 2, 3).reshape(-1, kh, kw)
                self._layout = ("matrix", rows, cols, kh, kw)
            picture = mosaic(flat, rows, cols, fill=np.nan)
            self.image.setColorMap(colormap(WEIGHT_COLORMAP))
            self.image.setImage(picture, autoLevels=False, levels=(-1.0, 1.0))
            what = ("blue = negative, white = zero, red = positive weight; each filter scaled to its "
                    "largest |weight|")
            if channels > 1:
                what += "; each column is a filter, each row an input channel (wheel to zoom, drag to pan)"
        more = "" if everything or not capped else " (capped: tick Show all)"
        self.caption.setText(f"{name}: {filters} filters of {kh}\u00d7{kw}\u00d7{channels}{more}. {what}.")
        self.shown = picture
        self.view.autoRange(padding=0.02)

    def locate(self, x: float, y: float) -> tuple[int, int] | None:
        """View coordinates -> (filter, input channel; -1 for a whole RGB filter), None between tiles."""
        mode, rows, cols, kh, kw = self._layout
        if not rows or x < 0 or y < 0:
            return None
        col, dx = divmod(int(x), kw + 1)
        row, dy = divmod(int(y), kh + 1)
        if dx >= kw or dy >= kh or row >= rows or col >= cols:
            return None
        if mode == "matrix":
            return col, row
        f = row * cols + col
        kernel = self._kernels.get(self.layer_box.currentText())
        if kernel is None or f >= kernel.shape[3]:
            return None
        return f, (-1 if mode == "rgb" else 0)

    def _on_mouse_moved(self, scene_pos) -> None:
        if self.shown is None or not self.view.sceneBoundingRect().contains(scene_pos):
            return
        point = self.view.mapSceneToView(scene_pos)
        hit = self.locate(point.x(), point.y())
        if hit is None:
            self.hover_label.setText("")
            return
        f, c = hit
        kernel = self._kernels[self.layer_box.currentText()]
        weights = kernel[:, :, :, f] if c < 0 else kernel[:, :, c, f]
        where = f"filter {f}" + ("" if c < 0 else f", input channel {c}")
        text = f"{where}: weights {weights.min():.3g} .. {weights.max():.3g}"
        self.hover_label.setText(text)
        self.hovered.emit(text)
