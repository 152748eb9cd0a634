"""What drives the Inside tab's filter atlas and embedding views: when to compute, on which images.

Both run on the panel's slow worker (its own model copy) with progress and cancelling. The embedding
follows every new network snapshot (after each epoch while training) whenever its view is shown; the
filter atlas is computed when a run ends, when another layer is chosen and when Compute is pressed,
and otherwise waits until its view is shown with weights it has not seen.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from PySide6.QtCore import QObject

from cnn_studio.inspect.atlas_view import ATLAS_IMAGES, FilterAtlasView, atlas_job
from cnn_studio.inspect.embedding_view import EmbeddingView, embedding_job
from engine.model import Model


class _Controller(QObject):
    kind = ""

    def __init__(self, panel: Any, view: Any) -> None:
        super().__init__(panel)
        self.panel, self.view = panel, view
        self.model: Model | None = None
        self.dataset: Any = None
        self.stale = True

    @property
    def worker(self) -> Any:
        return self.panel.slow_worker

    def _test_images(self) -> np.ndarray | None:
        data = self.dataset
        if self.model is None or data is None or not len(data.x_test):
            return None
        if tuple(data.input_shape) != tuple(self.model.input_shape):
            return None
        return data.x_test

    def set_model(self, model: Model | None, dataset: Any) -> None:
        self.model, self.dataset = model, dataset
        self.stale = True
        if model is None:
            self.worker.cancel(self.kind)
            self.view.clear(self.empty_text)
            # The previous network's layers go too (another project, or no trained network).
            self.view.layer_box.blockSignals(True)
            self.view.layer_box.clear()
            self.view.layer_box.blockSignals(False)
            return
        self.view.set_layers(model)
        if self.view.isVisible():
            self.compute()

    def shown(self) -> None:
        if self.stale:
            self.compute()

    def progress(self, fraction: float) -> None:
        self.view.set_busy(True, fraction)

    def cancelled(self) -> None:
        self.view.set_busy(False)

    def failed(self, text: str) -> None:
        """The computation raised: the view says why (not what it was computing) and tries again when next
        shown; what it showed before belonged to other settings or weights."""
        self.stale = True
        self.view.clear(text)

    def compute(self) -> None:
        raise NotImplementedError


class EmbeddingController(_Controller):
    kind = "embedding"
    empty_text = "The embedding appears once there is a trained network and a test set."

    def __init__(self, panel: Any, view: EmbeddingView) -> None:
        super().__init__(panel, view)
        self._request: tuple[str, str] | None = None
        view.settings_changed.connect(self.compute)
        view.image_chosen.connect(panel.open_test_image)
        view.cancel_requested.connect(self._cancel)
        view.project_requested.connect(self.compute)
        self._stopping = False  # the user pressed Cancel (a job replaced by a newer one is cancelled too)

    def _cancel(self) -> None:
        self._stopping = True
        self.worker.cancel(self.kind)

    def cancelled(self) -> None:
        if not self._stopping:
            return  # replaced by a newer projection, whose progress the view shows
        self._stopping = False
        self.stale = True  # shown again, it projects again
        self._request = None
        self.view.show_stopped()

    def compute(self) -> None:
        images = self._test_images()
        if images is None or not self.view.layer:
            self.view.clear("The embedding needs a trained network and a test set that fits its input.")
            return
        layer, method = self.view.layer, self.view.method
        self._stopping = False
        same = self._request == (layer, method) and len(self.view.points)
        reference = self.view.points if same else None
        self._request = (layer, method)
        self.stale = False
        self.view.set_busy(True, 0.0)
        self.view.status.setText(f"Projecting the activations of {layer} with "
                                 f"{'t-SNE' if method == 'tsne' else 'PCA'}\u2026")
        job = embedding_job(images, np.asarray(self.dataset.y_test), dict(self.model.preprocessing), layer, method,
                            reference)
        self.worker.submit(self.kind, lambda model, task: (layer, method, *job(model, task)), True)

    def done(self, result: Any) -> None:
        layer, method, indices, embedding, predictions = result
        self._stopping = False  # finished before a Cancel could stop it
        if (layer, method) != self._request:
            return
        data = self.dataset
        labels = np.asarray(data.y_test)[indices]
        wrong = int(np.count_nonzero(labels != predictions))
        shown = f"{len(indices)} of {len(data.y_test)}" if len(indices) < len(data.y_test) else f"all {len(indices)}"
        how = (f"PCA: the two directions along which the {embedding.dimensions} activations spread most "
               f"({embedding.explained:.0%} of the spread)" if method == "pca" else
               "t-SNE: images the layer finds alike lie close together")
        self.view.set_embedding(embedding.points, indices, labels, predictions, data.x_test,
                                float(data.normalization.scale), list(data.class_names),
                                f"{layer} for {shown} test images; {how}. Colour: the true class; crosses: the "
                                f"{wrong} misclassified. Hover a point to see its image, click to look inside.")


class AtlasController(_Controller):
    kind = "atlas"
    empty_text = "The filter atlas is computed after training, or when you press Compute."

    def __init__(self, panel: Any, view: FilterAtlasView) -> None:
        super().__init__(panel, view)
        self._request: tuple[str, int] | None = None
        view.compute_requested.connect(self.compute)
        view.layer_changed.connect(self.compute)
        view.cancel_requested.connect(lambda: self.worker.cancel(self.kind))
        view.image_chosen.connect(panel.open_test_image)

    def set_model(self, model: Model | None, dataset: Any) -> None:
        # While training runs the atlas waits for the run's end (it searches a thousand images).
        if model is not None and self.panel.live and not self.view.isVisible():
            self.model, self.dataset, self.stale = model, dataset, True
            self.view.set_layers(model)
            return
        super().set_model(model, dataset)

    def compute(self) -> None:
        images = self._test_images()
        if images is None or not self.view.layer:
            if self.model is not None and self.view.layer:
                self.view.clear("The filter atlas needs a test set that fits the network's input.")
            return
        layer, top_k = self.view.layer, self.view.top_k.value()
        self._request = (layer, top_k)
        self.stale = False
        self.view.set_busy(True, 0.0)
        self.view.status.setText(f"Searching {min(len(images), ATLAS_IMAGES)} test images for what excites each "
                                 f"channel of {layer}\u2026")
        job = atlas_job(images, dict(self.model.preprocessing), layer, top_k)
        self.worker.submit(self.kind, lambda model, task: (layer, top_k, job(model, task)), True)

    def done(self, result: Any) -> None:
        layer, top_k, atlas = result
        if (layer, top_k) == self._request:
            self.view.set_atlas(atlas, list(self.dataset.class_names))
