"""Confusion drill-down: click a cell of the confusion matrix to see the test images behind its count.

A window (one, reused) shows the images whose true class is the cell's row and whose prediction is its
column, most confident first, each with the probability the network gave its prediction. Clicking one
opens it in the Inside tab, where its feature maps and attribution show why.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from PySide6.QtCore import QSize, Qt, Signal
from PySide6.QtGui import QIcon, QStandardItem, QStandardItemModel
from PySide6.QtWidgets import QDialog, QLabel, QListView, QVBoxLayout, QWidget

from cnn_studio.inspect.images import to_pixmap
from engine.inspection import raw_to_uint8

THUMBNAIL = 72
IndexRole = Qt.ItemDataRole.UserRole + 1


def cell_indices(evaluation: Any, true_class: int, predicted: int) -> np.ndarray:
    """Test-set positions of the images of one confusion cell, the most confident prediction first."""
    labels, predictions = np.asarray(evaluation.labels), np.asarray(evaluation.predictions)
    chosen = np.flatnonzero((labels == true_class) & (predictions == predicted))
    confidence = np.asarray(evaluation.probabilities)[chosen, predicted]
    return chosen[np.argsort(-confidence, kind="stable")]


class ConfusionGallery(QDialog):
    """``show_cell(...)`` fills and shows it; ``image_chosen(int)`` carries a clicked image's test index."""

    image_chosen = Signal(int)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Confusion drill-down")
        self.setModal(False)
        self.resize(640, 480)
        self.header = QLabel("")
        self.header.setWordWrap(True)
        self.header.setTextFormat(Qt.TextFormat.RichText)
        self.hint = QLabel("Click an image to look inside the network with it (Inside tab).")
        self.hint.setStyleSheet("color: #555;")
        self.model = QStandardItemModel(self)
        self.view = QListView()
        self.view.setViewMode(QListView.ViewMode.IconMode)
        self.view.setResizeMode(QListView.ResizeMode.Adjust)
        self.view.setMovement(QListView.Movement.Static)
        self.view.setUniformItemSizes(True)
        self.view.setIconSize(QSize(THUMBNAIL, THUMBNAIL))
        self.view.setGridSize(QSize(THUMBNAIL + 28, THUMBNAIL + 40))
        self.view.setSpacing(2)
        self.view.setModel(self.model)
        self.view.clicked.connect(lambda index: self.image_chosen.emit(int(index.data(IndexRole))))
        self.view.activated.connect(lambda index: self.image_chosen.emit(int(index.data(IndexRole))))
        layout = QVBoxLayout(self)
        layout.addWidget(self.header)
        layout.addWidget(self.hint)
        layout.addWidget(self.view, 1)
        self.indices = np.zeros(0, np.int64)
        self.cell: tuple[int, int] | None = None

    def show_cell(self, evaluation: Any, images: np.ndarray | None, scale: float, class_names: list[str],
                  true_class: int, predicted: int, source: str = "") -> None:
        def name(k: int) -> str:
            return class_names[k] if 0 <= k < len(class_names) else str(k)

        self.cell = (true_class, predicted)
        self.indices = cell_indices(evaluation, true_class, predicted)
        n, support = len(self.indices), int(np.count_nonzero(np.asarray(evaluation.labels) == true_class))
        share = f" ({n / support:.1%} of them)" if support else ""
        what = (f"<b>{n} {name(true_class)}</b> image{'s' if n != 1 else ''} recognised correctly{share}"
                if true_class == predicted else
                f"<b>{n} {name(true_class)}</b> image{'s' if n != 1 else ''} taken for <b>{name(predicted)}</b>{share}")
        self.header.setText(f"{what}. Most confident first.")
        self.setToolTip(source)
        self.setWindowTitle(f"{name(true_class)} → {name(predicted)}")
        self.model.clear()
        probabilities = np.asarray(evaluation.probabilities)
        for index in self.indices:
            item = QStandardItem(f"#{index + 1}  {probabilities[index, predicted]:.0%}")
            if images is not None and index < len(images):
                item.setIcon(QIcon(to_pixmap(raw_to_uint8(images[index], scale), THUMBNAIL)))
            item.setData(int(index), IndexRole)
            item.setToolTip(f"Test image {index + 1}: {name(true_class)}, predicted {name(predicted)} with "
                            f"{probabilities[index, predicted]:.1%}. Click to look inside.")
            item.setEditable(False)
            self.model.appendRow(item)
        self.hint.setVisible(n > 0)
        if not n:
            self.header.setText(f"{what}: no images in this cell.")
        self.show()
        self.raise_()


class ConfusionDrillDown:
    """Wires the Train tab's confusion matrix to the gallery, and the gallery to the Inside tab."""

    def __init__(self, window: Any, training: Any, inside: Any, session: Any) -> None:
        self.window, self.training, self.inside, self.session = window, training, inside, session
        self.gallery = ConfusionGallery(window)
        training.results.confusion.cell_clicked.connect(self.show_cell)
        self.gallery.image_chosen.connect(self.open_image)
        window.document.project_replaced.connect(self.gallery.close)

    def _dataset(self) -> Any:
        session = self.session
        return session.trained.dataset() or session.runner.dataset or session.datasets.current

    def show_cell(self, true_class: int, predicted: int) -> None:
        evaluation = self.training.results.evaluation
        if evaluation is None:
            return
        data = self._dataset()
        fits = data is not None and len(data.x_test) == len(evaluation.labels)
        images = data.x_test if fits else None
        scale = float(data.normalization.scale) if fits else 1 / 255
        self.gallery.show_cell(evaluation, images, scale, self.training.results.confusion.class_names(), true_class,
                               predicted, self.training.results.headline.text())

    def open_image(self, index: int) -> None:
        self.window.tabs.setCurrentWidget(self.inside)
        self.inside.open_test_image(index)
