"""The "Inside" tab: every view of the network for one chosen sample, live while training, on demand after.

Idle, ``set_model(model, dataset)`` and ``set_evaluation(evaluation)`` drive everything: the
panel's background workers (their own model copies) compute feature maps, prediction, attribution maps and
statistics. Attached to a training session, it follows the session's trained network (weights and
evaluation); while a run goes on it hands the current sample to ``session.runner.set_probe`` and
draws the ProbeResults the training worker computes on its snapshots.
"""

from __future__ import annotations

import html
from typing import Any

import numpy as np
from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QHideEvent, QResizeEvent, QShowEvent
from PySide6.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QMenu,
    QProgressBar,
    QSplitter,
    QTabWidget,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from cnn_studio.inspect.atlas_view import FilterAtlasView
from cnn_studio.inspect.attribution import compute_attribution
from cnn_studio.inspect.attribution_view import AttributionView
from cnn_studio.inspect.compute import InspectionWorker
from cnn_studio.inspect.embedding_view import EmbeddingView
from cnn_studio.inspect.explain_controllers import AtlasController, EmbeddingController
from cnn_studio.inspect.feature_maps import FeatureMapsView
from cnn_studio.inspect.filters_view import FiltersView
from cnn_studio.inspect.layer_stats import LayerStatsView, statistics_note
from cnn_studio.inspect.mistakes_gallery import MistakesGallery
from cnn_studio.inspect.prediction_view import PredictionView
from cnn_studio.inspect.sample_picker import SamplePicker
from cnn_studio.turning_splitter import vertically_scrolling
from engine.explain import default_cam_layer, spatial_layers
from engine.inspection import (
    Probe,
    as_normalization,
    input_to_image,
    layer_statistics,
    probe,
)
from engine.metrics import evaluate
from engine.model import Model

STATS_SAMPLES = 256  # images of the fixed batch the layer statistics are measured on
# Deferred jobs are handed to the worker in this order when the tab is shown: what the user sees first
# (feature maps and prediction) must not wait behind the statistics of 256 images.
FIRST_JOBS = ("sample", "attribution")
COMPUTING_PREDICTION = "Computing the prediction\u2026"
COMPUTING_MAPS = "Computing the feature maps\u2026"
# What each kind of job computes, in the words of the views (a failure names it so).
JOB_NAMES = {"sample": "feature maps and prediction", "attribution": "attribution map", "stats": "layer statistics",
             "evaluation": "test-set evaluation", "atlas": "filter atlas", "embedding": "embedding"}
NO_SAMPLE = "No sample: pick a test image, open a picture or draw one."
NO_MODEL = ("No trained network yet. Train one on the Train tab (or import weights) to look inside it; "
            "the views update live while it trains.")


class BusyNote(QWidget):
    """'Computing…' with a moving bar: shown while a view waits for its first results."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.label = QLabel("Computing\u2026")
        self.bar = QProgressBar()
        self.bar.setRange(0, 0)  # no steps to count: the bar just moves
        self.bar.setTextVisible(False)
        self.bar.setFixedSize(70, 10)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.label)
        layout.addWidget(self.bar)
        self.setToolTip("The network's feature maps and prediction for the chosen sample are being computed")


def layer_inputs(model: Model) -> dict[str, list[str]]:
    """Layer name -> the names of what it takes ("input": the image); a chain when the model keeps no graph."""
    ids = getattr(model, "ids", None)
    inputs = getattr(model, "inputs", None)
    if ids is None or inputs is None:
        return {name: [previous] for previous, name in zip(["input", *model.names], model.names)}
    name_of = {"input": "input", **dict(zip(ids, model.names))}
    return {name: [name_of.get(ref, ref) for ref in refs] for name, refs in zip(model.names, inputs)}


class _ViewTabs(QTabWidget):
    """The views' tabs, saying when their width changes (a signal, not an event filter on the panel:
    a filter's Python method can still be called while the panel is being torn down)."""

    resized = Signal()

    def resizeEvent(self, event: QResizeEvent) -> None:  # noqa: N802 (Qt's name)
        super().resizeEvent(event)
        self.resized.emit()


class InsidePanel(QWidget):
    """Sample picker and prediction on the left; feature maps, attribution, filters, statistics, mistakes.

    Signal ``pin_changed(str)``: the panel looks at pinned weights (a past epoch, another run) described by
    the text, or follows the trained network again ("").
    """

    pin_changed = Signal(str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._pinned = ""  # what the pinned weights are, in words ("" when following the trained network)
        self._model: Model | None = None
        self._dataset: Any = None
        self._evaluation: Any = None
        self._class_names: list[str] = []
        self._session: Any = None
        self._live = False
        self._sample_token = 0
        self._pending_probe: Any = None
        self._probe_sent: np.ndarray | None = None  # the sample the training worker probes now
        self._deferred: dict[str, Any] = {}  # jobs asked for while the tab was hidden
        self._stats_part = "test"
        self._stats_weights = ""  # the pinned weights the statistics were asked for ("": the latest ones)
        self._epoch_text = ""
        self._attribution_request: tuple[int, Any] | None = None
        self.probes_received = 0  # ProbeResults drawn from a training session (live updates)

        self.worker = InspectionWorker(self)
        self.worker.result_ready.connect(self._on_result)
        self.worker.job_failed.connect(self._on_job_failed)
        # Long computations (SmoothGrad, occlusion, the filter atlas, the embedding) run on a second worker,
        # so picking another sample still shows its feature maps at once.
        self.slow_worker = InspectionWorker(self)
        self.slow_worker.result_ready.connect(self._on_result)
        self.slow_worker.job_failed.connect(self._on_job_failed)
        self.slow_worker.job_progress.connect(self._on_job_progress)
        self.slow_worker.job_cancelled.connect(self._on_job_cancelled)

        self.status = QLabel(NO_MODEL)
        self.status.setWordWrap(True)
        self.status.setTextFormat(Qt.TextFormat.RichText)
        self.status.linkActivated.connect(lambda _link: self.unpin())
        self.busy_note = BusyNote()
        self.busy_note.setVisible(False)
        self.picker = SamplePicker()
        self.picker.sample_changed.connect(self._on_sample_changed)
        self.prediction = PredictionView()
        self.feature_maps = FeatureMapsView()
        self.attribution = AttributionView()
        self.attribution.requested.connect(self._request_attribution)
        self.attribution.cancel_requested.connect(lambda: self.slow_worker.cancel("attribution"))
        self.filters = FiltersView()
        self.stats = LayerStatsView()
        self.mistakes = MistakesGallery()
        self.mistakes.mistake_chosen.connect(self.open_test_image)
        self.mistakes.evaluate_requested.connect(self.evaluate_now)

        self.atlas = FilterAtlasView()
        self.embedding = EmbeddingView()
        self.atlas_controller = AtlasController(self, self.atlas)
        self.embedding_controller = EmbeddingController(self, self.embedding)
        self._controllers = {"atlas": self.atlas_controller, "embedding": self.embedding_controller}

        self.views = _ViewTabs()
        self.views.addTab(self.feature_maps, "Feature maps")
        self.views.addTab(self.attribution, "Attribution")
        self.views.setTabToolTip(1, "Where the network looks to decide: gradient, SmoothGrad, Grad-CAM, occlusion")
        self.views.addTab(self.filters, "Filters")
        self.views.addTab(self.atlas, "Filter atlas")
        self.views.setTabToolTip(3, "For each channel of a convolution, the test-image patches that excite it most")
        self.views.addTab(self.stats, "Layer statistics")
        self.views.addTab(self.mistakes, "Mistakes")
        self.views.addTab(self.embedding, "Embedding")
        self.views.setTabToolTip(self.views.count() - 1, "Where a layer puts each test image, projected to 2-D")
        self.views.currentChanged.connect(self._on_view_changed)
        self.views_button = self._make_views_button()
        self.views.resized.connect(self._fit_views_button)  # its width decides whether the tabs need it

        left = QWidget()
        left_layout = QVBoxLayout(left)
        left_layout.setContentsMargins(0, 0, 0, 0)
        left_layout.addWidget(self.picker)
        left_layout.addWidget(self.prediction, 1)
        left.setMinimumWidth(220)
        splitter = QSplitter(Qt.Orientation.Horizontal)
        # The drawing pad makes the column taller than a 750 px window leaves it: it scrolls instead of
        # making the whole window taller than the screen.
        splitter.addWidget(vertically_scrolling(left))
        splitter.addWidget(self.views)
        splitter.setStretchFactor(0, 0)
        splitter.setStretchFactor(1, 1)
        splitter.setSizes([330, 1100])
        layout = QVBoxLayout(self)
        layout.setContentsMargins(6, 6, 6, 6)
        top = QHBoxLayout()
        top.addWidget(self.status, 1)
        top.addWidget(self.busy_note, 0, Qt.AlignmentFlag.AlignTop)
        layout.addLayout(top)
        layout.addWidget(splitter, 1)

    def _make_views_button(self) -> QToolButton:
        """'Views': a menu of every view, beside the tabs when they do not all fit. In the narrow pane of a
        1100 px window only three of the seven tabs show, the rest behind two small scroll arrows."""
        button = QToolButton()
        button.setText("Views")
        button.setToolTip("Every view of the network: the tabs do not all fit")
        button.setPopupMode(QToolButton.ToolButtonPopupMode.InstantPopup)
        menu = QMenu(button)
        menu.aboutToShow.connect(lambda: self._fill_views_menu(menu))
        button.setMenu(menu)
        self.views.setCornerWidget(button, Qt.Corner.TopRightCorner)
        button.setVisible(False)
        return button

    def _fill_views_menu(self, menu: QMenu) -> None:
        menu.clear()
        for index in range(self.views.count()):
            action = menu.addAction(self.views.tabText(index))
            action.setCheckable(True)
            action.setChecked(index == self.views.currentIndex())
            action.setToolTip(self.views.tabToolTip(index))
            action.triggered.connect(lambda _checked=False, i=index: self.views.setCurrentIndex(i))

    def _fit_views_button(self) -> None:
        # Measured against the whole width: the button's own room must not make it come and go.
        overflowing = self.views.tabBar().sizeHint().width() > self.views.width()
        if overflowing == self.views_button.isHidden():
            self.views_button.setVisible(overflowing)

    # -- idle API ------------------------------------------------------------------------------------------
    @property
    def model(self) -> Model | None:
        return self._model

    @property
    def dataset(self) -> Any:
        return self._dataset

    @property
    def live(self) -> bool:
        return self._live

    @property
    def session(self) -> Any:
        """The training session followed (None until ``attach_session``)."""
        return self._session

    def set_model(self, model: Model | None, dataset: Any = None) -> None:
        """Look inside ``model`` (the panel keeps it and computes from a copy); ``dataset`` supplies the
        test images and class names (None keeps the current dataset)."""
        if dataset is not None:
            self._dataset = dataset
        self._model = model
        self.worker.set_model(model)
        self.slow_worker.set_model(model)
        self._deferred.clear()  # they were for the previous weights; the new ones are asked for below
        if model is None:
            self._clear_model_views(NO_MODEL)
            for controller in self._controllers.values():
                controller.set_model(None, self._dataset)
            return
        k = model.output_shape[0] if len(model.output_shape) == 1 else 0
        data = self._dataset
        if data is not None and data.num_classes == k:
            self._class_names = list(data.class_names)
        else:
            self._class_names = [str(i) for i in range(k)]
        self.feature_maps.set_layer_types({n: layer.type_name for n, layer in zip(model.names, model.layers)})
        self.feature_maps.set_layer_inputs(layer_inputs(model))
        self.filters.set_model(model)
        self.attribution.set_class_names(self._class_names)
        self.attribution.set_layers(spatial_layers(model), default_cam_layer(model))
        if len(model.input_shape) == 3:
            self.attribution.set_image_size(*model.input_shape[:2])
        if self._evaluation is not None and not self._evaluation_fits(self._evaluation):
            self._evaluation = None
            self.mistakes.clear("Mistakes appear after the network is evaluated on the test set.")
        self.picker.set_source(self._dataset, model.input_shape, model.preprocessing, self._class_names)
        for controller in self._controllers.values():
            controller.set_model(model, self._dataset)
        self._request_statistics()
        self._update_status()

    def set_evaluation(self, evaluation: Any) -> None:
        """An Evaluation of the dataset's test part: fills the mistakes gallery."""
        self._evaluation = evaluation
        if evaluation is None:
            self.mistakes.clear("Mistakes appear after the network is evaluated on the test set.")
        elif not self._evaluation_fits(evaluation):
            self.mistakes.clear(f"This evaluation covers {len(evaluation.labels)} images, but the dataset's "
                                "test set differs: evaluate again to list the mistakes.")
        else:
            images = self._dataset.x_test if self._dataset is not None else None
            self.mistakes.set_evaluation(evaluation, images, self._scale(), self._class_names)
        self._update_status()

    def evaluate_now(self) -> None:
        """Evaluate the current network on the test set in the background (fills the gallery)."""
        data = self._dataset
        if self._model is None or data is None or not len(data.x_test):
            self.mistakes.clear("There is no test set to evaluate on." if self._model is not None else NO_MODEL)
            return
        raw, labels = data.x_test, data.y_test
        norm = as_normalization(self._model.preprocessing)
        self.mistakes.summary.setText("Evaluating on the test set\u2026")
        self.worker.submit("evaluation", lambda m: evaluate(m, norm.apply(raw), labels))

    # -- pinned weights (the time machine, another run) ------------------------------------------------------
    @property
    def pinned(self) -> str:
        """What the pinned weights are ("" while the panel follows the trained network)."""
        return self._pinned

    def pin_model(self, model: Model, label: str, dataset: Any = None, evaluation: Any = None) -> None:
        """Look inside ``model`` (weights of a past epoch, or of another run) instead of the trained network,
        until ``unpin``; a run that starts unpins it. ``evaluation`` (of these weights) fills the mistakes."""
        self._pinned = label
        self._evaluation = None
        self.set_model(model, dataset)
        self.set_evaluation(evaluation)
        self.pin_changed.emit(label)

    def unpin(self) -> None:
        """Follow the trained network again."""
        if not self._pinned:
            return
        self._pinned = ""
        session = self._session
        if session is not None:
            self._evaluation = None
            self.set_model(session.trained.model(), self._session_dataset())
            self.set_evaluation(session.trained.evaluation())
        self._update_status()
        self.pin_changed.emit("")

    def open_test_image(self, index: int) -> None:
        """Show test image ``index`` in the picker and switch to its feature maps."""
        self.picker.show_test_index(index)
        self.views.setCurrentWidget(self.feature_maps)

    def shutdown(self) -> None:
        """Stop the background worker (the app is closing)."""
        if self._session is not None and self._live:
            self._safe_session_call("set_probe", None)
        self.worker.shutdown()
        self.slow_worker.shutdown()

    # -- live API (training session) ----------------------------------------------------------------------
    def attach_session(self, session: Any) -> None:
        """Follow a TrainingSession: draw its runner's probes while it trains, look inside each new weight
        snapshot of its trained network, list the mistakes of its evaluation. When the trained network is
        cleared (another project) every view empties."""
        self._session = session
        runner, trained = session.runner, session.trained
        runner.started.connect(self._on_training_started)
        runner.probe_ready.connect(self._on_probe)
        runner.epoch_end.connect(self._on_epoch_end)
        runner.finished.connect(self._on_training_ended)
        runner.failed.connect(self._on_training_ended)
        trained.model_changed.connect(self._on_session_model)
        trained.evaluation_changed.connect(self._on_session_evaluation)
        session.datasets.changed.connect(self._on_session_dataset)
        if runner.running:
            self._on_training_started(None)
        elif trained.model() is not None:
            self._on_session_model()

    def _session_dataset(self) -> Any:
        """The images that go with the session's network: its run's dataset, else the project's."""
        session = self._session
        return session.trained.dataset() or session.runner.dataset or session.datasets.current

    def _on_training_started(self, _event: Any) -> None:
        if self._pinned:
            self._pinned = ""  # a run shows its own weights, live
            self.pin_changed.emit("")
        self._live = True
        self._epoch_text = ""
        model = self._session.trained.model()
        dataset = self._session_dataset()
        if model is not None:
            self.set_model(model, dataset)
        elif dataset is not None:
            # The first snapshot comes after the first epoch: until then the probe still needs a sample,
            # normalized as the dataset does.
            self._dataset = dataset
            self._class_names = list(dataset.class_names)
            self.picker.set_source(dataset, dataset.input_shape, dataset.normalization, self._class_names)
        self._send_probe()
        self._update_status()

    def _on_training_ended(self, *_args: Any) -> None:
        self._live = False
        self._pending_probe = None
        if self._session is not None:
            self._probe_sent = None
            self._safe_session_call("set_probe", None)
            model = self._session.trained.model()
            if model is not None and model is not self._model:
                self.set_model(model, self._session_dataset())
                self._compute_atlas_after_run()
                return
        self._on_sample_changed()
        self._update_status()
        self._compute_atlas_after_run()

    def _compute_atlas_after_run(self) -> None:
        # The run's final weights get their filter atlas in the background, shown or not.
        if self.atlas_controller.stale and self._model is not None:
            self.atlas_controller.compute()

    def _on_session_model(self) -> None:
        session = self._session
        running = session.runner.running
        if self._pinned and not running and session.trained.model() is not None:
            return  # pinned weights stay until unpinned (the trained network is shown again then)
        # The first snapshot (the untrained network) arrives before ``started``: follow the run from here.
        if running and not self._live:
            self._live = True
            self._epoch_text = ""
        model = session.trained.model()
        if model is None:
            # Another project: nothing of the previous network may remain.
            if self._pinned:
                self._pinned = ""
                self.pin_changed.emit("")
            self._live = running
            self._evaluation = None
            self.mistakes.clear("Mistakes appear after the network is evaluated on the test set.")
            self.set_model(None)
            self._update_status()
            return
        self.set_model(model, self._session_dataset())

    def _on_session_evaluation(self) -> None:
        if self._pinned:
            return  # it belongs to the trained network, not to the pinned weights
        evaluation = self._session.trained.evaluation()
        # New weights from elsewhere (e.g. imported) come without an evaluation: the last run's accuracy and
        # mistakes belong to other weights and must not be shown as theirs.
        if evaluation is not None or self._evaluation is not None:
            self.set_evaluation(evaluation)

    def _on_session_dataset(self) -> None:
        dataset = self._session.datasets.current
        if dataset is not None and not self._live and self._model is not None:
            self.set_model(self._model, dataset)

    def _on_epoch_end(self, event: Any) -> None:
        # The epoch that ended: the next one is already being trained when this is shown.
        self._epoch_text = f"epoch {event.epoch} of {event.epochs} done"
        self._update_status()

    def _on_probe(self, result: Any) -> None:
        if not self._live:
            return  # a probe that was already on its way when training stopped
        if not self.isVisible():
            self._pending_probe = result  # drawn when the tab is shown again
            return
        self._draw_probe(result)

    def _draw_probe(self, result: Any) -> None:
        self.probes_received += 1
        self._sample_results_arrived()
        self.feature_maps.set_outputs(list(result.layer_outputs))
        self.prediction.set_prediction(result.probabilities, self._class_names, self.picker.current_label())

    def _send_probe(self) -> None:
        if self._session is None or not self._live:
            return
        x = self.picker.current_input() if self.isVisible() else None
        same = (x is None and self._probe_sent is None) or (
            x is not None and self._probe_sent is not None and np.array_equal(x, self._probe_sent))
        if same:
            return  # e.g. a new epoch's snapshot re-sets the picker: the worker already has this sample
        self._probe_sent = None if x is None else x.copy()
        self._safe_session_call("set_probe", self._probe_sent)

    def _safe_session_call(self, method: str, *args: Any) -> None:
        try:
            getattr(self._session.runner, method)(*args)
        except RuntimeError:  # the session's thread is already gone while the app closes
            pass

    def showEvent(self, event: QShowEvent) -> None:
        super().showEvent(event)
        deferred, self._deferred = self._deferred, {}
        for kind in sorted(deferred, key=lambda k: FIRST_JOBS.index(k) if k in FIRST_JOBS else len(FIRST_JOBS)):
            worker, job, progress = deferred[kind]
            worker.submit(kind, job, progress)
        if self._live:
            self._send_probe()
            if self._pending_probe is not None:
                pending, self._pending_probe = self._pending_probe, None
                self._draw_probe(pending)
            elif self._probe_sent is not None:
                self._expect_sample_results()  # the training worker probes the sample from its next batches

    def hideEvent(self, event: QHideEvent) -> None:
        super().hideEvent(event)
        # Nobody looks: spare the training worker the probe passes.
        if self._live and self._session is not None:
            self._probe_sent = None
            self._safe_session_call("set_probe", None)

    # -- computing on demand ---------------------------------------------------------------------------------
    def _on_sample_changed(self) -> None:
        self._sample_token += 1
        x = self.picker.current_input()
        if x is None or self._model is None:
            if self._live:
                self._send_probe()  # no sample: the training worker stops probing
            self._sample_results_arrived()  # nothing to wait for
            self.prediction.clear()
            self.attribution.clear()
            # The maps of the sample that was shown before must not stand for no sample at all.
            self.feature_maps.clear(NO_SAMPLE if self._model is not None else "")
            return
        if self._live:
            self._send_probe()
            self._request_attribution()
            return
        token, request, label = self._sample_token, self.attribution.request(), self.picker.current_label()
        if request.long:
            self._submit("sample", lambda model: (token, probe(model, x), None))
            self._request_attribution()
            return

        def job(model: Model) -> tuple[int, Probe, Any]:
            return token, probe(model, x), compute_attribution(model, x, request, label)

        self._submit("sample", job)

    def _request_attribution(self) -> None:
        """Compute the Attribution view's map for the current sample (long methods in the background)."""
        x = self.picker.current_input()
        if x is None or not self.worker.has_model:
            return
        token, request, label = self._sample_token, self.attribution.request(), self.picker.current_label()
        self._attribution_request = (token, request)
        if request.long:
            self.worker.cancel("attribution")
            self.attribution.set_busy(True, 0.0)
            self.attribution.show_computing(f"Computing {request.method.replace('smoothgrad', 'SmoothGrad')}\u2026")
            self._submit("attribution",
                         lambda model, task: (token, request, compute_attribution(model, x, request, label, task)),
                         slow=True)
        else:
            self.slow_worker.cancel("attribution")
            self.attribution.set_busy(False)
            self._submit("attribution", lambda model: (token, request, compute_attribution(model, x, request, label)))

    def _request_statistics(self) -> None:
        data = self._dataset
        if self._model is None or data is None or tuple(data.input_shape) != tuple(self._model.input_shape):
            self.stats.clear("Layer statistics need a dataset that fits the network's input.")
            return
        raw = data.x_test if len(data.x_test) else data.x_train
        self._stats_part = "test" if len(data.x_test) else "training"
        self._stats_weights = self._pinned  # the heading names them: a past epoch is not the latest weights
        raw = raw[:STATS_SAMPLES]
        norm = as_normalization(self._model.preprocessing)
        self._submit("stats", lambda model: layer_statistics(model, norm.apply(raw)))

    def _submit(self, kind: str, job: Any, slow: bool = False) -> None:
        # A hidden tab (e.g. while the user watches the Train tab) computes nothing: the latest job of
        # each kind waits for the tab to be shown, so the inspection never slows training down unseen.
        # ``slow`` jobs run on the second worker and take a task (progress, cancelling).
        worker = self.slow_worker if slow else self.worker
        if kind == "sample":
            self._expect_sample_results()
        if self.isVisible():
            worker.submit(kind, job, slow)
        else:
            self._deferred[kind] = (worker, job, slow)

    def _on_result(self, kind: str, result: Any) -> None:
        if kind == "sample":
            token, probe_result, attribution_result = result
            if token != self._sample_token:
                return
            self._sample_results_arrived()
            self.feature_maps.set_outputs(probe_result.layer_outputs)
            self.prediction.set_prediction(probe_result.probabilities, self._class_names,
                                           self.picker.current_label())
            if attribution_result is not None:
                self._show_attribution(attribution_result)
        elif kind == "attribution":
            token, request, attribution_result = result
            if (token, request) == self._attribution_request:
                self._show_attribution(attribution_result)
        elif kind == "stats":
            count = result[0].samples if result else 0
            all_of_them = not (len(result) and result[0].samples == STATS_SAMPLES)
            self.stats.set_statistics(result, statistics_note(count, self._stats_part, all_of_them,
                                                              self._stats_weights))
        elif kind == "evaluation":
            self.set_evaluation(result)
        elif kind in self._controllers:
            self._controllers[kind].done(result)

    def _show_attribution(self, result: Any) -> None:
        x = self.picker.current_input()
        if x is None or self._model is None:
            return
        picture = input_to_image(x, self._model.preprocessing)
        self.attribution.set_result(picture, result)

    def _on_job_progress(self, kind: str, fraction: float) -> None:
        if kind == "attribution":
            self.attribution.set_busy(True, fraction)
        elif kind in self._controllers:
            self._controllers[kind].progress(fraction)

    def _on_view_changed(self, _index: int) -> None:
        current = self.views.currentWidget()
        for controller in self._controllers.values():
            if controller.view is current:
                controller.shown()

    def _on_job_cancelled(self, kind: str) -> None:
        if kind in self._controllers:
            self._controllers[kind].cancelled()
        if kind == "attribution" and not self.slow_worker.busy:
            self.attribution.set_busy(False)
            if self.attribution.result is None or self.attribution.result.method != self.attribution.method:
                self.attribution.show_computing("Stopped. Change a setting or the sample to compute again.")

    def _on_job_failed(self, kind: str, message: str) -> None:
        # The view that waited says so itself: its "Computing…" would otherwise stay for good.
        what = JOB_NAMES.get(kind, kind)
        failure = f"Could not compute the {what}: {message}"
        if kind == "sample":
            self._sample_results_arrived()  # none are coming: the status line below says why
        elif kind == "attribution":
            self.attribution.set_busy(False)
            self.attribution.show_computing(failure)
        elif kind == "stats":
            self.stats.clear(failure)
        elif kind == "evaluation":
            self.mistakes.summary.setText(failure)
        elif kind in self._controllers:
            self._controllers[kind].failed(failure)
        self.status.setText(f"<span style='color:#c0392b'>{html.escape(failure)}</span>")

    # -- helpers -------------------------------------------------------------------------------------------------
    def _evaluation_fits(self, evaluation: Any) -> bool:
        data = self._dataset
        return data is not None and len(data.x_test) == len(evaluation.labels) and np.array_equal(
            np.asarray(data.y_test), np.asarray(evaluation.labels)
        )

    def _scale(self) -> float:
        if self._model is not None:
            return float(self._model.preprocessing.get("scale", 1 / 255))
        return float(self._dataset.normalization.scale) if self._dataset is not None else 1 / 255

    def _expect_sample_results(self) -> None:
        """While no feature maps are shown yet (the first sample of a network, e.g. just after a run with
        the tab hidden), say they are being computed: a large network takes seconds, and empty views
        with bare axes read as broken. Later samples keep showing the previous results until theirs come."""
        if self.feature_maps.has_outputs:
            return
        self.busy_note.setVisible(True)
        self.prediction.clear(COMPUTING_PREDICTION)
        self.feature_maps.show_computing(COMPUTING_MAPS)

    def _sample_results_arrived(self) -> None:
        """The end of the wait _expect_sample_results announced (results, a failure, or nothing to compute)."""
        self.busy_note.setVisible(False)
        self.feature_maps.show_computing("")
        if self.prediction.headline.text() == COMPUTING_PREDICTION:
            self.prediction.clear()

    def _clear_model_views(self, text: str) -> None:
        self._sample_results_arrived()
        self.feature_maps.clear()
        self.prediction.clear()
        self.attribution.clear()
        self.filters.set_model(None)
        self.stats.clear("Statistics appear once there is a trained network (updated after every epoch).")
        self.status.setText(text)

    def _update_status(self) -> None:
        if self._live:
            epoch = f" ({self._epoch_text})" if self._epoch_text else ""
            self.status.setText(
                f"<b style='color:#148c3c'>\u25cf Live</b>: feature maps and prediction follow the training"
                f"{epoch}; filters, attribution and statistics refresh after every epoch."
            )
        elif self._model is None:
            self.status.setText(NO_MODEL)
        elif self._pinned:
            back = " <a href='back'>Back to the trained network</a>" if self._session is not None else ""
            self.status.setText(f"<b style='color:#8e44ad'>{self._pinned}</b>: every view shows these "
                                f"weights.{back}")
        else:
            data = f" on {self._dataset.name}" if self._dataset is not None else ""
            accuracy = ""
            if self._evaluation is not None:
                accuracy = f", test accuracy {100 * self._evaluation.accuracy:.1f}%"
            self.status.setText(f"Trained network{data}{accuracy}. Pick a sample on the left to look inside.")
