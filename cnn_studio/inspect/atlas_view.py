"""The filter atlas: for each channel of a convolution, the test-image patches that excite it most.

Each channel is one tile: its weights (mean over the input channels for deeper layers; the colour
picture for an RGB first layer) beside a mosaic of its top patches, each cut to the part of the image
the channel sees (its receptive field). Clicking a tile shows that channel's patches large, with the
activation each reached; clicking a patch opens its image in the sample picker. The atlas is computed
in the background after each run and whenever another layer is chosen ("Compute" recomputes it).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from PySide6.QtCore import QSize, Qt, Signal
from PySide6.QtGui import QIcon, QImage, QPainter, QPixmap, QStandardItem, QStandardItemModel
from PySide6.QtWidgets import (
    QLabel,
    QListView,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from cnn_studio.flow_layout import FlowLayout
from cnn_studio.inspect.images import WEIGHT_COLORMAP, colormap, to_qimage
from cnn_studio.inspect.layer_box import layer_box
from engine.explain import FilterAtlas, filter_atlas
from engine.inspection import as_normalization, conv_layer_names, raw_to_uint8
from engine.model import Model

ATLAS_IMAGES = 1000  # test images searched at most
TILE = 104  # pixels of a channel's tile in the overview (weights beside patches: twice that wide)
LARGE = 96  # pixels of a patch in the detail
ChannelRole = Qt.ItemDataRole.UserRole + 1
IndexRole = Qt.ItemDataRole.UserRole + 2


def atlas_job(x_raw: np.ndarray, preprocessing: dict, layer: str, top_k: int) -> Any:
    """A slow-worker job: the FilterAtlas of ``layer`` over (at most ATLAS_IMAGES of) the test images."""
    indices = np.arange(min(len(x_raw), ATLAS_IMAGES))

    def job(model: Model, task: Any) -> FilterAtlas:
        norm = as_normalization(preprocessing)
        raw = x_raw[indices]
        pictures = raw_to_uint8(raw, float(preprocessing.get("scale", 1 / 255)))
        return filter_atlas(model, norm.apply(raw), layer, top_k, pictures=pictures, progress=task.progress,
                            cancelled=task.cancelled)

    return job


def weight_picture(weights: np.ndarray) -> np.ndarray:
    """(kh, kw, C) weights of one filter -> (kh, kw, 3) uint8: the colour picture for C == 3, else the mean
    over input channels in a diverging colour map (blue negative, red positive)."""
    w = np.asarray(weights, np.float32)
    if w.shape[2] == 3:
        lo, hi = float(w.min()), float(w.max())
        return ((w - lo) / (hi - lo if hi > lo else 1) * 255).round().astype(np.uint8)
    mean = w.mean(axis=2)
    bound = float(np.abs(mean).max()) or 1.0
    rgba = colormap(WEIGHT_COLORMAP).map(((mean / bound) + 1) / 2, mode="byte")
    return np.asarray(rgba, np.uint8).reshape(*mean.shape, -1)[..., :3]


def _scaled(image: QImage, size: int) -> QImage:
    return image.scaled(size, size, Qt.AspectRatioMode.KeepAspectRatio, Qt.TransformationMode.FastTransformation)


def tile_pixmap(patches: np.ndarray, weights: np.ndarray | None, size: int = TILE) -> QPixmap:
    """A channel's tile: its weights on the left (when there are any), its top patches in a grid on the right."""
    pixmap = QPixmap(size * 2 if weights is not None else size, size)
    pixmap.fill(Qt.GlobalColor.white)
    painter = QPainter(pixmap)
    x0 = 0
    if weights is not None:
        painter.drawImage(4, 4, _scaled(to_qimage(weight_picture(weights)), size - 8))
        x0 = size
    n = len(patches)
    cols = int(np.ceil(np.sqrt(max(n, 1))))
    cell = size // cols
    for i, patch in enumerate(patches):
        r, c = divmod(i, cols)
        painter.drawImage(x0 + c * cell + 1, r * cell + 1, _scaled(to_qimage(patch), cell - 2))
    painter.end()
    return pixmap


class FilterAtlasView(QWidget):
    """``set_atlas(atlas, class_names)``. Signals: ``compute_requested()``, ``cancel_requested()``,
    ``image_chosen(int)`` (a test index), ``layer_changed()``."""

    compute_requested = Signal()
    cancel_requested = Signal()
    image_chosen = Signal(int)
    layer_changed = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.layer_box = layer_box("The convolution whose channels are shown")
        self.top_k = QSpinBox()
        self.top_k.setRange(1, 25)
        self.top_k.setValue(9)
        self.top_k.setToolTip("Patches kept per channel")
        self.compute_button = QPushButton("Compute")
        self.compute_button.setToolTip("Search the test images for each channel's strongest responses")
        self.compute_button.clicked.connect(self.compute_requested)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.clicked.connect(self.cancel_requested)
        self.progress = QProgressBar()
        self.progress.setRange(0, 100)
        self.progress.setMaximumWidth(160)
        self.status = QLabel("The filter atlas is computed after training, or when you press Compute.")
        self.status.setWordWrap(True)
        self.model = QStandardItemModel(self)
        self.grid = QListView()
        self.grid.setViewMode(QListView.ViewMode.IconMode)
        self.grid.setResizeMode(QListView.ResizeMode.Adjust)
        self.grid.setMovement(QListView.Movement.Static)
        self.grid.setUniformItemSizes(True)
        self.grid.setSpacing(4)
        self.grid.setModel(self.model)
        self.grid.clicked.connect(lambda index: self.show_channel(int(index.data(ChannelRole))))
        self.detail_title = QLabel("Click a channel to see its patches large.")
        self.detail_title.setWordWrap(True)
        self.detail_model = QStandardItemModel(self)
        self.detail = QListView()
        self.detail.setViewMode(QListView.ViewMode.IconMode)
        self.detail.setResizeMode(QListView.ResizeMode.Adjust)
        self.detail.setMovement(QListView.Movement.Static)
        self.detail.setIconSize(QSize(LARGE, LARGE))
        self.detail.setGridSize(QSize(LARGE + 24, LARGE + 44))
        self.detail.setModel(self.detail_model)
        self.detail.clicked.connect(lambda index: self.image_chosen.emit(int(index.data(IndexRole))))
        detail_box = QWidget()
        detail_layout = QVBoxLayout(detail_box)
        detail_layout.setContentsMargins(0, 0, 0, 0)
        detail_layout.addWidget(self.detail_title)
        detail_layout.addWidget(self.detail, 1)

        controls = FlowLayout()
        controls.add_labelled("Layer", self.layer_box)
        controls.add_labelled("Patches", self.top_k)
        controls.addWidget(self.compute_button)
        controls.addWidget(self.progress)
        controls.addWidget(self.cancel_button)
        splitter = QSplitter(Qt.Orientation.Vertical)
        splitter.addWidget(self.grid)
        splitter.addWidget(detail_box)
        splitter.setStretchFactor(0, 3)
        splitter.setStretchFactor(1, 2)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(controls)
        layout.addWidget(self.status)
        layout.addWidget(splitter, 1)
        self.layer_box.currentIndexChanged.connect(lambda _i: self.layer_changed.emit())
        self.atlas: FilterAtlas | None = None
        self.channel: int | None = None
        self._names: list[str] = []
        self.set_busy(False)

    @property
    def layer(self) -> str:
        return self.layer_box.currentText()

    def set_layers(self, model: Model) -> None:
        names = conv_layer_names(model)
        current = self.layer_box.currentText()
        self.layer_box.blockSignals(True)
        self.layer_box.clear()
        self.layer_box.addItems(names)
        self.layer_box.setCurrentText(current if current in names else (names[0] if names else ""))
        self.layer_box.blockSignals(False)
        self.compute_button.setEnabled(bool(names))
        if not names:
            self.clear("This network has no convolution: there are no filters to look at.")

    def set_busy(self, busy: bool, fraction: float = 0.0) -> None:
        self.progress.setVisible(busy)
        self.cancel_button.setVisible(busy)
        self.progress.setValue(int(round(100 * fraction)))

    def clear(self, text: str) -> None:
        self.atlas, self.channel = None, None
        self.model.clear()
        self.detail_model.clear()
        self.status.setText(text)
        self.detail_title.setText("Click a channel to see its patches large.")
        self.set_busy(False)

    def set_atlas(self, atlas: FilterAtlas, class_names: list[str]) -> None:
        self.atlas, self._names = atlas, list(class_names)
        self.model.clear()
        weights = atlas.weights
        pointwise = weights is not None and weights.shape[:2] == (1, 1)
        if pointwise:
            weights = None  # one number per input channel: their mean would be a tile of one flat colour
        for entry in atlas.channels:
            w = weights[..., entry.channel] if weights is not None else None
            pixmap = tile_pixmap(entry.patches, w)
            item = QStandardItem(QIcon(pixmap), f"channel {entry.channel}")
            item.setData(entry.channel, ChannelRole)
            item.setEditable(False)
            top = f"{entry.activations[0]:.3g}" if len(entry.activations) else "—"
            item.setToolTip(f"Channel {entry.channel}: strongest response {top}. Click for its patches.")
            self.model.appendRow(item)
        width = TILE * (2 if weights is not None else 1)
        self.grid.setIconSize(QSize(width, TILE))
        self.grid.setGridSize(QSize(width + 12, TILE + 26))
        rh, rw = atlas.patch_shape
        weights_text = "its weights (left) and " if weights is not None else ""
        kept = len(atlas.channels[0].indices) if atlas.channels else 0
        pointwise_text = (" A 1x1 convolution's weights only mix the input channels at each position: they make "
                          "no picture.") if pointwise else ""
        self.status.setText(
            f"{atlas.layer}: each tile shows {weights_text}the {kept} patches of the {atlas.images} test images "
            f"that excite the channel most, each {rh}x{rw} pixels: the "
            f"part of the image one position of the channel sees.{pointwise_text}")
        self.set_busy(False)
        if self.channel is not None and self.channel < len(atlas.channels):
            self.show_channel(self.channel)
        else:
            self.detail_model.clear()

    def show_channel(self, channel: int) -> None:
        """Show ``channel``'s patches large in the detail list."""
        if self.atlas is None or not 0 <= channel < len(self.atlas.channels):
            return
        self.channel = channel
        entry = self.atlas.channels[channel]
        self.detail_model.clear()
        for patch, value, index in zip(entry.patches, entry.activations, entry.indices):
            image = _scaled(to_qimage(patch), LARGE)
            item = QStandardItem(QIcon(QPixmap.fromImage(image)), f"#{int(index) + 1}  {value:.3g}")
            item.setData(int(index), IndexRole)
            item.setToolTip(f"Test image {int(index) + 1}: the channel reaches {value:.4g} here. Click to look inside.")
            item.setEditable(False)
            self.detail_model.appendRow(item)
        self.detail_title.setText(f"<b>{self.atlas.layer}, channel {channel}</b>: its {len(entry.indices)} strongest "
                                  "patches, largest first (value: the channel's output there). Click one to open its "
                                  "image.")
