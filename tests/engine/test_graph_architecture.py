"""Format 2 documents: ids, inputs, the graph an analysis exposes, and every graph problem it explains."""

from __future__ import annotations

import json

import pytest

from engine.architecture import (
    FORMAT,
    FORMAT_1,
    analyze,
    layer_ids,
    load_architecture_file,
    summary,
    upgrade,
    validate,
)
from engine.errors import ArchitectureError
from engine.model import Model
from engine.resources import asset_path
from tests.helpers.engine_factories import CONCAT, RESIDUAL


def doc(*layers, shape=(8, 8, 4)):
    return {"format": FORMAT, "input": {"shape": list(shape)}, "layers": list(layers)}


def conv(layer_id, filters=4, inputs=None, **settings):
    spec = {"id": layer_id, "type": "Conv2D", "filters": filters, "kernel_size": 3, "padding": "same", **settings}
    if inputs is not None:
        spec["inputs"] = inputs
    return spec


HEAD = ({"type": "GlobalAvgPool2D"}, {"type": "Dense", "units": 3, "activation": "softmax"})


def only_problem(document):
    analysis = analyze(document)
    assert len(analysis.problems) == 1, [str(p) for p in analysis.problems]
    return analysis.problems[0]


# -- the document ------------------------------------------------------------------------------------
def test_format_1_seed_file_loads_unchanged_as_a_chain():
    seed = load_architecture_file(asset_path("architectures", "seed_sample.json"))
    assert seed["format"] == FORMAT_1
    analysis = validate(seed)
    assert analysis.is_chain and analysis.output_id == "dense_2"
    assert [info.inputs for info in analysis.layers][:2] == [("input",), ("conv2d_1",)]
    upgraded = upgrade(seed)
    assert upgraded["format"] == FORMAT and seed["format"] == FORMAT_1  # a copy
    assert [spec["id"] for spec in upgraded["layers"]] == [info.name for info in analysis.layers]
    assert all("inputs" not in spec for spec in upgraded["layers"])
    again = validate(upgraded)
    assert [i.output_shape for i in again.layers] == [i.output_shape for i in analysis.layers]
    assert again.trainable_params == analysis.trainable_params == 225034
    assert upgrade(upgraded) == upgraded


def test_a_format_1_weight_file_builds_its_chain(tmp_path):
    import numpy as np

    seed = load_architecture_file(asset_path("architectures", "seed_sample.json"))
    model = Model(seed)
    path = tmp_path / "old.npz"
    arrays = {"__format__": np.array("cnn-studio.weights/1"), "__architecture__": np.array(json.dumps(seed)),
              "__preprocessing__": np.array("null"), **model.tensors()}
    np.savez(path, **arrays)
    from engine.weights import load_weights

    loaded = load_weights(path)
    assert loaded.is_chain and loaded.architecture["format"] == FORMAT


def test_graph_analysis_exposes_inputs_shapes_consumers_and_output():
    analysis = validate(RESIDUAL)
    add = analysis.layer("add2")
    assert add.inputs == ("b2", "proj") and add.input_shapes == ((4, 4, 6), (4, 4, 6))
    assert add.input_shape == (4, 4, 6) and add.output_shape == (4, 4, 6)
    assert analysis.layer("stem").inputs == ("input",) and analysis.layer("a1").inputs == ("stem",)
    assert analysis.consumers["stem"] == ("a1", "add1") and analysis.consumers["r2"] == ("b1", "proj")
    assert analysis.consumers["out"] == () and analysis.output_id == "out"
    assert not analysis.is_chain and analysis.warnings == ()
    assert analysis.shape_of("input") == (8, 8, 3) and analysis.shape_of("proj") == (4, 4, 6)
    assert validate(CONCAT).layer("vcat").output_shape == (14,)
    assert validate(CONCAT).layer("cat").output_shape == (9, 9, 10)


def test_missing_ids_are_made_up_from_names_and_can_be_referenced():
    document = doc({"type": "Conv2D", "filters": 4, "kernel_size": 3, "padding": "same"},
                   {"id": "conv2d_1_x", "type": "ReLU"},
                   {"type": "Add", "inputs": ["conv2d_1", "conv2d_1_x"]}, *HEAD)
    assert layer_ids(document)[:3] == ["conv2d_1", "conv2d_1_x", "add_1"]
    assert validate(document).layer("add_1").input_shapes == ((8, 8, 4), (8, 8, 4))
    # A made-up id never takes an id another layer has.
    clash = doc({"type": "ReLU"}, {"id": "relu_1", "type": "ReLU"})
    assert layer_ids(clash) == ["relu_1_2", "relu_1"]


def test_summary_has_a_connected_to_column_for_graphs_only():
    text = summary(RESIDUAL)
    assert "Connected to" in text
    line = next(row for row in text.splitlines() if row.startswith("add_2 (Add)"))
    assert line.endswith("conv2d_5, conv2d_6") and "(None, 4, 4, 6)" in line
    assert "Connected to" not in summary(asset_path("architectures", "seed_sample.json"))


def test_trainable_must_be_a_bool_and_frozen_parameters_are_counted():
    analysis = analyze(doc(conv("c", trainable="no"), *HEAD))
    assert analysis.problems[0].field == "trainable" and "must be true or false" in str(analysis.problems[0])
    frozen = validate(doc(conv("c", trainable=False), *HEAD))
    assert not frozen.layer("c").trainable and frozen.layer("c").frozen_params == 3 * 3 * 4 * 4 + 4
    assert frozen.frozen_params == 148 and frozen.trainable_params == 4 * 3 + 3


# -- errors that teach ------------------------------------------------------------------------------------
def test_add_of_different_shapes_offers_a_projection_shortcut():
    document = doc(conv("a", 8, stride=2), conv("b", 8), {"id": "sum", "type": "Add", "inputs": ["b", "input"]},
                   *HEAD)
    problem = only_problem(document)
    assert str(problem).startswith("layer 3 (Add): inputs must have one shape, but input gives 8x8x4 and "
                                   "conv2d_2 gives 4x4x8")
    assert "1x1 Conv2D with 8 filters and stride 2 on input" in problem.hint
    assert "ceil(8/2) x ceil(8/2) x 8 = 4x4x8" in problem.hint
    assert problem.fix == "project_shortcut"
    assert problem.fix_data == {"input": "input", "filters": 8, "stride": 2, "kernel_size": 1, "shape": [4, 4, 8]}
    assert (problem.layer_id, problem.source_id, problem.target_id) == ("sum", "input", "sum")
    # Applying the fix as the studio would makes the network valid.
    fixed = doc(conv("a", 8, stride=2), conv("b", 8),
                {"id": "p", "type": "Conv2D", "filters": 8, "kernel_size": 1, "stride": 2, "inputs": ["input"]},
                {"id": "sum", "type": "Add", "inputs": ["b", "p"]}, *HEAD)
    assert validate(fixed).layer("sum").output_shape == (4, 4, 8)


def test_add_of_a_vector_and_a_map_explains_without_a_fix():
    document = doc(conv("a"), {"id": "f", "type": "Flatten"}, {"type": "Add", "inputs": ["a", "f"]})
    problem = only_problem(document)
    assert "cannot add flatten_1's 256-value vector with conv2d_1's 8x8x4" in str(problem)
    assert problem.fix is None and problem.source_id == "f"


def test_concatenate_of_different_sizes_offers_pooling_or_padding():
    pooled = doc(conv("a"), {"id": "m", "type": "MaxPool2D", "pool_size": 2, "inputs": ["input"]},
                 {"id": "j", "type": "Concatenate", "inputs": ["a", "m"]}, *HEAD)
    problem = only_problem(pooled)
    assert "feature maps must have the same height and width, but conv2d_1 is 8x8x4 and max_pool2d_1 is 4x4x4" \
        in str(problem)
    assert problem.fix == "insert_pooling" and problem.fix_data == {"input": "a", "pool_size": 2, "size": [4, 4]}
    assert "MaxPool2D with pool_size 2 on conv2d_1 gives 8/2 x 8/2 = 4x4" in problem.hint
    assert (problem.source_id, problem.target_id) == ("a", "j")

    padded = doc(conv("a"), {"id": "v", "type": "Conv2D", "filters": 2, "kernel_size": 3, "inputs": ["input"]},
                 conv("c", inputs=["input"]), {"id": "j", "type": "Concatenate", "inputs": ["a", "v", "c"]}, *HEAD)
    problem = only_problem(padded)
    assert "conv2d_2 is 6x6x2 and conv2d_1 is 8x8x4" in str(problem)
    assert problem.fix == "padding_same_on_input" and problem.fix_data["layer"] == "v"
    assert "padding 'same' on conv2d_2 gives 8x8" in problem.hint


def test_concatenate_of_maps_and_vectors():
    problem = only_problem(doc(conv("a"), {"id": "f", "type": "Flatten", "inputs": ["input"]},
                               {"type": "Concatenate", "inputs": ["a", "f"]}))
    assert "cannot concatenate" in str(problem) and "GlobalAvgPool2D" in problem.hint


def test_unknown_input_id_names_it_and_suggests_a_close_one():
    problem = only_problem(doc(conv("branch_a"), {"type": "Add", "inputs": ["branch_a", "branch_b"]}, *HEAD))
    assert str(problem) == ("layer 2 (Add): input 'branch_b' is not the id of any layer (did you mean 'branch_a', "
                            "layer 1 conv2d_1?)")
    assert problem.fix == "replace_input" and problem.fix_data == {"input": "branch_b", "with": "branch_a"}
    assert (problem.source_id, problem.target_id, problem.layer_id) == ("branch_b", "add_1", "add_1")
    problem = only_problem(doc(conv("a"), {"type": "Add", "inputs": ["a", "zzz"]}, *HEAD))
    assert problem.fix == "remove_input" and problem.fix_data == {"input": "zzz"}


def test_a_cycle_is_named_and_an_input_used_too_early_can_be_reordered():
    cycle = doc(conv("a", inputs=["input"]), {"id": "x", "type": "Add", "inputs": ["a", "y"]},
                {"id": "y", "type": "ReLU", "inputs": ["x"]}, *HEAD)
    problem = analyze(cycle).problems[0]
    assert str(problem) == "layer 2 (Add): is part of a cycle: add_1 -> relu_1 -> add_1"
    assert problem.fix is None and (problem.source_id, problem.target_id) == ("y", "x")
    problem = only_problem(doc(conv("a"), {"id": "s", "type": "ReLU", "inputs": ["s"]}, *HEAD))
    assert "takes its own output" in str(problem)

    early = doc(conv("a"), {"id": "x", "type": "Add", "inputs": ["a", "b"]}, conv("b", inputs=["input"]),
                {"type": "GlobalAvgPool2D", "inputs": ["x"]}, HEAD[1])
    problem = only_problem(early)
    assert str(problem).startswith("layer 2 (Add): uses conv2d_2 (layer 3) before it is defined")
    assert problem.fix == "reorder_layers"
    order = problem.fix_data["order"]
    reordered = {**early, "layers": sorted(early["layers"], key=lambda s: order.index(layer_ids(early)[
        early["layers"].index(s)]))}
    assert validate(reordered).ok


def test_a_single_input_layer_given_two_offers_a_merge():
    problem = only_problem(doc(conv("a"), conv("b", inputs=["input"]), conv("c", inputs=["a", "b"]), *HEAD))
    assert str(problem) == "layer 3 (Conv2D): takes one input but is given 2: conv2d_1, conv2d_2"
    assert problem.fix == "merge_inputs" and problem.fix_data == {"inputs": ["a", "b"], "merge": "Add"}
    problem = only_problem(doc(conv("a", 2), conv("b", inputs=["input"]), conv("c", inputs=["a", "b"]), *HEAD))
    assert problem.fix_data["merge"] == "Concatenate" and "insert a Concatenate" in problem.hint


def test_a_merge_with_one_input():
    problem = only_problem(doc(conv("a"), {"id": "m", "type": "Concatenate", "inputs": ["a"]}, *HEAD))
    assert str(problem) == "layer 2 (Concatenate): Concatenate joins two or more inputs but is given 1 (conv2d_1)"
    assert problem.fix == "remove_merge" and problem.fix_data == {"layer": "m"}
    problem = only_problem(doc(conv("a"), {"type": "Add"}, *HEAD))
    assert "Add joins two or more inputs but is given 1" in str(problem)


def test_an_unused_branch_is_a_warning_not_an_error():
    analysis = analyze(doc(conv("a"), conv("lost", inputs=["a"]), conv("b", inputs=["a"]), *HEAD))
    assert analysis.ok and len(analysis.warnings) == 1
    warning = analysis.warnings[0]
    assert warning.is_warning and warning.severity == "warning" and warning.layer_id == "lost"
    assert str(warning) == ("layer 2 (Conv2D): the output of conv2d_2 is used by no layer and is not the network's "
                            "output (the last layer, dense_1): this branch does nothing")
    assert validate(doc(conv("a"), conv("lost", inputs=["a"]), conv("b", inputs=["a"]), *HEAD)).warnings


@pytest.mark.parametrize("spec,message", [
    ({"id": "a", "type": "ReLU"}, "id 'a' is already layer 1's"),
    ({"id": "input", "type": "ReLU"}, 'id "input" is reserved'),
    ({"id": 7, "type": "ReLU"}, "id 7 must be a non-empty string"),
    ({"type": "ReLU", "inputs": "a"}, "inputs 'a' must be a list of layer ids"),
    ({"type": "ReLU", "inputs": []}, "inputs [] must be a list of layer ids"),
])
def test_bad_ids_and_inputs(spec, message):
    problem = analyze(doc(conv("a"), spec, *HEAD)).problems[0]
    assert problem.layer_index == 2 and message in str(problem)


def test_problems_carry_the_layer_id_for_the_canvas():
    problem = analyze(doc(conv("a"), {"id": "d", "type": "Dense", "units": 3})).problems[0]
    assert problem.layer_id == "d" and problem.fix == "insert_flatten_before"
    problem = analyze(doc({"id": "q", "type": "Conv2D", "filters": 0})).problems[0]
    assert problem.layer_id == "q"


def test_every_problem_of_a_document_is_listed_with_one_line_each():
    analysis = analyze(doc(conv("a"), {"type": "Add", "inputs": ["a", "nope"]}, conv("c", inputs=["a", "a2"]),
                           {"type": "Concatenate", "inputs": ["a"]}, *HEAD))
    assert len(analysis.problems) >= 3
    assert all("\n" not in str(p) for p in analysis.problems)


def test_validate_raises_the_first_graph_problem():
    with pytest.raises(ArchitectureError, match="is not the id of any layer"):
        validate(doc(conv("a"), {"type": "Add", "inputs": ["a", "b"]}))


def test_a_softmax_inside_the_network_is_a_warning_with_a_fix():
    inner = {"id": "probs", "type": "Dense", "units": 6, "activation": "softmax"}
    analysis = analyze(doc({"type": "Flatten"}, inner, {"id": "r", "type": "ReLU"},
                           {"type": "Dense", "units": 3, "activation": "softmax"}))
    assert analysis.ok and len(analysis.warnings) == 1
    [warning] = analysis.warnings
    assert warning.layer_id == "probs" and warning.fix == "activation_relu"
    assert str(warning) == ("layer 2 (Dense): dense_1 has a softmax activation: it turns its values into "
                            "probabilities but is not the network's output: relu_1 takes them")
    assert "a ReLU after it changes nothing" in warning.hint and "Use 'relu' in dense_1" in warning.hint
    # A Softmax layer in the middle: its fix removes it.
    analysis = analyze(doc({"type": "Flatten"}, {"id": "s", "type": "Softmax"}, {"type": "Dense", "units": 3}))
    [warning] = analysis.warnings
    assert warning.fix == "remove_softmax" and "ReLU" not in warning.hint
    # On the output, where it belongs, softmax is no warning.
    assert analyze(doc({"type": "Flatten"}, {"type": "Dense", "units": 3, "activation": "softmax"})).warnings == ()
