"""Saliency: which input pixels the class score is most sensitive to, drawn over the sample.

Left: the sample with |d score / d pixel| (largest over colour channels) overlaid as a heat map
that is transparent where the gradient is small.
Right: the signed gradient (summed over colour channels): red pixels raise the score when
brightened, blue ones lower it. Computed by the engine's own backward pass.
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QRectF, Qt, Signal
from PySide6.QtWidgets import QComboBox, QHBoxLayout, QLabel, QSlider, QVBoxLayout, QWidget

from cnn_studio.inspect.images import SALIENCY_COLORMAP, WEIGHT_COLORMAP, colormap
from engine.inspection import Saliency

PREDICTED = "Predicted class"


def heat_rgba(magnitude: np.ndarray) -> np.ndarray:
    """(H, W) in [0, 1] -> (H, W, 4) float RGBA: the heat colour, opaque where the gradient is large
    and transparent where it is small, so the picture shows through the unimportant pixels."""
    rgba = colormap(SALIENCY_COLORMAP).map(np.clip(magnitude, 0, 1).ravel(), mode="float")
    rgba = np.asarray(rgba, dtype=np.float32).reshape(*magnitude.shape, -1)[..., :4].copy()
    rgba[..., 3] = np.clip(np.sqrt(magnitude) * 1.2, 0, 1)
    return rgba


class SaliencyView(QWidget):
    """``set_saliency(picture (H, W, C) in [0, 1], Saliency, class_names)``; ``class_requested(int)``
    asks for another class's map (-1: the predicted class)."""

    class_requested = Signal(int)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.class_box = QComboBox()
        self.class_box.addItem(PREDICTED)
        self.class_box.setToolTip("Whose class score is differentiated")
        self.class_box.currentIndexChanged.connect(lambda row: self.class_requested.emit(row - 1))
        self.opacity = QSlider(Qt.Orientation.Horizontal)
        self.opacity.setRange(0, 100)
        self.opacity.setValue(85)
        self.opacity.setMaximumWidth(160)
        self.opacity.setToolTip("Opacity of the heat map over the picture")
        self.opacity.valueChanged.connect(lambda v: self.overlay.setOpacity(v / 100))
        self.explanation = QLabel("Choose a sample to see which pixels its prediction depends on.")
        self.explanation.setWordWrap(True)

        # Two equal widgets side by side, so both pictures are drawn at the same size.
        self.left_graphics = pg.GraphicsLayoutWidget()
        self.right_graphics = pg.GraphicsLayoutWidget()
        for graphics in (self.left_graphics, self.right_graphics):
            graphics.setBackground("w")
        self.left_title = self.left_graphics.addLabel("sample + |gradient|", row=0, col=0, color="#333")
        self.right_title = self.right_graphics.addLabel("signed gradient", row=0, col=0, color="#333")
        self.left = self.left_graphics.addViewBox(row=1, col=0, lockAspect=True, invertY=True, enableMouse=False)
        self.right = self.right_graphics.addViewBox(row=1, col=0, lockAspect=True, invertY=True, enableMouse=False)
        self.picture = pg.ImageItem(axisOrder="row-major")
        self.overlay = pg.ImageItem(axisOrder="row-major")
        self.overlay.setOpacity(0.85)
        self.overlay.setZValue(1)
        self.left.addItem(self.picture)
        self.left.addItem(self.overlay)
        self.signed = pg.ImageItem(axisOrder="row-major")
        self.signed.setColorMap(colormap(WEIGHT_COLORMAP))
        self.right.addItem(self.signed)

        controls = QHBoxLayout()
        controls.addWidget(QLabel("Score of"))
        controls.addWidget(self.class_box)
        controls.addSpacing(16)
        controls.addWidget(QLabel("Heat map opacity"))
        controls.addWidget(self.opacity)
        controls.addStretch(1)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(controls)
        layout.addWidget(self.explanation)
        pictures = QHBoxLayout()
        pictures.addWidget(self.left_graphics, 1)
        pictures.addWidget(self.right_graphics, 1)
        layout.addLayout(pictures, 1)
        self.result: Saliency | None = None

    def set_class_names(self, names: list[str]) -> None:
        current = self.class_box.currentIndex()
        self.class_box.blockSignals(True)
        self.class_box.clear()
        self.class_box.addItem(PREDICTED)
        self.class_box.addItems(list(names))
        self.class_box.setCurrentIndex(current if 0 <= current <= len(names) else 0)
        self.class_box.blockSignals(False)

    @property
    def requested_class(self) -> int | None:
        """The class chosen in the box, or None for the predicted one."""
        row = self.class_box.currentIndex()
        return row - 1 if row > 0 else None

    def clear(self, text: str = "Choose a sample to see which pixels its prediction depends on.") -> None:
        self.picture.clear()
        self.overlay.clear()
        self.signed.clear()
        self.explanation.setText(text)
        self.result = None

    def set_saliency(self, picture: np.ndarray, result: Saliency, class_names: list[str]) -> None:
        """``picture`` (H, W, C) in [0, 1] (the sample as the user sees it)."""
        picture = np.asarray(picture, dtype=np.float32)
        if picture.shape[-1] == 1:
            self.picture.setImage(picture[..., 0], autoLevels=False, levels=(0.0, 1.0))
        else:
            self.picture.setImage(picture, autoLevels=False, levels=(0.0, 1.0))
        self.overlay.setImage(heat_rgba(result.magnitude), autoLevels=False, levels=(0.0, 1.0))
        signed = result.gradient.sum(axis=-1)
        bound = float(np.abs(signed).max()) or 1.0
        self.signed.setImage(signed, autoLevels=False, levels=(-bound, bound))
        h, w = signed.shape
        for view in (self.left, self.right):
            view.setRange(QRectF(0, 0, w, h), padding=0.02)
        k = result.class_index
        name = class_names[k] if 0 <= k < len(class_names) else str(k)
        self.explanation.setText(
            f"Gradient of the score of <b>{name}</b> with respect to each input pixel. Bright heat: changing that "
            "pixel changes the score most. Right: red raises the score when the pixel gets brighter, blue "
            "lowers it."
        )
        self.result = result
