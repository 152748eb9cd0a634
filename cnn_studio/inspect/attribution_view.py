"""Attribution: where the network looks to decide on a class, by four methods, drawn over the sample.

Gradient (d score / d pixel), SmoothGrad (that gradient averaged over noisy copies of the sample),
Grad-CAM (a chosen layer's feature maps weighted by how much the class score depends on each) and
occlusion (how much the class's probability drops when a patch hides part of the sample). Left: the
sample with the map as a heat overlay (its opacity is adjustable); right: the map itself, signed
where the method is (red raises the score, blue lowers it). The class explained is the predicted one,
the sample's true class, or any class chosen.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QRectF, Qt, Signal
from PySide6.QtWidgets import (
    QComboBox,
    QDoubleSpinBox,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QSlider,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from cnn_studio.flow_layout import FlowLayout
from cnn_studio.inspect.images import ACTIVATION_COLORMAP, SALIENCY_COLORMAP, WEIGHT_COLORMAP, colormap
from cnn_studio.inspect.layer_box import layer_box

METHODS = ("gradient", "smoothgrad", "gradcam", "occlusion")
METHOD_TITLES = {"gradient": "Gradient", "smoothgrad": "SmoothGrad", "gradcam": "Grad-CAM", "occlusion": "Occlusion"}
METHOD_TIPS = {
    "gradient": "How much each pixel changes the class score: the gradient of the score (before the softmax). "
                "Quick, but noisy.",
    "smoothgrad": "The gradient averaged over copies of the sample with random noise added: the noise cancels "
                  "out and the shapes that matter remain (computed in the background).",
    "gradcam": "Grad-CAM: the chosen layer's feature maps, each weighted by how much the class score depends on "
               "it; coarse (the layer's resolution) but class-specific. Later layers: more meaning, less detail.",
    "occlusion": "Hide each part of the sample under a patch and watch the class's probability: where it drops, "
                 "the network was looking (computed in the background).",
}
LONG_METHODS = ("smoothgrad", "occlusion")
CLASS_PREDICTED, CLASS_TRUE = -1, -2
FILLS = (("black", 0.0), ("grey", 0.5), ("white", 1.0))


@dataclass(frozen=True)
class AttributionRequest:
    """What to compute: the method and its settings, and the class (CLASS_PREDICTED, CLASS_TRUE or an index)."""

    method: str
    class_choice: int
    layer: str = ""
    samples: int = 25
    noise: float = 0.15
    patch: int = 4
    stride: int = 2
    fill: float = 0.0  # pixel intensity of the occluding patch, 0 (black) to 1 (white)

    @property
    def long(self) -> bool:
        return self.method in LONG_METHODS


@dataclass(frozen=True)
class AttributionResult:
    """``heat`` (H, W) in [0, 1] for the overlay; ``map`` the method's own map (signed for the gradient
    methods and occlusion, the layer's h x w for Grad-CAM); ``signed``: draw ``map`` with a diverging
    colour map; ``class_index`` the class explained; ``note`` says what the numbers mean."""

    method: str
    heat: np.ndarray
    map: np.ndarray
    signed: bool
    class_index: int
    note: str = ""
    layer: str = ""


def heat_rgba(heat: np.ndarray, sparse: bool = True) -> np.ndarray:
    """(H, W) in [0, 1] -> (H, W, 4) RGBA: the heat colour, transparent where the value is small, so the
    picture shows through the unimportant pixels. ``sparse`` maps (gradients: a few strong pixels) get
    their faint values lifted; smooth ones (Grad-CAM, occlusion) stay transparent where they are low."""
    heat = np.clip(heat, 0, 1)
    rgba = colormap(SALIENCY_COLORMAP).map(heat.ravel(), mode="float")
    rgba = np.asarray(rgba, dtype=np.float32).reshape(*heat.shape, -1)[..., :4].copy()
    rgba[..., 3] = np.clip(np.sqrt(heat) * 1.2, 0, 1) if sparse else heat * 0.9
    return rgba


def _spin(minimum: float, maximum: float, value: float, tip: str, decimals: int | None = None,
          suffix: str = "") -> QSpinBox | QDoubleSpinBox:
    box = QSpinBox() if decimals is None else QDoubleSpinBox()
    if decimals is not None:
        box.setDecimals(decimals)
    box.setRange(minimum, maximum)
    box.setValue(value)
    box.setToolTip(tip)
    box.setSuffix(suffix)
    box.setKeyboardTracking(False)  # typing "25" asks once, not for "2" first
    return box


class AttributionView(QWidget):
    """Signals: ``requested()`` when the method, a setting or the class changes (the panel computes);
    ``cancel_requested()`` when the user stops a long computation."""

    requested = Signal()
    cancel_requested = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.method_box = QComboBox()
        for method in METHODS:
            self.method_box.addItem(METHOD_TITLES[method], method)
            self.method_box.setItemData(self.method_box.count() - 1, METHOD_TIPS[method], Qt.ItemDataRole.ToolTipRole)
        self.method_box.setToolTip("How the map is computed (hover an entry for what it shows)")
        self.layer_box = layer_box("The layer whose feature maps Grad-CAM weighs (the last one with feature maps "
                                  "is usual: most meaning, least detail)")
        self.class_box = QComboBox()
        self.class_box.setToolTip("Whose class score is explained")
        self.samples = _spin(1, 200, 25, "Noisy copies averaged (more: smoother, slower)")
        self.noise = _spin(0, 100, 15, "Noise standard deviation, as a share of the sample's value range", 0, " %")
        self.patch = _spin(1, 64, 4, "Side of the square patch that hides part of the sample (pixels)",
                           suffix=" px")
        self.stride = _spin(1, 32, 2, "Step between patch positions (pixels)", suffix=" px")
        self.fill = QComboBox()
        for name, value in FILLS:
            self.fill.addItem(name, value)
        self.fill.setToolTip("What the patch shows instead of the hidden pixels")
        self.opacity = QSlider(Qt.Orientation.Horizontal)
        self.opacity.setRange(0, 100)
        self.opacity.setValue(80)
        self.opacity.setMaximumWidth(110)
        self.opacity.setMinimumWidth(60)
        self.opacity.setToolTip("Opacity of the heat map over the sample")
        self.opacity.valueChanged.connect(lambda v: self.overlay.setOpacity(v / 100))
        self.progress = QProgressBar()
        self.progress.setRange(0, 100)
        self.progress.setMaximumWidth(160)
        self.progress.setFormat("%p%")
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setToolTip("Stop this computation")
        self.cancel_button.clicked.connect(self.cancel_requested)
        self.explanation = QLabel("Choose a sample to see where the network looks to decide.")
        self.explanation.setWordWrap(True)
        self.explanation.setTextFormat(Qt.TextFormat.RichText)

        self._options: dict[str, list[QWidget]] = {}
        # One flowing row of controls: two or three rows in a narrow pane, a label always beside its box.
        controls = FlowLayout()
        controls.add_labelled("Method", self.method_box)
        controls.add_labelled("Explain", self.class_box)
        for method, pairs in (("gradcam", (("Layer", self.layer_box),)),
                              ("smoothgrad", (("Samples", self.samples), ("Noise", self.noise))),
                              ("occlusion", (("Patch", self.patch), ("Stride", self.stride), ("Fill", self.fill)))):
            widgets = []
            for text, widget in pairs:
                widgets += [controls.add_labelled(text, widget), widget]
            self._options[method] = widgets
        controls.add_labelled("Opacity", self.opacity)
        controls.addWidget(self.progress)
        controls.addWidget(self.cancel_button)

        self.left_graphics = pg.GraphicsLayoutWidget()
        self.right_graphics = pg.GraphicsLayoutWidget()
        for graphics in (self.left_graphics, self.right_graphics):
            graphics.setBackground("w")
        self.left_title = self.left_graphics.addLabel("sample + map", row=0, col=0, color="#333")
        self.right_title = self.right_graphics.addLabel("map", row=0, col=0, color="#333")
        self.left = self.left_graphics.addViewBox(row=1, col=0, lockAspect=True, invertY=True, enableMouse=False)
        self.right = self.right_graphics.addViewBox(row=1, col=0, lockAspect=True, invertY=True, enableMouse=False)
        self.picture = pg.ImageItem(axisOrder="row-major")
        self.overlay = pg.ImageItem(axisOrder="row-major")
        self.overlay.setOpacity(0.8)
        self.overlay.setZValue(1)
        self.left.addItem(self.picture)
        self.left.addItem(self.overlay)
        self.map_image = pg.ImageItem(axisOrder="row-major")
        self.right.addItem(self.map_image)
        pictures = QHBoxLayout()
        pictures.addWidget(self.left_graphics, 1)
        pictures.addWidget(self.right_graphics, 1)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(controls)
        layout.addWidget(self.explanation)
        layout.addLayout(pictures, 1)

        self.result: AttributionResult | None = None
        self._class_names: list[str] = []
        self.set_class_names([])
        for box in (self.method_box, self.layer_box, self.class_box, self.fill):
            box.currentIndexChanged.connect(self._changed)
        for spin in (self.samples, self.noise, self.patch, self.stride):
            spin.valueChanged.connect(self._changed)
        self.set_busy(False)
        self._show_options()

    # -- settings -------------------------------------------------------------------------------------------
    @property
    def method(self) -> str:
        return self.method_box.currentData()

    def set_method(self, method: str) -> None:
        self.method_box.setCurrentIndex(METHODS.index(method))

    def request(self) -> AttributionRequest:
        return AttributionRequest(
            method=self.method, class_choice=self.class_box.currentData(),
            layer=self.layer_box.currentText(), samples=self.samples.value(), noise=self.noise.value() / 100,
            patch=self.patch.value(), stride=self.stride.value(), fill=float(self.fill.currentData()))

    @property
    def requested_class(self) -> int | None:
        """The chosen class index, or None for the predicted class (True class: see ``request``)."""
        choice = self.class_box.currentData()
        return choice if choice is not None and choice >= 0 else None

    def set_class_names(self, names: list[str]) -> None:
        current = self.class_box.currentData()
        self._class_names = list(names)
        self.class_box.blockSignals(True)
        self.class_box.clear()
        self.class_box.addItem("Predicted class", CLASS_PREDICTED)
        self.class_box.addItem("True class", CLASS_TRUE)
        for i, name in enumerate(names):
            self.class_box.addItem(name, i)
        index = self.class_box.findData(current)
        self.class_box.setCurrentIndex(index if index >= 0 else 0)
        self.class_box.blockSignals(False)

    def set_layers(self, names: list[str], default: str | None) -> None:
        """The layers Grad-CAM can use (those with feature maps); keeps the choice when it still exists."""
        current = self.layer_box.currentText()
        self.layer_box.blockSignals(True)
        self.layer_box.clear()
        self.layer_box.addItems(names)
        chosen = current if current in names else (default or (names[-1] if names else ""))
        self.layer_box.setCurrentText(chosen)
        self.layer_box.blockSignals(False)
        index = METHODS.index("gradcam")
        item = self.method_box.model().item(index)
        item.setEnabled(bool(names))
        item.setToolTip(METHOD_TIPS["gradcam"] if names else "Grad-CAM needs a layer with feature maps "
                                                              "(a convolution): this network has none")

    def set_image_size(self, height: int, width: int) -> None:
        """Sensible patch defaults for an image of this size (a seventh of it, half that as the stride)."""
        side = max(1, min(height, width))
        self.patch.blockSignals(True)
        self.stride.blockSignals(True)
        self.patch.setMaximum(side)
        self.stride.setMaximum(side)
        self.patch.setValue(max(2, round(side / 7)))
        self.stride.setValue(max(1, self.patch.value() // 2))
        self.patch.blockSignals(False)
        self.stride.blockSignals(False)

    def _changed(self, *_args: object) -> None:
        self._show_options()
        self.requested.emit()

    def _show_options(self) -> None:
        for method, widgets in self._options.items():
            for widget in widgets:
                widget.setVisible(method == self.method)

    # -- progress ----------------------------------------------------------------------------------------------
    def set_busy(self, busy: bool, fraction: float = 0.0) -> None:
        self.progress.setVisible(busy)
        self.cancel_button.setVisible(busy)
        self.progress.setValue(int(round(100 * fraction)))

    # -- pictures ----------------------------------------------------------------------------------------------------
    def clear(self, text: str = "Choose a sample to see where the network looks to decide.") -> None:
        self.picture.clear()
        self.overlay.clear()
        self.map_image.clear()
        self.explanation.setText(text)
        self.result = None
        self.set_busy(False)

    def show_computing(self, text: str) -> None:
        self.explanation.setText(text)

    def set_result(self, picture: np.ndarray, result: AttributionResult) -> None:
        """``picture`` (H, W, C) in [0, 1]: the sample as the user sees it."""
        picture = np.asarray(picture, dtype=np.float32)
        self.picture.setImage(picture[..., 0] if picture.shape[-1] == 1 else picture, autoLevels=False,
                              levels=(0.0, 1.0))
        sparse = result.method in ("gradient", "smoothgrad")
        self.overlay.setImage(heat_rgba(result.heat, sparse), autoLevels=False, levels=(0.0, 1.0))
        values = np.asarray(result.map, dtype=np.float32)
        if result.signed:
            bound = float(np.abs(values).max()) or 1.0
            self.map_image.setColorMap(colormap(WEIGHT_COLORMAP))
            self.map_image.setImage(values, autoLevels=False, levels=(-bound, bound))
        else:
            top = float(values.max()) or 1.0
            self.map_image.setColorMap(colormap(ACTIVATION_COLORMAP))
            self.map_image.setImage(values, autoLevels=False, levels=(0.0, top))
        h, w = picture.shape[:2]
        self.left.setRange(QRectF(0, 0, w, h), padding=0.02)
        mh, mw = values.shape[:2]
        self.right.setRange(QRectF(0, 0, mw, mh), padding=0.02)
        self.right_title.setText(self._map_title(result, mh, mw))
        k = result.class_index
        name = self._class_names[k] if 0 <= k < len(self._class_names) else str(k)
        self.explanation.setText(f"{METHOD_TITLES[result.method]} for <b>{name}</b>. {result.note}")
        self.result = result
        self.set_busy(False)

    @staticmethod
    def _map_title(result: AttributionResult, h: int, w: int) -> str:
        if result.method == "gradcam":
            return f"Grad-CAM of {result.layer} ({h}x{w})"
        if result.method == "occlusion":
            return "probability drop"
        return "signed gradient"
