"""File > Export and File > Import Weights in the studio, against a stand-in training session and
against the real main window and training session."""

from __future__ import annotations

import errno
import importlib.util
import os
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from PySide6.QtCore import QObject, QSettings
from PySide6.QtWidgets import QMainWindow

from cnn_studio.document import ProjectDocument
from cnn_studio.export_actions import ExportController, install_export
from cnn_studio.training.trained import TrainedNetwork
from engine.export import FORMATS, export_model, load_weight_file
from engine.export import formats as formats_module
from engine.model import Model
from tests.engine.test_export_cases import ARCHITECTURES, normalized, randomized_model, raw_batch
from tests.helpers.extras import require
from tests.helpers.training_project import write_like_train_py

require("onnx")
require("safetensors")

ARCH = ARCHITECTURES["gray_odd_every_kind"]


class FakeSession(QObject):
    """The pieces of a TrainingSession the export actions use: its trained network (a real one), a runner
    that is or is not running, and the project's dataset."""

    def __init__(self, model: Model | None = None, dataset=None) -> None:
        super().__init__()
        self.trained = TrainedNetwork(self)
        if model is not None:
            self.trained.adopt(model)
        self.runner = SimpleNamespace(running=False)
        self.datasets = SimpleNamespace(current=dataset)
        self.adopted: list[Model] = []  # what File > Import Weights handed over
        self.trained.replaced.connect(lambda: self.adopted.append(self.trained.model()))


class FakeDialogs:
    """Answers set by the test; every message recorded."""

    def __init__(self) -> None:
        self.path: str | None = None
        self.answer = True
        self.asked: list[str] = []
        self.path_requests: list[str] = []
        self.suggested: list[Path] = []
        self.errors: list[tuple[str, str, str]] = []
        self.infos: list[tuple[str, str, str]] = []

    def export_path(self, fmt, suggested: Path) -> str | None:
        self.path_requests.append(fmt.name)
        self.suggested.append(suggested)
        return self.path

    def import_path(self, directory: Path) -> str | None:
        self.path_requests.append("import")
        return self.path

    def confirm(self, title: str, text: str, informative: str = "") -> bool:
        self.asked.append(title)
        return self.answer

    def error(self, title: str, text: str, informative: str = "") -> None:
        self.errors.append((title, text, informative))

    def info(self, title: str, text: str, informative: str = "") -> None:
        self.infos.append((title, text, informative))


class StandInWindow(QMainWindow):
    """A window with the public surface of MainWindow that the installer relies on."""

    def __init__(self) -> None:
        super().__init__()
        self.document = ProjectDocument(ARCH)
        self.menus = {"File": self.menuBar().addMenu("&File")}
        self.menus["Export"] = self.menus["File"].addMenu("&Export")
        self.close_guards: list = []


@pytest.fixture
def setup(qtbot):
    session = FakeSession(randomized_model("gray_odd_every_kind"))
    window = StandInWindow()
    qtbot.addWidget(window)
    dialogs = FakeDialogs()
    controller = install_export(window, session, dialogs)
    yield window, session, dialogs, controller
    controller.wait()


def export_and_wait(qtbot, controller: ExportController, name: str, path) -> list[str]:
    with qtbot.waitSignal(controller.export_finished, timeout=20000) as blocker:
        assert controller.export_to(name, path)
    return blocker.args[0]


def test_menus_hold_every_format_and_the_import_action(setup) -> None:
    window, _, _, controller = setup
    labels = [a.text() for a in window.menus["Export"].actions() if not a.isSeparator()]
    assert len(labels) == len(FORMATS) == 6
    assert any("ONNX" in t for t in labels) and any("predict.py" in t for t in labels)
    assert any("model.py" in t for t in labels) and any(".safetensors" in t for t in labels)
    assert any("train.py" in t for t in labels)
    file_actions = window.menus["File"].actions()
    importer = file_actions.index(controller.import_action)
    assert file_actions[importer + 1] is window.menus["Export"].menuAction()
    assert len(window.close_guards) == 1


def test_export_dialogs_open_in_the_projects_folder_then_beside_the_last_export(qtbot, setup, tmp_path) -> None:
    window, _, dialogs, controller = setup
    projects = tmp_path / "projects"
    window.document.set_file_path(projects / "shirts.cnnproj")
    dialogs.path = None  # the user cancels: only the suggestion is looked at
    controller.export("npz")
    assert dialogs.suggested[-1] == projects / "shirts.npz"
    export_and_wait(qtbot, controller, "predictor", tmp_path / "out" / "shirts-predictor")
    # The next export is offered beside the folder just written, not inside it.
    controller.export("pytorch")
    assert dialogs.suggested[-1] == tmp_path / "out" / "shirts-pytorch"
    controller.export("npz")
    assert dialogs.suggested[-1] == tmp_path / "out" / "shirts.npz"


@pytest.mark.parametrize("name", ["npz", "safetensors"])
def test_exported_weights_are_the_sessions_trained_weights(qtbot, setup, tmp_path, name) -> None:
    _, session, dialogs, controller = setup
    dialogs.path = str(tmp_path / "trained")  # no suffix typed: the format's is added
    with qtbot.waitSignal(controller.export_finished, timeout=20000) as blocker:
        window_action = controller.export_actions[name]
        window_action.trigger()
    written = Path(blocker.args[0][0])
    assert written.name == f"trained.{name}"
    back = load_weight_file(written)
    for key, value in session.trained.model().tensors().items():
        assert np.array_equal(back.tensors()[key], value)
    assert dialogs.infos and str(written) in dialogs.infos[-1][1]
    assert not controller.busy


def test_export_keeps_the_snapshot_taken_when_asked_even_if_training_moves_on(qtbot, setup, tmp_path) -> None:
    _, session, _, controller = setup
    expected = session.trained.model().get_weights()
    with qtbot.waitSignal(controller.export_finished, timeout=20000):
        assert controller.export_to("npz", tmp_path / "w.npz")
        # The live model changes right after the click, while the export is being written.
        for value in session.trained.model().tensors().values():
            value += 1.0
    back = load_weight_file(tmp_path / "w.npz")
    assert all(np.array_equal(back.tensors()[k], v) for k, v in expected.items())


def test_onnx_export_is_checked_against_the_engine_and_reported(qtbot, setup, tmp_path) -> None:
    _, session, dialogs, controller = setup
    written = export_and_wait(qtbot, controller, "onnx", tmp_path / "net.onnx")
    _, text, details = dialogs.infos[-1]
    assert "net.onnx" in text
    assert "Checked with ONNX Runtime on 8 random inputs: it matches the engine" in details
    import onnxruntime as ort

    model = session.trained.model()
    x = normalized(model, raw_batch(model, 3))
    got = ort.InferenceSession(written[0], providers=["CPUExecutionProvider"]).run(None, {"input": x})[0]
    assert np.max(np.abs(got - model.predict(x))) < 1e-4


def test_exports_use_the_sessions_dataset_for_class_names_and_the_onnx_check(qtbot, setup, tmp_path) -> None:
    import onnx

    from engine.data import Dataset

    _, session, dialogs, controller = setup
    raw = raw_batch(session.trained.model(), 12)
    session.datasets.current = Dataset.from_arrays(raw, np.arange(12) % 5, raw, np.arange(12) % 5,
                                           ["cat", "dog", "owl", "eel", "bee"], name="animals")
    written = export_and_wait(qtbot, controller, "onnx", tmp_path / "net.onnx")
    assert "Checked with ONNX Runtime on 12 test images of animals: it matches" in dialogs.infos[-1][2]
    metadata = {p.key: p.value for p in onnx.load(written[0]).metadata_props}
    assert metadata["class_names"] == '["cat", "dog", "owl", "eel", "bee"]'
    written = export_and_wait(qtbot, controller, "predictor", tmp_path / "bundle")
    assert "CLASS_NAMES: list[str] = ['cat', 'dog', 'owl', 'eel', 'bee']" in Path(written[0]).read_text()


@pytest.mark.parametrize("name,main_file", [("predictor", "predict.py"), ("pytorch", "model.py")])
def test_folder_exports_ask_before_replacing_files(qtbot, setup, tmp_path, name, main_file) -> None:
    _, _, dialogs, controller = setup
    folder = tmp_path / "bundle"
    written = export_and_wait(qtbot, controller, name, folder)
    readme = ["README.md"] if name == "predictor" else []  # how to run predict.py, beside it
    assert sorted(Path(p).name for p in written) == sorted([main_file, "weights.npz", *readme])
    assert dialogs.asked == []
    before = (folder / main_file).read_bytes()
    dialogs.answer = False
    assert not controller.export_to(name, folder)
    assert dialogs.asked == ["Replace files?"] and (folder / main_file).read_bytes() == before
    dialogs.answer = True
    export_and_wait(qtbot, controller, name, folder)
    assert dialogs.asked == ["Replace files?", "Replace files?"]


def test_a_readme_of_the_users_own_is_not_replaced_unasked(qtbot, setup, tmp_path) -> None:
    _, _, dialogs, controller = setup
    folder = tmp_path / "notes"
    folder.mkdir()
    (folder / "README.md").write_text("my notes")
    dialogs.answer = False
    assert not controller.export_to("predictor", folder)  # the predictor's README would take its place
    assert dialogs.asked == ["Replace files?"] and (folder / "README.md").read_text() == "my notes"


def test_training_project_takes_the_projects_training_settings(qtbot, setup, tmp_path) -> None:
    window, _, _, controller = setup
    window.document.training = {"epochs": 12, "batch_size": 48, "optimizer": "adamw"}
    written = export_and_wait(qtbot, controller, "pytorch-train", tmp_path / "job")
    assert sorted(Path(p).name for p in written) == ["README.md", "initial.npz", "model.py", "train.py",
                                                      "weights.npz"]
    text = (tmp_path / "job" / "train.py").read_text()
    assert "'epochs': 12" in text and "'batch_size': 48" in text and "'optimizer': 'adamw'" in text


def test_untrained_network_is_exported_only_after_asking(qtbot, tmp_path) -> None:
    window = StandInWindow()
    qtbot.addWidget(window)
    dialogs = FakeDialogs()
    controller = install_export(window, FakeSession(None), dialogs)
    dialogs.answer = False
    assert not controller.export_to("npz", tmp_path / "fresh.npz")
    assert dialogs.asked == ["Export an untrained network?"] and not (tmp_path / "fresh.npz").exists()
    dialogs.answer = True
    with qtbot.waitSignal(controller.export_finished, timeout=20000):
        assert controller.export_to("npz", tmp_path / "fresh.npz")
    fresh = Model.from_architecture(window.document.architecture(), seed=0)
    back = load_weight_file(tmp_path / "fresh.npz")
    assert all(np.array_equal(back.tensors()[k], v) for k, v in fresh.tensors().items())
    assert "untrained" in dialogs.infos[-1][2]


def test_broken_architecture_without_trained_model_is_refused_with_the_problem_named(qtbot, tmp_path) -> None:
    window = StandInWindow()
    qtbot.addWidget(window)
    broken = dict(ARCH, layers=[{"type": "Dense", "units": 3}])  # Dense straight on an image
    window.document.replace_architecture(broken)
    dialogs = FakeDialogs()
    controller = install_export(window, FakeSession(None), dialogs)
    assert not controller.export_to("onnx", tmp_path / "x.onnx")
    title, text, _ = dialogs.errors[-1]
    assert title == "Nothing to export" and "Dense" in text
    assert list(tmp_path.iterdir()) == []


def test_missing_package_disables_nothing_but_says_what_to_install(qtbot, setup, tmp_path, monkeypatch) -> None:
    _, _, dialogs, controller = setup
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(formats_module.importlib.util, "find_spec",
                        lambda name, *a: None if name == "onnx" else real_find_spec(name, *a))
    controller.update_actions()
    action = controller.export_actions["onnx"]
    assert "needs onnx" in action.text() and "pip install onnx onnxruntime" in action.toolTip()
    action.trigger()
    assert dialogs.path_requests == []  # no file chooser for a format that cannot be written
    title, text, informative = dialogs.errors[-1]
    assert "onnx" in title and "not installed" in text
    assert "pip install onnx onnxruntime" in informative and "cnn-studio[export]" in informative


def test_a_failed_write_is_reported_and_leaves_the_old_file(qtbot, setup, tmp_path, monkeypatch) -> None:
    _, _, dialogs, controller = setup
    target = tmp_path / "w.safetensors"
    export_and_wait(qtbot, controller, "safetensors", target)
    before = target.read_bytes()

    def disk_full(_fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", disk_full)
    with qtbot.waitSignal(controller.failed, timeout=20000):
        assert controller.export_to("safetensors", target)
    title, text, _ = dialogs.errors[-1]
    assert "not exported" in title and str(target) in text and "No space left on device" in text
    assert target.read_bytes() == before and [p.name for p in tmp_path.iterdir()] == ["w.safetensors"]
    assert not controller.busy and controller.export_actions["npz"].isEnabled()


@pytest.mark.parametrize("suffix", [".npz", ".safetensors"])
def test_import_loads_weights_into_the_current_architecture(qtbot, setup, tmp_path, suffix) -> None:
    _, session, dialogs, controller = setup
    source = randomized_model("gray_odd_every_kind", seed=11)
    path = export_model(source, tmp_path / f"w{suffix}")[0]
    dialogs.path = str(path)
    with qtbot.waitSignal(controller.import_finished, timeout=20000):
        controller.import_action.trigger()
    (adopted,) = session.adopted
    x = normalized(source, raw_batch(source))
    assert np.array_equal(adopted.predict(x), source.predict(x))
    assert dialogs.infos[-1][0] == "Weights imported"


@pytest.mark.parametrize("name", ["trained.safetensors", "trained.weights"])
def test_import_takes_the_weights_the_pytorch_training_project_writes(qtbot, setup, tmp_path, name) -> None:
    # Its README sends trained.safetensors (written by hand, without the safetensors package) back
    # through File > Import Weights; --out may give it another name.
    _, session, dialogs, controller = setup
    source = randomized_model("gray_odd_every_kind", seed=11)
    source.preprocessing = {"scale": 1 / 255, "mean": [0.25], "std": [0.5]}
    path = write_like_train_py(source, tmp_path / name)
    with qtbot.waitSignal(controller.import_finished, timeout=20000):
        assert controller.import_from(path)
    (adopted,) = session.adopted
    x = normalized(source, raw_batch(source))
    assert np.array_equal(adopted.predict(x), source.predict(x))
    assert adopted.preprocessing == source.preprocessing
    assert dialogs.infos[-1][0] == "Weights imported" and not dialogs.errors


def test_import_of_another_architecture_is_refused_naming_the_tensor(qtbot, setup, tmp_path) -> None:
    _, session, dialogs, controller = setup
    path = export_model(randomized_model("rgb_global_pool"), tmp_path / "other.npz")[0]
    with qtbot.waitSignal(controller.failed, timeout=20000):
        assert controller.import_from(path)
    title, text, informative = dialogs.errors[-1]
    assert title == "Weights not imported" and "other.npz" in text and "'conv2d_1.kernel'" in text
    assert "same layers" in informative
    assert session.adopted == []


def test_import_of_an_onnx_model_points_to_import_onnx_model(qtbot, setup, tmp_path) -> None:
    _, session, dialogs, controller = setup
    path = export_model(randomized_model("gray_odd_every_kind"), tmp_path / "net.onnx")[0]
    with qtbot.waitSignal(controller.failed, timeout=20000):
        assert controller.import_from(path)
    assert dialogs.errors[-1] == ("Weights not imported", f"{path}: an ONNX model, not a CNN Studio weight file: "
                                  f"import it first with `cnn-engine import {path} --out net.npz` (in the studio: "
                                  "File > Import ONNX Model)", "")
    assert session.adopted == []


def test_import_is_refused_while_training_runs(setup, tmp_path) -> None:
    _, session, dialogs, controller = setup
    session.runner.running = True
    controller.update_actions()
    assert not controller.import_action.isEnabled()
    assert "Stop training" in controller.import_action.toolTip()
    assert not controller.import_from(tmp_path / "whatever.npz")
    assert dialogs.errors[-1][0] == "Weights not imported" and "Training is running" in dialogs.errors[-1][1]


# -- the real window and training session ------------------------------------------------------------------
def test_real_window_exports_a_snapshot_while_training_runs(qtbot, tmp_path) -> None:
    pytest.importorskip("cnn_studio.main_window")
    from cnn_studio.main_window import MainWindow
    from engine.training import TrainConfig
    from tests.helpers.engine_factories import SMALL_CNN, stripes_dataset

    window = MainWindow(settings=QSettings(str(tmp_path / "studio.ini"), QSettings.Format.IniFormat))
    qtbot.addWidget(window)
    controller = window.export_controller
    dialogs = controller.dialogs = FakeDialogs()
    expected = [f"export_{name}" for name in FORMATS]
    expected.insert(expected.index("export_onnx") + 1, "export_onnx_int8")  # File > Export > ONNX int8
    assert [a.objectName() for a in window.menus["Export"].actions() if a.objectName()] == expected
    session = window.training_session
    try:
        with qtbot.waitSignal(session.trained.model_changed, timeout=30000):
            session.runner.start(SMALL_CNN, stripes_dataset(512, 32), TrainConfig(epochs=200, batch_size=16,
                                                                                    validation_split=0.0))
        assert session.runner.running  # the export below happens in the middle of the run
        expected = session.trained.model().get_weights()
        with qtbot.waitSignal(controller.export_finished, timeout=30000):
            controller.export_to("npz", tmp_path / "mid-training.npz")
        back = load_weight_file(tmp_path / "mid-training.npz")
        assert all(np.array_equal(back.tensors()[k], v) for k, v in expected.items())
        assert "design was edited" in dialogs.infos[-1][2]  # the window's design is not SMALL_CNN
    finally:
        session.shutdown(30000)
