"""A pad to draw a sample with the mouse, sized and coloured for the network's input.

The canvas is the input size enlarged by a whole factor; ``pixels()`` shrinks it back to the input's
(H, W, C) uint8 by the engine's picture rule (``engine.pictures``: Pillow's bilinear filter, which
averages over the covered area when shrinking), the rule every picture goes through.
Light strokes on black, like MNIST-style datasets; colour inputs get a pen colour choice.
"""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QPointF, QSize, Qt, QTimer, Signal
from PySide6.QtGui import QColor, QImage, QMouseEvent, QPainter, QPaintEvent, QPen
from PySide6.QtWidgets import (
    QColorDialog,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSizePolicy,
    QSlider,
    QVBoxLayout,
    QWidget,
)

from cnn_studio.inspect.images import qimage_to_array
from engine.inspection import image_to_pixels

CANVAS_TARGET = 200  # canvas side in screen pixels, about


class DrawingCanvas(QWidget):
    """The surface itself. Emits ``stroke_changed`` while drawing (throttled) and when a stroke ends."""

    stroke_changed = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.input_shape: tuple[int, int, int] = (28, 28, 1)
        self.factor = 8
        self.pen_color = QColor(255, 255, 255)
        self.brush_pixels = 2.5  # stroke width in input pixels
        self.canvas = QImage()
        self._last: QPointF | None = None
        self._throttle = QTimer(self)
        self._throttle.setSingleShot(True)
        self._throttle.setInterval(150)
        self._throttle.timeout.connect(self.stroke_changed)
        self.setCursor(Qt.CursorShape.CrossCursor)
        self.setSizePolicy(QSizePolicy.Policy.Fixed, QSizePolicy.Policy.Fixed)
        self.set_input_shape(self.input_shape)

    def set_input_shape(self, shape: tuple[int, int, int]) -> None:
        h, w, c = (int(v) for v in shape)
        if (h, w, c) == self.input_shape and not self.canvas.isNull():
            return  # keep the drawing when the same network shape is set again (e.g. after each epoch)
        self.input_shape = (h, w, c)
        self.factor = max(1, round(CANVAS_TARGET / max(h, w)))
        self.canvas = QImage(w * self.factor, h * self.factor, QImage.Format.Format_RGB32)
        self.canvas.fill(QColor(0, 0, 0))
        if c == 1:
            self.pen_color = QColor(255, 255, 255)
        self.setFixedSize(self.sizeHint())
        self.update()

    def sizeHint(self) -> QSize:
        return self.canvas.size()

    def clear(self) -> None:
        self.canvas.fill(QColor(0, 0, 0))
        self.update()
        self.stroke_changed.emit()

    def is_blank(self) -> bool:
        return not qimage_to_array(self.canvas).any()

    def pixels(self) -> np.ndarray:
        """The drawing at the input size: (H, W, C) uint8."""
        return image_to_pixels(qimage_to_array(self.canvas), self.input_shape)

    def draw_line(self, start: QPointF, end: QPointF) -> None:
        """Paint one stroke segment in canvas coordinates (what mouse dragging does)."""
        painter = QPainter(self.canvas)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        pen = QPen(self.pen_color, self.brush_pixels * self.factor, Qt.PenStyle.SolidLine,
                   Qt.PenCapStyle.RoundCap, Qt.PenJoinStyle.RoundJoin)
        painter.setPen(pen)
        painter.drawLine(start, end)
        painter.end()
        self.update()

    def mousePressEvent(self, event: QMouseEvent) -> None:
        if event.button() == Qt.MouseButton.LeftButton:
            self._last = event.position()
            self.draw_line(self._last, self._last)
            self._throttle.start()

    def mouseMoveEvent(self, event: QMouseEvent) -> None:
        if self._last is not None:
            point = event.position()
            self.draw_line(self._last, point)
            self._last = point
            if not self._throttle.isActive():
                self._throttle.start()

    def mouseReleaseEvent(self, event: QMouseEvent) -> None:
        if self._last is not None and event.button() == Qt.MouseButton.LeftButton:
            self.draw_line(self._last, event.position())
            self._last = None
            self._throttle.stop()
            self.stroke_changed.emit()

    def paintEvent(self, event: QPaintEvent) -> None:
        painter = QPainter(self)
        painter.drawImage(0, 0, self.canvas)
        # A faint grid of input pixels when they are large enough to see, so the resolution is clear.
        if self.factor >= 6:
            painter.setPen(QPen(QColor(60, 60, 60, 90), 1))
            h, w, _ = self.input_shape
            for i in range(1, w):
                painter.drawLine(i * self.factor, 0, i * self.factor, h * self.factor)
            for j in range(1, h):
                painter.drawLine(0, j * self.factor, w * self.factor, j * self.factor)
        painter.end()


class DrawingPad(QWidget):
    """Canvas with Clear, brush size and (for colour inputs) pen colour. ``drawing_changed`` on edits."""

    drawing_changed = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.canvas = DrawingCanvas()
        self.canvas.stroke_changed.connect(self.drawing_changed)
        self.clear_button = QPushButton("Clear")
        self.clear_button.clicked.connect(self.canvas.clear)
        self.brush = QSlider(Qt.Orientation.Horizontal)
        self.brush.setRange(1, 8)
        self.brush.setValue(5)
        self.brush.setToolTip("Stroke width")
        self.brush.valueChanged.connect(lambda v: setattr(self.canvas, "brush_pixels", v / 2))
        self.color_button = QPushButton("Colour\u2026")
        self.color_button.clicked.connect(self._choose_color)
        self.size_label = QLabel()
        self.size_label.setStyleSheet("color: #555")
        self.size_label.setWordWrap(True)
        tools = QHBoxLayout()
        tools.addWidget(self.clear_button)
        tools.addWidget(QLabel("Brush"))
        tools.addWidget(self.brush, 1)
        tools.addWidget(self.color_button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.canvas, 0, Qt.AlignmentFlag.AlignHCenter)
        layout.addLayout(tools)
        layout.addWidget(self.size_label)
        self.set_input_shape((28, 28, 1))

    def set_input_shape(self, shape: tuple[int, int, int]) -> None:
        self.canvas.set_input_shape(shape)
        h, w, c = self.canvas.input_shape
        self.color_button.setVisible(c == 3)
        kind = "colour" if c == 3 else "grayscale"
        self.size_label.setText(f"Drawn at {self.canvas.factor}\u00d7, fed as {h}\u00d7{w} {kind}")

    def pixels(self) -> np.ndarray:
        return self.canvas.pixels()

    def clear(self) -> None:
        self.canvas.clear()

    def _choose_color(self) -> None:
        color = QColorDialog.getColor(self.canvas.pen_color, self, "Pen colour")
        if color.isValid():
            self.canvas.pen_color = color
