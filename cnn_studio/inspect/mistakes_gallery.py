"""The misclassified test images of the last evaluation, as a sortable gallery of thumbnails.

Clicking one emits ``mistake_chosen(test index)``: the panel opens it in the sample picker.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from PySide6.QtCore import QAbstractListModel, QEvent, QModelIndex, QObject, QPersistentModelIndex, QSize, Qt, Signal
from PySide6.QtGui import QPixmap
from PySide6.QtWidgets import (
    QComboBox,
    QLabel,
    QListView,
    QPushButton,
    QSizePolicy,
    QStyledItemDelegate,
    QStyleOptionViewItem,
    QVBoxLayout,
    QWidget,
)

from cnn_studio.flow_layout import FlowLayout
from cnn_studio.inspect.images import to_pixmap
from engine.inspection import MISTAKE_ORDERS, Mistake, list_mistakes, raw_to_uint8

THUMBNAIL = 64  # the smallest thumbnail; wide panes get larger ones, up to LARGEST_THUMBNAIL
LARGEST_THUMBNAIL = 112
CAPTION_WIDTH = 124  # room for "-> T-shirt/top 99%" under a thumbnail
CAPTION_HEIGHT = 40
CELL = QSize(CAPTION_WIDTH, THUMBNAIL + CAPTION_HEIGHT)
VIEW_MARGIN = 4  # the list view keeps 2 px free on each side of a row
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
        self._pixmaps: dict[tuple[int, int], QPixmap] = {}  # (test index, size) -> thumbnail
        self.thumbnail = THUMBNAIL

    def set_thumbnail_size(self, size: int) -> None:
        if size != self.thumbnail:
            self.thumbnail = size
            if self.mistakes:
                self.dataChanged.emit(self.index(0), self.index(len(self.mistakes) - 1))

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
            key = (m.index, self.thumbnail)
            pixmap = self._pixmaps.get(key)
            if pixmap is None:
                pixmap = to_pixmap(raw_to_uint8(self._images[m.index], self._scale), self.thumbnail)
                self._pixmaps[key] = pixmap
            return pixmap
        if role == Qt.ItemDataRole.ToolTipRole:
            return (f"Test image {m.index + 1}: true class {self.name(m.true_class)}, predicted "
                    f"{self.name(m.predicted_class)} with {100 * m.confidence:.1f}% (the true class got "
                    f"{100 * m.true_probability:.1f}%). Click to look inside.")
        if role == IndexRole:
            return m.index
        return None


class _CellDelegate(QStyledItemDelegate):
    """Every cell as wide as the grid, so the two caption lines are not squeezed to the thumbnail's width."""

    def __init__(self, view: QListView) -> None:
        super().__init__(view)
        self._view = view

    def sizeHint(self, option: QStyleOptionViewItem, index: QModelIndex | QPersistentModelIndex) -> QSize:
        grid = self._view.gridSize()
        return QSize(grid.width() - 4, grid.height() - 6) if grid.isValid() else CELL


def gallery_layout(width: int) -> tuple[int, int, int]:
    """(columns, cell width, thumbnail size) that fill ``width`` pixels: as many cells as fit at the
    smallest size, then every cell widened to share the rest, the thumbnails growing with them."""
    width -= VIEW_MARGIN
    columns = max(1, width // CELL.width())
    cell = max(CELL.width(), width // columns)
    thumbnail = max(THUMBNAIL, min(LARGEST_THUMBNAIL, cell - 40))
    return columns, cell, thumbnail


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
        self.evaluate_button = QPushButton("Evaluate test set")
        self.evaluate_button.setToolTip("Classify every test image with the current network to list its mistakes")
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
        self.view.setSpacing(0)
        self.view.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOn)  # a steady width to fill
        self.view.viewport().installEventFilter(self)
        # The sort orders are few and short: always whole. Class names can be long (a folder's): that box may
        # shrink, and takes what room is left.
        self.order_box.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToContents)
        self.class_box.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.class_box.setMinimumContentsLength(6)
        self.view.clicked.connect(self._on_clicked)
        self.view.activated.connect(self._on_clicked)
        # The boxes take the room there is (whole texts in a wide pane); in a narrow one what does not fit beside
        # the sort order wraps below (side by side, the two boxes cut "Sort: most confident" short).
        for box in (self.order_box, self.class_box):
            box.setSizePolicy(QSizePolicy.Policy.Expanding, box.sizePolicy().verticalPolicy())
        controls = FlowLayout()
        controls.addWidget(self.order_box)
        controls.addWidget(self.class_box)
        controls.addWidget(self.evaluate_button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.summary)
        layout.addLayout(controls)
        layout.addWidget(self.view, 1)

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:  # noqa: N802 (Qt override)
        if watched is self.view.viewport() and event.type() == QEvent.Type.Resize:
            self._fit_cells()
        return super().eventFilter(watched, event)

    def _fit_cells(self) -> None:
        _columns, cell, thumbnail = gallery_layout(self.view.viewport().width())
        grid = QSize(cell, thumbnail + CAPTION_HEIGHT + 6)
        if grid != self.view.gridSize():
            self.model.set_thumbnail_size(thumbnail)
            self.view.setIconSize(QSize(thumbnail, thumbnail))
            self.view.setGridSize(grid)

    def columns(self) -> int:
        """How many thumbnails the first row shows now."""
        rows = min(self.model.rowCount(), 64)
        tops = [self.view.visualRect(self.model.index(i)).y() for i in range(rows)]
        return max(1, tops.count(tops[0])) if tops else 0

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
