"""File > Import ONNX Model, the Trainable checkbox and the lock on frozen blocks, Edit > Replace Head,
and File > Export > ONNX int8, in the real main window."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from cnn_studio.builder.scene_content import layer_content  # noqa: E402
from engine.export import export_model  # noqa: E402
from engine.model import Model  # noqa: E402
from engine.training import TrainConfig, Trainer  # noqa: E402
from tests.helpers.engine_factories import arch, stripes_dataset  # noqa: E402
from tests.studio.builder_helpers import make_window  # noqa: E402

FIXTURES = Path(__file__).parent.parent / "engine" / "fixtures" / "onnx"
WAIT_MS = 60_000

# A network for 12x12 grey images (the stripes dataset), to be exported to ONNX and imported again.
PRETRAINED = arch(
    {"type": "Conv2D", "filters": 4, "kernel_size": 3, "activation": "relu"},
    {"type": "BatchNorm"},
    {"type": "MaxPool2D", "pool_size": 2},
    {"type": "Flatten"},
    {"type": "Dense", "units": 16, "activation": "relu"},
    {"type": "Dense", "units": 5, "activation": "softmax"},
)


class FakeDialogs:
    def __init__(self) -> None:
        self.path: str | None = None
        self.errors: list[tuple[str, str, str]] = []
        self.infos: list[tuple[str, str, str]] = []

    def onnx_path(self, directory: Path) -> str | None:
        return self.path

    def int8_path(self, suggested: Path) -> str | None:
        return self.path

    def error(self, title: str, text: str, informative: str = "") -> None:
        self.errors.append((title, text, informative))

    def info(self, title: str, text: str, informative: str = "") -> None:
        self.infos.append((title, text, informative))


@pytest.fixture
def window(qtbot, tmp_path):
    window = make_window(qtbot, tmp_path, show=False)
    window.interop.dialogs = FakeDialogs()
    yield window
    window.interop.wait()
    window.training_session.shutdown(30_000)


def import_onnx(qtbot, window, path: Path) -> None:
    with qtbot.waitSignal(window.interop.onnx_imported, timeout=WAIT_MS):
        assert window.interop.import_onnx_from(path)


def onnx_of_pretrained(tmp_path: Path) -> tuple[Path, Model]:
    model = Model(PRETRAINED, seed=4)  # as if trained elsewhere on five classes
    return export_model(model, tmp_path / "pretrained.onnx")[0], model


def test_menus_hold_the_new_actions(window):
    file_names = [a.objectName() for a in window.menus["File"].actions()]
    assert file_names.index("import_onnx") == file_names.index("import_weights") - 1
    export_names = [a.objectName() for a in window.menus["Export"].actions() if a.objectName()]
    assert export_names[export_names.index("export_onnx") + 1] == "export_onnx_int8"
    assert "replace_head" in [a.objectName() for a in window.menus["Edit"].actions()]


def test_imported_onnx_network_opens_in_the_builder_with_its_weights(qtbot, window):
    source = FIXTURES / "sequential_batchnorm.onnx"
    window.document.mark_modified()  # unsaved changes: the project controller asks first (scripted: discard)
    import_onnx(qtbot, window, source)
    document = window.document
    assert window.dialogs.questions  # asked whether to save the replaced project
    types = [spec["type"] for spec in document.layers()]
    assert types.count("BatchNorm") == 3 and types[-1] == "Dense" and document.file_path is None
    # Nothing to undo, but unsaved: the imported network exists only in this window until saved.
    assert document.is_modified() and document.undo_stack.count() == 0
    asked = len(window.dialogs.questions)
    assert window.project.confirm_discard()  # closing or opening another project asks (scripted: discard)
    assert len(window.dialogs.questions) == asked + 1
    # Every layer is a block on the canvas, editable like any other.
    assert {spec["id"] for spec in document.layers()} <= set(window.canvas.blocks)
    # The trained network is the imported one: Inside can look at it at once.
    model = window.training_session.trained.model()
    assert model is not None and window.training_session.trained.imported
    x = np.random.default_rng(0).standard_normal((3, 12, 12, 3)).astype(np.float32)
    session = ort.InferenceSession(str(source), providers=["CPUExecutionProvider"])
    expected = session.run(None, {session.get_inputs()[0].name: x.transpose(0, 3, 1, 2).copy()})[0]
    np.testing.assert_allclose(model.predict(x), expected, rtol=1e-4, atol=1e-4)
    title, text, informative = window.interop.dialogs.infos[-1]
    assert title == "ONNX model imported" and "sequential_batchnorm.onnx" in text
    assert "channels first" in informative and "ONNX Runtime" in informative and "Replace Head" in informative
    # The design takes the imported weights as they are: Start would begin from them.
    assert window.training_session.trained.start_weights_for(document.architecture()) is not None


def test_the_studios_own_onnx_export_comes_back_with_its_names_and_a_report_in_sentences(qtbot, window, tmp_path):
    path, model = onnx_of_pretrained(tmp_path)
    import_onnx(qtbot, window, path)
    assert [spec["name"] for spec in window.document.layers()] == model.names  # relu_1, not relu_1_relu
    _, _, informative = window.interop.dialogs.infos[-1]
    notes, check, advice = informative.split("\n\n")
    # Each note a whole sentence of its own; the check a paragraph apart, not read as the note's end.
    assert notes == ("• The input 'input' takes (N, 12, 12, 1) images channels last, as the engine does, so they "
                     "go in unchanged.")
    assert check.startswith("Checked against ONNX Runtime on random inputs") and check.endswith(".")
    assert advice.startswith("It takes 12×12×1 images") and "Replace Head" in advice


def test_an_unsupported_onnx_file_is_refused_naming_each_node_on_its_line_and_nothing_changes(qtbot, window,
                                                                                              tmp_path):
    from onnx import TensorProto, helper

    nodes = [helper.make_node("LRN", ["x"], ["n"], name="local_norm", size=3),
             helper.make_node("HardSigmoid", ["n"], ["y"], name="gate")]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2, 8, 8])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2, 8, 8])])
    path = tmp_path / "odd.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), path)
    before = window.document.architecture()
    with qtbot.waitSignal(window.interop.failed, timeout=WAIT_MS) as failed:
        window.interop.import_onnx_from(path)
    title, text, informative = window.interop.dialogs.errors[-1]
    assert title == "ONNX model not imported"
    assert text == (f"{path} cannot be imported:\n• LRN 'local_norm' (not supported)\n"
                    "• HardSigmoid 'gate' (not supported)")
    assert informative.startswith("Change them in the original model and export it again (the operators CNN Studio "
                                  "imports: Conv, MaxPool, ")
    assert informative.endswith("). The open project is unchanged.")
    # The status bar and the signal keep the one-line message.
    assert failed.args[0].startswith(f"{path}: cannot import 2 nodes: LRN 'local_norm' (not supported); ")
    assert window.statusBar().currentMessage().startswith("ONNX model not imported: ")
    assert window.document.architecture() == before


def test_an_onnx_input_of_free_size_is_described_as_the_models_input(qtbot, window, tmp_path):
    from onnx import TensorProto, helper

    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"], name="r")], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 3, "h", "w"])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 3, "h", "w"])])
    path = tmp_path / "free.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), path)
    with qtbot.waitSignal(window.interop.failed, timeout=WAIT_MS):
        window.interop.import_onnx_from(path)
    _, text, informative = window.interop.dialogs.errors[-1]
    assert text == (f"{path} cannot be imported:\n• Its input 'x' is (n, 3, h, w): the height, width and channels "
                    "must be fixed numbers (export it with one image size; only the batch may vary)")
    assert informative == "The open project is unchanged."


def test_a_file_that_is_not_onnx_is_one_line(qtbot, window, tmp_path):
    path = tmp_path / "notes.onnx"
    path.write_text("not a model\n")
    with qtbot.waitSignal(window.interop.failed, timeout=WAIT_MS):
        window.interop.import_onnx_from(path)
    assert window.interop.dialogs.errors[-1] == ("ONNX model not imported",
                                                 f"{path}: not an ONNX model: it is a text file", "")


def test_trainable_checkbox_freezes_a_layer_with_a_lock_and_totals(qtbot, window, tmp_path):
    window.show()
    qtbot.waitExposed(window)
    document, inspector = window.document, window.inspector
    conv = document.layers()[0]
    window.selection.select(conv["id"])
    box = inspector.trainable_box
    assert box is not None and box.isChecked()
    box.click()
    assert document.layer(0)["trainable"] is False and not box.isChecked()
    assert document.undo_stack.undoText().startswith("Freeze")
    info = document.analysis().layers[0]
    assert not info.trainable and info.frozen_params == info.params
    assert "lock" in window.canvas.blocks[conv["id"]].content.badges
    assert "Frozen" in layer_content(info, document.layer(0), "ok", [None]).tooltip
    assert f"{info.params:,} frozen" in window.totals.full_text()
    window.grab().save(str(tmp_path / "frozen.png"))
    window.undo_action.trigger()
    assert "trainable" not in document.layer(0) and box.isChecked()
    assert "lock" not in window.canvas.blocks[conv["id"]].content.badges
    # Layers without parameters have nothing to freeze: no checkbox.
    relu_like = next(spec for spec in document.layers() if spec["type"] in ("MaxPool2D", "Flatten"))
    window.selection.select(relu_like["id"])
    assert inspector.trainable_box is None


def test_replace_head_fits_the_dataset_and_keeps_the_other_weights(qtbot, window, tmp_path):
    path, _ = onnx_of_pretrained(tmp_path)
    import_onnx(qtbot, window, path)
    trained = window.training_session.trained
    before = trained.model().get_weights()
    window.document.set_num_classes(3)
    assert window.interop.replace_head()
    head = window.document.layers()[-1]
    assert head["type"] == "Dense" and head["units"] == 3 and head["activation"] == "softmax"
    model = trained.model()
    assert model.output_shape == (3,)
    head_name = model.names[-1]
    for name, value in model.get_weights().items():
        if not name.startswith(f"{head_name}."):
            np.testing.assert_array_equal(value, before[name])
    assert trained.start_weights_for(window.document.architecture()) is not None
    assert "keep their weights" in window.statusBar().currentMessage()
    window.document.undo_stack.undo()
    assert window.document.layers()[-1]["units"] == 5 and trained.model().output_shape == (5,)


def test_replace_head_needs_the_number_of_classes(window):
    window.document.set_num_classes(None)
    assert not window.interop.replace_head()
    assert "dataset" in window.interop.dialogs.errors[-1][2]


def test_transfer_learning_import_freeze_replace_head_and_train(qtbot, window, tmp_path):
    """The workflow of the README: import, freeze the backbone, replace the head, train on your data."""
    path, _ = onnx_of_pretrained(tmp_path)
    import_onnx(qtbot, window, path)
    document, editor = window.document, window.editor
    backbone = [spec["id"] for spec in document.layers()[:5]]
    for layer_id in backbone:
        if spec_has_params(document.layer(document.index_of(layer_id))):
            editor.set_trainable(layer_id, False)
    document.set_num_classes(3)
    assert window.interop.replace_head()
    trained = window.training_session.trained
    start = trained.start_weights_for(document.architecture())
    assert start is not None
    dataset = stripes_dataset(n_train=96, n_test=30)
    runner = window.training_session.runner
    with qtbot.waitSignal(runner.finished, timeout=WAIT_MS):
        runner.start(document.architecture(), dataset, TrainConfig(epochs=2, batch_size=16, validation_split=0.0,
                                                                   learning_rate=0.05), initial_weights=start)
    qtbot.waitUntil(lambda: not runner.running, timeout=WAIT_MS)
    after = trained.model().get_weights()
    frozen = [spec.get("name") or name for spec, name in zip(document.layers(), trained.model().names)
              if spec.get("trainable") is False]
    assert frozen
    for name, value in after.items():
        if name.split(".")[0] in frozen:
            np.testing.assert_array_equal(value, start[name], err_msg=name)
    head = trained.model().names[-1]
    assert not np.array_equal(after[f"{head}.kernel"], start[f"{head}.kernel"])


def spec_has_params(spec: dict) -> bool:
    return spec["type"] in ("Conv2D", "Dense", "BatchNorm")


def test_int8_export_reports_size_and_accuracy(qtbot, window, tmp_path):
    dataset = stripes_dataset(n_train=128, n_test=40)
    model = Model(arch(*PRETRAINED["layers"][:4], {"type": "Dense", "units": 96, "activation": "relu"},
                       {"type": "Dense", "units": 3, "activation": "softmax"}), seed=0)
    Trainer(model, dataset, TrainConfig(epochs=1, batch_size=16, validation_split=0.0)).fit()
    window.training_session.trained.adopt(model, dataset)
    with qtbot.waitSignal(window.interop.int8_exported, timeout=WAIT_MS) as done:
        assert window.interop.export_int8_to(tmp_path / "small")
    report = done.args[0]
    assert (tmp_path / "small.onnx").exists() and report.int8_bytes < report.float_bytes
    title, text, informative = window.interop.dialogs.infos[-1]
    assert title == "int8 model exported" and "small.onnx" in text
    assert "float32 model:" in informative and "int8 model:" in informative and "test accuracy" in informative
    assert "40 test images" in informative


def test_int8_export_needs_a_trained_network(window, tmp_path):
    window.training_session.trained.clear()
    assert not window.interop.export_int8_to(tmp_path / "x.onnx")
    assert window.interop.dialogs.errors[-1][1] == "Nothing is trained yet."


def test_an_imported_network_keeps_its_input_when_the_dataset_has_other_images(qtbot, window, tmp_path):
    data = stripes_dataset(n_train=32, n_test=8)  # 12x12x1 images; the fixture takes 12x12x3
    np.savez(tmp_path / "stripes.npz", x=data.x_train, y=data.y_train, x_test=data.x_test, y_test=data.y_test)
    window.training_panel.use_dataset(data, str(tmp_path / "stripes.npz"))
    assert window.document.input_shape == (12, 12, 1)
    import_onnx(qtbot, window, FIXTURES / "sequential_batchnorm.onnx")
    document = window.document
    assert document.input_shape == (12, 12, 3)
    # What is left is the head: four outputs for three classes, which Replace Head fixes.
    assert [type(p).__name__ for p in document.analysis().problems] == ["ClassCountError"]
    assert document.undo_stack.count() == 0 and document.is_modified()  # unsaved until saved
    said = window.training_panel.notices_board.said[-1]
    assert "takes 12×12×3 images" in said and "12×12×1" in said
    assert window.training_session.trained.start_weights_for(document.architecture()) is not None


def test_the_class_count_fix_keeps_imported_weights(qtbot, window, tmp_path):
    path, _ = onnx_of_pretrained(tmp_path)
    import_onnx(qtbot, window, path)
    window.document.set_num_classes(3)
    problem = window.document.analysis().problems[0]
    assert type(problem).__name__ == "ClassCountError"
    assert window.editor.apply_fix(problem, 3)
    assert window.document.layers()[-1]["units"] == 3 and window.document.analysis().ok
    trained = window.training_session.trained
    assert trained.model().output_shape == (3,)
    assert trained.start_weights_for(window.document.architecture()) is not None
