"""The misclassified test images of the last evaluation, as a sortable gallery of thumbnails.

Clicking one emits ``mistake_chosen(test index)``: the panel opens it in the sample picker.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from PySide6.QtCore import QAbstractListModel, QModelIndex, QPersistentModelIndex, QSize, Qt, Signal
from PySide6.QtGui import QPixmap
from PySide6.QtWidgets import (
    QComboBox,
    QHBoxLayout,
    QLabel,
    QListView,
    QPushButton,
    QStyledItemDelegate,
    QStyleOptionViewItem,
    QVBoxLayout,
    QWidget,
)

from cnn_studio.inspect.images import to_pixmap
from engine.inspection import MISTAKE_ORDERS, Mistake, list_mistakes, raw_to_uint8

THUMBNAIL = 64
CELL = QSize(THUMBNAIL + 84, THUMBNAIL + 40)
ALL_CLASSES = "All true classes"
IndexRole = Qt.ItemDataRole.UserRole + 1


class MistakesModel(QAbstractListModel):
    """One row per mistake; thumbnails are made on first display and cached."""

    def __init__(self) -> None:
        super().__init__()
        self.mistakes: list[Mistake] = []
        self._images: np.ndarray | None = None  # raw test images (N, H, W, C)
        self._scale = 1 / 255
        self._names: list[str] = []
        self._pixmaps: dict[int, QPixmap] = {}

    def set_mistakes(self, mistakes: list[Mistake], images: np.ndarray | None, scale: float,
                     class_names: list[str]) -> None:
        self.beginResetModel()
        self.mistakes = list(mistakes)
        if images is not self._images:
            self._pixmaps = {}
        self._images, self._scale, self._names = images, scale, list(class_names)
        self.endResetModel()

    def name(self, k: int) -> str:
        return self._names[k] if 0 <= k < len(self._names) else str(k)

    def rowCount(self, parent: QModelIndex | QPersistentModelIndex = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self.mistakes)

    def data(self, index: QModelIndex | QPersistentModelIndex, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid():
            return None
        m = self.mistakes[index.row()]
        if role == Qt.ItemDataRole.DisplayRole:
            # Non-breaking spaces keep "-> predicted 97%" on one line under the true class.
            second = f"\u2192 {self.name(m.predicted_class)} {100 * m.confidence:.0f}%".replace(" ", "\u00a0")
            return f"{self.name(m.true_class)}\n{second}"
        if role == Qt.ItemDataRole.DecorationRole and self._images is not None and m.index < len(self._images):
            pixmap = self._pixmaps.get(m.index)
            if pixmap is None:
                pixmap = to_pixmap(raw_to_uint8(self._images[m.index], self._scale), THUMBNAIL)
                self._pixmaps[m.index] = pixmap
            return pixmap
        if role == Qt.ItemDataRole.ToolTipRole:
            return (f"Test image {m.index}: true class {self.name(m.true_class)}, predicted "
                    f"{self.name(m.predicted_class)} with {100 * m.confidence:.1f}% (the true class got "
                    f"{100 * m.true_probability:.1f}%). Click to look inside.")
        if role == IndexRole:
            return m.index
        return None


class _CellDelegate(QStyledItemDelegate):
    """Every cell as wide as the grid, so the two caption lines are not squeezed to the thumbnail's width."""

    def sizeHint(self, option: QStyleOptionViewItem, index: QModelIndex | QPersistentModelIndex) -> QSize:
        return CELL


class MistakesGallery(QWidget):
    """``set_evaluation(evaluation, test images, scale, class names)``; emits ``mistake_chosen(index)``."""

    mistake_chosen = Signal(int)
    evaluate_requested = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._evaluation: Any = None
        self._images: np.ndarray | None = None
        self._scale = 1 / 255
        self._names: list[str] = []
        self.summary = QLabel("Mistakes appear after the network is evaluated on the test set.")
        self.summary.setWordWrap(True)
        self.order_box = QComboBox()
        self.order_box.addItems([f"Sort: {o}" for o in MISTAKE_ORDERS])
        self.order_box.currentIndexChanged.connect(lambda _i: self._refresh())
        self.class_box = QComboBox()
        self.class_box.addItem(ALL_CLASSES)
        self.class_box.currentIndexChanged.connect(lambda _i: self._refresh())
        self.evaluate_button = QPushButton("Evaluate on the test set")
        self.evaluate_button.setToolTip("Classify every test image with the current network")
        self.evaluate_button.clicked.connect(self.evaluate_requested)
        self.model = MistakesModel()
        self.view = QListView()
        self.view.setModel(self.model)
        self.view.setViewMode(QListView.ViewMode.IconMode)
        self.view.setResizeMode(QListView.ResizeMode.Adjust)
        self.view.setMovement(QListView.Movement.Static)
        self.view.setUniformItemSizes(True)
        self.view.setIconSize(QSize(THUMBNAIL, THUMBNAIL))
        self.view.setItemDelegate(_CellDelegate(self.view))
        self.view.setGridSize(CELL + QSize(4, 6))
        self.view.setWordWrap(True)
        self.view.setSpacing(4)
        self.view.clicked.connect(self._on_clicked)
        self.view.activated.connect(self._on_clicked)
        controls = QHBoxLayout()
        controls.addWidget(self.order_box)
        controls.addWidget(self.class_box)
        controls.addStretch(1)
        controls.addWidget(self.evaluate_button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.summary)
        layout.addLayout(controls)
        layout.addWidget(self.view, 1)

    @property
    def order(self) -> str:
        return MISTAKE_ORDERS[max(0, self.order_box.currentIndex())]

    def set_order(self, order: str) -> None:
        self.order_box.setCurrentIndex(MISTAKE_ORDERS.index(order))

    def set_class_filter(self, class_index: int | None) -> None:
        self.class_box.setCurrentIndex(0 if class_index is None else class_index + 1)

    def shown_indices(self) -> list[int]:
        """Test indices of the mistakes listed now, in display order."""
        return [m.index for m in self.model.mistakes]

    def set_evaluation(self, evaluation: Any, images: np.ndarray | None, scale: float,
                       class_names: list[str]) -> None:
        """``evaluation``: an engine Evaluation of the test set whose rows match ``images`` (N, H, W, C)."""
        self._evaluation, self._images, self._scale = evaluation, images, scale
        if class_names != self._names:
            self._names = list(class_names)
            self.class_box.blockSignals(True)
            self.class_box.clear()
            self.class_box.addItem(ALL_CLASSES)
            self.class_box.addItems(self._names)
            self.class_box.blockSignals(False)
        self._refresh()

    def clear(self, text: str) -> None:
        self._evaluation = None
        self.model.set_mistakes([], None, self._scale, self._names)
        self.summary.setText(text)

    def _refresh(self) -> None:
        ev = self._evaluation
        if ev is None:
            return
        mistakes = list_mistakes(ev, self.order)
        row = self.class_box.currentIndex()
        if row > 0:
            mistakes = [m for m in mistakes if m.true_class == row - 1]
        self.model.set_mistakes(mistakes, self._images, self._scale, self._names)
        total = len(ev.labels)
        wrong = int(len(ev.mistakes))
        shown = "" if row <= 0 else f" ({len(mistakes)} of class {self._names[row - 1]})"
        self.summary.setText(
            f"{wrong} of {total} test images misclassified, accuracy {100 * ev.accuracy:.1f}%{shown}. "
            "Click one to look inside the network for it."
        )

    def _on_clicked(self, index: QModelIndex) -> None:
        if index.isValid():
            self.mistake_chosen.emit(int(index.data(IndexRole)))
