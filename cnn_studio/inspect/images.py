"""Small conversions between NumPy pictures and Qt pictures, and the colour maps the tab uses."""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtGui import QImage, QPixmap

# Perceptual (monotonic lightness) map for activations; a diverging one for signed weights.
ACTIVATION_COLORMAP = "viridis"
WEIGHT_COLORMAP = "CET-D1"
SALIENCY_COLORMAP = "inferno"


def colormap(name: str) -> pg.ColorMap:
    return pg.colormap.get(name)


def to_qimage(pixels: np.ndarray) -> QImage:
    """(H, W, 1) or (H, W) grayscale, or (H, W, 3) RGB uint8 -> a QImage that owns its copy."""
    a = np.ascontiguousarray(pixels, dtype=np.uint8)
    if a.ndim == 3 and a.shape[2] == 1:
        a = np.ascontiguousarray(a[..., 0])
    h, w = a.shape[:2]
    if a.ndim == 2:
        return QImage(a.data, w, h, w, QImage.Format.Format_Grayscale8).copy()
    if a.shape[2] != 3:
        raise ValueError(f"expected 1 or 3 channels, got shape {a.shape}")
    return QImage(a.data, w, h, 3 * w, QImage.Format.Format_RGB888).copy()


def to_pixmap(pixels: np.ndarray, size: int) -> QPixmap:
    """A square-ish pixmap of at most ``size`` px, enlarged without smoothing so pixels stay visible."""
    image = to_qimage(pixels)
    return QPixmap.fromImage(
        image.scaled(size, size, Qt.AspectRatioMode.KeepAspectRatio, Qt.TransformationMode.FastTransformation)
    )


def qimage_to_array(image: QImage) -> np.ndarray:
    """Any QImage -> (H, W, 3) uint8 RGB copy."""
    rgb = image.convertToFormat(QImage.Format.Format_RGB888)
    h, w, stride = rgb.height(), rgb.width(), rgb.bytesPerLine()
    buffer = np.frombuffer(rgb.constBits(), dtype=np.uint8, count=stride * h).reshape(h, stride)
    return buffer[:, : 3 * w].reshape(h, w, 3).copy()


def display_levels(values: np.ndarray) -> tuple[float, float]:
    """(low, high) colour levels covering ``values``.

    A constant array (e.g. a channel a ReLU never fires in) is drawn in the lowest colour, not mid-scale.
    """
    finite = np.asarray(values)[np.isfinite(values)]
    if finite.size == 0:
        return 0.0, 1.0
    lo, hi = float(finite.min()), float(finite.max())
    if hi - lo < 1e-12:
        return lo, lo + 1.0
    return lo, hi
