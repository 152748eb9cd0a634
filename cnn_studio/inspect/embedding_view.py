"""Where the network puts each image: a layer's activations for the test set, projected to 2-D.

One point per test image, coloured by its true class; misclassified images are drawn as crosses.
Hovering a point shows the image; clicking it opens it in the sample picker. PCA is computed with
NumPy; t-SNE needs scikit-learn (the ``explain`` extra). The projection follows the network: it is
computed again with each new snapshot (after every epoch while training) when the view is shown,
lined up with the previous one so the points do not flip from epoch to epoch.
"""

from __future__ import annotations

import html
from typing import Any

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QPointF, Qt, Signal
from PySide6.QtWidgets import QComboBox, QLabel, QProgressBar, QPushButton, QVBoxLayout, QWidget

from cnn_studio.flow_layout import FlowLayout
from cnn_studio.inspect.images import to_pixmap
from cnn_studio.inspect.layer_box import layer_box
from engine.explain import default_embedding_layer, embed, tsne_available, vector_layers
from engine.inspection import as_normalization, raw_to_uint8
from engine.model import Model

EMBED_LIMIT = 2000  # test images projected at most (a fixed, spread-out choice when there are more)
HOVER_PIXELS = 8  # how close the pointer must be to a point to show its image
PREVIEW = 96
# Ten well-separated colours (the usual categorical palette), repeated beyond ten classes.
PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22",
           "#17becf")


def class_colour(k: int) -> str:
    return PALETTE[k % len(PALETTE)]


def chosen_images(count: int, limit: int = EMBED_LIMIT) -> np.ndarray:
    """Which test images are projected: all of them, or ``limit`` spread evenly over the set."""
    if count <= limit:
        return np.arange(count)
    return np.unique(np.linspace(0, count - 1, limit).round().astype(np.int64))


def embedding_job(x_raw: np.ndarray, labels: np.ndarray, preprocessing: dict, layer: str, method: str,
                  reference: np.ndarray | None) -> Any:
    """A slow-worker job: (embedding, predictions) for the chosen test images."""
    indices = chosen_images(len(x_raw))

    def job(model: Model, task: Any) -> tuple[np.ndarray, Any, np.ndarray]:
        x = as_normalization(preprocessing).apply(x_raw[indices])
        result = embed(model, x, layer, method, reference=reference, progress=task.progress,
                       cancelled=task.cancelled)
        predictions = np.argmax(model.predict(x).reshape(len(x), -1), axis=1)
        return indices, result, predictions

    return job


class EmbeddingView(QWidget):
    """``set_embedding(...)`` draws the points. Signals: ``settings_changed()`` (layer or method),
    ``image_chosen(int)`` (a test index), ``cancel_requested()`` (stop a projection under way),
    ``project_requested()`` (start again after a stop)."""

    settings_changed = Signal()
    image_chosen = Signal(int)
    cancel_requested = Signal()
    project_requested = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.layer_box = layer_box("Whose activations are projected (the last hidden Dense layer by default: "
                                  "what the classifier sees)")
        self.method_box = QComboBox()
        self.method_box.addItem("PCA", "pca")
        self.method_box.addItem("t-SNE", "tsne")
        self.method_box.setToolTip("PCA: the two directions of largest spread (fast, faithful distances). "
                                   "t-SNE: keeps neighbours together (clearer clusters, slower)")
        if not tsne_available():
            item = self.method_box.model().item(1)
            item.setEnabled(False)
            item.setToolTip("t-SNE needs scikit-learn: pip install 'cnn-studio[explain]'")
        self.status = QLabel("The embedding appears once there is a network and a test set.")
        self.status.setWordWrap(True)
        self.progress = QProgressBar()
        self.progress.setRange(0, 100)
        self.progress.setMaximumWidth(160)
        self.progress.setVisible(False)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setToolTip("Stop the projection (t-SNE on many images takes a while)")
        self.cancel_button.setVisible(False)
        self.cancel_button.clicked.connect(self.cancel_requested)
        self.project_button = QPushButton("Project")
        self.project_button.setToolTip("Project the layer's activations again")
        self.project_button.setVisible(False)
        self.project_button.clicked.connect(self.project_requested)
        self.plot = pg.PlotWidget(background="w")
        item = self.plot.getPlotItem()
        item.hideAxis("left")
        item.hideAxis("bottom")
        item.setMenuEnabled(False)
        # The key sits above the plot, wrapping: inside it, ten classes covered a third of a narrow plot's points.
        self.legend = QLabel("")
        self.legend.setWordWrap(True)
        self.legend.setTextFormat(Qt.TextFormat.RichText)
        self.scatter = pg.ScatterPlotItem(size=7, pxMode=True)
        self.plot.addItem(self.scatter)
        self.preview = QLabel(self.plot)
        self.preview.setStyleSheet("background: white; border: 1px solid #999; padding: 3px;")
        self.preview.setVisible(False)
        self.plot.scene().sigMouseMoved.connect(self._moved)
        self.plot.scene().sigMouseClicked.connect(self._clicked)

        controls = FlowLayout()
        controls.add_labelled("Layer", self.layer_box)
        controls.add_labelled("Projection", self.method_box)
        controls.addWidget(self.progress)
        controls.addWidget(self.cancel_button)
        controls.addWidget(self.project_button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(controls)
        layout.addWidget(self.status)
        layout.addWidget(self.legend)
        layout.addWidget(self.plot, 1)
        self.layer_box.currentIndexChanged.connect(lambda _i: self.settings_changed.emit())
        self.method_box.currentIndexChanged.connect(lambda _i: self.settings_changed.emit())

        self.points = np.zeros((0, 2))
        self.indices = np.zeros(0, np.int64)
        self.labels = np.zeros(0, np.int64)
        self.predictions = np.zeros(0, np.int64)
        self._images: np.ndarray | None = None
        self._scale = 1 / 255
        self._names: list[str] = []
        self.hovered: int | None = None  # the test index previewed

    # -- settings ----------------------------------------------------------------------------------------------
    @property
    def layer(self) -> str:
        return self.layer_box.currentText()

    @property
    def method(self) -> str:
        return self.method_box.currentData()

    def set_layers(self, model: Model) -> None:
        current = self.layer_box.currentText()
        names = vector_layers(model)
        self.layer_box.blockSignals(True)
        self.layer_box.clear()
        self.layer_box.addItems(names)
        self.layer_box.setCurrentText(current if current in names else default_embedding_layer(model))
        self.layer_box.blockSignals(False)

    def set_busy(self, busy: bool, fraction: float = 0.0) -> None:
        self.progress.setVisible(busy)
        self.cancel_button.setVisible(busy)
        if busy:
            self.project_button.setVisible(False)
        self.progress.setValue(int(round(100 * fraction)))

    def show_stopped(self) -> None:
        """A projection was cancelled: say so (the points shown, if any, are the last finished ones)
        and offer to start again."""
        self.set_busy(False)
        shown = " The points shown are from the last projection that finished." if len(self.points) else ""
        self.status.setText(f"Projection stopped.{shown} Press Project, or choose another layer or projection, "
                            "to project again.")
        self.project_button.setVisible(True)

    # -- drawing -------------------------------------------------------------------------------------------------
    def clear(self, text: str) -> None:
        self.scatter.clear()
        self.legend.setText("")
        self.points = np.zeros((0, 2))
        self.indices = np.zeros(0, np.int64)
        self.status.setText(text)
        self.preview.setVisible(False)
        self.set_busy(False)
        self.project_button.setVisible(False)

    def set_embedding(self, points: np.ndarray, indices: np.ndarray, labels: np.ndarray, predictions: np.ndarray,
                      images: np.ndarray | None, scale: float, class_names: list[str], text: str) -> None:
        self.points, self.indices = np.asarray(points, np.float64), np.asarray(indices)
        self.labels, self.predictions = np.asarray(labels), np.asarray(predictions)
        self._images, self._scale, self._names = images, scale, list(class_names)
        wrong = self.labels != self.predictions
        brushes = [pg.mkBrush(class_colour(int(k))) for k in self.labels]
        spots = [{"pos": (float(p[0]), float(p[1])), "brush": b, "symbol": "x" if w else "o",
                  "size": 9 if w else 6, "pen": pg.mkPen("#222222", width=0.6) if w else None}
                 for p, b, w in zip(self.points, brushes, wrong)]
        self.scatter.setData(spots)
        self.legend.setText(self._legend_html(int(wrong.sum())))
        self._fit()
        self.status.setText(text)
        self.set_busy(False)

    def _legend_html(self, wrong: int) -> str:
        """One entry per class shown (its colour, its name), then the crosses; entries wrap, names do not."""
        def entry(mark: str, colour: str, text: str) -> str:
            return (f"<span style='color:{colour}; font-size:large'>{mark}</span>&nbsp;"
                    + html.escape(text).replace(" ", "&nbsp;"))

        entries = [entry("\u25cf", class_colour(k), self._name(k)) for k in sorted(set(int(v) for v in self.labels))]
        if wrong:
            entries.append(entry("\u00d7", "#222222", f"misclassified ({wrong})"))
        return " &nbsp; ".join(entries)

    def _fit(self) -> None:
        """Show every point."""
        if not len(self.points):
            return
        (x0, y0), (x1, y1) = self.points.min(axis=0), self.points.max(axis=0)
        width, height = max(x1 - x0, 1e-9), max(y1 - y0, 1e-9)
        view = self.plot.getPlotItem().getViewBox()
        view.setRange(xRange=(x0 - 0.04 * width, x1 + 0.04 * width), yRange=(y0 - 0.04 * height, y1 + 0.04 * height),
                      padding=0)

    def _name(self, k: int) -> str:
        return self._names[k] if 0 <= k < len(self._names) else str(k)

    # -- pointer -------------------------------------------------------------------------------------------------
    def point_at(self, scene_pos: QPointF) -> int | None:
        """The position (in ``points``) of the point under a scene position, within HOVER_PIXELS."""
        if not len(self.points):
            return None
        view = self.plot.getPlotItem().getViewBox()
        if not view.sceneBoundingRect().contains(scene_pos):
            return None
        mapped = self._scene_positions(view)
        distance = np.hypot(mapped[:, 0] - scene_pos.x(), mapped[:, 1] - scene_pos.y())
        nearest = int(np.argmin(distance))
        return nearest if distance[nearest] <= HOVER_PIXELS else None

    def _scene_positions(self, view: Any) -> np.ndarray:
        # The view's affine map, applied to every point at once.
        origin = view.mapViewToScene(QPointF(0.0, 0.0))
        unit_x = view.mapViewToScene(QPointF(1.0, 0.0))
        unit_y = view.mapViewToScene(QPointF(0.0, 1.0))
        ax, ay = unit_x.x() - origin.x(), unit_x.y() - origin.y()
        bx, by = unit_y.x() - origin.x(), unit_y.y() - origin.y()
        x, y = self.points[:, 0], self.points[:, 1]
        return np.stack([origin.x() + ax * x + bx * y, origin.y() + ay * x + by * y], axis=1)

    def scene_position(self, position: int) -> QPointF:
        """Where point ``position`` is drawn, in scene coordinates (tests, scripts)."""
        view = self.plot.getPlotItem().getViewBox()
        x, y = self.points[position]
        return view.mapViewToScene(QPointF(float(x), float(y)))

    def _moved(self, scene_pos: QPointF) -> None:
        position = self.point_at(scene_pos)
        if position is None:
            self.preview.setVisible(False)
            self.hovered = None
            return
        self.show_preview(position, self.plot.mapFromScene(scene_pos))

    def show_preview(self, position: int, at: Any) -> None:
        index = int(self.indices[position])
        self.hovered = index
        true, predicted = int(self.labels[position]), int(self.predictions[position])
        if self._images is not None and index < len(self._images):
            self.preview.setPixmap(to_pixmap(raw_to_uint8(self._images[index], self._scale), PREVIEW))
        verdict = "" if true == predicted else f" → {self._name(predicted)}"
        self.preview.setToolTip(f"#{index + 1}: {self._name(true)}{verdict}")
        self.plot.setToolTip(f"Test image {index + 1}: {self._name(true)}{verdict}. Click to look inside with it.")
        self.preview.adjustSize()
        x = min(at.x() + 14, self.plot.width() - self.preview.width() - 4)
        y = min(at.y() + 14, self.plot.height() - self.preview.height() - 4)
        self.preview.move(max(0, x), max(0, y))
        self.preview.setVisible(True)
        self.preview.raise_()

    def _clicked(self, event: Any) -> None:
        if event.button() != Qt.MouseButton.LeftButton:
            return
        position = self.point_at(event.scenePos())
        if position is not None:
            self.image_chosen.emit(int(self.indices[position]))
