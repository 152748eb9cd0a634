"""Test-set results: the headline accuracy and the confusion matrix as a heat map with per-class accuracy."""

from __future__ import annotations

import math

import numpy as np
from PySide6.QtCore import QPoint, QRectF, QSize, Qt, Signal
from PySide6.QtGui import QColor, QFont, QFontMetrics, QHelpEvent, QMouseEvent, QPainter, QPaintEvent
from PySide6.QtWidgets import QLabel, QSizePolicy, QToolTip, QVBoxLayout, QWidget

from engine.metrics import Evaluation

# Correct predictions shade towards blue, mistakes towards red: errors stand out at a glance.
_CORRECT = (QColor("#f7fbff"), QColor("#08519c"))
_WRONG = (QColor("#fff5f0"), QColor("#cb181d"))
MIN_COUNT_POINTS = 4.5  # counts never shrink below this; smaller still, a count is left to the tooltip


def _mix(pair: tuple[QColor, QColor], t: float) -> QColor:
    a, b = pair
    t = min(1.0, max(0.0, t))
    return QColor.fromRgbF(a.redF() + (b.redF() - a.redF()) * t, a.greenF() + (b.greenF() - a.greenF()) * t,
                           a.blueF() + (b.blueF() - a.blueF()) * t)


class ConfusionMatrixView(QWidget):
    """Rows are true classes, columns predicted classes; each cell shows its count.

    Shading is by the fraction of the row (the true class), so rare classes read as clearly as common
    ones; the diagonal is blue and mistakes are red. A column at the right gives each class's accuracy
    (the diagonal over the row total). Hovering a cell explains it.
    """

    cell_clicked = Signal(int, int)  # (true class, predicted class) of a clicked cell

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._matrix = np.zeros((0, 0), dtype=np.int64)
        self._names: list[str] = []
        self.setMouseTracking(True)
        self.setMinimumSize(280, 260)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)

    def set_confusion(self, matrix: np.ndarray, class_names: list[str]) -> None:
        """matrix: (K, K) counts, row = true class, column = predicted class."""
        matrix = np.asarray(matrix)
        if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1] or matrix.shape[0] != len(class_names):
            raise ValueError(f"confusion matrix {matrix.shape} does not match {len(class_names)} class names")
        self._matrix = matrix.astype(np.int64, copy=True)
        self._names = [str(n) for n in class_names]
        self.update()

    def clear(self) -> None:
        self._matrix = np.zeros((0, 0), dtype=np.int64)
        self._names = []
        self.update()

    def matrix(self) -> np.ndarray:
        return self._matrix.copy()

    def class_names(self) -> list[str]:
        return list(self._names)

    def per_class_accuracy(self) -> np.ndarray:
        """(K,) share of each true class predicted correctly; NaN for a class with no test images."""
        support = self._matrix.sum(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.diag(self._matrix) / support

    def sizeHint(self) -> QSize:
        return QSize(460, 440)

    # -- geometry -----------------------------------------------------------------------------------------
    def _fonts(self) -> tuple[QFont, QFont]:
        label = QFont(self.font())
        label.setPointSizeF(max(7.0, label.pointSizeF() * 0.9))
        count = QFont(label)
        count.setBold(True)
        return label, count

    def count_font(self, cell: float) -> QFont:
        """The font for the counts: as large as the cell allows, and small enough for the widest count to fit
        (a hidden count on the diagonal, e.g. 196 correct, would leave its most important cell blank)."""
        _, font = self._fonts()
        size = max(6.0, min(font.pointSizeF(), cell * 0.3))
        widest = str(int(self._matrix.max())) if self._matrix.size else "0"
        font.setPointSizeF(size)
        while size > MIN_COUNT_POINTS and QFontMetrics(font).horizontalAdvance(widest) > cell - 2:
            size = max(MIN_COUNT_POINTS, size - 0.5)
            font.setPointSizeF(size)
        return font

    def _layout(self) -> tuple[QRectF, float, float]:
        """The grid's rectangle, the cell size and the accuracy column's width.

        Room is left for the axis titles and row names (left), column names at 45 degrees (below) and
        the accuracy column (right).
        """
        k = len(self._names)
        label_font, _ = self._fonts()
        metrics = QFontMetrics(label_font)
        line = metrics.height()
        name_width = max((metrics.horizontalAdvance(n) for n in self._names), default=0)
        accuracy_width = metrics.horizontalAdvance("100.0%") + 10
        left = line + 6 + name_width + 6
        top = line + 4  # the accuracy column's header
        below = name_width * 0.72 + line + line + 10  # slanted names, then the axis title
        available_w = self.width() - left - accuracy_width - 12
        available_h = self.height() - top - below
        cell = max(4.0, min(available_w, available_h) / max(k, 1))
        return QRectF(left, top, cell * k, cell * k), cell, accuracy_width

    def cell_at(self, pos: QPoint) -> tuple[int, int] | None:
        """(true class, predicted class) under a widget position, or None."""
        if not self._names:
            return None
        grid, cell, _ = self._layout()
        if not grid.contains(pos.toPointF()):
            return None
        col = int((pos.x() - grid.left()) // cell)
        row = int((pos.y() - grid.top()) // cell)
        k = len(self._names)
        return (row, col) if 0 <= row < k and 0 <= col < k else None

    # -- painting -------------------------------------------------------------------------------------------
    def paintEvent(self, event: QPaintEvent) -> None:
        painter = QPainter(self)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        painter.fillRect(self.rect(), QColor("white"))
        k = len(self._names)
        if k == 0:
            painter.setPen(QColor("#666666"))
            painter.drawText(self.rect().adjusted(12, 12, -12, -12),
                             Qt.AlignmentFlag.AlignCenter | Qt.TextFlag.TextWordWrap,
                             "The confusion matrix appears here when a run has been evaluated on the test set.")
            return
        grid, cell, accuracy_width = self._layout()
        label_font, _ = self._fonts()
        count_font = self.count_font(cell)
        metrics = QFontMetrics(label_font)
        support = self._matrix.sum(axis=1)
        painter.setFont(count_font)
        count_metrics = QFontMetrics(count_font)
        for i in range(k):
            for j in range(k):
                rect = QRectF(grid.left() + j * cell, grid.top() + i * cell, cell, cell)
                n = int(self._matrix[i, j])
                share = n / support[i] if support[i] else 0.0
                # Mistakes are rarer than hits; a square root makes a 5% confusion visible.
                color = _mix(_CORRECT, share) if i == j else _mix(_WRONG, math.sqrt(share))
                painter.fillRect(rect, color)
                painter.setPen(QColor("#e2e2e2"))
                painter.drawRect(rect)
                if n and count_metrics.horizontalAdvance(str(n)) <= cell - 2:
                    painter.setPen(QColor("white") if color.lightnessF() < 0.55 else QColor("#222222"))
                    painter.drawText(rect, Qt.AlignmentFlag.AlignCenter, str(n))
        painter.setFont(label_font)
        painter.setPen(QColor("#222222"))
        for i, name in enumerate(self._names):
            y = grid.top() + (i + 0.5) * cell + metrics.ascent() / 2 - 1
            painter.drawText(int(grid.left() - 6 - metrics.horizontalAdvance(name)), int(y), name)
        for j, name in enumerate(self._names):
            painter.save()
            painter.translate(grid.left() + (j + 0.5) * cell + metrics.ascent() / 2.8, grid.bottom() + 4)
            painter.rotate(-45)
            painter.drawText(-metrics.horizontalAdvance(name), metrics.ascent() // 2, name)
            painter.restore()
        self._paint_accuracy_column(painter, grid, cell, accuracy_width, metrics)
        name_width = max(metrics.horizontalAdvance(n) for n in self._names)
        title_font = QFont(label_font)
        title_font.setItalic(True)
        painter.setFont(title_font)
        painter.setPen(QColor("#555555"))
        title_y = grid.bottom() + name_width * 0.72 + metrics.height() + 4
        painter.drawText(QRectF(grid.left(), title_y, grid.width(), metrics.height() + 2),
                         Qt.AlignmentFlag.AlignCenter, "predicted class")
        painter.save()
        painter.translate(2, grid.center().y())
        painter.rotate(-90)
        painter.drawText(QRectF(-grid.height() / 2, 0, grid.height(), metrics.height() + 2),
                         Qt.AlignmentFlag.AlignCenter, "true class")
        painter.restore()

    def _paint_accuracy_column(self, painter: QPainter, grid: QRectF, cell: float, width: float,
                               metrics: QFontMetrics) -> None:
        x = grid.right() + 8
        painter.setPen(QColor("#555555"))
        painter.drawText(QRectF(x, 0, width, grid.top()), Qt.AlignmentFlag.AlignCenter, "accuracy")
        for i, acc in enumerate(self.per_class_accuracy()):
            rect = QRectF(x, grid.top() + i * cell + 1, width, cell - 2)
            if np.isfinite(acc):
                bar = QRectF(rect.left(), rect.top(), rect.width() * float(acc), rect.height())
                painter.fillRect(bar, QColor("#cfe1f2"))
            painter.setPen(QColor("#222222"))
            text = f"{acc:.1%}" if np.isfinite(acc) else "—"
            painter.drawText(rect.adjusted(0, 0, -3, 0), Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter,
                             text)

    def mouseMoveEvent(self, event: QMouseEvent) -> None:  # noqa: N802 (Qt override)
        over = self.cell_at(event.position().toPoint()) is not None
        self.setCursor(Qt.CursorShape.PointingHandCursor if over else Qt.CursorShape.ArrowCursor)
        super().mouseMoveEvent(event)

    def mousePressEvent(self, event: QMouseEvent) -> None:  # noqa: N802 (Qt override)
        cell = self.cell_at(event.position().toPoint()) if event.button() == Qt.MouseButton.LeftButton else None
        if cell is None:
            super().mousePressEvent(event)
            return
        self.cell_clicked.emit(*cell)

    def event(self, event: object) -> bool:
        if isinstance(event, QHelpEvent):
            cell = self.cell_at(event.pos())
            if cell is None:
                QToolTip.hideText()
            else:
                QToolTip.showText(event.globalPos(), self.describe_cell(*cell), self)
            return True
        return super().event(event)

    def describe_cell(self, true_class: int, predicted: int) -> str:
        n = int(self._matrix[true_class, predicted])
        support = int(self._matrix[true_class].sum())
        share = f" ({n / support:.1%} of {self._names[true_class]})" if support else ""
        if true_class == predicted:
            return f"{n} {self._names[true_class]} image(s) recognised correctly{share}; click to see them"
        return f"{n} {self._names[true_class]} image(s) taken for {self._names[predicted]}{share}; click to see them"


class ResultsView(QWidget):
    """After a run: test accuracy and loss, then the confusion heat map with per-class accuracy."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.headline = QLabel("No test results yet: they appear when a run ends.")
        self.headline.setWordWrap(True)
        font = self.headline.font()
        font.setPointSizeF(font.pointSizeF() * 1.15)
        font.setBold(True)
        self.headline.setFont(font)
        self.detail = QLabel("")
        self.detail.setWordWrap(True)
        self.detail.setStyleSheet("color: #555;")
        self.confusion = ConfusionMatrixView()
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(self.headline)
        layout.addWidget(self.detail)
        layout.addWidget(self.confusion, 1)
        self.evaluation: Evaluation | None = None

    def mark_stale(self, text: str) -> None:
        """A new run started: keep showing the last results, but say they belong to an earlier run."""
        if self.evaluation is None:
            self.clear()
        else:
            self.headline.setText(text)

    def clear(self, text: str = "Training… test results appear when the run ends.") -> None:
        self.evaluation = None
        self.headline.setText(text)
        self.detail.setText("")
        self.confusion.clear()

    def show_evaluation(self, evaluation: Evaluation, class_names: list[str]) -> None:
        self.evaluation = evaluation
        n = len(evaluation.labels)
        self.headline.setText(f"Test accuracy {evaluation.accuracy:.2%} on {n:,} images")
        self.confusion.set_confusion(evaluation.confusion, class_names)
        accuracy = self.confusion.per_class_accuracy()
        known = np.flatnonzero(np.isfinite(accuracy))
        detail = f"Test loss {evaluation.loss:.4f}."
        if len(known) > 1:
            worst, best = known[np.argmin(accuracy[known])], known[np.argmax(accuracy[known])]
            detail += (f" Hardest class: {class_names[worst]} ({accuracy[worst]:.1%}); "
                       f"easiest: {class_names[best]} ({accuracy[best]:.1%}). Hover a cell for details.")
        self.detail.setText(detail)
