"""File > Export and File > Import Weights: taking the trained network away, and bringing weights back.

``install_export(window, session)`` adds one action per export format (weights .npz and .safetensors,
ONNX, a standalone NumPy predictor, PyTorch code) and an import action. Exports read the project's
trained network (``session.trained.model()``: the latest weight snapshot), copy it on the GUI thread
and write on a background thread, so training may go on meanwhile and the window never freezes. Every file is
written atomically by the engine; failures and missing optional packages are reported in a message
box naming the file and what to do.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from PySide6.QtCore import QObject, Signal
from PySide6.QtGui import QAction
from PySide6.QtWidgets import QFileDialog, QMenu, QMessageBox, QWidget

from cnn_studio.background_job import BackgroundJob
from cnn_studio.folder_chooser import choose_folder
from cnn_studio.messages import headless, show_message
from engine.export import (
    EXTRAS_HINT,
    FORMATS,
    IMPORT_SUFFIXES,
    WEIGHTS_FILE_NAME,
    ExportFormat,
    MissingDependency,
    export_model,
    import_weight_file,
)
from engine.model import Model

ONNX_CHECK_IMAGES = 64
ONNX_TOLERANCE = 1e-4
_USAGE = {
    "npz": "Load it with File > Import Weights, `cnn-engine evaluate`, or engine.weights.load_weights().",
    "safetensors": "Load it with File > Import Weights or `cnn-engine evaluate`; any safetensors reader opens it "
                   "(the architecture and layer order are in its metadata).",
    "onnx": "Input \"input\": (N, H, W, C) float32, normalized as the model's 'preprocessing' metadata says. "
            "Open it with ONNX Runtime, OpenCV's dnn module or Netron.",
    "predictor": "Run it with:  python predict.py picture.png  (needs only NumPy).",
    "pytorch": "In Python:  from model import load_npz;  net = load_npz()  — then train on with PyTorch.",
    "pytorch-train": "Train with:  torchrun --nproc_per_node=N train.py --data DATA  (or python train.py ...); "
                     "it writes trained.safetensors for File > Import Weights. See README.md there.",
}


class ExportDialogs:
    """Every question and message of the export and import actions, in one replaceable object.

    Messages open without blocking the event loop; only file choosers and yes/no questions wait.
    Headless (offscreen test runs) nobody can answer: choosers return None and questions yes.
    """

    def __init__(self, parent: QWidget | None) -> None:
        self.parent = parent

    def export_path(self, fmt: ExportFormat, suggested: Path) -> str | None:
        if headless():
            return None
        if fmt.folder:
            folder = choose_folder(self.parent, f"Export {fmt.label} into folder (an existing or a new one)",
                                   suggested, "Export")
            return str(folder) if folder is not None else None
        path, _ = QFileDialog.getSaveFileName(self.parent, f"Export {fmt.label}", str(suggested),
                                              f"{fmt.label} (*{fmt.suffix});;All files (*)")
        return path or None

    def import_path(self, directory: Path) -> str | None:
        if headless():
            return None
        patterns = " ".join(f"*{s}" for s in IMPORT_SUFFIXES)
        path, _ = QFileDialog.getOpenFileName(self.parent, "Import weights", str(directory),
                                              f"Weight files ({patterns});;All files (*)")
        return path or None

    def confirm(self, title: str, text: str, informative: str = "") -> bool:
        if headless():
            return True
        box = QMessageBox(QMessageBox.Icon.Question, title, text,
                          QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.Cancel, self.parent)
        box.setInformativeText(informative)
        box.setDefaultButton(QMessageBox.StandardButton.Yes)
        return box.exec() == QMessageBox.StandardButton.Yes

    def error(self, title: str, text: str, informative: str = "") -> None:
        show_message(self.parent, "error", title, text, informative)

    def info(self, title: str, text: str, informative: str = "") -> None:
        show_message(self.parent, "info", title, text, informative)


def _same_design(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """True when two architecture documents describe the same network (the studio's block ids aside)."""
    def core(doc: dict[str, Any]) -> Any:
        return (doc.get("input"), [{k: v for k, v in layer.items() if k != "id"} for layer in doc.get("layers", [])])
    return core(a) == core(b)


class ExportController(QObject):
    """The File > Export actions and File > Import Weights, wired to the window's document and training
    session (its trained network, its runner and its dataset).

    Signals (GUI thread): ``export_finished(list of written paths)``, ``import_finished(str path)``,
    ``failed(str message)``; useful for tests and for other views that list exported files.
    """

    export_finished = Signal(list)
    import_finished = Signal(str)
    failed = Signal(str)

    def __init__(self, window: Any, session: Any, dialogs: ExportDialogs | None = None) -> None:
        super().__init__(window)
        self.window = window
        self.session = session
        self.dialogs = dialogs if dialogs is not None else ExportDialogs(window)
        self.job = BackgroundJob(self)
        self.job.finished.connect(self.update_actions)
        self.directory: Path | None = None  # where the user last exported or imported
        self.export_actions: dict[str, QAction] = {}
        self.import_action: QAction | None = None
        self.imported_model: Model | None = None

    # -- state -------------------------------------------------------------------------------------
    @property
    def busy(self) -> bool:
        return self.job.busy

    def _dataset(self, model: Model | None = None) -> Any:
        """The dataset that goes with ``model``: the one it was trained on, else the project's."""
        trained = self.session.trained.dataset() if model is not None else None
        return trained or self.session.datasets.current

    def wait(self, timeout_ms: int = 30000) -> bool:
        """Block until a running export or import has finished writing (used when the window closes)."""
        return self.job.wait(timeout_ms)

    def update_actions(self) -> None:
        """Refresh texts, tooltips and enabled states (called whenever the menus are about to show)."""
        for name, action in self.export_actions.items():
            fmt = FORMATS[name]
            missing = fmt.missing_packages()
            action.setText(f"{fmt.label}…" + (f"  (needs {', '.join(missing)})" if missing else ""))
            tip = fmt.description + (f"\nNot installed: {', '.join(missing)}. Install with: {fmt.install}"
                                     if missing else "")
            action.setToolTip(tip)
            action.setStatusTip(tip.replace("\n", " "))
            action.setEnabled(not self.busy)
        if self.import_action is not None:
            running = self.session.runner.running
            self.import_action.setEnabled(not running and not self.busy)
            tip = ("Stop training before importing weights" if running else
                   "Load a .npz or .safetensors weight file into the current architecture")
            self.import_action.setToolTip(tip)
            self.import_action.setStatusTip(tip)

    # -- export ------------------------------------------------------------------------------------
    def export(self, format_name: str) -> None:
        """Menu slot: check the format can be written, ask where, then export in the background."""
        fmt = FORMATS[format_name]
        if not self._format_available(fmt) or self._refuse_when_busy():
            return
        path = self.dialogs.export_path(fmt, self._suggested_path(fmt))
        if path:
            self.export_to(format_name, path)

    def export_to(self, format_name: str, path: str | Path) -> bool:
        """Export the current network to ``path`` (a folder for predictor/pytorch); False if nothing started."""
        fmt = FORMATS[format_name]
        if not self._format_available(fmt) or self._refuse_when_busy():
            return False
        path = Path(path)
        if not fmt.folder and path.suffix.lower() != fmt.suffix:
            path = path.with_name(path.name + fmt.suffix)
        if fmt.folder and not self._confirm_replacing(fmt, path):
            return False
        prepared = self._model_to_export()
        if prepared is None:
            return False
        model, note = prepared
        class_names = self._class_names(model)
        check_images = self._onnx_check_images(model) if fmt.name == "onnx" else None
        # The folder the export went into, not the export folder itself: the next export's default
        # then lands beside this one rather than inside it.
        self.directory = path.parent
        self._status(f"Exporting {fmt.label} to {path}…")

        settings = dict(getattr(self.window.document, "training", None) or {}) if fmt.name == "pytorch-train" else None

        def work() -> tuple[list[Path], str]:
            written = export_model(model, path, fmt.name, class_names=class_names, train_settings=settings)
            return written, self._verify_onnx(model, written[0], *check_images) if check_images is not None else ""

        def done(result: tuple[list[Path], str]) -> None:
            written, check = result
            where = str(written[0]) if not fmt.folder else f"{_listed([p.name for p in written])} into {path}"
            self._status(f"Exported {fmt.label}: {where}")
            details = "\n\n".join(part for part in (check, note, _USAGE[fmt.name]) if part)
            self.dialogs.info("Export finished", f"Wrote {where}.", details)
            self.export_finished.emit([str(p) for p in written])

        self._run(work, done, f"{fmt.label} not exported", path)
        return True

    def _model_to_export(self) -> tuple[Model, str] | None:
        """A private copy of the trained network (or, if the user agrees, a fresh one) and a note about it."""
        trained = self.session.trained.model()
        document = self.window.document
        if trained is not None:
            # A private copy made on this thread: training may replace the session's model meanwhile.
            model = Model.from_architecture(trained.architecture)
            model.set_weights(trained.get_weights())
            model.preprocessing = copy.deepcopy(trained.preprocessing)
            note = "" if _same_design(trained.architecture, document.architecture()) else (
                "Note: the design was edited after training; the export holds the network as it was trained.")
            return model, note
        analysis = document.analysis()
        if analysis.problems:
            self._fail("Nothing to export", f"The architecture has a problem: {analysis.problems[0]}",
                       "Fix the problems listed in the Problems panel, then export again.")
            return None
        if not self.dialogs.confirm("Export an untrained network?",
                                    "The network has not been trained yet.",
                                    "Export it with freshly initialised (random) weights? Its predictions will "
                                    "be guesses until it is trained; the architecture and code are complete."):
            return None
        seed = int((getattr(document, "training", None) or {}).get("seed", 0))
        model = Model.from_architecture(document.architecture(), seed=seed)
        dataset = self._dataset()
        if dataset is not None and tuple(dataset.input_shape) == tuple(model.input_shape):
            model.preprocessing = dataset.normalization.to_dict()
        return model, "These weights are untrained (freshly initialised)."

    def _class_names(self, model: Model) -> list[str] | None:
        dataset = self._dataset(model)
        if dataset is not None and model.output_shape and len(dataset.class_names) == model.output_shape[-1]:
            return list(dataset.class_names)
        return None

    def _onnx_check_images(self, model: Model) -> tuple[np.ndarray, str]:
        """Up to 64 normalized test images to compare ONNX Runtime with the engine, and what they are;
        random inputs when no loaded dataset fits the network."""
        dataset = self._dataset(model)
        if dataset is not None and tuple(dataset.input_shape) == tuple(model.input_shape) and len(dataset.x_test):
            from engine.data import Normalization

            images = Normalization.from_dict(model.preprocessing).apply(dataset.x_test[:ONNX_CHECK_IMAGES])
            return images, f"{len(images)} test images of {dataset.name}"
        return np.random.default_rng(0).normal(size=(8, *model.input_shape)).astype(np.float32), "8 random inputs"

    @staticmethod
    def _verify_onnx(model: Model, path: Path, images: np.ndarray, what: str) -> str:
        """One sentence on how closely ONNX Runtime reproduces the engine (runs on the export thread)."""
        from engine.export.onnx_export import max_difference

        try:
            gap = max_difference(model, path, images)
        except MissingDependency:
            return "Install onnxruntime to have each export checked against the engine (pip install onnxruntime)."
        verdict = "matches" if gap <= ONNX_TOLERANCE else "DIFFERS FROM"
        return (f"Checked with ONNX Runtime on {what}: it {verdict} the engine "
                f"(largest difference {gap:.1e}).")

    def _suggested_path(self, fmt: ExportFormat) -> Path:
        name = getattr(self.window.document, "display_name", "") or "network"
        stem = re.sub(r"[^\w.-]+", "-", Path(str(name)).stem).strip("-.") or "network"
        if fmt.folder:
            return self.start_directory() / f"{stem}-{fmt.name}"
        return self.start_directory() / f"{stem}{fmt.suffix}"

    def start_directory(self) -> Path:
        """Where file dialogs open: the folder last exported to or imported from, else the open
        project's folder, else the home folder."""
        if self.directory is not None:
            return self.directory
        project = getattr(self.window.document, "file_path", None)
        return Path(project).parent if project else Path.home()

    def _confirm_replacing(self, fmt: ExportFormat, folder: Path) -> bool:
        if folder.exists() and not folder.is_dir():
            self._fail(f"{fmt.label} not exported", f"{folder} is a file; choose a folder.")
            return False
        names = (fmt.main_file, *fmt.other_files, WEIGHTS_FILE_NAME)  # a README of the user's own counts too
        existing = [name for name in names if (folder / name).exists()]
        if not existing:
            return True
        return self.dialogs.confirm("Replace files?", f"{folder} already holds {_listed(existing)}.",
                                    "Replace them with this export?")

    def _format_available(self, fmt: ExportFormat) -> bool:
        missing = fmt.missing_packages()
        if missing:
            self._fail(f"{fmt.label} needs {', '.join(missing)}",
                       f"Exporting {fmt.label} needs the '{missing[0]}' package, which is not installed.",
                       f"Install it with:\n    {fmt.install}\nor every export extra with:\n    {EXTRAS_HINT}")
            return False
        return True

    # -- import ------------------------------------------------------------------------------------
    def import_weights(self) -> None:
        """Menu slot: ask for a weight file and load it into the current architecture."""
        if self._refuse_when_busy() or self._refuse_while_training():
            return
        path = self.dialogs.import_path(self.start_directory())
        if path:
            self.import_from(path)

    def import_from(self, path: str | Path) -> bool:
        """Load ``path`` (.npz or .safetensors) into the current architecture in the background."""
        if self._refuse_when_busy() or self._refuse_while_training():
            return False
        path = Path(path)
        document = self.window.document
        analysis = document.analysis()
        if analysis.problems:
            self._fail("Weights not imported", f"The architecture has a problem: {analysis.problems[0]}",
                       "Weights load into the current architecture; fix it first.")
            return False
        architecture = document.architecture()
        self.directory = path.parent

        def work() -> Model:
            model = Model.from_architecture(architecture)
            import_weight_file(model, path)
            return model

        def done(model: Model) -> None:
            if self.session.runner.running:  # started while the file was read
                self._fail("Weights not imported", f"{path}: training is running; stop it first")
                return
            self.session.trained.adopt(model)
            self.imported_model = model
            count = len(model.tensors())
            self._status(f"Imported {count} tensors from {path.name}")
            self.dialogs.info("Weights imported", f"Loaded {count} tensors from {path} into the current "
                                                  "architecture.",
                              "Look inside the network, evaluate it or export it; Start trains on from these "
                              "weights.")
            self.import_finished.emit(str(path))

        self._run(work, done, "Weights not imported", path, hint=(
            "Weights load only into the architecture they were trained with: the same layers in the same "
            "order with the same sizes."))
        return True

    # -- plumbing ----------------------------------------------------------------------------------
    def _run(self, work: Callable[[], Any], done: Callable[[Any], None], title: str, path: Path,
             hint: str = "") -> None:
        def failed(message: str) -> None:
            informative = hint if "tensor" in message else ""
            if "Install it with" in message:
                informative = f"Or install every export extra with:\n    {EXTRAS_HINT}"
            self._fail(title, message if str(path) in message else f"{path}: {message}", informative)

        self.job.start(work, done, failed)
        self.update_actions()

    def _refuse_when_busy(self) -> bool:
        if self.busy:
            self._status("An export or import is still being written; try again in a moment.")
        return self.busy

    def _refuse_while_training(self) -> bool:
        if self.session.runner.running:
            self._fail("Weights not imported", "Training is running.",
                       "Stop training before importing weights: the run would overwrite them.")
            return True
        return False

    def _fail(self, title: str, text: str, informative: str = "") -> None:
        self._status(f"{title}: {text}")
        self.dialogs.error(title, text, informative)
        self.failed.emit(text)

    def _status(self, text: str) -> None:
        bar = self.window.statusBar() if hasattr(self.window, "statusBar") else None
        if bar is not None:
            bar.showMessage(text, 8000)


def _export_menu(window: Any) -> QMenu:
    menus = window.menus
    if "Export" not in menus:  # older windows: make the submenu under File
        menus["Export"] = menus["File"].addMenu("&Export")
    return menus["Export"]


def install_export(window: Any, session: Any, dialogs: ExportDialogs | None = None) -> ExportController:
    """Add File > Export items and File > Import Weights to ``window``, exporting what ``session`` (the
    window's TrainingSession) trained; returns the controller."""
    controller = ExportController(window, session, dialogs)
    menu = _export_menu(window)
    menu.setToolTipsVisible(True)
    for name in FORMATS:
        action = QAction(FORMATS[name].label, window)
        action.setObjectName(f"export_{name}")
        action.triggered.connect(lambda _checked=False, n=name: controller.export(n))
        menu.addAction(action)
        controller.export_actions[name] = action
        if name == "safetensors":
            menu.addSeparator()  # weights above, whole-network formats below
    importer = QAction("&Import Weights…", window)
    importer.setObjectName("import_weights")
    importer.triggered.connect(lambda _checked=False: controller.import_weights())
    window.menus["File"].insertAction(menu.menuAction(), importer)
    controller.import_action = importer
    menu.aboutToShow.connect(controller.update_actions)
    window.menus["File"].aboutToShow.connect(controller.update_actions)
    controller.update_actions()
    # An export in flight finishes (it is small and atomic) before the window goes away.
    window.close_guards.append(lambda: controller.wait(30000) or True)
    return controller


def _listed(names: list[str]) -> str:
    """'a', 'a and b', 'a, b and c'."""
    if len(names) < 2:
        return "".join(names)
    return f"{', '.join(names[:-1])} and {names[-1]}"
