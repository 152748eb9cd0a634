"""Networks in and out of the studio: File > Import ONNX Model, Edit > Replace Head, and
File > Export > ONNX int8 with its size and accuracy report.

Importing opens the network in the builder as a new, untitled project whose trained network is the
imported one, so Inside shows it at once and Start fine-tunes from its weights. Slow work (reading
and checking an ONNX file, quantizing) runs on a pool thread; its result comes back through a relay
on the GUI thread.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, Signal
from PySide6.QtGui import QAction
from PySide6.QtWidgets import QFileDialog, QWidget

from cnn_studio.background_job import BackgroundJob
from cnn_studio.builder.head import ReplaceHeadCommand
from cnn_studio.messages import headless, show_message
from engine.errors import EngineError
from engine.export.formats import EXTRAS_HINT
from engine.model import Model
from engine.onnx_import.loading import OnnxImportError

ONNX_TOLERANCE = 1e-3  # relative; beyond it the import is wrong, not rounded
CALIBRATION_IMAGES = 300


class InteropDialogs:
    """The questions and messages of these actions, replaceable in tests. Headless: no file is chosen."""

    def __init__(self, parent: QWidget | None) -> None:
        self.parent = parent

    def onnx_path(self, directory: Path) -> str | None:
        if headless():
            return None
        path, _ = QFileDialog.getOpenFileName(self.parent, "Import ONNX model", str(directory),
                                              "ONNX models (*.onnx);;All files (*)")
        return path or None

    def int8_path(self, suggested: Path) -> str | None:
        if headless():
            return None
        path, _ = QFileDialog.getSaveFileName(self.parent, "Export ONNX model, int8 quantized", str(suggested),
                                              "ONNX models (*.onnx);;All files (*)")
        return path or None

    def error(self, title: str, text: str, informative: str = "") -> None:
        show_message(self.parent, "error", title, text, informative)

    def info(self, title: str, text: str, informative: str = "") -> None:
        show_message(self.parent, "info", title, text, informative)


class InteropController(QObject):
    """The actions, wired to the window's document, project controller and training session.

    Signals (GUI thread): ``onnx_imported(str path)``, ``int8_exported(object QuantizationReport)``,
    ``head_replaced(int classes)``, ``failed(str message)``.
    """

    onnx_imported = Signal(str)
    int8_exported = Signal(object)
    head_replaced = Signal(int)
    failed = Signal(str)

    def __init__(self, window: Any, session: Any, dialogs: InteropDialogs | None = None) -> None:
        super().__init__(window)
        self.window = window
        self.session = session
        self.dialogs = dialogs if dialogs is not None else InteropDialogs(window)
        self.job = BackgroundJob(self)
        self.job.finished.connect(self.update_actions)
        self.directory = Path.home()
        self.import_action: QAction | None = None
        self.head_action: QAction | None = None
        self.int8_action: QAction | None = None

    @property
    def busy(self) -> bool:
        return self.job.busy

    def wait(self, timeout_ms: int = 30000) -> bool:
        return self.job.wait(timeout_ms)

    def update_actions(self) -> None:
        running = bool(self.session.runner.running)
        locked = bool(self.window.document.locked)
        if self.import_action is not None:
            self.import_action.setEnabled(not running and not locked and not self.busy)
        if self.head_action is not None:
            classes = self.window.document.num_classes
            self.head_action.setEnabled(not locked)
            self.head_action.setText(f"Replace &Head ({classes} classes)" if classes else "Replace &Head")
        if self.int8_action is not None:
            self.int8_action.setEnabled(not self.busy)

    # -- File > Import ONNX Model -------------------------------------------------------------------------------
    def import_onnx(self) -> None:
        """Menu slot: ask for an ONNX file and open its network as a new project."""
        if self._refuse("ONNX model not imported"):
            return
        if not self.window.project.confirm_discard():
            return
        path = self.dialogs.onnx_path(self.directory)
        if path:
            self.import_onnx_from(path, confirmed=True)

    def import_onnx_from(self, path: str | Path, confirmed: bool = False) -> bool:
        """Read, convert and check ``path`` in the background, then open it (after asking to save changes)."""
        if self._refuse("ONNX model not imported") or (not confirmed and not self.window.project.confirm_discard()):
            return False
        path = Path(path)
        self.directory = path.parent

        def work() -> tuple[Any, Model, float | None] | OnnxImportError:
            from engine.onnx_import import check_against_onnx, import_onnx

            try:
                imported = import_onnx(path)
            except OnnxImportError as exc:
                if exc.culprits:
                    return exc  # listed one a line by done(), not squeezed into the job's one-line message
                raise
            difference = check_against_onnx(imported)
            if difference is not None and difference > ONNX_TOLERANCE:
                raise EngineError(f"{path}: the imported network does not predict like the original (relative "
                                  f"difference {difference:.2g} on random inputs)")
            return imported, imported.model(), difference

        def done(result: tuple[Any, Model, float | None] | OnnxImportError) -> None:
            if isinstance(result, OnnxImportError):
                self._refused(path, result)
                return
            imported, model, difference = result
            if self.session.runner.running or self.window.document.locked:
                self._fail("ONNX model not imported", "Training started while the file was read; stop it first.")
                return
            document = self.window.document
            document.load_project(imported.architecture, document.dataset_ref, document.training, None)
            self._keep_input_shape(model)
            self.session.trained.adopt(model)
            # The imported network and its weights exist only in this window until saved: closing or
            # opening another project must ask first.
            document.mark_modified()
            analysis = model.analysis
            check = ("Checked against ONNX Runtime on random inputs: largest relative difference "
                     f"{difference:.1e}." if difference is not None else "Not checked: onnxruntime is not installed.")
            # The notes as a list, the check apart from it: it is about the whole network, not the last note.
            notes = "\n".join(f"• {note}" for note in imported.notes)
            h, w, c = model.input_shape
            total = analysis.trainable_params + analysis.non_trainable_params
            self._status(f"Imported {path.name}: {len(analysis.layers)} layers, {total:,} parameters; Inside "
                         "shows it now, Start fine-tunes it")
            self.dialogs.info(
                "ONNX model imported",
                f"{path.name} (opset {imported.opset}, {imported.producer}) is now an editable network of "
                f"{len(analysis.layers)} layers with its weights.",
                "\n\n".join(part for part in (notes, check, (
                    f"It takes {h}×{w}×{c} images, normalised as {_preprocessing_text(model.preprocessing)}. To "
                    "fine-tune it on your data: untick Trainable on the layers to keep, use Edit > Replace Head for "
                    "your dataset's classes, then Start.")) if part))
            self.onnx_imported.emit(str(path))

        self._run(work, done, "ONNX model not imported", path)
        return True

    def _refused(self, path: Path, error: OnnxImportError) -> None:
        """The nodes (or the input or output) that keep a network out, one a line, and what to change."""
        culprits = "\n".join(f"• {culprit[:1].upper()}{culprit[1:]}" for culprit in error.culprits)
        text = f"{path} cannot be imported:\n{culprits}"
        informative = " ".join(part for part in (error.advice, "The open project is unchanged.") if part)
        self._status(f"ONNX model not imported: {error}")
        self.dialogs.error("ONNX model not imported", text, informative)
        self.failed.emit(str(error))

    def _keep_input_shape(self, model: Model) -> None:
        """An imported network's weights fix its input: when opening it made the input follow the chosen
        dataset's other images, that edit is taken back and the user told what the network takes."""
        document = self.window.document
        if tuple(document.input_shape) == tuple(model.input_shape):
            return
        document.set_input_shape(tuple(model.input_shape))
        document.undo_stack.clear()
        document.mark_saved()
        dataset = self.session.datasets.current
        shown = "×".join(map(str, model.input_shape))
        other = (f"{dataset.name} has {'×'.join(map(str, dataset.input_shape))} images" if dataset is not None
                 else "the chosen dataset has other images")
        text = (f"The imported network takes {shown} images, but {other}. Its weights fix its input: choose a "
                f"dataset of {shown} images to train it or to look inside it with test images.")
        board = getattr(getattr(self.window, "training_panel", None), "notices_board", None)
        if board is not None:
            board.clear()
            board.say(text, status=f"The imported network takes {shown} images: choose a dataset of them")
        else:
            self._status(text)

    # -- Edit > Replace Head ---------------------------------------------------------------------------------------
    def replace_head(self, num_classes: int | None = None) -> bool:
        """Give the last Dense layer one unit per class of the chosen dataset (undoable)."""
        document = self.window.document
        classes = num_classes if num_classes is not None else document.num_classes
        if not classes:
            self._fail("Head not replaced", "The number of classes is not known yet.",
                       "Choose the dataset in the Training panel first: the new head gets one unit per class.")
            return False
        try:
            command = ReplaceHeadCommand(document, self.session.trained, int(classes))
        except EngineError as exc:
            self._fail("Head not replaced", str(exc), getattr(exc, "hint", ""))
            return False
        if not document.push(command):
            return False
        kept = ("The other layers keep their weights; Start trains from them." if command.keeps_weights else
                "Start trains the network from fresh weights (no trained weights fit this design).")
        self._status(f"{command.text()}. {kept} Ctrl+Z undoes it.")
        self.head_replaced.emit(int(classes))
        return True

    # -- File > Export > ONNX int8 -----------------------------------------------------------------------------------
    def export_int8(self) -> None:
        if self.busy:
            self._status("An import or export is still running; try again in a moment.")
            return
        path = self.dialogs.int8_path(self.directory / f"{self.window.document.display_name.lower()}-int8.onnx")
        if path:
            self.export_int8_to(path)

    def export_int8_to(self, path: str | Path) -> bool:
        """Quantize the trained network to int8 (calibrated on the dataset's training images) and report."""
        if self.busy:
            return False
        trained = self.session.trained.model()
        dataset = self.session.trained.dataset() or self.session.datasets.current
        if trained is None:
            self._fail("int8 model not exported", "Nothing is trained yet.",
                       "Train the network (or import weights) first: quantizing keeps the trained weights.")
            return False
        if dataset is None:
            self._fail("int8 model not exported", "No dataset is loaded.",
                       "Quantizing calibrates on the dataset's training images and measures the accuracy on its "
                       "test images: choose the dataset in the Training panel first.")
            return False
        path = Path(path)
        if path.suffix.lower() != ".onnx":
            path = path.with_name(path.name + ".onnx")
        self.directory = path.parent
        # A private copy made on this thread: training may replace the session's model meanwhile.
        model = Model.from_architecture(trained.architecture)
        model.set_weights(trained.get_weights())
        model.preprocessing = copy.deepcopy(trained.preprocessing)
        names = list(dataset.class_names) if model.output_shape[-1] == len(dataset.class_names) else None

        def work() -> Any:
            from engine.export.quantize import quantize_for_dataset

            return quantize_for_dataset(model, path, dataset, CALIBRATION_IMAGES, names)

        def done(report: Any) -> None:
            lines = report.lines()
            self._status(f"Exported {path.name}: {report.int8_bytes / 1024:,.0f} KiB, test accuracy "
                         f"{report.int8_accuracy:.2%} (float32: {report.float_accuracy:.2%})")
            self.dialogs.info("int8 model exported", f"Wrote {path}.",
                              "\n".join(lines) + "\n\nInput \"input\": (N, H, W, C) float32, normalised as the "
                              "model's 'preprocessing' metadata says. Run it with ONNX Runtime.")
            self.int8_exported.emit(report)

        self._run(work, done, "int8 model not exported", path)
        return True

    # -- plumbing ------------------------------------------------------------------------------------------------------
    def _refuse(self, title: str) -> bool:
        if self.busy:
            self._status("An import or export is still running; try again in a moment.")
            return True
        if self.session.runner.running or self.window.document.locked:
            self._fail(title, "Training is running.", "Stop training before opening another network.")
            return True
        return False

    def _run(self, work: Callable[[], Any], done: Callable[[Any], None], title: str, path: Path) -> None:
        def failed(message: str) -> None:
            informative = f"Or install every export extra with:\n    {EXTRAS_HINT}" if "Install it with" in message \
                else ""
            self._fail(title, message if str(path) in message else f"{path}: {message}", informative)

        self.job.start(work, done, failed)
        self.update_actions()

    def _fail(self, title: str, text: str, informative: str = "") -> None:
        self._status(f"{title}: {text}")
        self.dialogs.error(title, text, informative)
        self.failed.emit(text)

    def _status(self, text: str) -> None:
        bar = self.window.statusBar() if hasattr(self.window, "statusBar") else None
        if bar is not None:
            bar.showMessage(text, 10000)


def _preprocessing_text(preprocessing: dict[str, Any]) -> str:
    scale = preprocessing.get("scale", 1 / 255)
    text = "pixels scaled to [0, 1]" if abs(scale - 1 / 255) < 1e-12 else f"pixels times {scale:g}"
    if preprocessing.get("mean") is not None:
        text += f", then (x - {preprocessing['mean']}) / {preprocessing['std']} per channel"
    return text


def _menu_action(window: Any, text: str, name: str, slot: Callable[[], Any], tip: str) -> QAction:
    action = QAction(text, window)
    action.setObjectName(name)
    action.setToolTip(tip)
    action.setStatusTip(tip)
    action.triggered.connect(lambda _checked=False: slot())
    return action


def install_interop(window: Any, session: Any, dialogs: InteropDialogs | None = None) -> InteropController:
    """Add File > Import ONNX Model, Edit > Replace Head and File > Export > ONNX int8 to ``window``."""
    controller = InteropController(window, session, dialogs)
    file_menu = window.menus["File"]
    importer = _menu_action(window, "Import &ONNX Model…", "import_onnx", controller.import_onnx,
                            "Open a network exported from PyTorch or Keras (ONNX) as a new project, with its "
                            "weights: look inside it, or freeze its layers and fine-tune it on your data")
    before = next((a for a in file_menu.actions() if a.objectName() == "import_weights"), None)
    if before is None and "Export" in window.menus:
        before = window.menus["Export"].menuAction()
    if before is not None:
        file_menu.insertAction(before, importer)
    else:
        file_menu.addAction(importer)
    controller.import_action = importer

    head = _menu_action(window, "Replace &Head", "replace_head", controller.replace_head,
                        "Swap the last Dense layer for one with a unit per class of the chosen dataset (fresh "
                        "weights, the others kept): transfer learning to a new set of classes")
    window.menus["Edit"].addSeparator()
    window.menus["Edit"].addAction(head)
    controller.head_action = head

    if "Export" in window.menus:
        export_menu = window.menus["Export"]
        int8 = _menu_action(window, "ONNX model, int8 quantized (.onnx)…", "export_onnx_int8",
                            controller.export_int8,
                            "A smaller ONNX model for deployment: int8 static quantization calibrated on "
                            f"{CALIBRATION_IMAGES} training images, with its size and test accuracy beside the "
                            "float model's")
        onnx_action = next((a for a in export_menu.actions() if a.objectName() == "export_onnx"), None)
        actions = export_menu.actions()
        after = actions[actions.index(onnx_action) + 1] if onnx_action in actions[:-1] else None
        if after is not None:
            export_menu.insertAction(after, int8)
        else:
            export_menu.addAction(int8)
        controller.int8_action = int8
        export_menu.aboutToShow.connect(controller.update_actions)
    file_menu.aboutToShow.connect(controller.update_actions)
    window.menus["Edit"].aboutToShow.connect(controller.update_actions)
    window.document.lock_changed.connect(lambda _locked, _reason: controller.update_actions())
    window.document.changed.connect(controller.update_actions)
    controller.update_actions()
    window.close_guards.append(lambda: controller.wait(30000) or True)
    return controller
