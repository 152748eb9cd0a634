"""Templates: listed in order, each a working classifier, loaded by File > New from template."""

from __future__ import annotations

import numpy as np
import pytest

from cnn_studio.builder.templates import list_templates, load_template, seed_architecture
from engine.architecture import analyze, check_classifier, load_architecture_file
from engine.model import Model
from engine.resources import asset_path
from tests.studio.builder_helpers import layer_types, make_window

EXPECTED = ["seed_sample", "seed_sample_batchnorm", "lenet5", "small_vgg", "mlp_baseline", "resnet8", "inception_lite"]


def test_templates_are_listed_in_teaching_order_with_descriptions():
    templates = list_templates()
    assert [t.key for t in templates] == EXPECTED
    assert all(t.name and len(t.description) > 40 for t in templates)


@pytest.mark.parametrize("key", EXPECTED)
def test_each_template_is_a_ten_class_classifier_that_runs(key):
    template = next(t for t in list_templates() if t.key == key)
    arch = load_template(template.path)
    assert "name" not in arch and "description" not in arch
    analysis = analyze(arch)
    assert analysis.ok, analysis.problems
    check_classifier(analysis, 10)
    model = Model.from_architecture(arch, seed=0)
    x = np.random.default_rng(0).random((2, *analysis.input_shape), dtype=np.float32)
    probabilities = model.predict(x)
    assert probabilities.shape == (2, 10)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-5)


def test_lenet5_and_vgg_have_their_textbook_shapes():
    lenet = analyze(load_template(asset_path("templates", "lenet5.json")))
    # conv 5x5x1x6, conv 5x5x6x16 on 5x5x16 maps, then 120, 84, 10 units.
    expected = (5 * 5 * 1 * 6 + 6) + (5 * 5 * 6 * 16 + 16) + (5 * 5 * 16 * 120 + 120) + (120 * 84 + 84) + (84 * 10 + 10)
    assert lenet.trainable_params == expected
    vgg = analyze(load_template(asset_path("templates", "small_vgg.json")))
    assert vgg.input_shape == (32, 32, 3)
    assert [info.output_shape for info in vgg.layers if info.type == "MaxPool2D"] == [(16, 16, 32), (8, 8, 64),
                                                                                      (4, 4, 128)]


def test_seed_template_matches_the_seed_document():
    seed = load_architecture_file(asset_path("architectures", "seed_sample.json"))
    assert seed_architecture()["layers"] == seed["layers"]
    assert load_template(asset_path("templates", "seed_sample.json"))["layers"] == seed["layers"]


def test_new_from_template_replaces_the_project(qtbot, tmp_path):
    window = make_window(qtbot, tmp_path, show=False)
    doc = window.document
    window.editor.append_layer("Dropout")
    actions = {a.text(): a for a in window.templates_menu.actions()}
    assert list(actions) == [t.name for t in list_templates()]
    actions["LeNet-5"].trigger()
    assert window.dialogs.questions == ["Untitled"]  # asked first: the Dropout was unsaved
    lenet = load_template(asset_path("templates", "lenet5.json"))
    assert layer_types(doc) == [spec["type"] for spec in lenet["layers"]]
    assert all(spec.get("id") for spec in doc.layers())
    assert doc.undo_stack.count() == 0 and not doc.is_modified()
    assert window.windowTitle() == "CNN Studio — Untitled[*]" and not window.isWindowModified()
    assert window.canvas.order == [spec["id"] for spec in doc.layers()]


def test_new_from_template_keeps_the_project_when_the_user_cancels(qtbot, tmp_path):
    window = make_window(qtbot, tmp_path, show=False)
    window.editor.append_layer("Dropout")
    before = window.document.architecture()
    window.dialogs.save_answer = "cancel"
    window.templates_menu.actions()[2].trigger()
    assert window.document.architecture() == before
